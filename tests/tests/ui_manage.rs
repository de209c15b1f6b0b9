//! Managing runs from the browser, through its real server (`flammable ui` on a loopback port)
//! and the command line: tags, notes and messages with their history, runs to the trash and
//! back; and the writes refused — from another origin, without the page's CSRF token, off
//! loopback without the server's token, and for a live run.

use crate::common::{assert_one_line_error, flammable_bin, Sandbox};
use crate::http::{get, get_with, request, Answer};
use crate::ui::start_ui;
use flammable_core::store::record::{Record, RunKind, RunStatus};
use flammable_core::store::Store;
use std::process::Command;

/// A store of `n` finished train runs (`run 0`, `run 1`…); their ids, oldest first.
pub fn finished_runs(s: &Sandbox, n: usize) -> Vec<String> {
    let store = s.store();
    (0..n)
        .map(|i| {
            let mut r = Record::new("digits", RunKind::Train, i as u64);
            r.message = Some(format!("run {i}"));
            r.argv = ["digits", "train", "--seed"].map(String::from).to_vec();
            r.argv.push(i.to_string());
            r.environment.device = "cpu".into();
            r.environment.threads = 2;
            let id = store.create(r).unwrap().id;
            store
                .update(&id, |r| {
                    r.status = RunStatus::Finished;
                    r.ended = Some(r.started.clone());
                    r.metrics.insert("loss".into(), 0.5 / (i + 1) as f64);
                })
                .unwrap();
            id
        })
        .collect()
}

/// The CSRF token in a page's forms (or in its bulk bar's `data-csrf`).
pub fn csrf_of(page: &str) -> String {
    for field in [r#"name="csrf" value=""#, r#"data-csrf=""#] {
        if let Some(at) = page.find(field) {
            let rest = &page[at + field.len()..];
            return rest[..rest.find('"').unwrap()].to_string();
        }
    }
    panic!("no CSRF token in the page: {page}")
}

/// `POST path` with a form `body`, from a page of the server at `addr` (its `Origin`), plus
/// `headers`.
fn post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let origin = format!("http://{addr}");
    let mut all = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    for (k, v) in headers {
        all.retain(|(a, _)| !a.eq_ignore_ascii_case(k));
        all.push((k, v));
    }
    all.retain(|(_, v)| !v.is_empty());
    request("POST", addr, path, &all, body.as_bytes()).unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn record(store: &Store, id: &str) -> Record {
    store.read(id).unwrap()
}

fn flammable(s: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new(flammable_bin())
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .output()
        .unwrap()
}

#[test]
fn runs_are_tagged_noted_renamed_removed_and_restored_from_pages() {
    let s = Sandbox::empty();
    let ids = finished_runs(&s, 3);
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let store = s.store();
    let ui = start_ui(&s, &[]);
    let page = get(&ui.addr, &format!("/run/{a}"));
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.text());
    let edit = |body: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(body);
        post(&ui.addr, "/runs/edit", &form(&all), &[])
    };

    // Tags, a note and a message, each saved with its history.
    let added = edit(&[("runs", a), ("add", "best, baseline")]);
    assert_eq!(added.status, 303, "{}", added.text());
    assert_eq!(added.header("location"), format!("/run/{a}#notes"));
    edit(&[
        ("runs", a),
        ("note", "Diverged at step 40\r\nthen recovered"),
    ]);
    edit(&[("runs", a), ("message", "baseline, renamed")]);
    edit(&[("runs", a), ("remove", "baseline")]);
    let r = record(&store, a);
    assert_eq!(r.tags, ["best"]);
    assert_eq!(
        r.note.as_deref(),
        Some("Diverged at step 40\nthen recovered")
    );
    assert_eq!(r.message.as_deref(), Some("baseline, renamed"));
    let fields: Vec<String> = r.edits.iter().map(|e| e.field.to_string()).collect();
    assert_eq!(fields, ["tags", "note", "message", "tags"]);
    assert_eq!(r.edits[2].from.as_deref(), Some("run 0"));
    assert_eq!(r.edits[3].from.as_deref(), Some("baseline best"));
    assert!(
        r.edits.iter().all(|e| e.by.ends_with("(browser)")),
        "{:?}",
        r.edits
    );
    let shown = get(&ui.addr, &format!("/run/{a}")).text();
    for text in [
        "Diverged at step 40",
        "History of edits (4)",
        "baseline, renamed",
        "?q=tag%3Abest",
    ] {
        assert!(shown.contains(text), "{text} not on the page");
    }

    // Several runs at once (a group's box sends its runs separated by commas).
    let both = format!("{b},{c}");
    assert_eq!(edit(&[("runs", &both), ("add", "sweep-7")]).status, 303);
    assert_eq!(record(&store, b).tags, ["sweep-7"]);
    assert_eq!(record(&store, c).tags, ["sweep-7"]);
    // What a record should not hold is refused with the reason, and nothing changes.
    let bad = edit(&[("runs", &both), ("add", "lr=0.1")]);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("`=` is not allowed"), "{}", bad.text());
    let unknown = edit(&[("runs", &format!("{b},20200101-000000-zzzz")), ("add", "x")]);
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(
        record(&store, b).tags,
        ["sweep-7"],
        "checked before any change"
    );
    assert_eq!(edit(&[("runs", b)]).status, 400, "nothing to change");

    // The filter and the command line know tags.
    let tagged = get(&ui.addr, "/api/runs?q=tag:sweep-7").json();
    assert_eq!(tagged["matched"], 2);
    let listed = flammable(&s, &["runs", "--tag", "best"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(a.as_str()) && !listed.contains(b.as_str()),
        "{listed}"
    );
    assert!(listed.contains("[best]"), "{listed}");
    let shown = flammable(&s, &["show", a]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("tags        best"), "{shown}");
    assert!(shown.contains("            then recovered"), "{shown}");
    assert!(
        shown.contains("message: `run 0` → `baseline, renamed`"),
        "{shown}"
    );

    // To the trash, with an undo on the page it lands on.
    let delete = post(
        &ui.addr,
        "/runs/delete",
        &form(&[("csrf", &csrf), ("runs", b)]),
        &[],
    );
    assert_eq!(delete.status, 303, "{}", delete.text());
    let landing = delete.header("location").to_string();
    assert_eq!(landing, format!("/?removed={b}"));
    assert!(store.is_trashed(b) && store.read(b).is_err());
    let runs_page = get(&ui.addr, &landing).text();
    assert!(
        runs_page.contains("Moved run") && runs_page.contains("Undo"),
        "{runs_page}"
    );
    assert!(!get(&ui.addr, "/api/runs").text().contains(b.as_str()));
    let trash = get(&ui.addr, "/trash").text();
    assert!(
        trash.contains(b.as_str()) && trash.contains("Restore"),
        "{trash}"
    );
    let undo = post(
        &ui.addr,
        "/runs/restore",
        &form(&[("csrf", &csrf), ("runs", b)]),
        &[],
    );
    assert_eq!(undo.status, 303, "{}", undo.text());
    assert_eq!(undo.header("location"), format!("/run/{b}"));
    assert_eq!(record(&store, b).tags, ["sweep-7"], "back as it was");
    assert_eq!(get(&ui.addr, &format!("/run/{b}")).status, 200);
    let again = post(
        &ui.addr,
        "/runs/restore",
        &form(&[("csrf", &csrf), ("runs", b)]),
        &[],
    );
    assert_eq!(again.status, 404, "{}", again.text());
    // A GET changes nothing.
    assert_eq!(
        get(&ui.addr, &format!("/runs/delete?runs={b}&csrf={csrf}")).status,
        405
    );
    assert!(!store.is_trashed(b));
}

#[test]
fn writes_need_the_pages_token_from_the_pages_origin() {
    let s = Sandbox::empty();
    let ids = finished_runs(&s, 1);
    let id = &ids[0];
    let store = s.store();
    let ui = start_ui(&s, &[]);
    let csrf = csrf_of(&get(&ui.addr, &format!("/run/{id}")).text());
    let delete = |body: &str, headers: &[(&str, &str)]| {
        let a = post(&ui.addr, "/runs/delete", body, headers);
        assert!(
            !store.is_trashed(id),
            "removed by {headers:?}: {}",
            a.text()
        );
        a
    };
    let good = form(&[("csrf", &csrf), ("runs", id)]);
    // A page of another origin (another port of this machine included) cannot delete a run,
    // even knowing the token.
    for origin in [
        "http://127.0.0.1:9",
        "http://evil.example",
        "null",
        &format!("http://localhost:{}", ui.addr.rsplit(':').next().unwrap()),
    ] {
        let a = delete(&good, &[("Origin", origin)]);
        assert_eq!(a.status, 403, "{origin}: {}", a.text());
    }
    let cross = delete(&good, &[("Origin", ""), ("Sec-Fetch-Site", "same-site")]);
    assert_eq!(cross.status, 403);
    // A request that says nothing of where it comes from is refused too.
    let silent = delete(&good, &[("Origin", "")]);
    assert_eq!(silent.status, 403);
    assert!(silent.text().contains("own page"), "{}", silent.text());
    // The page's token is needed, and must be this server's.
    let none = delete(&form(&[("runs", id)]), &[]);
    assert_eq!(none.status, 403);
    assert!(none.text().contains("CSRF token"), "{}", none.text());
    let stale = delete(
        &form(&[("csrf", "0123456789abcdef0123456789abcdef"), ("runs", id)]),
        &[],
    );
    assert_eq!(stale.status, 403);
    assert!(stale.text().contains("reload the page"), "{}", stale.text());
    let other = start_ui(&s, &[]);
    let other_csrf = csrf_of(&get(&other.addr, "/").text());
    assert_ne!(other_csrf, csrf, "a token per server");
    // A browser that sends Sec-Fetch-Site and no Origin, from the page itself.
    let ok = post(
        &ui.addr,
        "/runs/edit",
        &form(&[("csrf", &csrf), ("runs", id), ("add", "kept")]),
        &[("Origin", ""), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(record(&store, id).tags, ["kept"]);

    // Off loopback every request needs the server's token, a write too.
    let open = start_ui(&s, &["--host", "0.0.0.0"]);
    let token = open.url.split_once("?token=").unwrap().1.to_string();
    let bearer = format!("Bearer {token}");
    let page = get_with(
        &open.addr,
        &format!("/run/{id}"),
        &[("Authorization", &bearer)],
    );
    let open_csrf = csrf_of(&page.text());
    let body = form(&[("csrf", &open_csrf), ("runs", id), ("add", "remote")]);
    let refused = post(&open.addr, "/runs/edit", &body, &[]);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(record(&store, id).tags, ["kept"]);
    let wrong = post(
        &open.addr,
        "/runs/edit",
        &body,
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(wrong.status, 401);
    let done = post(
        &open.addr,
        "/runs/edit",
        &body,
        &[("Authorization", &bearer)],
    );
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(record(&store, id).tags, ["kept", "remote"]);
}

#[test]
fn a_live_run_is_neither_changed_nor_removed() {
    let s = Sandbox::empty();
    let store = s.store();
    // Live: this process holds its lock, as a training's does.
    let (live, lock) = store
        .create_locked(Record::new("digits", RunKind::Train, 1))
        .unwrap();
    let id = live.id.clone();
    let ui = start_ui(&s, &[]);
    let page = get(&ui.addr, &format!("/run/{id}")).text();
    assert!(page.contains("can change once it ends"), "{page}");
    assert!(!page.contains("Move to trash"), "{page}");
    let csrf = csrf_of(&get(&ui.addr, "/").text());
    for (path, extra) in [
        ("/runs/edit", ("add", "x")),
        ("/runs/edit", ("note", "n")),
        ("/runs/delete", ("runs", id.as_str())),
    ] {
        let a = post(
            &ui.addr,
            path,
            &form(&[("csrf", &csrf), ("runs", &id), extra]),
            &[],
        );
        assert_eq!(a.status, 409, "{path}: {}", a.text());
        assert!(a.text().contains("still running"), "{}", a.text());
    }
    let r = record(&store, &id);
    assert!(r.tags.is_empty() && r.note.is_none() && r.edits.is_empty());
    assert!(!store.is_trashed(&id));
    // The command line refuses it the same way, in one line.
    let out = flammable(&s, &["edit", &id, "--tag", "x"]);
    assert_one_line_error(&out, 2, &["still running"]);
    drop(lock);
    let out = flammable(&s, &["edit", &id, "--tag", "x,y", "--note", "ended"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = record(&store, &id);
    assert_eq!(
        (r.tags.clone(), r.note.as_deref()),
        (vec!["x".to_string(), "y".to_string()], Some("ended"))
    );
    assert!(r.edits[0].by.ends_with("(edit)"));
    // `rm` and `restore` on the command line.
    let out = flammable(&s, &["rm", &id]);
    assert!(out.status.success());
    let out = flammable(&s, &["restore", &id[..12]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(record(&store, &id).tags, ["x", "y"]);
    assert_one_line_error(&flammable(&s, &["restore", &id]), 2, &["no run", "trash"]);
    assert_one_line_error(
        &flammable(&s, &["edit", &id, "--tag", "a b=c"]),
        2,
        &["not allowed"],
    );
    assert_one_line_error(&flammable(&s, &["edit", &id]), 2, &["nothing to change"]);
}

#[test]
fn bad_writes_get_a_4xx_with_the_reason_and_change_nothing() {
    let s = Sandbox::empty();
    let ids = finished_runs(&s, 2);
    let (a, b) = (&ids[0], &ids[1]);
    let store = s.store();
    let ui = start_ui(&s, &[]);
    let csrf = csrf_of(&get(&ui.addr, &format!("/run/{a}")).text());
    let edit = |body: &str, headers: &[(&str, &str)]| post(&ui.addr, "/runs/edit", body, headers);
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str()), ("runs", a.as_str())];
        all.extend_from_slice(pairs);
        form(&all)
    };
    let many_tags: String = (0..65).map(|i| format!("t{i} ")).collect();
    for (body, status, says) in [
        (
            format!("{}&message=two", with(&[("message", "one")])),
            400,
            "given twice",
        ),
        (
            with(&[("add", "x"), ("remove", "x")]),
            400,
            "both added and removed",
        ),
        (with(&[("add", &many_tags)]), 400, "64 at most"),
        (format!("{}&note=%ff%fe", with(&[])), 400, "not UTF-8"),
        (with(&[("message", "a\u{202e}b")]), 400, "control character"),
        (with(&[]), 400, "nothing to change"),
    ] {
        let a = edit(&body, &[]);
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert!(a.text().contains(says), "{body}: {}", a.text());
    }
    let json = edit(r#"{"runs": "x"}"#, &[("Content-Type", "application/json")]);
    assert_eq!(json.status, 415, "{}", json.text());
    let huge = format!("{}&note={}", with(&[]), "n".repeat(300 * 1024));
    let too_big = edit(&huge, &[]);
    assert_eq!(too_big.status, 413, "{}", too_big.text());
    assert!(too_big.text().contains("KiB"), "{}", too_big.text());
    let r = record(&store, a);
    assert!(
        r.tags.is_empty() && r.note.is_none() && r.edits.is_empty(),
        "{r:?}"
    );
    // A multi-line message, as `train -m` takes them, keeps its lines.
    assert_eq!(
        edit(&with(&[("message", "first\r\nsecond")]), &[]).status,
        303
    );
    assert_eq!(record(&store, a).message.as_deref(), Some("first\nsecond"));
    let page = get(&ui.addr, &format!("/run/{a}")).text();
    assert!(page.contains("first\nsecond</textarea>"), "{page}");

    // Edits at the same moment all land; none is taken for a live run.
    std::thread::scope(|scope| {
        for i in 0..12 {
            let body = with(&[("add", &format!("t{i}"))]);
            let addr = &ui.addr;
            scope.spawn(move || {
                let a = post(addr, "/runs/edit", &body, &[]);
                assert_eq!(a.status, 303, "{}", a.text());
            });
        }
    });
    assert_eq!(record(&store, a).tags.len(), 12);
    // Removals of one run at the same moment: one moves it, the others are told it is gone.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let body = form(&[("csrf", &csrf), ("runs", b)]);
                let addr = &ui.addr;
                scope.spawn(move || post(addr, "/runs/delete", &body, &[]).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 404),
        "{statuses:?}"
    );
    // A trashed run says where it is.
    let gone = get(&ui.addr, &format!("/run/{b}"));
    assert_eq!(gone.status, 404);
    assert!(gone.text().contains("in the trash"), "{}", gone.text());
    assert_one_line_error(
        &flammable(&s, &["show", b]),
        2,
        &["in the trash", "restore"],
    );
    // The filter names a tag no run has, and refuses one that cannot be.
    for (q, says) in [
        ("tag:nosuch", "no run has the tag"),
        ("tag:a=b", "not allowed"),
    ] {
        let a = get(&ui.addr, &format!("/api/runs?q={q}"));
        assert_eq!(a.status, 400, "{q}");
        assert!(a.text().contains(says), "{q}: {}", a.text());
    }
    assert_one_line_error(
        &flammable(&s, &["runs", "--tag", "bad!"]),
        2,
        &["not allowed"],
    );
    let out = flammable(&s, &["runs", "--tag", "t1,t2"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(a.as_str()));
    let out = flammable(&s, &["runs", "--tag", "t1,nosuch"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("match"));
    // `rm` and `restore` check every run before any moves.
    assert_one_line_error(&flammable(&s, &["rm", a, "nosuch"]), 2, &["nosuch"]);
    assert!(store.read(a).is_ok());
    assert_one_line_error(&flammable(&s, &["restore", b, "nosuch"]), 2, &["nosuch"]);
    assert!(store.is_trashed(b));
    // A run named twice is moved once.
    assert!(flammable(&s, &["rm", a, a]).status.success());
    assert!(flammable(&s, &["restore", a, a]).status.success());
    assert!(store.read(a).is_ok());
    assert_one_line_error(&flammable(&s, &["runs", "--tag", ","]), 2, &["name a tag"]);
}

#[test]
fn a_training_keeps_what_users_wrote_when_it_saves_its_record() {
    let s = Sandbox::empty();
    let store = s.store();
    let run = flammable::Run::start(&store, Record::new("digits", RunKind::Train, 1)).unwrap();
    let id = run.id();
    // As if an edit had landed just before this process took the run (a resume starting).
    store
        .update(&id, |r| {
            r.tags = vec!["kept".into()];
            r.note = Some("written by hand".into());
            r.message = Some("renamed".into());
        })
        .unwrap();
    run.finish(RunStatus::Finished, None).unwrap();
    let r = record(&store, &id);
    assert_eq!(r.status, RunStatus::Finished);
    assert_eq!(r.tags, ["kept"]);
    assert_eq!(r.note.as_deref(), Some("written by hand"));
    assert_eq!(r.message.as_deref(), Some("renamed"));
}
