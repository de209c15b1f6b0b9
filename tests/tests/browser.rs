//! The experiment browser in a real headless Chromium: the runs page and its filter, a run's
//! chart with its points and hover, two runs ticked and compared with the changed line in the
//! code diff, a zoom, a live run whose step advances and a drag across its refreshes, and
//! pages of hostile runs that inject nothing. Screenshots are saved under `target/ui-screenshots/` and
//! checked not blank; `FLAMMABLE_UPDATE_SCREENSHOTS=1` also writes them to
//! `docs/screenshots/` for the README.

use crate::common::{skip_or_fail, KillOnDrop, Sandbox};
use crate::hostile::{hostile, HYPER, LOG};
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

/// Moves the mouse `x` pixels right of the first chart's centre and waits for its hover tip
/// to read as `tip` says.
fn hover_tip(b: &Browser, x: i64, tip: impl Fn(&str) -> bool) {
    let chart = b.find(".chart");
    b.pointer(json!([
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": x, "y": 0}
    ]));
    b.wait_for(5, "the hover tip", |b| {
        b.texts(".chart .tip").first().is_some_and(|t| tip(t))
    });
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
    let runs_page = b.eval("return location.href", vec![]);

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
    hover_tip(&b, 40, |t| t.starts_with("step "));
    screenshot(&b, "run");

    // Two runs ticked in the table (newest first) and compared: the older is the base, so
    // the changed line of model.rs is on the new side.
    b.goto(runs_page.as_str().unwrap());
    for id in [&f.v2, &f.v1] {
        b.click(&b.find(&format!("input[value='{id}']")));
    }
    b.click(&b.find("#compare-button"));
    let added = b.find("#code-diff td.add");
    assert_eq!(b.text(&added), "// version 2: wider");
    let removed = b.find("#code-diff td.del");
    assert_eq!(b.text(&removed), "// version 1");
    // Changed lines are as large as the rest of the diff.
    let sizes = b.eval(
        "const add = document.querySelector('#code-diff td.add');
         return [getComputedStyle(add).fontSize, getComputedStyle(add.closest('table')).fontSize];",
        vec![],
    );
    assert_eq!(sizes[0], sizes[1], "{sizes}");
    assert_eq!(
        b.find_all(".chart-box").len(),
        b.find_all(".chart-box ul.legend").len()
    );
    assert!(!b.find_all("#hyper-table tr.differs").is_empty());
    // The legend says what sets each run apart.
    let legend = b.texts(".chart-box ul.legend li");
    assert!(
        legend.iter().any(|l| l.contains("hidden=64"))
            && legend.iter().any(|l| l.contains("hidden=128")),
        "{legend:?}"
    );
    screenshot(&b, "compare");

    // A zoom redraws the chart at its size: nothing on the page moves.
    let boxes = |b: &Browser| {
        b.eval(
            "return [...document.querySelectorAll('.chart-box')].map(f => {
                 const r = f.getBoundingClientRect();
                 return [r.left + scrollX, r.top + scrollY, r.width, r.height]; });",
            vec![],
        )
    };
    let before = boxes(&b);
    assert!(before.as_array().unwrap().len() >= 2, "{before}");
    let x0 = |b: &Browser| {
        b.eval(
            "return document.querySelector('.chart svg').dataset.x0",
            vec![],
        )
    };
    let unzoomed = x0(&b);
    let chart = b.find(".chart");
    b.pointer(json!([
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": -100, "y": 0},
        {"type": "pointerDown", "button": 0},
        {"type": "pointerMove", "duration": 100, "origin": {ELEMENT: chart}, "x": 100, "y": 0},
        {"type": "pointerUp", "button": 0}
    ]));
    b.wait_for(10, "the zoomed chart", |b| x0(b) != unzoomed);
    assert_eq!(boxes(&b), before);

    b.eval(
        "document.getElementById('code-diff').scrollIntoView()",
        vec![],
    );
    screenshot(&b, "compare-code");
}

#[test]
fn groups_chart_views_and_downloads_in_chromium() {
    let Some(b) = browser() else { return };
    let f = crate::ui_charts::sweep_fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let base = format!("http://{}", ui.addr);

    // A sweep's runs, a row a group; a group opened shows its runs.
    b.goto(&format!("{base}/?q=sweep:{}", f.sweep));
    b.wait_for(10, "two group rows", |b| b.find_all("tr.group").len() == 2);
    let shown = |b: &Browser| {
        b.eval(
            "return [...document.querySelectorAll('tr.member')].filter(t => !t.hidden).length",
            vec![],
        )
    };
    assert_eq!(shown(&b), 0);
    b.click(&b.find("tr.group button.toggle"));
    b.wait_for(5, "the group's runs", |b| shown(b) == 2);
    screenshot(&b, "groups");

    // Both groups ticked and compared: the comparison is grouped too.
    for c in b.find_all("tr.group input[type=checkbox]") {
        b.click(&c);
    }
    b.click(&b.find("#compare-button"));
    b.wait_for(10, "the grouped comparison", |b| {
        !b.find_all(".chart path.band").is_empty()
    });
    let legend = b.texts(".chart-box ul.legend li");
    assert!(legend.iter().all(|l| l.ends_with("(n=2)")), "{legend:?}");

    // Smoothing chosen in the view form: the page shows it, the raw lines faint behind.
    b.eval(
        "const s = document.querySelector('#chart-view select[name=smooth]');
         s.value = 'ema:0.9'; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    b.wait_for(10, "the smoothed charts", |b| {
        b.eval("return location.search", vec![])
            .as_str()
            .is_some_and(|q| q.contains("smooth=ema"))
            && !b.find_all(".chart g.raw").is_empty()
    });
    b.eval(
        "document.querySelector('.chart-box').scrollIntoView()",
        vec![],
    );
    screenshot(&b, "groups-chart");

    // A chart saved as PNG: the picture the page hands to the browser to save.
    b.eval(
        "window.savedPng = null;
         HTMLAnchorElement.prototype.click = function () { window.savedPng = [this.href, this.download]; };",
        vec![],
    );
    b.click(&b.find(".chart-box button.png"));
    b.wait_for(10, "a PNG", |b| {
        !b.eval("return window.savedPng", vec![]).is_null()
    });
    let saved = b.eval("return window.savedPng", vec![]);
    assert!(
        saved[0]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,"),
        "{saved}"
    );
    assert!(saved[1].as_str().unwrap().ends_with(".png"), "{saved}");
    let png_len = saved[0].as_str().unwrap().len();
    assert!(png_len > 5_000, "a PNG of {png_len} characters");

    // Parallel coordinates: a drag along the learning rate's axis keeps the runs that cross it
    // there, in the lines and in the table.
    b.goto(&format!("{base}/parallel?q=sweep:{}", f.sweep));
    let visible = |b: &Browser| {
        b.eval("return [...document.querySelectorAll('#parallel-table tbody tr')].filter(t => !t.hidden).length", vec![])
    };
    b.wait_for(10, "four runs", |b| visible(b) == 4);
    let axis = b.find("g.axis[data-axis=lr] rect.brush-area");
    // From below the middle of the axis up past its top: the larger learning rate only.
    b.pointer(json!([
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: axis}, "x": 0, "y": 60},
        {"type": "pointerDown", "button": 0},
        {"type": "pointerMove", "duration": 100, "origin": {ELEMENT: axis}, "x": 0, "y": -200},
        {"type": "pointerUp", "button": 0}
    ]));
    b.wait_for(5, "the brushed runs", |b| visible(b) == 2);
    assert_eq!(b.texts("#shown-count"), ["2"]);
    assert_eq!(b.find_all("polyline.run.out").len(), 2);
    let href = b.eval(
        "return document.getElementById('compare-shown').href",
        vec![],
    );
    assert!(href.as_str().unwrap().contains("/compare?runs="), "{href}");
    screenshot(&b, "parallel");
    // A click on the axis lets it go.
    b.click(&axis);
    b.wait_for(5, "every run again", |b| visible(b) == 4);
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

    // A drag-zoom held across live refreshes: the charts wait for it, and it zooms into the
    // steps dragged over (it sent NaN, or the whole range, when the chart under the pointer
    // had been replaced).
    b.eval(
        "window.chartRequests = [];
         const fetched = window.fetch;
         window.fetch = (url, options) => {
             if (String(url).startsWith('/chart')) window.chartRequests.push(String(url));
             return fetched(url, options);
         };",
        vec![],
    );
    let chart = b.find(".chart");
    b.pointer(json!([
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": -60, "y": 0},
        {"type": "pointerDown", "button": 0},
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": -20, "y": 0}
    ]));
    for _ in 0..2 {
        let at = step(&b);
        b.wait_for(30, "a refresh during the drag", |b| step(b) > at);
    }
    let range = |b: &Browser| {
        b.eval(
            "const s = document.querySelector('.chart svg').dataset; return [+s.x0, +s.x1];",
            vec![],
        )
    };
    let shown = range(&b);
    // The steps under the pointer where the drag started and will end, on the chart shown.
    let expected = b.eval(
        "const svg = document.querySelector('.chart svg'), d = svg.dataset;
         const r = svg.getBoundingClientRect(), ratio = svg.viewBox.baseVal.width / r.width;
         const box = document.querySelector('.chart').getBoundingClientRect();
         const at = (px) => {
             const f = Math.min(1, Math.max(0, ((px - r.left) * ratio - +d.left) / +d.w));
             return +d.x0 + f * (+d.x1 - +d.x0);
         };
         const middle = box.left + box.width / 2;
         return [at(middle - 60), at(middle + 60)];",
        vec![],
    );
    b.pointer(json!([
        {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: chart}, "x": 60, "y": 0},
        {"type": "pointerUp", "button": 0}
    ]));
    let zoom = |b: &Browser| {
        b.eval(
            "const d = document.querySelector('.chart').dataset; return [d.from, d.to];",
            vec![],
        )
    };
    b.wait_for(10, "the zoom", |b| zoom(b)[0].is_string());
    let requests = b.eval("return window.chartRequests", vec![]);
    assert!(!requests.to_string().contains("NaN"), "{requests}");
    let (from, to) = {
        let z = zoom(&b);
        let n = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
        (n(&z[0]), n(&z[1]))
    };
    let (x0, x1) = (shown[0].as_f64().unwrap(), shown[1].as_f64().unwrap());
    let (want_from, want_to) = (expected[0].as_f64().unwrap(), expected[1].as_f64().unwrap());
    let near = |a: f64, b: f64| (a - b).abs() <= (x1 - x0) * 0.02 + 1.0;
    assert!(
        near(from, want_from) && near(to, want_to),
        "zoomed to {from}..{to}, not to the steps dragged over, {want_from}..{want_to} of {x0}..{x1}"
    );
    b.wait_for(10, "the zoomed chart", |b| {
        range(b)[0].as_f64() == Some(from)
    });

    // The trainer dies: the page says so.
    drop(trainer);
    b.wait_for(30, "the run shown as crashed", |b| {
        b.texts("#live-status")
            .first()
            .is_some_and(|t| t.contains("crashed"))
    });
}

#[test]
fn hostile_runs_inject_nothing_in_chromium() {
    let Some(b) = browser() else { return };
    let h = hostile();
    let ui = start_ui(&h.sandbox, &[]);
    let base = format!("http://{}", ui.addr);
    // What a value that got out of its text would make: elements, handlers, inline scripts.
    let injected = |b: &Browser| -> u64 {
        b.eval(
            "return document.querySelectorAll(
                 'script:not([src]), img, iframe, object, embed, [onerror], [onload], [onclick]'
             ).length;",
            vec![],
        )
        .as_u64()
        .unwrap()
    };
    for path in h.pages() {
        b.goto(&format!("{base}{path}"));
        b.wait_for(10, "the page", |b| {
            b.eval("return document.readyState", vec![]) == "complete"
        });
        assert_eq!(b.alert_text(), None, "{path}");
        assert_eq!(injected(&b), 0, "{path}");
    }

    // The pages' script builds DOM from what it fetches: the runs table it refreshes (a run
    // is running), the run's live parts and log, a chart's hover.
    let replaced = |b: &Browser, id: &str| {
        b.eval(
            "document.getElementById(arguments[0]).dataset.seen = '1';",
            vec![json!(id)],
        );
        b.wait_for(10, "a refresh", |b| {
            b.eval(
                "const e = document.getElementById(arguments[0]); return !!e && !e.dataset.seen;",
                vec![json!(id)],
            ) == true
        });
    };
    b.goto(&format!("{base}/"));
    replaced(&b, "runs-table");
    assert_eq!(injected(&b), 0);
    b.goto(&format!("{base}/run/{}", h.running));
    replaced(&b, "live-status");
    b.wait_for(10, "the log refreshed", |b| b.texts("#log") == [LOG]);
    assert_eq!(injected(&b), 0);
    b.goto(&format!("{base}/compare?runs={},{}", h.running, h.failed));
    hover_tip(&b, 0, |t| t.contains(HYPER));
    assert_eq!(injected(&b), 0);
    assert_eq!(
        b.eval(
            "return document.querySelector('.chart .tip').querySelectorAll('script, img').length",
            vec![]
        ),
        0
    );
    assert_eq!(b.alert_text(), None);
}

#[test]
fn runs_are_managed_from_the_page_in_chromium() {
    let Some(b) = browser() else { return };
    let s = Sandbox::empty();
    let ids = crate::ui_manage::finished_runs(&s, 3);
    let store = s.store();
    for (n, id) in ids.iter().enumerate() {
        let points: Vec<_> = (0..60)
            .map(|i| {
                let v = (1.0 + n as f64) / (1.0 + 0.1 * i as f64);
                flammable::store::Point::now("loss", i, i / 20, v)
            })
            .collect();
        flammable_core::store::metrics::MetricWriter::new(store.metrics_path(id)).write(&points);
    }
    let (a, b_id, c) = (&ids[0], &ids[1], &ids[2]);
    let ui = start_ui(&s, &[]);
    let base = format!("http://{}", ui.addr);
    let here = |b: &Browser| {
        b.eval("return location.href", vec![])
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // Tags and a note on a run's page, as a user types them.
    b.goto(&format!("{base}/run/{a}"));
    b.type_into(
        &b.find("#add-tags input[name=add]"),
        "baseline best\u{E007}",
    );
    b.wait_for(10, "two tags", |b| {
        b.texts("#tags a.tag") == ["baseline", "best"]
    });
    b.type_into(
        &b.find("#edit-note textarea"),
        "Diverged at step 40; the warm-up fixed it.",
    );
    b.click(&b.find("#edit-note button"));
    b.wait_for(10, "the history of edits", |b| {
        b.texts("#edits summary")
            .first()
            .is_some_and(|t| t.contains("(2)"))
    });
    b.click(&b.find("#edits summary"));
    b.eval("window.scrollTo(0, 0)", vec![]);
    screenshot(&b, "manage-run");
    assert_eq!(
        store.read(a).unwrap().note.as_deref(),
        Some("Diverged at step 40; the warm-up fixed it.")
    );
    // A tag goes with its ×.
    b.click(&b.find("#tags button.untag"));
    b.wait_for(10, "one tag", |b| b.texts("#tags a.tag") == ["best"]);

    // Two runs ticked in the table and tagged at once; the filter finds them by the tag.
    b.goto(&format!("{base}/"));
    b.find("#bulk-tag");
    for id in [b_id, c] {
        b.click(&b.find(&format!("input[value='{id}']")));
    }
    b.type_into(&b.find("#bulk-tags"), "sweep-7");
    b.click(&b.find("#bulk-tag"));
    b.wait_for(10, "two tagged rows", |b| {
        rows(b).iter().filter(|r| r.contains("sweep-7")).count() == 2
    });
    screenshot(&b, "manage-table");
    b.click(&b.find("#runs-table a.tag"));
    b.wait_for(10, "the runs of the tag", |b| {
        here(b).contains("tag%3Asweep-7") && rows(b).len() == 2
    });

    // A run to the trash, and back with the undo on the page it lands on.
    b.goto(&format!("{base}/run/{c}"));
    b.click(&b.find("#delete-run button"));
    b.wait_for(10, "the undo", |b| {
        here(b).contains("removed=") && !b.find_all("#undo").is_empty()
    });
    assert!(store.is_trashed(c));
    assert_eq!(rows(&b).len(), 2);
    screenshot(&b, "manage-undo");
    b.click(&b.find("#undo"));
    b.wait_for(10, "the run's page again", |b| {
        here(b).ends_with(&format!("/run/{c}"))
    });
    assert!(!store.is_trashed(c) && store.read(c).is_ok());

    // A page of another origin — another port of this machine, knowing even the page's
    // token — cannot delete a run: its form's request is refused, the run stays.
    let csrf = crate::ui_manage::csrf_of(&crate::http::get(&ui.addr, "/").text());
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("attack.html"),
        format!(
            "<!DOCTYPE html><form id=f method=post action='{base}/runs/delete'>\
             <input name=csrf value='{csrf}'><input name=runs value='{a}'></form>\
             <script>document.getElementById('f').submit()</script>"
        ),
    )
    .unwrap();
    let mut server = std::process::Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(site.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _server = KillOnDrop(server);
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    b.goto(&format!("http://127.0.0.1:{port}/attack.html"));
    b.wait_for(10, "the refusal", |b| {
        b.texts("p.error")
            .first()
            .is_some_and(|t| t.contains("own page"))
    });
    assert!(!store.is_trashed(a) && store.read(a).is_ok());
}
