//! The public API without the command line: a trained run's model used from a program.

use crate::common::Sandbox;
use flammable::candle_core::{Device, Tensor};
use flammable::Task;
use flammable_tests::Regression;
use std::process::Command;

#[test]
fn a_trained_run_predicts_in_another_program_as_eval_does() {
    let s = Sandbox::new();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_regression_task"))
            .args(args)
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", s.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&["train", "-q", "--seed", "4"]);
    std::fs::write(s.path().join("in.csv"), "0.25, 0.5").unwrap();
    let printed = cli(&["eval", "-q", "in.csv", "out.ron"]);

    let (task, env) = Regression::from_run(&s.store(), "latest", "latest", Device::Cpu).unwrap();
    let sample = Tensor::new(&[0.25f32, 0.5], &Device::Cpu).unwrap();
    let result = task.eval(sample, &env).unwrap();
    assert_eq!(result.as_ron().trim(), printed.trim());
    // `-` prints the same result and writes no file.
    std::fs::remove_file(s.path().join("out.ron")).unwrap();
    assert_eq!(cli(&["eval", "-q", "in.csv", "-"]), printed);
    assert!(!s.path().join("-").exists() && !s.path().join("out.ron").exists());

    // A sample the model answers with NaN (Task::eval checks no input: eval and serve
    // refuse non-finite inputs before it) gets an error, not a made-up answer.
    let nan = Tensor::new(&[f32::NAN, 0.5], &Device::Cpu).unwrap();
    let err = task.eval(nan, &env).unwrap_err().to_string();
    assert!(err.contains("not a finite number"), "{err}");
    // Another checkpoint, and a run that does not exist, by name.
    assert!(Regression::from_run(&s.store(), "latest", "step-8", Device::Cpu).is_ok());
    let missing = Regression::from_run(&s.store(), "nosuchrun", "latest", Device::Cpu);
    assert!(missing.err().unwrap().to_string().contains("nosuchrun"));
}

#[test]
fn an_environment_without_a_run_says_how_to_load_one() {
    let env = flammable::Env::new(Device::Cpu, 0);
    let err = env.load_model("latest").unwrap_err().to_string();
    assert!(err.contains("Env::from_run"), "{err}");
}
