//! What a user reaches for on day two: early stopping, hooks, logged scalars, the model
//! summary, sweeps — real runs of the regression task and the digits example, and the hooked
//! task in-process.

use crate::common::{assert_one_line_error, example, wait_for, KillOnDrop, Sandbox};
use flammable::checkpoint::TrainingState;
use flammable::prelude::*;
use flammable::store::{Record, RunKind, RunStatus};
use flammable_tests::Hooked;
use std::process::{Command, Output, Stdio};

/// The regression task with `args` in the sandbox.
fn regression(s: &Sandbox, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regression_task"))
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn newest_train(s: &Sandbox) -> Record {
    s.store()
        .records()
        .unwrap()
        .into_iter()
        .rfind(|r| r.kind == RunKind::Train)
        .unwrap()
}

/// The names of a run's metric series, from `metrics RUN` (CSV: name, step, epoch, value,
/// time).
fn series_names(s: &Sandbox, id: &str) -> std::collections::BTreeSet<String> {
    let out = ok(&regression(s, &["metrics", id]));
    out.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect()
}

#[test]
fn early_stopping_stops_a_run_that_no_longer_improves_and_says_why() {
    let s = Sandbox::new();
    let out = regression(
        &s,
        &[
            "train",
            "--allow-no-snapshot",
            "--epochs",
            "300",
            "--best-metric",
            "rmse",
            "--early-stop",
            "3",
            "--min-delta",
            "0.001",
        ],
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped early after epoch"), "{stderr}");
    let r = newest_train(&s);
    assert_eq!(r.status, RunStatus::Finished);
    let stopped = r.stopped_early.expect("stopped_early in the record");
    assert!(stopped.epochs < 300 && stopped.epochs > 3, "{stopped:?}");
    assert!(stopped.reason.contains("val/rmse") && stopped.reason.contains("3 validation"));
    // The run's validations: the last three improved on the best by no more than min-delta.
    let vals: Vec<f64> = ok(&regression(&s, &["metrics", &r.id, "--name", "val/rmse"]))
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3)?.parse().ok())
        .collect();
    assert_eq!(vals.len() as u64, stopped.epochs);
    let best_before = vals[..vals.len() - 3]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    assert!(vals[vals.len() - 3..]
        .iter()
        .all(|v| *v >= best_before - 0.001));
    let show = ok(&regression(&s, &["show", &r.id]));
    assert!(show.contains("stopped     early, after epoch"), "{show}");
    // It watches the best metric: without one it is refused before training.
    assert_one_line_error(
        &regression(
            &s,
            &["train", "-q", "--allow-no-snapshot", "--early-stop", "2"],
        ),
        2,
        &["--early-stop", "--best-metric"],
    );
}

#[test]
fn a_resumed_run_keeps_its_patience() {
    // A run that had two validations without improvement continues with that count: one more
    // stops it.
    let config = TrainConfig {
        best_metric: Some("loss".into()),
        early_stop: Some(3),
        ..TrainConfig::default()
    };
    let env = Env::new(Device::Cpu, 1).with_config(config);
    let task = <Hooked as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let optimizer = task.optimizer(env.vars().all_vars(), &env).unwrap();
    let mut trainer = Trainer::new(&env, optimizer);
    trainer
        .restore(&TrainingState {
            early_best: Some(0.5),
            stale_validations: 2,
            ..TrainingState::default()
        })
        .unwrap();
    trainer
        .consider_best(&Results::from([("loss".to_string(), 0.7)]))
        .unwrap();
    assert!(trainer.stopping().is_some());
}

#[test]
fn a_logged_tensor_of_several_values_is_refused_by_name() {
    let env = Env::new(Device::Cpu, 1);
    let task = <Hooked as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let optimizer = task.optimizer(env.vars().all_vars(), &env).unwrap();
    let mut trainer = Trainer::new(&env, optimizer);
    trainer.log("fine", Tensor::new(1.5f32, &Device::Cpu).unwrap());
    trainer.log(
        "weights",
        Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let error = trainer.flush().unwrap_err().to_string();
    assert!(
        error.contains("trainer.log(\"weights\", …) at step 0: a tensor of shape [2, 3]"),
        "{error}"
    );
}

#[test]
fn hooks_run_in_declaration_order_after_the_defaults_and_can_stop_training() {
    let s = Sandbox::new();
    let env = s.env(3, None);
    let mut task = <Hooked as Task>::new(&NoHyperparameters {}, &env).unwrap();
    task.stop_after = 2;
    task.fit(&env).unwrap();
    let log = task.log.lock().unwrap().clone();
    // 64 points in batches of 32: two steps per epoch; the second epoch_end hook stops
    // training after epoch 2 of 5.
    assert_eq!(
        log,
        [
            "step_end 1",
            "step_end 2",
            "validation_end 0 [\"loss\"]",
            "epoch_end first 0",
            "epoch_end second 0",
            "step_end 3",
            "step_end 4",
            "validation_end 1 [\"loss\"]",
            "epoch_end first 1",
            "epoch_end second 1",
            "train_end 1",
        ]
    );
    let run = env.run().unwrap();
    let record = s.store().read(&run.id()).unwrap();
    let stopped = record.stopped_early.unwrap();
    assert_eq!((stopped.epochs, stopped.step), (2, 4));
    assert_eq!(stopped.reason, "the hook had seen enough");
    // What the hook logged, at the step of the epoch's last iteration.
    let hooked = flammable::store::read_run_series(run.dir(), "hooked").unwrap();
    assert_eq!((hooked.steps, hooked.values), (vec![1, 3], vec![0.5, 1.5]));
    let norms = flammable::store::read_run_series(run.dir(), "weight_norm").unwrap();
    assert_eq!(norms.values.len(), 2);
    assert!(norms.values.iter().all(|v| v.is_finite() && *v > 0.0));
}

#[test]
fn the_learning_rate_and_the_gradient_norm_are_recorded() {
    let s = Sandbox::new();
    ok(&regression(
        &s,
        &[
            "train",
            "-q",
            "--allow-no-snapshot",
            "--epochs",
            "2",
            "--schedule",
            "cosine",
        ],
    ));
    let plain = newest_train(&s);
    let names = series_names(&s, &plain.id);
    assert!(
        names.contains("lr") && !names.contains("grad_norm"),
        "{names:?}"
    );
    // One learning rate per optimizer step, as the schedule set it: cosine decays.
    let lrs: Vec<f64> = ok(&regression(&s, &["metrics", &plain.id, "--name", "lr"]))
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3)?.parse().ok())
        .collect();
    assert_eq!(lrs.len(), 16);
    assert!((lrs[0] - 0.05).abs() < 1e-9 && lrs[15] < lrs[0], "{lrs:?}");
    for flags in [&["--clip-grad-norm", "1.0"][..], &["--log-grad-norm"]] {
        let mut args = vec!["train", "-q", "--allow-no-snapshot", "--epochs", "1"];
        args.extend(flags);
        ok(&regression(&s, &args));
        let r = newest_train(&s);
        let norms = ok(&regression(&s, &["metrics", &r.id, "--name", "grad_norm"]));
        assert_eq!(norms.lines().count(), 1 + 8, "{flags:?}: {norms}");
    }
}

#[test]
fn train_prints_the_model_and_show_reads_it_from_the_checkpoint() {
    let s = Sandbox::new();
    let out = s.run(
        "digits",
        &[
            "train",
            "--allow-no-snapshot",
            "--epochs",
            "1",
            "--hidden",
            "16",
        ],
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "hidden.weight  [16, 64]",
        "out.weight     [10, 16]",
        "total          4 variable(s)",
    ] {
        assert!(stderr.contains(line), "`{line}` not in {stderr}");
    }
    // 64·16 + 16 + 16·10 + 10
    assert!(stderr.contains("1,210"), "{stderr}");
    let show = s.ok("digits", &["show", "latest"]);
    assert!(
        show.contains("model (checkpoint latest)") && show.contains("1,210"),
        "{show}"
    );
    let quiet = s.run(
        "digits",
        &["train", "-q", "--allow-no-snapshot", "--epochs", "1"],
    );
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("hidden.weight"));
}

#[test]
fn a_sweep_trains_every_combination_in_parallel_and_ranks_them() {
    let s = Sandbox::repo();
    let out = s.run(
        "digits",
        &[
            "train",
            "--epochs",
            "2",
            "--seed",
            "7",
            "--sweep",
            "lr=1e-3,3e-3",
            "--sweep",
            "hidden=16,32",
            "--parallel",
            "4",
        ],
    );
    let table = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string();
    let runs: Vec<Record> = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.sweep.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(runs.len(), 4, "{stderr}");
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
    assert!(runs.iter().all(|r| r.seed == 7));
    // The four ran at once: each started before any ended.
    let latest_start = runs.iter().map(|r| r.started.clone()).max().unwrap();
    let first_end = runs.iter().filter_map(|r| r.ended.clone()).min().unwrap();
    assert!(latest_start <= first_end, "{runs:?}");
    let mut combos: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            let h = flammable_core::hyper::read_flat(
                &s.store().run_dir(&r.id).join("hyperparameters.ron"),
            );
            (h["lr"].clone(), h["hidden"].clone())
        })
        .collect();
    combos.sort();
    assert_eq!(
        combos,
        [
            ("0.001".to_string(), "16".to_string()),
            ("0.001".into(), "32".into()),
            ("0.003".into(), "16".into()),
            ("0.003".into(), "32".into()),
        ]
    );
    // Ranked by the final loss, smallest first; the differing hyperparameters as columns.
    let listed = s.ok("digits", &["runs", "--sweep", &id]);
    assert_eq!(listed, table);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["rank", "id", "status", "hidden", "lr", "loss", "(min)"]
    );
    let losses: Vec<f64> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{listed}");
    let best = runs
        .iter()
        .min_by(|a, b| a.metrics["loss"].total_cmp(&b.metrics["loss"]))
        .unwrap();
    assert!(listed.lines().nth(1).unwrap().contains(&best.id));
}

#[test]
fn a_sweep_refuses_what_it_cannot_run_before_starting_any() {
    let s = Sandbox::new();
    for (args, says) in [
        (
            vec!["--sweep", "nope=1,2"],
            vec!["no hyperparameter --nope", "hidden"],
        ),
        (
            vec!["--lr", "0.1", "--sweep", "lr=1,2"],
            vec!["both set and swept"],
        ),
        (
            vec!["--sweep", "lr=abc"],
            vec!["invalid value 'abc'", "--lr"],
        ),
        (vec!["--sweep", "lr"], vec!["NAME=V1,V2"]),
        (vec!["--sweep", "=1,2"], vec!["NAME=V1,V2"]),
        (vec!["--sweep", "lr=1,,2"], vec!["an empty value"]),
    ] {
        let mut full = vec!["train"];
        full.extend(args);
        assert_one_line_error(&s.run("digits", &full), 2, &says);
    }
    let out = s.run("digits", &["train", "--parallel", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sweep"));
    assert!(s.store().records().unwrap_or_default().is_empty());
    // Training settings every run would refuse: refused before any starts.
    let out = s.run(
        "digits",
        &[
            "train",
            "-q",
            "--sweep",
            "lr=0.1,0.2",
            "--best-metric",
            "accuracy",
        ],
    );
    assert_one_line_error(
        &out,
        2,
        &["--best-metric accuracy: this task has no validation data"],
    );
    assert!(s.store().records().unwrap_or_default().is_empty());
}

#[test]
fn ctrl_c_stops_every_run_of_a_sweep() {
    let s = Sandbox::new();
    let child = Command::new(example("digits"))
        .args([
            "train",
            "--allow-no-snapshot",
            "--epochs",
            "100000",
            "--sweep",
            "hidden=8,16,32",
            "--parallel",
            "2",
        ])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_for(60, "two running runs of the sweep", || {
        s.store()
            .records()
            .unwrap_or_default()
            .iter()
            .filter(|r| r.status == RunStatus::Running && r.sweep.is_some())
            .count()
            == 2
    });
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("1 not started"), "{stderr}");
    let runs = s.store().records().unwrap();
    assert_eq!(runs.len(), 2, "the third run never started");
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Interrupted),
        "{runs:?}"
    );
}

#[test]
fn a_sweep_can_draw_trials_at_random_and_sweep_the_seed() {
    let s = Sandbox::new();
    ok(&s.run(
        "digits",
        &[
            "train",
            "-q",
            "--allow-no-snapshot",
            "--epochs",
            "1",
            "--sweep",
            "seed=11,12,13",
            "--trials",
            "2",
            "--random",
        ],
    ));
    let mut seeds: Vec<u64> = s
        .store()
        .records()
        .unwrap()
        .iter()
        .map(|r| r.seed)
        .collect();
    seeds.sort();
    seeds.dedup();
    assert_eq!(seeds.len(), 2, "{seeds:?}");
    assert!(seeds.iter().all(|s| (11..=13).contains(s)), "{seeds:?}");
    // The ranking tells the runs apart by their seed, though it is no hyperparameter.
    let sweep = s.store().records().unwrap()[0].sweep.clone().unwrap();
    let table =
        String::from_utf8_lossy(&s.run("digits", &["runs", "--sweep", &sweep]).stdout).into_owned();
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("seed"), "{table}");
    for seed in &seeds {
        assert!(table.contains(&format!(" {seed} ")), "{table}");
    }
}
