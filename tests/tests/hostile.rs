//! The browser over runs that carry hostile text: markup in a message, an experiment, a metric
//! name, a hyperparameter value, an error, a log line and file names (of the run's folder and
//! of its snapshot), names a URL would misread (`#`, `?`, `%`, spaces, bytes that are not
//! UTF-8) and a terminal escape sequence. Every page, chart and API answer of a real
//! `flammable ui` shows them as text; `tests/tests/browser.rs` checks the same pages in
//! Chromium.

use crate::common::{flammable_bin, git, Sandbox};
use crate::http::{get, Answer};
use crate::ui::start_ui;
use flammable::store::{Point, Record, RunKind, RunStatus};
use flammable::Run;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The note of the running run, and who edited it (a script).
pub const NOTE: &str = "<script>alert('note')</script>";
/// A tag of the running run (an image with a handler).
pub const TAG: &str = "<img src=x onerror=alert('tag')>";
/// The message of both trained runs (a script).
pub const MESSAGE: &str = "<script>alert('message')</script>";
/// The in-process run's experiment (an element with a handler).
pub const EXPERIMENT: &str = "<svg onload=alert('experiment')>";
/// Its metric, as a series and a final metric (breaks out of an attribute).
pub const METRIC: &str = "acc\"><img src=x onerror=alert('metric')>";
/// Its hyperparameter `label`'s value.
pub const HYPER: &str = "'\"><script>alert('hyper')</script>";
/// A line of its log.
pub const LOG: &str = "<script>alert('log')</script>";
/// A file of its folder.
pub const FILE: &str = "\"><img src=x onerror=alert('file')>.txt";
/// A file of its folder whose name a URL would misread.
pub const AWKWARD: &str = "a#b?c%d e+f.txt";
/// A file of its folder whose name holds a terminal escape sequence (a window title).
pub const ESCAPE: &str = "\u{1b}]0;owned\u{7}.txt";
/// The failed run's error.
pub const ERROR: &str = "</td><script>alert('error')</script>";
/// A file of the snapshots, and its content.
pub const CODE_FILE: &str = "<img src=x onerror=alert('code')>.rs";
pub const CODE: &str = "// <script>alert('code')</script>\n";

/// Markup that must never reach a page unescaped.
pub const RAW: &[&str] = &["<script>alert", "<img src=x", "<svg onload"];

/// Two digits runs of two versions of a repository that holds hostile and awkward file
/// names (`schema.sql`'s comment lines change), an in-process run left running with every
/// hostile value, and a failed one with a hostile error: made once.
pub struct Hostile {
    pub sandbox: Sandbox,
    pub first: String,
    pub second: String,
    pub running: String,
    pub failed: String,
    _run: Run,
}

pub fn hostile() -> &'static Hostile {
    static FIXTURE: OnceLock<Hostile> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let s = Sandbox::repo();
        std::fs::write(s.path().join(CODE_FILE), CODE).unwrap();
        std::fs::write(s.path().join(AWKWARD), "awkward\n").unwrap();
        std::fs::write(
            s.path().join("schema.sql"),
            "select 1;\n-- the old way\nselect 2;\n",
        )
        .unwrap();
        git(s.path(), &["add", "-A"]);
        git(s.path(), &["commit", "-qm", "hostile names"]);
        // Ids sort by time to the second: the new run is the one not seen before.
        let train = |seed: &str, hidden: &str, before: &[String]| {
            s.ok(
                "digits",
                &[
                    "train", "-q", "--epochs", "1", "--seed", seed, "--hidden", hidden, "-m",
                    MESSAGE,
                ],
            );
            s.store()
                .records()
                .unwrap()
                .into_iter()
                .find(|r| !before.contains(&r.id))
                .unwrap()
                .id
        };
        let first = train("1", "16", &[]);
        std::fs::write(
            s.path().join("schema.sql"),
            "select 1;\n++ counter\n-- the new way\nselect 2;\n",
        )
        .unwrap();
        let second = train("2", "32", std::slice::from_ref(&first));

        let mut record = Record::new(EXPERIMENT, RunKind::Train, 3);
        record.message = Some(MESSAGE.into());
        // Notes as a hand-edited record may hold them (the browser and `edit` refuse such tags).
        record.note = Some(NOTE.into());
        record.tags = vec![TAG.into()];
        record.edits = vec![flammable_core::store::record::Edit {
            at: "2026-12-06T10:00:00Z".into(),
            by: NOTE.into(),
            field: flammable_core::store::record::EditedField::Tags,
            from: Some(TAG.into()),
            to: Some(NOTE.into()),
        }];
        let run = Run::start(&s.store(), record).unwrap();
        std::fs::write(
            run.hyperparameters_path(),
            format!("(task: (label: {HYPER:?}, hidden: 8))\n"),
        )
        .unwrap();
        let points: Vec<Point> = (0..5)
            .map(|step| Point {
                name: METRIC.into(),
                step,
                epoch: 0,
                value: 0.5 + step as f64 * 0.1,
                time: 0.0,
            })
            .collect();
        run.log_metrics(&points);
        run.set_metrics(&BTreeMap::from([(METRIC.to_string(), 0.9)]))
            .unwrap();
        run.log_line(LOG);
        for name in [FILE, AWKWARD, ESCAPE] {
            std::fs::write(run.file(name).unwrap(), name).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let dir = run
                .file("x")
                .unwrap()
                .with_file_name(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
            std::fs::write(dir, "latin-1").unwrap();
        }
        let running = run.id();

        let failing = Run::start(&s.store(), Record::new("digits", RunKind::Train, 4)).unwrap();
        failing.log_metrics(&points);
        failing
            .finish(RunStatus::Failed, Some(ERROR.into()))
            .unwrap();
        let failed = failing.id();
        Hostile {
            sandbox: s,
            first,
            second,
            running,
            failed,
            _run: run,
        }
    })
}

/// Percent-encoding of a query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Hostile {
    /// Every page of the browser over these runs, and the chart of the hostile metric.
    pub fn pages(&self) -> Vec<String> {
        let (a, b, r, f) = (&self.first, &self.second, &self.running, &self.failed);
        vec![
            "/".into(),
            format!("/run/{a}"),
            format!("/run/{r}"),
            format!("/run/{f}"),
            format!("/run/{a}/code"),
            format!("/run/{b}/code/{}", encode(CODE_FILE)),
            format!("/compare?runs={b},{a},{r},{f}"),
            format!("/compare?runs={a},{b}&view=unified"),
            format!("/compare?runs={r},{f}"),
            format!("/chart?runs={a},{r}&name={}", encode(METRIC)),
            format!("/rows?q={}", encode("status:running")),
        ]
    }
}

/// Asserts that `page` (of `path`) answered `status` and shows hostile values, escaped.
fn assert_escaped(path: &str, page: &Answer, status: u16) {
    assert_eq!(page.status, status, "{path}: {}", page.text());
    let text = page.text();
    for raw in RAW {
        assert!(!text.contains(raw), "{path}: `{raw}` unescaped in\n{text}");
    }
    assert!(
        ["&lt;script&gt;alert", "&lt;img src=x", "&lt;svg onload"]
            .iter()
            .any(|shown| text.contains(shown)),
        "{path}: no hostile value shown:\n{text}"
    );
}

#[test]
fn every_page_shows_hostile_values_as_text() {
    let h = hostile();
    let ui = start_ui(&h.sandbox, &[]);
    for path in h.pages() {
        assert_escaped(&path, &get(&ui.addr, &path), 200);
    }
    // A filter that cannot be read, and runs that cannot be found: said with what was
    // asked, escaped.
    for path in [
        format!("/?q={}", encode(MESSAGE)),
        format!("/run/{}", encode(LOG)),
        format!("/compare?runs={}", encode(EXPERIMENT)),
    ] {
        let status = if path.starts_with("/?") { 400 } else { 404 };
        assert_escaped(&path, &get(&ui.addr, &path), status);
    }
    // What each page should show of them, escaped.
    let run = get(&ui.addr, &format!("/run/{}", h.running)).text();
    for shown in [MESSAGE, EXPERIMENT, METRIC, HYPER, LOG, FILE, NOTE, TAG] {
        let escaped = shown
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(run.contains(&escaped), "`{escaped}` not on the run page");
    }
    let failed = get(&ui.addr, &format!("/run/{}", h.failed)).text();
    assert!(
        failed.contains("&lt;/td&gt;&lt;script&gt;alert('error')"),
        "{failed}"
    );
    let compare = get(
        &ui.addr,
        &format!("/compare?runs={},{}", h.running, h.failed),
    )
    .text();
    // The legend names the hyperparameter that differs, its value escaped.
    assert!(
        compare.contains("label='&quot;&gt;&lt;script&gt;alert('hyper')"),
        "{compare}"
    );

    // The API: JSON (never a page a browser would render), each value exactly as it is.
    let all = get(&ui.addr, "/api/runs");
    assert!(all.header("content-type").starts_with("application/json"));
    assert_eq!(all.header("x-content-type-options"), "nosniff");
    let runs = all.json()["runs"].as_array().unwrap().clone();
    let running = runs.iter().find(|r| r["id"] == h.running.as_str()).unwrap();
    assert_eq!(running["message"], MESSAGE);
    assert_eq!(running["note"], NOTE);
    assert_eq!(running["tags"][0], TAG);
    assert_eq!(running["experiment"], EXPERIMENT);
    assert_eq!(running["hyper"]["label"], HYPER);
    assert_eq!(running["metrics"][METRIC], 0.9);
    let failed = runs.iter().find(|r| r["id"] == h.failed.as_str()).unwrap();
    assert_eq!(failed["error"], ERROR);
    let files = get(&ui.addr, &format!("/api/runs/{}/files", h.running)).json();
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == format!("files/{FILE}").as_str()),
        "{files}"
    );
    let series = get(
        &ui.addr,
        &format!("/api/runs/{}/series?name={}", h.running, encode(METRIC)),
    );
    assert_eq!(series.json()["name"], METRIC);
    let log = get(&ui.addr, &format!("/api/runs/{}/log", h.running));
    assert!(log.header("content-type").starts_with("text/plain"));
    assert_eq!(log.header("x-content-type-options"), "nosniff");
    assert_eq!(log.text().trim(), LOG);
    let tree = get(&ui.addr, &format!("/api/runs/{}/tree", h.first)).json();
    assert!(
        tree.as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == CODE_FILE),
        "{tree}"
    );
    let code = get(
        &ui.addr,
        &format!("/api/runs/{}/code/{}", h.first, encode(CODE_FILE)),
    );
    assert_eq!(code.text(), CODE);
    assert!(code.header("content-type").starts_with("text/plain"));
}

/// The `href`s of `<a>` elements on `page` whose text is `text`.
fn hrefs(page: &str, text: &str) -> Vec<String> {
    page.split("<a ")
        .filter_map(|a| {
            let (attrs, rest) = a.split_once('>')?;
            let shown = rest.split("</a>").next()?;
            (shown == text).then(|| {
                let href = attrs.split("href=\"").nth(1)?.split('"').next()?;
                Some(href.replace("&amp;", "&"))
            })?
        })
        .collect()
}

#[test]
fn awkward_names_link_to_their_files() {
    let h = hostile();
    let ui = start_ui(&h.sandbox, &[]);
    // The snapshot's files: each link of the tree opens its file.
    let tree = get(&ui.addr, &format!("/run/{}/code", h.first)).text();
    for (name, content) in [(CODE_FILE, CODE), (AWKWARD, "awkward\n")] {
        let shown = name.replace('<', "&lt;").replace('>', "&gt;");
        let links = hrefs(&tree, &shown);
        assert_eq!(links.len(), 1, "{name}: {links:?}\n{tree}");
        let page = get(&ui.addr, &links[0]);
        assert_eq!(page.status, 200, "{}: {}", links[0], page.text());
        let raw = hrefs(&page.text(), "raw");
        assert_eq!(get(&ui.addr, &raw[0]).text(), content, "{}", raw[0]);
    }
    // The run's files, whatever their names: listed, and each link downloads its file.
    let run = get(&ui.addr, &format!("/run/{}", h.running)).text();
    let mut names = vec![
        (
            FILE.replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;"),
            FILE.to_string(),
        ),
        (AWKWARD.to_string(), AWKWARD.to_string()),
    ];
    if cfg!(unix) {
        names.push(("files/caf\u{fffd}.txt".into(), "latin-1".into()));
    }
    for (shown, content) in names {
        let shown = if shown.starts_with("files/") {
            shown
        } else {
            format!("files/{shown}")
        };
        let links = hrefs(&run, &shown);
        assert_eq!(links.len(), 1, "{shown}: {links:?}");
        let file = get(&ui.addr, &links[0]);
        assert_eq!(file.status, 200, "{}: {}", links[0], file.text());
        assert_eq!(file.text(), content, "{}", links[0]);
    }
}

#[test]
fn show_escapes_a_file_name_that_would_drive_the_terminal() {
    let h = hostile();
    let out = std::process::Command::new(flammable_bin())
        .args(["show", &h.running])
        .current_dir(h.sandbox.path())
        .env("FLAMMABLE_STORE", h.sandbox.path().join("store"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{1b}]0;owned\\u{7}.txt"), "{stdout}");
}
