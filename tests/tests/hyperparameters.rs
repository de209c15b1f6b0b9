//! Hyperparameters through the digits example: defaults, flags, a RON file, flags over the
//! file, bad values.

use crate::common::Sandbox;
use flammable::HyperRecord;

#[derive(Debug, serde::Deserialize)]
struct DigitsHyper {
    hidden: usize,
    dropout: f32,
}

fn recorded(s: &Sandbox) -> HyperRecord<DigitsHyper> {
    let id = s.store().ids().unwrap().pop().unwrap();
    HyperRecord::read(&s.store().run_dir(&id).join("hyperparameters.ron")).unwrap()
}

#[test]
fn defaults_flags_file_and_flags_over_file() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let h = recorded(&s);
    assert_eq!(
        (h.task.hidden, h.train.lr, h.train.batch_size),
        (128, 3e-3, 64),
        "the task's defaults"
    );

    s.ok(
        "digits",
        &[
            "train", "-q", "--epochs", "1", "--hidden", "16", "--lr", "0.01",
        ],
    );
    let h = recorded(&s);
    assert_eq!((h.task.hidden, h.train.lr), (16, 0.01));

    let config = s.path().join("h.ron");
    std::fs::write(
        &config,
        "(hidden: 24, dropout: 0.0, lr: 0.02, epochs: 1, clip_grad_norm: Some(1.0))",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    s.ok("digits", &["train", "-q", "--config", config]);
    let h = recorded(&s);
    assert_eq!(
        (h.task.hidden, h.task.dropout, h.train.lr, h.train.epochs),
        (24, 0.0, 0.02, 1)
    );
    assert_eq!(h.train.clip_grad_norm, Some(1.0));

    s.ok(
        "digits",
        &["train", "-q", "--config", config, "--hidden", "8"],
    );
    let h = recorded(&s);
    assert_eq!(
        (h.task.hidden, h.train.lr),
        (8, 0.02),
        "the flag wins over the file"
    );

    // A run's recorded hyperparameters are a valid config file.
    let id = s.store().ids().unwrap().pop().unwrap();
    let again = s.store().run_dir(&id).join("hyperparameters.ron");
    s.ok(
        "digits",
        &["train", "-q", "--config", again.to_str().unwrap()],
    );
    assert_eq!(recorded(&s).task.hidden, 8);
}

#[test]
fn bad_values_get_clap_errors_and_exit_code_2() {
    let s = Sandbox::new();
    let bad_key = s.path().join("bad.ron");
    std::fs::write(&bad_key, "(hiden: 3)").unwrap();
    let bad_value = s.path().join("value.ron");
    std::fs::write(&bad_value, "(hidden: \"wide\")").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--hidden", "many"], "invalid value"),
        (vec!["train", "--epochs", "-1"], "'-1'"),
        (vec!["train", "--optimizer", "lbfgs"], "invalid value"),
        (vec!["train", "--no-such-flag"], "unexpected argument"),
        (
            vec!["train", "--config", bad_key.to_str().unwrap()],
            "hidden",
        ),
        (
            vec!["train", "--config", bad_value.to_str().unwrap()],
            "invalid value",
        ),
        (vec!["train", "--config", "missing.ron"], "missing.ron"),
    ];
    for (args, says) in cases {
        let out = s.run("digits", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(s.store().ids().unwrap().is_empty(), "no run was started");
}
