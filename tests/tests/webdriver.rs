//! Headless Chromium, driven through chromedriver's W3C WebDriver protocol (JSON over HTTP):
//! open pages, find elements, read text, type, move the pointer, run a script, take
//! screenshots.

use crate::common::KillOnDrop;
use crate::http::request;
use base64::Engine as _;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A browser session; the browser and its driver end when it is dropped.
pub struct Browser {
    addr: String,
    session: String,
    _driver: KillOnDrop,
}

/// The element key of the W3C protocol.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`; `None` when they are
    /// not installed.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        let driver = ["chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|d| Command::new(d).arg("--version").output().is_ok())?;
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let driver = KillOnDrop(child);
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while request("GET", &addr, "/status", &[], b"").is_err() {
            assert!(Instant::now() < deadline, "chromedriver does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"), "--hide-scrollbars",
            ]}
        }}});
        let answer = call(&addr, "POST", "/session", Some(caps));
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Some(Browser {
            addr,
            session,
            _driver: driver,
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The `innerText` of each element matching `css`, read in one step (a page that is
    /// being replaced reads as no elements, never as an error).
    pub fn texts(&self, css: &str) -> Vec<String> {
        try_call(
            &self.addr,
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(json!({
                "script": "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText);",
                "args": [css],
            })),
        )
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
    }

    /// The elements matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            assert!(Instant::now() < deadline, "no element `{css}` on the page");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn text(&self, element: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// The text of the open alert, confirm or prompt dialog; `None` when there is none.
    pub fn alert_text(&self) -> Option<String> {
        try_call(
            &self.addr,
            "GET",
            &format!("/session/{}/alert/text", self.session),
            None,
        )
        .ok()
        .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Performs input `actions` (pointer moves, keys) of the W3C Actions API.
    pub fn actions(&self, actions: Value) {
        self.cmd("POST", "/actions", Some(json!({ "actions": actions })));
    }

    /// Performs the mouse's `actions` (moves, presses) of the W3C Actions API.
    pub fn pointer(&self, actions: Value) {
        self.actions(json!([{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": actions
        }]));
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("a base64 screenshot")
    }

    /// Waits up to `secs` for `check` to hold.
    pub fn wait_for(&self, secs: u64, what: &str, mut check: impl FnMut(&Browser) -> bool) {
        crate::common::wait_for(secs, what, || check(self));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request(
            "DELETE",
            &self.addr,
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
    }
}

/// One WebDriver command; its `value`, panicking on a WebDriver error.
fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    try_call(addr, method, path, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One WebDriver command; its `value`, or the WebDriver error.
fn try_call(addr: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let answer = request(
        method,
        addr,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .map_err(|e| format!("webdriver {method} {path}: {e}"))?;
    let v = answer.json();
    if answer.status >= 400 {
        return Err(format!(
            "webdriver {method} {path}: {} {}",
            answer.status, v
        ));
    }
    Ok(v["value"].clone())
}
