//! Hyperparameters through the digits example: defaults, flags, a RON file, flags over the
//! file, bad values.

use crate::common::Sandbox;
use flammable::HyperRecord;

/// The digits example's hyperparameters, as a reader of its runs sees them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct DigitsHyper {
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 0.0)]
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

#[test]
fn a_run_recorded_before_a_hyperparameter_existed_takes_its_default() {
    let s = Sandbox::new();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "--hidden", "24"],
    );
    let id = s.store().ids().unwrap().pop().unwrap();
    // As if the run had been made before the task had `dropout`.
    let path = s.store().run_dir(&id).join("hyperparameters.ron");
    let text = std::fs::read_to_string(&path).unwrap();
    let older: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("dropout:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(older, text, "{text}");
    std::fs::write(&path, older).unwrap();
    let out = s.run("digits", &["test", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("before hyperparameter(s) `dropout` existed"),
        "{stderr}"
    );
    let input = s.path().join("seven.csv");
    std::fs::write(&input, vec!["0"; 64].join(",")).unwrap();
    let output = s.path().join("out.ron");
    s.ok(
        "digits",
        &[
            "eval",
            &id,
            &input.to_string_lossy(),
            &output.to_string_lossy(),
        ],
    );
    let (h, filled) = HyperRecord::<DigitsHyper>::read_filled(&path).unwrap();
    assert_eq!((h.task.hidden, h.task.dropout), (24, 0.0));
    assert_eq!(filled.len(), 1);
}

#[test]
fn a_shared_setting_a_run_lacks_takes_the_tasks_default() {
    // digits_twohead defaults to SGD at lr 0.1: a run recorded before `optimizer` and `lr`
    // existed is read with those, not with the generic AdamW at 1e-3 (whose state its SGD
    // checkpoint does not have), by --from, --resume, test and serve alike.
    let s = Sandbox::new();
    s.ok("digits_twohead", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap().pop().unwrap();
    let path = s.store().run_dir(&id).join("hyperparameters.ron");
    let text = std::fs::read_to_string(&path).unwrap();
    let older: String = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("optimizer:") && !l.starts_with("lr:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(older, text, "{text}");
    std::fs::write(&path, older).unwrap();
    let out = s.run("digits_twohead", &["train", "--from", &id, "--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("lr = 0.1") && stderr.contains("optimizer = sgd"),
        "{stderr}"
    );
    let child = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.parent.as_deref() == Some(id.as_str()))
        .unwrap()
        .id;
    let hyper =
        std::fs::read_to_string(s.store().run_dir(&child).join("hyperparameters.ron")).unwrap();
    assert!(hyper.contains("optimizer: sgd"), "{hyper}");
}
