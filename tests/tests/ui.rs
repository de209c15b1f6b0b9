//! The experiment browser's server as a user runs it — `flammable ui` as a subprocess on a
//! free loopback port, over a store made by real runs of the digits example — read through its
//! JSON API and pages.

use crate::common::{assert_one_line_error, flammable_bin, KillOnDrop, Sandbox};
use crate::http::{get, get_with, Answer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running `flammable ui`.
pub struct Ui {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The address it printed.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    _child: KillOnDrop,
}

/// Starts `flammable ui --port 0 ARGS` over the sandbox's store and reads the address it
/// prints.
pub fn start_ui(s: &Sandbox, args: &[&str]) -> Ui {
    let mut child = Command::new(flammable_bin())
        .args(["ui", "--port", "0"])
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env_remove("FLAMMABLE_UI_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    let port = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address printed: {line:?}"))
        .to_string();
    Ui {
        addr: format!("127.0.0.1:{port}"),
        url,
        pid: child.id(),
        _child: KillOnDrop(child),
    }
}

/// Two train runs of two versions of the code (`model.rs` changes a line), and a test run of
/// the second: made once, read by every test of the browser.
pub struct Fixture {
    pub sandbox: Sandbox,
    pub v1: String,
    pub v2: String,
    pub test: String,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let s = Sandbox::repo();
        s.ok(
            "digits",
            &[
                "train",
                "-q",
                "--epochs",
                "2",
                "--seed",
                "1",
                "-m",
                "baseline v1",
            ],
        );
        std::fs::write(s.path().join("model.rs"), "// version 2: wider\n").unwrap();
        s.ok(
            "digits",
            &[
                "train", "-q", "--epochs", "3", "--seed", "2", "--hidden", "64", "-m", "wider v2",
            ],
        );
        // Ids sort by time to the second: find each run by what it is.
        let find = |s: &Sandbox, f: &dyn Fn(&flammable::store::Record) -> bool| {
            s.store()
                .records()
                .unwrap()
                .into_iter()
                .find(|r| f(r))
                .unwrap()
                .id
        };
        let v1 = find(&s, &|r| r.message.as_deref() == Some("baseline v1"));
        let v2 = find(&s, &|r| r.message.as_deref() == Some("wider v2"));
        s.ok("digits", &["test", "-q", &v2]);
        let test = find(&s, &|r| r.parent.as_deref() == Some(v2.as_str()));
        Fixture {
            sandbox: s,
            v1,
            v2,
            test,
        }
    })
}

fn ids(a: &Answer) -> Vec<String> {
    a.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_api_lists_filters_sorts_and_pages_real_runs() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    assert_eq!(ui.url, format!("http://{}/", ui.addr));
    let all = get(&ui.addr, "/api/runs");
    assert_eq!(all.status, 200, "{}", all.text());
    assert_eq!(all.json()["total"], 3);
    // Newest first by default: ids sort by start time.
    let mut newest_first = vec![f.test.clone(), f.v2.clone(), f.v1.clone()];
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids(&all), newest_first);
    let v = all.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == f.v2.as_str())
        .unwrap()
        .clone();
    assert_eq!(v["experiment"], "digits");
    assert_eq!(v["status"], "finished");
    assert_eq!(v["hyper"]["hidden"], "64");
    assert!(v["metrics"]["loss"].as_f64().is_some(), "{v}");

    assert_eq!(ids(&get(&ui.addr, "/api/runs?q=kind:train")).len(), 2);
    assert_eq!(ids(&get(&ui.addr, "/api/runs?q=WIDER")), vec![f.v2.clone()]);
    assert_eq!(
        ids(&get(&ui.addr, "/api/runs?q=hidden%3D64+kind:train")),
        vec![f.v2.clone()]
    );
    assert_eq!(
        ids(&get(&ui.addr, "/api/runs?q=epochs%3E2+kind:train")),
        vec![f.v2.clone()]
    );
    assert_eq!(
        ids(&get(&ui.addr, &format!("/api/runs?q=parent:{}", f.v2))),
        vec![f.test.clone()]
    );
    // Sorted by a metric, runs without it last either way.
    let by_loss = ids(&get(&ui.addr, "/api/runs?sort=metric:loss&order=asc"));
    assert_eq!(by_loss.last(), Some(&f.test));
    let by_epochs = ids(&get(
        &ui.addr,
        "/api/runs?sort=param:epochs&order=desc&q=kind:train",
    ));
    assert_eq!(by_epochs, [f.v2.clone(), f.v1.clone()]);
    // Pages.
    let page = get(&ui.addr, "/api/runs?per_page=2&page=2");
    assert_eq!(page.json()["pages"].as_u64(), Some(2));
    assert_eq!(ids(&page), [newest_first[2].clone()]);
    // Bad requests say why.
    for (path, says) in [
        ("/api/runs?q=status:sleeping", "sleeping"),
        ("/api/runs?q=accuracyy%3E1", "accuracyy"),
        ("/api/runs?sort=colour", "colour"),
        ("/api/runs?q=parent:", "parent:VALUE"),
        ("/api/runs?per_page=0", "per_page"),
    ] {
        let a = get(&ui.addr, path);
        assert_eq!(a.status, 400, "{path}: {}", a.text());
        assert!(
            a.json()["error"].as_str().unwrap().contains(says),
            "{path}: {}",
            a.text()
        );
    }
}

#[test]
fn a_run_its_series_code_and_files_through_the_api() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let run = get(&ui.addr, &format!("/api/runs/{}", f.v2));
    assert_eq!(run.status, 200, "{}", run.text());
    let run = run.json();
    assert_eq!(run["record"]["message"], "wider v2");
    assert_eq!(run["children"][0], f.test.as_str());
    let series: Vec<&str> = run["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(series.contains(&"loss"), "{series:?}");
    assert!(run["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "record.ron"));
    // A prefix finds the run.
    assert_eq!(
        get(&ui.addr, &format!("/api/runs/{}", &f.v2[..f.v2.len() - 2])).status,
        200
    );

    // The whole series, then the same downsampled: never more than 4 points a bucket, the
    // extremes kept.
    let full = get(&ui.addr, &format!("/api/runs/{}/series?name=loss", f.v2)).json();
    let n = full["points_in_range"].as_u64().unwrap();
    assert!(n >= 3, "{full}");
    let values: Vec<f64> = full["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let small = get(
        &ui.addr,
        &format!("/api/runs/{}/series?name=loss&buckets=1", f.v2),
    )
    .json();
    let kept: Vec<f64> = small["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(kept.len() <= 4 && kept.contains(&max), "{small}");
    let steps = full["steps"].as_array().unwrap();
    let (a, b) = (steps[1].as_u64().unwrap(), steps[2].as_u64().unwrap());
    let zoomed = get(
        &ui.addr,
        &format!("/api/runs/{}/series?name=loss&from={a}&to={b}", f.v2),
    )
    .json();
    assert_eq!(zoomed["points_in_range"], 2, "{zoomed}");
    assert_eq!(
        get(&ui.addr, &format!("/api/runs/{}/series?name=nope", f.v2)).status,
        404
    );
    assert_eq!(
        get(&ui.addr, &format!("/api/runs/{}/series", f.v2)).status,
        400
    );

    // Code: the snapshot's files, one of them as text, the diff between the two runs and the
    // changes each ran with.
    let tree = get(&ui.addr, &format!("/api/runs/{}/tree", f.v2)).json();
    assert!(
        tree.as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "model.rs"),
        "{tree}"
    );
    let file = get(&ui.addr, &format!("/api/runs/{}/code/model.rs", f.v2));
    assert_eq!(file.text(), "// version 2: wider\n");
    assert!(
        file.header("content-type").starts_with("text/plain"),
        "{:?}",
        file.headers
    );
    assert!(file.header("content-security-policy").contains("sandbox"));
    assert_eq!(
        get(&ui.addr, &format!("/api/runs/{}/code/nope.rs", f.v2)).status,
        404
    );
    let diff = get(&ui.addr, &format!("/api/diff?a={}&b={}", f.v1, f.v2)).json();
    let patch = diff[0]["patch"].as_str().unwrap();
    assert_eq!(diff[0]["path"], "model.rs");
    assert!(
        patch.contains("-// version 1") && patch.contains("+// version 2: wider"),
        "{patch}"
    );
    let changes = get(&ui.addr, &format!("/api/runs/{}/changes", f.v2)).json();
    assert_eq!(changes[0]["kind"], "modified", "{changes}");
    assert_eq!(
        get(&ui.addr, &format!("/api/runs/{}/changes", f.v1)).json(),
        serde_json::json!([])
    );

    // Files: downloads from the run's folder only.
    let record = get(&ui.addr, &format!("/files/{}/record.ron", f.v2));
    assert_eq!(record.status, 200);
    assert!(record.text().contains("wider v2"));
    let checkpoint = get(&ui.addr, &format!("/api/runs/{}/files", f.v2)).json();
    let weights = checkpoint
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".safetensors"))
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let download = get(&ui.addr, &format!("/files/{}/{weights}", f.v2));
    assert_eq!(download.status, 200);
    assert!(download
        .header("content-disposition")
        .starts_with("attachment"));
    assert_eq!(
        download.body.len() as u64,
        std::fs::metadata(f.sandbox.store().run_dir(&f.v2).join(&weights))
            .unwrap()
            .len()
    );
    assert!(get(&ui.addr, &format!("/api/runs/{}/log", f.v2)).status == 200);
}

#[test]
fn traversal_foreign_hosts_and_unknown_runs_are_refused() {
    let f = fixture();
    std::fs::write(f.sandbox.path().join("store/secret.txt"), "secret").unwrap();
    let ui = start_ui(&f.sandbox, &[]);
    for path in [
        format!("/files/{}/../../secret.txt", f.v2),
        format!("/files/{}/..%2F..%2Fsecret.txt", f.v2),
        format!("/files/{}/%2e%2e/%2e%2e/secret.txt", f.v2),
        format!("/files/{}//etc/passwd", f.v2),
        format!("/files/{}/checkpoints", f.v2),
        "/files/nope/record.ron".to_string(),
        format!("/api/runs/{}/code/../../../etc/passwd", f.v2),
    ] {
        let a = get(&ui.addr, &path);
        assert_eq!(a.status, 404, "{path}: {}", a.text());
        assert!(!a.text().contains("secret"), "{path}");
    }
    assert_eq!(get(&ui.addr, "/run/nope").status, 404);
    assert_eq!(get(&ui.addr, "/api/runs/nope").status, 404);
    assert_eq!(get(&ui.addr, "/no/such/page").status, 404);
    // A page of another site that resolves its name to 127.0.0.1 is refused.
    let rebound = get_with(&ui.addr, "/api/runs", &[("Host", "evil.example:7000")]);
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    // Pages carry a policy that runs no inline script.
    let page = get(&ui.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .contains("script-src 'self'"));
    assert_eq!(page.header("x-content-type-options"), "nosniff");
}

#[test]
fn pages_show_runs_a_run_its_code_and_a_comparison() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let runs = get(&ui.addr, "/?q=kind:train").text();
    assert!(
        runs.contains(&f.v1) && runs.contains(&f.v2) && !runs.contains(&format!("/run/{}", f.test))
    );
    assert!(runs.contains("2 of 3 runs"), "{runs}");
    let bad = get(&ui.addr, "/?q=loss%3Cabc");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("not a number"));

    let run = get(&ui.addr, &format!("/run/{}", f.v2)).text();
    for part in [
        "wider v2",
        "<svg",
        "class=\"line c0\"",
        "Uncommitted changes",
        "+// version 2: wider",
        "record.ron",
        &f.test,
    ] {
        assert!(run.contains(part), "`{part}` not on the run page");
    }
    let tree = get(&ui.addr, &format!("/run/{}/code", f.v2)).text();
    assert!(tree.contains("model.rs"));
    let file = get(&ui.addr, &format!("/run/{}/code/model.rs", f.v2)).text();
    assert!(file.contains("version 2: wider"));

    // Newest first, as the runs table lists and sends them: the base is the oldest.
    let compare = get(&ui.addr, &format!("/compare?runs={},{}", f.v2, f.v1)).text();
    for part in [
        "class=\"line c1\"",
        "tr class=\"differs\"",
        "<td class=\"r add\">// version 2: wider</td>",
        "<td class=\"l del\">// version 1</td>",
        // The legend and the lines say what sets the runs apart.
        "hidden=64",
        "hidden=128",
    ] {
        assert!(compare.contains(part), "`{part}` not on the compare page");
    }
    let unified = get(
        &ui.addr,
        &format!("/compare?runs={},{}&view=unified&base={}", f.v1, f.v2, f.v2),
    )
    .text();
    assert!(
        unified.contains("<span class=\"del\">-// version 2: wider"),
        "{unified}"
    );
    let chart = get(
        &ui.addr,
        &format!("/chart?runs={},{}&name=loss&width=300", f.v1, f.v2),
    );
    assert_eq!(chart.header("content-type"), "image/svg+xml");
    assert_eq!(chart.text().matches("<g class=\"line").count(), 2);
    // Titled axes.
    assert!(chart.text().contains(">step</text>"), "{}", chart.text());
    assert!(chart.text().contains(">loss</text>"), "{}", chart.text());
    assert_eq!(get(&ui.addr, "/compare?runs=").status, 400);
    let bad = get(&ui.addr, &format!("/compare?runs={}&view=sideways", f.v1));
    assert_eq!(bad.status, 400);
    assert!(
        bad.text()
            .contains("view: `sideways`: use split or unified"),
        "{}",
        bad.text()
    );
    assert!(bad.header("content-type").starts_with("text/html"));

    // Assets: the pages link them by version, which may be cached for good; a URL without
    // the version is answered fresh.
    let page = get(&ui.addr, "/").text();
    for asset in ["app.js", "app.css", "chart.css", "highlight.css"] {
        let url = page
            .split(&format!("/assets/{asset}?v="))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|v| format!("/assets/{asset}?v={v}"))
            .unwrap_or_else(|| panic!("{asset} not linked by version:\n{page}"));
        let versioned = get(&ui.addr, &url);
        assert_eq!(versioned.status, 200, "{url}");
        assert!(
            versioned.header("cache-control").contains("immutable"),
            "{url}: {:?}",
            versioned.headers
        );
        let plain = get(&ui.addr, &format!("/assets/{asset}"));
        assert_eq!(plain.header("cache-control"), "no-cache");
        assert_eq!(plain.body, versioned.body);
    }
    assert!(get(&ui.addr, "/assets/highlight.css")
        .text()
        .contains(".hl-"));
}

#[test]
fn a_token_guards_any_address_but_loopback() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &["--host", "0.0.0.0"]);
    let token = ui
        .url
        .split_once("?token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no token printed: {}", ui.url));
    assert_eq!(token.len(), 32);
    let none = get(&ui.addr, "/api/runs");
    assert_eq!(none.status, 401);
    assert!(none.text().contains("token"));
    assert_eq!(get(&ui.addr, "/api/runs?token=wrong").status, 401);
    assert_eq!(
        get_with(
            &ui.addr,
            "/api/runs",
            &[("Authorization", &format!("Bearer {token}"))]
        )
        .status,
        200
    );
    let first = get(&ui.addr, &format!("/?token={token}"));
    assert_eq!(first.status, 200);
    let cookie = first
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // One cookie per server and port: an earlier server's cannot shadow this one's.
    let port = ui.addr.rsplit(':').next().unwrap();
    assert!(
        cookie.starts_with(&format!("flammable_ui_{port}=")),
        "{cookie}"
    );
    assert_eq!(
        get_with(&ui.addr, &format!("/run/{}", f.v1), &[("Cookie", &cookie)]).status,
        200
    );
    // On loopback a token given by the user is demanded too.
    let mine = start_ui(&f.sandbox, &["--token", "a-token-of-my-own-choosing"]);
    assert_eq!(get(&mine.addr, "/api/runs").status, 401);
    assert_eq!(
        get(&mine.addr, "/api/runs?token=a-token-of-my-own-choosing").status,
        200
    );
}

#[test]
fn bad_ui_arguments_get_one_line() {
    let s = Sandbox::new();
    let ui = |args: &[&str]| {
        Command::new(flammable_bin())
            .arg("ui")
            .args(args)
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .output()
            .unwrap()
    };
    // A store named but absent is refused: a typo would show an empty browser.
    assert_one_line_error(&ui(&[]), 2, &["no run store", "FLAMMABLE_STORE"]);
    std::fs::create_dir(s.path().join("store")).unwrap();
    assert_one_line_error(&ui(&["--host", "my-laptop"]), 2, &["not an IP address"]);
    assert_one_line_error(&ui(&["--port", "70000"]), 2, &["70000"]);
    assert_one_line_error(&ui(&["--token", "short"]), 2, &["16"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_one_line_error(&ui(&["--port", &port]), 2, &["cannot listen", "--port"]);
    // A store with no runs yet is shown empty, and nothing is written in it (the browser
    // only reads).
    let empty = start_ui(&s, &[]);
    assert!(get(&empty.addr, "/")
        .text()
        .contains("No runs in this store yet"));
    assert_eq!(
        std::fs::read_dir(s.path().join("store")).unwrap().count(),
        0
    );
}
