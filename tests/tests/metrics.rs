//! Metrics and data at their edges: pooled metrics through the real test loop (in-process),
//! and the wine example — CSV, stratified split, scaler, class names — through real train,
//! eval and serve runs of one shared training.

use crate::common::{wait_for, KillOnDrop, Sandbox};
use crate::http::request;
use flammable::prelude::*;
use flammable::store::{Record, RunKind};
use flammable_tests::Scored;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One wine train run (seed 3), trained once for every test here on a copy of the data
/// that is then deleted — so every eval and serve here shows that they need nothing but the
/// run's folder — with the raw sample beside it: the sandbox and the run's id.
fn wine() -> &'static (Sandbox, String) {
    static WINE: OnceLock<(Sandbox, String)> = OnceLock::new();
    WINE.get_or_init(|| {
        let s = Sandbox::new();
        let data = s.path().join("wine-copy.csv");
        std::fs::copy(example_data("wine.csv"), &data).unwrap();
        ok(&s.run(
            "wine",
            &[
                "train",
                "-q",
                "--allow-no-snapshot",
                "--seed",
                "3",
                "--data",
                &data.to_string_lossy(),
            ],
        ));
        std::fs::remove_file(&data).unwrap();
        std::fs::copy(
            example_data("wine_sample.csv"),
            s.path().join("wine_sample.csv"),
        )
        .unwrap();
        let id = record(&s, None).id;
        (s, id)
    })
}

/// Run `id` of the sandbox's store, or its newest train run.
fn record(s: &Sandbox, id: Option<&str>) -> Record {
    s.store()
        .records()
        .unwrap()
        .into_iter()
        .rfind(|r| id.map_or(r.kind == RunKind::Train, |id| r.id == id))
        .unwrap()
}

/// A task whose output is its input: predictions in, pooled R² and top-2 accuracy out.
struct Echo;

#[flammable::task(no_main, experiment = "echo")]
impl Echo {
    #[init]
    fn new(_env: &Env) -> Result<Self> {
        Ok(Echo)
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(Vec::new()))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }

    #[loss]
    fn loss(&self, out: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(out.sum_all()?)
    }

    #[metric(r2)]
    fn r2(&self, out: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(out.clone())
    }
}

#[test]
fn r2_over_many_batches_of_targets_far_from_zero_is_exact() {
    // Targets 1000 ± 1 and predictions halfway to 1000, in batches of 64: R² is 0.75 (the
    // sums Σy² − (Σy)²/n of f32 made it negative).
    let batches: Vec<Batch> = (0..40)
        .map(|b| {
            let y: Vec<f32> = (0..64)
                .map(|i| if (b * 64 + i) % 2 == 0 { 1001.0 } else { 999.0 })
                .collect();
            let p: Vec<f32> = y.iter().map(|v| 1000.0 + (v - 1000.0) / 2.0).collect();
            Batch::new(
                Tensor::from_vec(p, (64, 1), &Device::Cpu).unwrap(),
                Tensor::from_vec(y, (64, 1), &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let env = Env::new(Device::Cpu, 1);
    let task = <Echo as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let results = task.test_on(&mut Batches::from_vec(batches), &env).unwrap();
    assert!((results["r2"] - 0.75).abs() < 1e-12, "{results:?}");
}

/// 23 examples of 3 classes: scores and labels from a fixed formula, in uneven batches.
fn scored_data() -> (Vec<[f32; 3]>, Vec<u32>) {
    let scores: Vec<[f32; 3]> = (0..23)
        .map(|i| {
            let f = i as f32;
            [
                (f * 0.37).sin() * 2.0,
                (f * 0.71).cos(),
                ((f * 1.3).sin() + 0.2),
            ]
        })
        .collect();
    let labels: Vec<u32> = (0..23).map(|i| ((i * 7 + 3) % 3) as u32).collect();
    (scores, labels)
}

#[test]
fn pooled_metrics_equal_the_same_metrics_computed_over_the_whole_split() {
    let (scores, labels) = scored_data();
    let batches: Vec<Batch> = [0..5, 5..10, 10..15, 15..21, 21..23]
        .into_iter()
        .map(|r| {
            let x: Vec<f32> = scores[r.clone()].iter().flatten().copied().collect();
            Batch::new(
                Tensor::from_vec(x, (r.len(), 3), &Device::Cpu).unwrap(),
                Tensor::new(&labels[r], &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let s = Sandbox::new();
    let env = s.env(1, None);
    let task = <Scored as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let results = task.test_on(&mut Batches::from_vec(batches), &env).unwrap();
    // The same metrics, by hand, over all 23 examples at once.
    let predicted: Vec<u32> = scores
        .iter()
        .map(|s| (0..3).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap() as u32)
        .collect();
    let mut f1s = Vec::new();
    for class in 0..3u32 {
        let tp = (0..23)
            .filter(|&i| predicted[i] == class && labels[i] == class)
            .count() as f64;
        let predicted_n = predicted.iter().filter(|&&p| p == class).count() as f64;
        let actual_n = labels.iter().filter(|&&l| l == class).count() as f64;
        let (p, r) = (tp / predicted_n.max(1.0), tp / actual_n.max(1.0));
        f1s.push(if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        });
    }
    let f1 = f1s.iter().sum::<f64>() / 3.0;
    let mse: f64 = scores
        .iter()
        .zip(&labels)
        .map(|(s, &l)| (f64::from(s[0]) - f64::from(l)).powi(2))
        .sum::<f64>()
        / 23.0;
    assert!((results["f1"] - f1).abs() < 1e-9, "{results:?} vs {f1}");
    assert!(
        (results["rmse"] - mse.sqrt()).abs() < 1e-5,
        "{results:?} vs {}",
        mse.sqrt()
    );
    let accuracy = (0..23).filter(|&i| predicted[i] == labels[i]).count() as f64 / 23.0;
    assert!((results["confusion"] - accuracy).abs() < 1e-9);
    // The confusion matrix, stored with the run.
    let csv =
        std::fs::read_to_string(env.run().unwrap().dir().join("files/confusion.csv")).unwrap();
    let cell = |t: u32, p: u32| {
        (0..23)
            .filter(|&i| labels[i] == t && predicted[i] == p)
            .count()
    };
    let row1: Vec<String> = (0..3).map(|p| cell(1, p).to_string()).collect();
    assert_eq!(
        csv.lines().nth(2).unwrap(),
        format!("1,{}", row1.join(",")),
        "{csv}"
    );
    // A mean of per-batch RMSEs would differ: pooling is what makes these equal.
    assert!(<Scored as Task>::larger_is_better("f1") == Some(true));
}

/// The bundled data file `name` of the examples.
fn example_data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(name)
}

#[test]
fn the_wine_task_standardises_raw_inputs_with_the_statistics_of_its_training_part() {
    let (s, id) = wine();
    let run = record(s, Some(id));
    assert!(run.metrics.contains_key("best/val/f1"), "{:?}", run.metrics);
    // The statistics in the checkpoint are the training part's, computed here by hand.
    let all = flammable::data::TensorDataset::from_csv(
        example_data("wine.csv"),
        "cultivar",
        flammable::data::Target::Class,
    )
    .unwrap();
    // Split by the split seed (0 by default), not the run seed.
    let train_part = &all.split_stratified(&[0.6, 0.2, 0.2], 0).unwrap()[0];
    let rows = train_part.inputs().to_vec2::<f32>().unwrap();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..13)
        .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n)
        .collect();
    let checkpoint = flammable::checkpoint::load_tensors(
        &s.store()
            .run_dir(&run.id)
            // The checkpoint eval uses: the run's best.
            .join("checkpoints/best.safetensors"),
    )
    .unwrap();
    let v = |name: &str| -> Vec<f32> { checkpoint[name].flatten_all().unwrap().to_vec1().unwrap() };
    let (m, sd) = (v("standardize.mean"), v("standardize.std"));
    for (a, b) in m.iter().zip(&mean) {
        assert!(
            (f64::from(*a) - b).abs() < 1e-3 * b.abs().max(1.0),
            "{m:?} vs {mean:?}"
        );
    }
    // eval on raw measurements: the model's output is the network applied to the
    // standardised input, computed here by hand from the checkpoint.
    let text = std::fs::read_to_string(example_data("wine_sample.csv")).unwrap();
    let raw: Vec<f32> = text.trim().split(',').map(|v| v.parse().unwrap()).collect();
    ok(&s.run(
        "wine",
        &["eval", "-q", id.as_str(), "wine_sample.csv", "out.ron"],
    ));
    let out = std::fs::read_to_string(s.path().join("out.ron")).unwrap();
    let (argmax, values) = prediction(&out);
    let z: Vec<f32> = (0..13).map(|j| (raw[j] - m[j]) / sd[j]).collect();
    let (w1, b1, w2, b2) = (
        v("hidden.weight"),
        v("hidden.bias"),
        v("out.weight"),
        v("out.bias"),
    );
    let hidden = b1.len();
    let h: Vec<f32> = (0..hidden)
        .map(|k| (b1[k] + (0..13).map(|j| w1[k * 13 + j] * z[j]).sum::<f32>()).max(0.0))
        .collect();
    let logits: Vec<f32> = (0..3)
        .map(|c| b2[c] + (0..hidden).map(|k| w2[c * hidden + k] * h[k]).sum::<f32>())
        .collect();
    assert_eq!(values.len(), 3, "{out}");
    for (a, b) in values.iter().zip(&logits) {
        assert!((a - b).abs() < 1e-3, "{values:?} vs {logits:?}");
    }
    // The first wine is cultivar 1: class 0.
    assert_eq!(argmax, 0);
}

/// The argmax and values of a default `Prediction` as `eval` writes it (RON).
fn prediction(ron: &str) -> (usize, Vec<f32>) {
    let argmax = ron
        .split("argmax:")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{ron}"));
    let values = ron
        .split("values:")
        .nth(1)
        .and_then(|r| r.split('[').nth(1))
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("{ron}"))
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    (argmax, values)
}

#[test]
fn the_confusion_matrix_is_labelled_with_the_class_names_of_the_run() {
    let (scores, labels) = scored_data();
    let x: Vec<f32> = scores.iter().flatten().copied().collect();
    let batch = Batch::new(
        Tensor::from_vec(x, (23, 3), &Device::Cpu).unwrap(),
        Tensor::new(labels.as_slice(), &Device::Cpu).unwrap(),
    );
    let s = Sandbox::new();
    let env = s.env(1, None);
    env.set_classes(&["cat".into(), "dog, or wolf".into(), "emu".into()]);
    let task = <Scored as Task>::new(&NoHyperparameters {}, &env).unwrap();
    task.test_on(&mut Batches::from_vec(vec![batch]), &env)
        .unwrap();
    let csv =
        std::fs::read_to_string(env.run().unwrap().dir().join("files/confusion.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0], "true\\predicted,cat,\"dog, or wolf\",emu",
        "{csv}"
    );
    assert!(lines[2].starts_with("\"dog, or wolf\","), "{csv}");
    assert_eq!(lines.len(), 4, "{csv}");
}

#[test]
fn wine_answers_the_cultivar_by_name_and_a_run_without_names_by_index() {
    let (s, id) = wine();
    // eval: the first wine is cultivar 1, class 0.
    ok(&s.run(
        "wine",
        &["eval", "-q", id.as_str(), "wine_sample.csv", "named.ron"],
    ));
    let named = std::fs::read_to_string(s.path().join("named.ron")).unwrap();
    assert!(named.contains("class: \"1\","), "{named}");
    assert_eq!(prediction(&named).0, 0, "{named}");
    // serve: the same answer, as JSON.
    let log = s.path().join("wine-serve.log");
    let mut child = s
        .command("wine")
        .args(["serve", "--port", "0", id.as_str()])
        .env_remove("FLAMMABLE_SERVE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _server = KillOnDrop(child);
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    let addr = url
        .trim()
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .map(|host| host.replace("localhost", "127.0.0.1"))
        .unwrap_or_else(|| {
            panic!(
                "no address: {url:?} {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    wait_for(60, "wine serve to be ready", || {
        request("GET", &addr, "/ready", &[], b"").is_ok_and(|a| a.status == 200)
    });
    let sample = std::fs::read_to_string(s.path().join("wine_sample.csv")).unwrap();
    let body = format!("[{}]", sample.trim());
    let answer = request(
        "POST",
        &addr,
        "/predict",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    assert_eq!(
        (json["class"].as_str(), json["argmax"].as_u64()),
        (Some("1"), Some(0)),
        "{json}"
    );
    // Without its data, the server checks requests against the inputs the run recorded.
    let info = request("GET", &addr, "/info", &[], b"").unwrap().json();
    assert_eq!(
        info["model"]["sample_shape"],
        serde_json::json!([13]),
        "{info}"
    );
    let post = |body: &str| {
        request(
            "POST",
            &addr,
            "/predict",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let short = post("[1, 2, 3]");
    assert_eq!(short.status, 422, "{}", short.text());
    let two = post(&format!("[[{0}], [{0}]]", sample.trim()));
    assert_eq!(two.status, 422, "{}", two.text());
    assert!(
        two.text().contains("one sample per request"),
        "{}",
        two.text()
    );
    drop(_server);
    // A run whose checkpoints hold no names (as before they were kept) answers the index.
    let checkpoints = s.store().run_dir(id).join("checkpoints");
    for entry in std::fs::read_dir(&checkpoints).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") && !name.ends_with(".optimizer.safetensors") {
            let tensors = flammable::checkpoint::load_tensors(&path).unwrap();
            flammable::checkpoint::save_tensors(&tensors, &path).unwrap();
        }
    }
    ok(&s.run(
        "wine",
        &["eval", "-q", id.as_str(), "wine_sample.csv", "plain.ron"],
    ));
    let plain = std::fs::read_to_string(s.path().join("plain.ron")).unwrap();
    assert!(!plain.contains("class"), "{plain}");
    assert_eq!(prediction(&plain), prediction(&named));
}

#[test]
fn only_the_commands_that_use_the_data_read_it() {
    let (s, id) = wine();
    // The run's data file is gone: `test` needs it and names it; eval and serve (above) did
    // not.
    let out = s.run("wine", &["test", "-q", id.as_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("wine-copy.csv"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // The run recorded what an input looks like: 13 measurements as f32.
    let input = record(s, Some(id))
        .input
        .expect("the input's shape is recorded");
    assert_eq!(
        (input.shape.as_slice(), input.dtype.as_str()),
        (&[13][..], "f32")
    );
}

#[test]
fn runs_that_differ_only_in_seed_split_the_data_alike_and_runs_says_when_they_do_not() {
    let s = Sandbox::new();
    let train = |extra: &[&str]| {
        ok(&s.run(
            "wine",
            &[
                &["train", "-q", "--allow-no-snapshot", "--epochs", "1"][..],
                extra,
            ]
            .concat(),
        ))
    };
    train(&["--seed", "1"]);
    train(&["--seed", "2"]);
    let splits: Vec<Option<u64>> = s
        .store()
        .records()
        .unwrap()
        .iter()
        .map(|r| r.split_seed)
        .collect();
    assert_eq!(splits, [Some(0), Some(0)]);
    let listed = s.run("wine", &["runs"]);
    assert!(listed.status.success());
    assert!(!String::from_utf8_lossy(&listed.stderr).contains("split"));
    train(&["--seed", "1", "--split-seed", "7"]);
    let listed = s.run("wine", &["runs"]);
    let note = String::from_utf8_lossy(&listed.stderr);
    assert!(
        note.contains("different seeds: wine (--split-seed 0, 7)"),
        "{note}"
    );
}
