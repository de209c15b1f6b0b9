//! The digits example end to end, as a user runs it: real processes, a real store.

use crate::common::{table_value, Sandbox};
use flammable::checkpoint::load_tensors;
use flammable::store::{RunKind, RunStatus};
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

/// One `error: ` line on stderr and a non-zero exit (`code` when given); `runs` still works.
fn assert_refused(s: &Sandbox, args: &[&str], code: Option<i32>, says: &str) {
    let out = s.run("digits", args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}: {stderr}");
    if let Some(code) = code {
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    let runs = s.run("digits", &["runs"]);
    assert!(runs.status.success(), "runs after {args:?}");
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    let s = Sandbox::new();
    // An empty store (one that does not exist is refused by `runs`).
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["test"], "no finished train run"),
        (
            &["eval", "missing.png", "out.ron"],
            "`missing.png` does not exist",
        ),
        (&["eval"], "eval takes [RUN] IN OUT: the train run"),
        (
            &["eval", "in.png"],
            "eval takes [RUN] IN OUT: the train run",
        ),
        (&["test", "nosuchrun"], "nosuchrun"),
        (&["test", "no\nsuch"], "no run `no\\nsuch`"),
        (&["train", "--device", "tpu"], "tpu"),
        // Read whole, a device filled memory and took no Ctrl-C.
        (
            &["eval", "/dev/zero", "out.ron"],
            "`/dev/zero` is not a file",
        ),
    ];
    for (args, says) in cases {
        assert_refused(&s, args, Some(2), says);
    }
}

#[test]
fn malformed_eval_input_and_a_model_of_another_shape_are_refused() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let write = |name: &str, bytes: &[u8]| {
        let p = s.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    };
    let cases = [
        (
            s.path().join("missing.png").to_string_lossy().into_owned(),
            "missing.png",
        ),
        (write("text.png", b"not an image"), "text.png"),
        (write("short.csv", b"1,2,3\n"), "expected 64 pixel values"),
        (write("words.csv", &[b'x'; 64]), "words.csv"),
        (write("image.gif", b"GIF89a"), "expected an 8x8 .png image"),
    ];
    for (input, says) in &cases {
        assert_refused(&s, &["eval", "-q", input, "out.ron"], None, says);
        assert!(
            !s.path().join("out.ron").exists(),
            "no output from bad input"
        );
    }
    // The code changed the model's shape since the run trained: the checkpoint no longer
    // fits, and the message names the tensors.
    let id = s.store().ids().unwrap().remove(0);
    let hyper = s.store().run_dir(&id).join("hyperparameters.ron");
    let text = std::fs::read_to_string(&hyper).unwrap();
    assert!(text.contains("hidden: 128"), "{text}");
    std::fs::write(&hyper, text.replace("hidden: 128", "hidden: 32")).unwrap();
    assert_refused(
        &s,
        &["test", "-q", &id],
        None,
        "`hidden.weight` is [128, 64] in the file but [32, 64] in the model",
    );
}
