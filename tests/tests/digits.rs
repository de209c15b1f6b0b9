//! The digits example end to end, as a user runs it: real processes, a real store.

use crate::common::{table_value, Sandbox};
use flammable::checkpoint::load_tensors;
use flammable::record::{RunKind, RunStatus};
use std::path::Path;

fn data(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn train_test_eval() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "--seed", "7", "-q", "-m", "first"]);
    let out = s.ok("digits", &["test", "-q"]);
    let accuracy = table_value(&out, "accuracy").expect("test prints accuracy");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}\n{out}");

    let records = s.store().records().unwrap();
    let (train, test) = (&records[0], &records[1]);
    assert_eq!(
        (train.kind, train.status),
        (RunKind::Train, RunStatus::Finished)
    );
    assert_eq!(train.message.as_deref(), Some("first"));
    assert_eq!(
        (test.kind, test.parent.as_deref()),
        (RunKind::Test, Some(train.id.as_str()))
    );
    let reported = s.store().read(&train.id).unwrap().tests;
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].metrics["accuracy"], test.metrics["accuracy"]);

    for input in ["seven.png", "seven.csv"] {
        let result = s.path().join(format!("{input}.ron"));
        let printed = s.ok(
            "digits",
            &["eval", "-q", &data(input), result.to_str().unwrap()],
        );
        let written = std::fs::read_to_string(&result).unwrap();
        assert!(written.contains("class: 7"), "{input}: {written}");
        assert_eq!(printed.trim(), written.trim());
    }
}

#[test]
fn second_example_trains_and_tests() {
    let s = Sandbox::new();
    s.ok(
        "digits_twohead",
        &["train", "--seed", "1", "-q", "--epochs", "8"],
    );
    let out = s.ok("digits_twohead", &["test", "-q"]);
    assert!(table_value(&out, "digit_accuracy").unwrap() > 0.9, "{out}");
    assert!(
        table_value(&out, "five_or_more_accuracy").unwrap() > 0.9,
        "{out}"
    );
    let train = &s.store().records().unwrap()[0];
    assert!(train.metrics.contains_key("digit") && train.metrics.contains_key("five_or_more"));
}

fn weights(s: &Sandbox, seed: &str) -> Vec<Vec<f32>> {
    s.ok("digits", &["train", "--seed", seed, "-q", "--epochs", "2"]);
    let id = s.store().ids().unwrap().pop().unwrap();
    let file = s
        .store()
        .run_dir(&id)
        .join("checkpoints/latest.safetensors");
    let tensors = load_tensors(&file).unwrap();
    let mut names: Vec<_> = tensors.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .map(|n| tensors[n].flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

#[test]
fn same_seed_gives_bit_identical_weights_across_processes() {
    let s = Sandbox::new();
    let a = weights(&s, "11");
    assert_eq!(a, weights(&s, "11"));
    assert_ne!(a, weights(&s, "12"));
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    let s = Sandbox::new();
    let cases: &[&[&str]] = &[
        &["test"],
        &["eval", "missing.png", "out.ron"],
        &["test", "nosuchrun"],
        &["train", "--device", "tpu"],
    ];
    for args in cases {
        let out = s.run("digits", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}
