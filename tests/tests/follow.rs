//! Testing while training: `test --follow` as a real subprocess beside a real `train`, and
//! `train --test-every`. The results land as `test/<metric>` series on the train run.

use crate::common::{assert_one_line_error, wait_for, KillOnDrop, Sandbox};
use flammable::store::read_run_series;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The id of the sandbox's only train run, once it exists.
fn train_run(s: &Sandbox) -> String {
    let mut id = None;
    wait_for(60, "the train run", || {
        id = s
            .store()
            .records()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.kind == flammable::store::RunKind::Train)
            .map(|r| r.id);
        id.is_some()
    });
    id.unwrap()
}

/// The steps at which the train run has `test/accuracy` points.
fn tested_steps(s: &Sandbox, run: &str) -> Vec<u64> {
    read_run_series(&s.store().run_dir(run), "test/accuracy")
        .unwrap()
        .steps
}

/// Waits for a child, up to `secs`.
fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the follower did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_set_is_tested_in_step_order_and_the_follower_ends_with_the_run() {
    let s = Sandbox::repo();
    // Sets pruned to one: only the pins of the follower keep the ones it has not tested.
    let trainer = KillOnDrop(
        s.command("digits")
            .args(["train", "-q", "--epochs", "25", "--keep-checkpoints", "1"])
            .spawn()
            .unwrap(),
    );
    let run = train_run(&s);
    let log = s.path().join("follower.log");
    let mut follower = KillOnDrop(
        s.command("digits")
            .args(["test", "--follow", "--every", &run])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let status = wait_exit(&mut follower.0, 120);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    let mut trainer = trainer;
    assert!(wait_exit(&mut trainer.0, 10).success());
    let steps = tested_steps(&s, &run);
    let record = s.store().read(&run).unwrap();
    let last = *steps.last().unwrap();
    // In step order, one point a set, the last set (the end of the last epoch) included.
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    let per_epoch = last / 25;
    assert_eq!(last % 25, 0, "{steps:?}");
    assert!(
        steps.windows(2).all(|w| w[1] - w[0] == per_epoch),
        "a set was skipped: {steps:?}"
    );
    // The follower is a test run of the train run, which lists it among its tests.
    let follower = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.parent.as_deref() == Some(run.as_str()))
        .unwrap();
    assert_eq!(follower.status, flammable::store::RunStatus::Finished);
    assert!(record.tests.iter().any(|t| t.run == follower.id));
    // Its points are in its own file, not the trainer's.
    let own =
        flammable_core::store::metrics::read_series(&s.store().metrics_path(&run), "test/accuracy")
            .unwrap();
    assert!(own.steps.is_empty());
    // `metrics` lists them with the run's own.
    let csv = s.ok("digits", &["metrics", &run, "--name", "test/accuracy"]);
    assert_eq!(csv.lines().count(), steps.len() + 1, "{csv}");
}

#[test]
fn a_set_is_read_only_once_complete_and_a_finished_run_is_followed_to_its_end() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "3", "--keep-checkpoints", "3"],
    );
    let run = train_run(&s);
    let dir = s.store().run_dir(&run).join("checkpoints");
    // A follower started after training ends tests the sets left, then ends.
    let first = s.run("digits", &["test", "--follow", "--every", &run]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let steps = tested_steps(&s, &run);
    assert_eq!(steps.len(), 3, "{steps:?}");
    // Run again: nothing recorded is tested twice.
    let again = s.run("digits", &["test", "--follow", "--every", &run]);
    assert!(again.status.success());
    assert_eq!(tested_steps(&s, &run), steps);

    // Now the run is "alive" (this process holds its lock) and a set is written slowly: its
    // state file, which makes it complete, comes last.
    let lock = std::fs::File::open(s.store().lock_path(&run)).unwrap();
    lock.lock().unwrap();
    let follower = KillOnDrop(
        s.command("digits")
            .args(["test", "--follow", "--every", &run])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let newest = format!("step-{:010}", steps[2]);
    let slow = steps[2] + 1000;
    let name = format!("step-{slow:010}");
    for ext in ["safetensors", "optimizer.safetensors"] {
        std::fs::copy(
            dir.join(format!("{newest}.{ext}")),
            dir.join(format!("{name}.{ext}")),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tested_steps(&s, &run), steps, "an incomplete set was read");
    let state = std::fs::read_to_string(dir.join(format!("{newest}.ron"))).unwrap();
    std::fs::write(dir.join(format!("{name}.ron")), state).unwrap();
    wait_for(20, "the completed set tested", || {
        tested_steps(&s, &run).contains(&slow)
    });
    // The run ends (its lock released): the follower ends within seconds.
    drop(lock);
    let mut follower = follower;
    let status = wait_exit(&mut follower.0, 10);
    assert!(status.success());
}

#[test]
fn a_killed_trainer_ends_the_follower_and_ctrl_c_stops_one_with_130() {
    let s = Sandbox::repo();
    let mut trainer = KillOnDrop(
        s.command("digits")
            .args(["train", "-q", "--epochs", "100000"])
            .spawn()
            .unwrap(),
    );
    let run = train_run(&s);
    let spawn_follower = || {
        KillOnDrop(
            s.command("digits")
                .args(["test", "--follow", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    // Ctrl-C: exit code 130.
    let mut stopped = spawn_follower();
    wait_for(60, "a tested set", || !tested_steps(&s, &run).is_empty());
    let sent = Command::new("kill")
        .args(["-INT", &stopped.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(wait_exit(&mut stopped.0, 20).code(), Some(130));
    // The default follower tests the newest set; when the trainer dies, it ends by itself.
    let mut follower = spawn_follower();
    std::thread::sleep(Duration::from_millis(500));
    trainer.0.kill().unwrap();
    let _ = trainer.0.wait();
    let status = wait_exit(&mut follower.0, 15);
    assert!(status.success(), "{status:?}");
}

#[test]
fn train_test_every_records_the_same_series() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "4", "--test-every", "2"],
    );
    let run = train_run(&s);
    let steps = tested_steps(&s, &run);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[1], 2 * steps[0]);
    let shown = s.ok("digits", &["show", &run]);
    assert!(shown.contains("test/accuracy"), "{shown}");
}

#[test]
fn follow_refuses_what_it_cannot_do() {
    let s = Sandbox::repo();
    let no_run = s.run("digits", &["test", "--follow"]);
    assert_one_line_error(&no_run, 2, &["no train run of digits to follow"]);
    let both = s.run("digits", &["test", "--follow", "--checkpoint", "best"]);
    assert_eq!(both.status.code(), Some(2));
    let every_alone = s.run("digits", &["test", "--every"]);
    assert_eq!(every_alone.status.code(), Some(2));
}
