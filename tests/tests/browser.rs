//! The experiment browser in a real headless Chromium: the runs page and its filter, a run's
//! chart with its points and hover, two runs compared with the changed line in the code diff,
//! a live run whose step advances. Screenshots are saved under `target/ui-screenshots/` and
//! checked not blank; `FLAMMABLE_UPDATE_SCREENSHOTS=1` also writes them to
//! `docs/screenshots/` for the README.

use crate::common::{skip_or_fail, KillOnDrop, Sandbox};
use crate::ui::{fixture, start_ui};
use crate::webdriver::{Browser, ELEMENT};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn browser() -> Option<Browser> {
    let b = Browser::start(1280, 860);
    if b.is_none() {
        skip_or_fail("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
    }
    b
}

/// Saves a screenshot as a test artifact and checks it is a real picture: many colours, not
/// one flat fill.
fn screenshot(browser: &Browser, name: &str) {
    let png_bytes = browser.screenshot();
    let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels.chunks(channels).collect();
    assert!(
        colours.len() > 50,
        "{name}: a blank screenshot ({} colours)",
        colours.len()
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let artifacts = root.join("target/ui-screenshots");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join(format!("{name}.png")), &png_bytes).unwrap();
    if std::env::var_os("FLAMMABLE_UPDATE_SCREENSHOTS").is_some() {
        let docs = root.join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png_bytes).unwrap();
    }
}

fn rows(b: &Browser) -> Vec<String> {
    b.texts("#runs-table tbody tr")
}

#[test]
fn runs_filter_chart_and_code_diff_in_chromium() {
    let Some(b) = browser() else { return };
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let base = format!("http://{}", ui.addr);

    b.goto(&format!("{base}/"));
    b.wait_for(10, "the runs table", |b| rows(b).len() == 3);
    screenshot(&b, "runs");

    // The filter, typed and submitted as a user would.
    let input = b.find("form.filter input[name=q]");
    b.type_into(&input, "kind:train wider\u{E007}");
    b.wait_for(10, "one filtered row", |b| {
        let r = rows(b);
        r.len() == 1 && r[0].contains(&f.v2)
    });

    // A run's chart: every point of its downsampled series is drawn.
    b.goto(&format!("{base}/run/{}", f.v2));
    let drawn = b.eval(
        "const g = document.querySelector('.chart g.line');
         const drawn = [...g.querySelectorAll('polyline')].reduce((n, p) => n + p.points.numberOfItems, 0);
         return [drawn, g.dataset.steps.split(',').length];",
        vec![],
    );
    let (drawn, listed) = (drawn[0].as_u64().unwrap(), drawn[1].as_u64().unwrap());
    assert!(
        drawn >= 3 && drawn == listed,
        "{drawn} points drawn of {listed}"
    );
    // Hovering shows the step and value under the pointer.
    let chart = b.find(".chart");
    b.actions(json!([{
        "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
        "actions": [{"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": 40, "y": 0}]
    }]));
    b.wait_for(5, "the hover tip", |b| {
        b.texts(".chart .tip")
            .first()
            .is_some_and(|t| t.starts_with("step "))
    });
    screenshot(&b, "run");

    // Two runs compared: the changed line of model.rs on the new side.
    b.goto(&format!("{base}/compare?runs={},{}", f.v1, f.v2));
    let added = b.find("#code-diff td.add");
    assert_eq!(b.text(&added), "// version 2: wider");
    let removed = b.find("#code-diff td.del");
    assert_eq!(b.text(&removed), "// version 1");
    assert_eq!(
        b.find_all(".chart-box").len(),
        b.find_all(".chart-box ul.legend").len()
    );
    assert!(!b.find_all("#hyper-table tr.differs").is_empty());
    screenshot(&b, "compare");
    b.eval(
        "document.getElementById('code-diff').scrollIntoView()",
        vec![],
    );
    screenshot(&b, "compare-code");
}

#[test]
fn a_live_run_advances_in_chromium() {
    let Some(b) = browser() else { return };
    let s = Sandbox::repo();
    let trainer = KillOnDrop(
        s.command("digits")
            .args(["train", "-q", "--epochs", "10000", "-m", "live"])
            .spawn()
            .unwrap(),
    );
    // Wait for its first points.
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let runs = s.store().records().unwrap_or_default();
        if let Some(r) = runs.first() {
            if std::fs::metadata(s.store().metrics_path(&r.id)).is_ok_and(|m| m.len() > 0) {
                break r.id.clone();
            }
        }
        assert!(Instant::now() < deadline, "the trainer records no points");
        std::thread::sleep(Duration::from_millis(200));
    };
    let ui = start_ui(&s, &[]);
    let base = format!("http://{}", ui.addr);
    b.goto(&format!("{base}/"));
    b.wait_for(10, "the running row", |b| !b.texts("tr.running").is_empty());

    b.goto(&format!("{base}/run/{id}"));
    // The page replaces these elements as it refreshes: each is read in one step.
    let step = |b: &Browser| -> u64 {
        b.texts("#live-progress")
            .first()
            .and_then(|t| t.strip_prefix("step "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let first = step(&b);
    // The page updates itself: no reload by the test.
    b.wait_for(30, "the step to advance", |b| step(b) > first);
    screenshot(&b, "live");

    // The trainer dies: the page says so.
    drop(trainer);
    b.wait_for(30, "the run shown as crashed", |b| {
        b.texts("#live-status")
            .first()
            .is_some_and(|t| t.contains("crashed"))
    });
}
