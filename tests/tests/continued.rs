//! `train --from RUN`: a finished run trained further, as a new run whose parent it is.

use crate::common::{assert_one_line_error, Sandbox};
use flammable::store::{Record, RunKind};

fn train_runs(s: &Sandbox) -> Vec<Record> {
    s.store()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RunKind::Train)
        .collect()
}

#[test]
fn a_finished_run_trains_further_as_a_new_run_exactly_as_one_longer_run() {
    let s = Sandbox::repo();
    let args = ["train", "-q", "--seed", "3", "--hidden", "24"];
    s.ok(
        "digits",
        &[&args[..], &["--epochs", "2", "-m", "short"]].concat(),
    );
    let short = train_runs(&s).pop().unwrap();
    // More epochs than it had: refused otherwise.
    let out = s.run("digits", &["train", "--from", &short.id, "--epochs", "2"]);
    assert_one_line_error(&out, 2, &["trained 2 epoch(s)", "--epochs"]);
    let out = s.run("digits", &["train", "--from", &short.id, "--epochs", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("run {} trained further from epoch 3", short.id)),
        "{stderr}"
    );
    let further = train_runs(&s).pop().unwrap();
    assert_eq!(further.parent.as_deref(), Some(short.id.as_str()));
    assert_eq!(further.seed, 3, "the parent's seed");
    // Its hyperparameters are the parent's, but for the flag given.
    let hyper = std::fs::read_to_string(s.store().run_dir(&further.id).join("hyperparameters.ron"))
        .unwrap();
    assert!(
        hyper.contains("hidden: 24") && hyper.contains("epochs: 4"),
        "{hyper}"
    );
    // The same seed trained 4 epochs straight ends with bit-identical losses.
    s.ok(
        "digits",
        &[&args[..], &["--epochs", "4", "-m", "long"]].concat(),
    );
    let long = train_runs(&s).pop().unwrap();
    assert_eq!(further.metrics, long.metrics);
    // The new run keeps its own checkpoints: testing it uses them, not the parent's.
    s.ok("digits", &["test", "-q", &further.id]);
    let tested = s.store().read(&further.id).unwrap();
    assert_eq!(tested.tests.len(), 1);
    // Trained further with steps of another size: said at the start (--batch-size is per
    // process, and another number of processes changes a step the same way).
    let out = s.run(
        "digits",
        &[
            "train",
            "--from",
            &short.id,
            "--epochs",
            "3",
            "--batch-size",
            "32",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "a step now reads 32 examples (1 process(es) × --batch-size 32), where run {} read 64",
            short.id
        )),
        "{stderr}"
    );
}

#[test]
fn a_sweep_trains_one_run_further_with_each_combination() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &[
            "train", "-q", "--seed", "5", "--hidden", "8", "--epochs", "1",
        ],
    );
    let parent = train_runs(&s).pop().unwrap();
    // Another split than the parent's would validate on rows it trained on: refused.
    let out = s.run(
        "digits",
        &[
            "train",
            "--from",
            &parent.id,
            "--epochs",
            "2",
            "--split-seed",
            "9",
        ],
    );
    assert_one_line_error(&out, 2, &["--split-seed 0", "trained on"]);
    // So does each combination of a sweep, before any starts.
    let before = train_runs(&s).len();
    let out = s.run(
        "digits",
        &[
            "train",
            "--from",
            &parent.id,
            "--epochs",
            "2",
            "--sweep",
            "split_seed=0,1",
        ],
    );
    assert_one_line_error(&out, 2, &["--sweep", "--split-seed 1", "trained on"]);
    assert_eq!(train_runs(&s).len(), before, "no run started");
    let out = s.run(
        "digits",
        &[
            "train",
            "-q",
            "--from",
            &parent.id,
            "--epochs",
            "2",
            "--sweep",
            "lr=1e-3,2e-3",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let children: Vec<Record> = train_runs(&s)
        .into_iter()
        .filter(|r| r.parent.as_deref() == Some(parent.id.as_str()))
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    let mut trials: Vec<_> = children.iter().map(|r| r.sweep_trial).collect();
    trials.sort();
    assert_eq!(trials, [Some(0), Some(1)]);
    assert!(children.iter().all(|r| r.sweep.is_some()));
    assert_eq!(children[0].sweep, children[1].sweep);
}
