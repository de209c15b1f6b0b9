//! The browser's chart views and downloads over real runs: smoothing, the x axis and the log
//! scale of `/chart`, the raw series and the runs table as CSV, a chart saved as SVG; and a
//! growing run whose charts read only what it appended (the server's own read count, from
//! `/proc`).

use crate::common::Sandbox;
use crate::http::get;
use crate::ui::{fixture, start_ui};
use flammable_core::store::metrics::{MetricWriter, Point};
use flammable_core::store::record::{Record, RunKind, RunStatus};

#[test]
fn charts_smooth_place_and_scale_their_lines() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let chart = |query: &str| {
        let a = get(&ui.addr, &format!("/chart?runs={}&name=loss{query}", f.v2));
        assert_eq!(a.status, 200, "{query}: {}", a.text());
        a.text()
    };
    let plain = chart("");
    assert!(plain.contains(r#"data-x="step""#) && !plain.contains(r#"class="raw"#));
    // Smoothed: the smoothed line over the raw one, faint and left out of the hover.
    for smooth in ["ema:0.9", "mean:5"] {
        let svg = chart(&format!("&smooth={smooth}"));
        assert!(svg.contains(r#"<g class="raw c0""#), "{smooth}: {svg}");
        assert!(svg.contains(r#"<g class="line c0""#), "{smooth}: {svg}");
        assert!(svg.find("class=\"raw").unwrap() < svg.find("class=\"line").unwrap());
        assert_ne!(values(&svg), values(&plain), "{smooth} changed nothing");
    }
    // The x axis by epoch (a validation metric lines up with the training loss) and by time.
    let epoch = chart("&x=epoch");
    assert!(epoch.contains(r#"data-x="epoch""#) && epoch.contains(">epoch</text>"));
    let placed = xs(&epoch);
    assert!(placed.iter().all(|x| (0.0..=3.0).contains(x)), "{placed:?}");
    assert!(chart("&x=time").contains(">time (s)</text>"));
    assert!(chart("&x=wall").contains("wall-clock time (UTC)"));
    // A log scale.
    let log = chart("&y=log");
    assert!(log.contains(r#"data-log="1""#), "{log}");
    // A zoom with one end open reaches as far as the points do.
    let open = chart("&from=5");
    assert!(
        !open.contains("inf") && xs(&open).iter().all(|x| *x >= 5.0),
        "{open}"
    );
    // A metric no run has is a 404, as for the series API.
    let missing = get(&ui.addr, &format!("/chart?runs={}&name=nope", f.v2));
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains("no metric `nope`"));
    // A zoom in epochs: fractions are taken.
    let zoomed = chart("&x=epoch&from=0.5&to=1.5");
    assert!(
        xs(&zoomed).iter().all(|x| (0.5..=1.5).contains(x)),
        "{zoomed}"
    );
    // What the view takes, said.
    for (query, says) in [
        ("&smooth=ema:1", "smooth: `ema:1`"),
        ("&smooth=gauss", "mean:N"),
        ("&x=steps", "x: `steps`: use step, epoch, time or wall"),
        ("&y=ln", "y: `ln`: use linear or log"),
        ("&from=inf", "from: `inf` is not a finite number"),
    ] {
        let a = get(&ui.addr, &format!("/chart?runs={}&name=loss{query}", f.v2));
        assert_eq!(a.status, 400, "{query}: {}", a.text());
        let e = a.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(says), "{query}: {e}");
    }
    // The run page shows its charts as the view says, and its form keeps the view.
    let page = get(&ui.addr, &format!("/run/{}?smooth=ema:0.9&y=log", f.v2)).text();
    assert!(page.contains(r#"class="raw c0""#), "{page}");
    assert!(page.contains("smooth=ema%3A0.9") && page.contains("y=log"));
    assert!(page.contains(r#"<option value="log" selected>"#), "{page}");
    let compare = get(
        &ui.addr,
        &format!("/compare?runs={},{}&x=epoch", f.v1, f.v2),
    );
    assert_eq!(compare.status, 200, "{}", compare.text());
    assert!(compare.text().contains(r#"data-x="epoch""#));
}

/// The values a chart's hover reads (`data-values` of its lines).
fn values(svg: &str) -> Vec<String> {
    attribute(svg, "data-values")
}

/// The x values of a chart's lines.
fn xs(svg: &str) -> Vec<f64> {
    attribute(svg, "data-steps")
        .iter()
        .flat_map(|list| list.split(',').map(|v| v.parse::<f64>().unwrap()))
        .collect()
}

fn attribute(svg: &str, name: &str) -> Vec<String> {
    svg.split(&format!("{name}=\""))
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn series_tables_and_charts_download() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    // Every point of the series, raw.
    let csv = get(
        &ui.addr,
        &format!("/series.csv?runs={},{}&name=loss", f.v1, f.v2),
    );
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv.header("content-disposition").contains("loss.csv"));
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("run,name,step,epoch,value,time"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for id in [&f.v1, &f.v2] {
        let points = get(&ui.addr, &format!("/api/runs/{id}")).json()["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "loss")
            .unwrap()["points"]
            .as_u64()
            .unwrap();
        let of_run = rows.iter().filter(|r| r[0] == id.as_str()).count() as u64;
        assert_eq!(of_run, points, "{id}: every point, not a downsampled few");
    }
    // The runs table: every run the filter matches, with their metrics and parameters.
    let table = get(
        &ui.addr,
        "/runs.csv?q=kind:train&sort=param:epochs&order=asc",
    );
    assert_eq!(table.status, 200, "{}", table.text());
    assert!(table.header("content-disposition").contains("runs.csv"));
    let text = table.text();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header[..4], ["id", "experiment", "kind", "status"]);
    assert!(header.contains(&"metrics.loss") && header.contains(&"params.hidden"));
    let ids: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, [f.v1.as_str(), f.v2.as_str()]);
    assert_eq!(get(&ui.addr, "/runs.csv").text().lines().count(), 4);
    assert_eq!(get(&ui.addr, "/runs.csv?q=status:sleeping").status, 400);
    // A chart saved as SVG: its style travels inside it.
    let svg = get(
        &ui.addr,
        &format!("/chart?runs={}&name=epoch/loss&download=1", f.v2),
    );
    assert_eq!(svg.status, 200, "{}", svg.text());
    assert!(svg.header("content-disposition").contains("epoch_loss.svg"));
    assert!(svg.text().contains("<style>") && svg.text().contains(".c0 {"));
    // Opened from the server, its own style applies; a chart of several runs has its legend.
    assert!(svg
        .header("content-security-policy")
        .contains("style-src 'unsafe-inline'"));
    let both = get(
        &ui.addr,
        &format!("/chart?runs={},{}&name=loss&download=1", f.v1, f.v2),
    )
    .text();
    for id in [&f.v1, &f.v2] {
        assert!(
            both.contains(&format!(">{id}")),
            "{id} not in the legend: {both}"
        );
    }
    assert_eq!(
        get(&ui.addr, &format!("/series.csv?runs={}&name=nope", f.v2)).status,
        404
    );
    // The runs page links its table's CSV, the run page each chart's downloads.
    assert!(get(&ui.addr, "/?q=kind:train")
        .text()
        .contains("/runs.csv?q=kind%3Atrain"));
    let page = get(&ui.addr, &format!("/run/{}", f.v2)).text();
    assert!(page.contains("/series.csv?runs=") && page.contains("download=1"));
}

/// The head of the runs table of a page.
fn table_head(html: &str) -> &str {
    html.split("<thead>")
        .nth(1)
        .and_then(|rest| rest.split("</thead>").next())
        .unwrap_or_else(|| panic!("no table head: {html}"))
}

/// The bytes a process has read so far (`rchar` of `/proc/PID/io`: files and sockets).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_growing_run_is_read_by_its_tail() {
    let s = Sandbox::empty();
    let store = s.store();
    let mut record = Record::new("big", RunKind::Train, 0);
    record.status = RunStatus::Running;
    let id = store.create(record).unwrap().id;
    let path = store.metrics_path(&id);
    let mut w = MetricWriter::new(path.clone());
    const BATCH: u64 = 100_000;
    for b in 0..10 {
        let points: Vec<Point> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| Point::now("loss", i, 0, 1.0 / (1.0 + i as f64)))
            .collect();
        w.write(&points);
    }
    assert!(std::fs::metadata(&path).unwrap().len() >= 32_000_000);
    let ui = start_ui(&s, &[]);
    let series = |ui: &crate::ui::Ui| {
        let a = get(
            &ui.addr,
            &format!("/api/runs/{id}/series?name=loss&buckets=500"),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["points_in_range"].as_u64().unwrap()
    };
    assert_eq!(series(&ui), 1_000_000);
    let chart = format!("/chart?runs={id}&name=loss&smooth=ema:0.9");
    assert_eq!(get(&ui.addr, &chart).status, 200);
    // The run goes on: a thousand more points. A refresh reads those, not the 32 MB again.
    let before = bytes_read(ui.pid);
    w.write(
        &(1_000_000..1_001_000)
            .map(|i| Point::now("loss", i, 0, 0.0))
            .collect::<Vec<_>>(),
    );
    assert_eq!(series(&ui), 1_001_000);
    assert_eq!(get(&ui.addr, &chart).status, 200);
    let read = bytes_read(ui.pid) - before;
    assert!(read < 1_000_000, "{read} bytes read for 32 kB appended");
    // Cut back (a resume from a checkpoint) and written on: read again from the start.
    w.truncate(500_000).unwrap();
    w.write(&[Point::now("loss", 500_000, 0, 7.0)]);
    assert_eq!(series(&ui), 500_001);
}

/// A sweep of two learning rates over two seeds (one epoch each): made once.
pub struct SweepFixture {
    pub sandbox: Sandbox,
    pub sweep: String,
    /// The runs, by learning rate: (lr, [ids]).
    pub by_lr: Vec<(String, Vec<String>)>,
}

pub fn sweep_fixture() -> &'static SweepFixture {
    static FIXTURE: std::sync::OnceLock<SweepFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let s = Sandbox::repo();
        s.ok(
            "digits",
            &[
                "train",
                "-q",
                "--epochs",
                "1",
                "--sweep",
                "lr=1e-3,3e-3",
                "--sweep",
                "seed=1,2",
            ],
        );
        let records = s.store().records().unwrap();
        let sweep = records[0].sweep.clone().unwrap();
        let mut by_lr: Vec<(String, Vec<String>)> = Vec::new();
        for r in &records {
            let hyper = flammable_core::hyper::read_flat(
                &s.store()
                    .run_dir(&r.id)
                    .join(flammable_core::store::HYPERPARAMETERS_FILE),
            );
            let lr = hyper["lr"].clone();
            match by_lr.iter_mut().find(|(l, _)| *l == lr) {
                Some((_, ids)) => ids.push(r.id.clone()),
                None => by_lr.push((lr, vec![r.id.clone()])),
            }
        }
        assert_eq!(by_lr.len(), 2, "{by_lr:?}");
        SweepFixture {
            sandbox: s,
            sweep,
            by_lr,
        }
    })
}

#[test]
fn a_sweep_is_grouped_by_everything_but_the_seed() {
    let f = sweep_fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let page = get(&ui.addr, &format!("/api/runs?q=sweep:{}", f.sweep));
    assert_eq!(page.status, 200, "{}", page.text());
    let page = page.json();
    let groups = page["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{page}");
    let runs = page["runs"].as_array().unwrap();
    for g in groups {
        let lr = g["key"]["lr"].as_str().unwrap();
        let mut ids: Vec<&str> = g["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        ids.sort();
        let (_, mut want) = f.by_lr.iter().find(|(l, _)| l == lr).unwrap().clone();
        want.sort();
        assert_eq!(ids, want, "the runs of lr={lr}");
        // The group's loss is the mean of its runs'.
        let losses: Vec<f64> = runs
            .iter()
            .filter(|r| ids.contains(&r["id"].as_str().unwrap()))
            .map(|r| r["metrics"]["loss"].as_f64().unwrap())
            .collect();
        let stats = &g["metrics"]["loss"];
        assert_eq!(stats["n"], 2);
        let mean = losses.iter().sum::<f64>() / 2.0;
        assert!(
            (stats["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{stats}"
        );
        assert_eq!(
            stats["min"].as_f64().unwrap(),
            losses.iter().copied().fold(f64::INFINITY, f64::min)
        );
    }
    // Not grouped when asked, or when not a sweep; a name no run has is refused.
    let none = get(
        &ui.addr,
        &format!("/api/runs?q=sweep:{}&group=none", f.sweep),
    )
    .json();
    assert!(none.get("groups").is_none() && none["runs"].as_array().unwrap().len() == 4);
    assert!(get(&ui.addr, "/api/runs").json().get("groups").is_none());
    let by_lr = get(&ui.addr, "/api/runs?group=lr").json();
    assert_eq!(by_lr["groups"].as_array().unwrap().len(), 2);
    // The seed is a setting like the others: filtered and shown.
    let seed_one = get(&ui.addr, &format!("/api/runs?q=sweep:{}+seed%3D1", f.sweep)).json();
    assert_eq!(seed_one["matched"], 2, "{seed_one}");
    let typo = get(&ui.addr, "/api/runs?group=lrr");
    assert_eq!(typo.status, 400);
    assert!(typo.text().contains("`lrr`"), "{}", typo.text());
    // The page: a row a group (its runs hidden under it), the mean ± std of its loss.
    let html = get(&ui.addr, &format!("/?q=sweep:{}", f.sweep)).text();
    assert_eq!(html.matches(r#"<tr class="group""#).count(), 2, "{html}");
    assert_eq!(html.matches(" member\"").count(), 4);
    assert!(html.contains(" ± "));
    // The chart: a line a group, its mean over the runs' points, with a band.
    let all: Vec<&String> = f.by_lr.iter().flat_map(|(_, ids)| ids).collect();
    let ids = all.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    let svg = get(
        &ui.addr,
        &format!("/chart?runs={ids}&name=loss&group=*&width=4000"),
    )
    .text();
    assert_eq!(svg.matches(r#"<path class="band"#).count(), 2, "{svg}");
    assert_eq!(svg.matches(r#"<g class="line"#).count(), 2);
    let series = |id: &str| -> Vec<f64> {
        get(
            &ui.addr,
            &format!("/api/runs/{id}/series?name=loss&buckets=100000"),
        )
        .json()["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let first_group = &f
        .by_lr
        .iter()
        .find(|(lr, _)| svg.contains(&format!("lr={lr} (n=2)")))
        .unwrap()
        .1;
    let (a, b) = (series(&first_group[0]), series(&first_group[1]));
    assert_eq!(a.len(), b.len());
    let drawn: Vec<f64> = values(&svg)
        .iter()
        .flat_map(|list| {
            list.split(',')
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let mean0 = (a[0] + b[0]) / 2.0;
    assert!(
        drawn.iter().any(|v| (v - mean0).abs() < 1e-5 * mean0.abs()),
        "the mean at the first step, {mean0}, is drawn: {drawn:?}"
    );
    let std = get(
        &ui.addr,
        &format!("/chart?runs={ids}&name=loss&group=*&band=std"),
    );
    assert_eq!(std.status, 200);
    assert_ne!(std.text(), svg);
    let compare = get(&ui.addr, &format!("/compare?runs={ids}&group=*")).text();
    assert!(compare.contains("(n=2)") && compare.contains(r#"class="band"#));
}

#[test]
fn parallel_coordinates_of_a_sweep() {
    let f = sweep_fixture();
    let ui = start_ui(&f.sandbox, &[]);
    let page = get(&ui.addr, &format!("/parallel?q=sweep:{}", f.sweep));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    // An axis for the learning rate (the seed is no hyperparameter of the task), one for the
    // metric; a line and a table row per run.
    assert!(
        html.contains(r#"data-axis="lr" data-kind="linear""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<g class="axis metric" data-axis="loss""#),
        "{html}"
    );
    assert_eq!(html.matches(r#"<polyline class="run""#).count(), 4);
    assert_eq!(html.matches("<tr data-id=").count(), 4);
    assert!(html.contains(r#"<option value="loss" selected>"#), "{html}");
    let typo = get(
        &ui.addr,
        &format!("/parallel?q=sweep:{}&metric=losss", f.sweep),
    );
    assert_eq!(typo.status, 400);
    assert!(typo.text().contains("`losss`"), "{}", typo.text());
    assert_eq!(
        get(&ui.addr, "/parallel?q=lr%3E1").status,
        200,
        "no run matches: an empty page"
    );
    assert!(get(&ui.addr, "/?q=kind:train")
        .text()
        .contains("/parallel?q=kind%3Atrain"));
}

#[test]
fn the_table_shows_a_series_best_point_and_the_columns_chosen() {
    let f = fixture();
    let ui = start_ui(&f.sandbox, &[]);
    // The best loss of v2's series, and its step: the lowest point.
    let series = get(
        &ui.addr,
        &format!("/api/runs/{}/series?name=loss&buckets=100000", f.v2),
    )
    .json();
    let values: Vec<f64> = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (i, _) = values
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    let best_step = series["steps"][i].as_u64().unwrap();
    let page = get(&ui.addr, "/?q=kind:train&cols=loss&agg=best");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let row = html
        .split(&format!(r#"<tr data-id="{}""#, f.v2))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains(&format!(" @{best_step}")), "{row}");
    // Only the columns chosen: loss and no other metric or hyperparameter.
    let head = table_head(&html);
    assert!(
        head.contains("metric%3Aloss") && !head.contains("param%3A"),
        "{head}"
    );
    // Only those that differ: the optimizer is the same for both, the epochs are not.
    let differ = get(&ui.addr, "/?q=kind:train&cols=epochs,optimizer&differ=1").text();
    let head = table_head(&differ);
    assert!(
        head.contains("param%3Aepochs") && !head.contains("param%3Aoptimizer"),
        "{head}"
    );
    // Ticked boxes send one `cols` each: read as one list.
    let ticked = get(&ui.addr, "/?q=kind:train&cols=epochs&cols=loss").text();
    let head = table_head(&ticked);
    assert!(
        head.contains("param%3Aepochs") && head.contains("metric%3Aloss"),
        "{head}"
    );
    // A series that is no final metric is a column of points of it.
    let series_col = get(&ui.addr, "/?q=kind:train&cols=epoch/loss&agg=last");
    assert_eq!(series_col.status, 200, "{}", series_col.text());
    assert!(series_col.text().contains("metric%3Aepoch%2Floss"));
    for (query, says) in [("cols=nope", "`nope`"), ("agg=mean", "final, last")] {
        let a = get(&ui.addr, &format!("/?{query}"));
        assert_eq!(a.status, 400, "{query}");
        assert!(a.text().contains(says), "{query}: {}", a.text());
    }
}
