//! Testing while training: `test --follow` as a real subprocess beside a real `train`, and
//! `train --test-every`. The results land as `test/<metric>` series on the train run.

use crate::common::{
    assert_one_line_error, lines_of, wait_for, wait_for_line, KillOnDrop, Sandbox,
};
use flammable::store::read_run_series;
use std::path::Path;
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

/// The pins (`followers/<id>.pin`) of run `run`'s followers.
fn pins(s: &Sandbox, run: &str) -> Vec<u64> {
    std::fs::read_dir(s.store().run_dir(run).join("followers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pin"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

/// A named pipe at `path` (`mkfifo`): whoever reads it waits until the test writes it.
fn fifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// The write end of the named pipe at `path`, once a reader has opened it (up to `secs`):
/// the reader then waits for what is written, until the write end is dropped.
fn fifo_writer(path: &Path, secs: u64) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let mut pipe = None;
    // Opening a pipe's write end without waiting fails while nobody reads it.
    wait_for(secs, &format!("a reader of {}", path.display()), || {
        pipe = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .ok();
        pipe.is_some()
    });
    pipe.unwrap()
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
    // Set `slow` is written slowly: its state file, which makes it complete, comes last;
    // meanwhile a later set `after` completes. Tested in step order, `after` tested first
    // shows that the follower saw `slow` and passed over it as incomplete.
    let newest = format!("step-{:010}", steps[2]);
    let slow = steps[2] + 1000;
    let after = steps[2] + 2000;
    let copy_files = |step: u64, exts: &[&str]| {
        for ext in exts {
            let to = dir.join(format!("step-{step:010}.{ext}"));
            let tmp = dir.join(format!("incoming.{ext}"));
            std::fs::copy(dir.join(format!("{newest}.{ext}")), &tmp).unwrap();
            std::fs::rename(tmp, to).unwrap();
        }
    };
    copy_files(slow, &["safetensors", "optimizer.safetensors"]);
    copy_files(after, &["safetensors", "optimizer.safetensors", "ron"]);
    wait_for(20, "the later, complete set tested", || {
        tested_steps(&s, &run).contains(&after)
    });
    assert!(
        !tested_steps(&s, &run).contains(&slow),
        "an incomplete set was read"
    );
    copy_files(slow, &["ron"]);
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
    // It is killed once the follower says that it follows it.
    let mut follower = KillOnDrop(
        s.command("digits")
            .args(["test", "--follow"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let said = lines_of(follower.0.stderr.take().unwrap());
    wait_for_line(&said, 60, "following run");
    trainer.0.kill().unwrap();
    let _ = trainer.0.wait();
    let status = wait_exit(&mut follower.0, 15);
    assert!(status.success(), "{status:?}");
    wait_for_line(&said, 5, "ended (crashed): its newest set is tested");
}

#[test]
fn an_every_follower_pins_before_it_reads_and_never_above_a_set_it_has_not_tested() {
    let s = Sandbox::repo();
    // Sets at epochs 1 to 4; the first is pruned; 2 and 4 are tested by --test-every.
    s.ok(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            "4",
            "--test-every",
            "2",
            "--keep-checkpoints",
            "3",
        ],
    );
    let run = train_run(&s);
    let run_dir = s.store().run_dir(&run);
    let dir = run_dir.join("checkpoints");
    let tested = tested_steps(&s, &run);
    let per_epoch = tested[0] / 2;
    let third = 3 * per_epoch;
    assert_eq!(tested, [2 * per_epoch, 4 * per_epoch]);
    // The run is "alive" (this process holds its lock). Reading another follower's results
    // takes until this test lets it (a named pipe), and so does reading set 3's state.
    let lock = std::fs::File::open(s.store().lock_path(&run)).unwrap();
    lock.lock().unwrap();
    let followers = run_dir.join("followers");
    std::fs::create_dir_all(&followers).unwrap();
    let slow_results = followers.join("slow.bin");
    fifo(&slow_results);
    let third_state = dir.join(format!("step-{third:010}.ron"));
    let state = std::fs::read(&third_state).unwrap();
    std::fs::remove_file(&third_state).unwrap();
    fifo(&third_state);
    let log = s.path().join("follower.log");
    let mut follower = KillOnDrop(
        s.command("digits")
            .args(["test", "--follow", "--every", &run])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Pinned before reading what was tested: the trainer, pruning now, keeps every set.
    wait_for(20, "a pin while the results are read", || {
        !pins(&s, &run).is_empty()
    });
    let pin = flammable_core::store::followers::lowest_live_pin(&run_dir);
    assert_eq!(pin, Some(0));
    let pruned = flammable_core::checkpoint::prune_checkpoints(&dir, 1, pin);
    assert!(pruned.is_empty(), "{pruned:?}");
    drop(fifo_writer(&slow_results, 20));
    // Now it tests set 3 (it reads its state): its pin is below set 3, though set 4, tested,
    // is above it; pruning keeps sets 3 and 4.
    let mut pipe = fifo_writer(&third_state, 20);
    assert_eq!(pins(&s, &run), [third - 1]);
    let pin = flammable_core::store::followers::lowest_live_pin(&run_dir);
    let pruned = flammable_core::checkpoint::prune_checkpoints(&dir, 1, pin);
    assert_eq!(pruned, [2 * per_epoch]);
    std::io::Write::write_all(&mut pipe, &state).unwrap();
    drop(pipe);
    std::fs::remove_file(&slow_results).unwrap();
    wait_for(20, "set 3 tested", || {
        tested_steps(&s, &run).contains(&third)
    });
    drop(lock);
    let status = wait_exit(&mut follower.0, 20);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    assert_eq!(
        tested_steps(&s, &run),
        [2 * per_epoch, third, 4 * per_epoch]
    );
    // Set 1 was pruned before the follower started: it says so, at its start and its end.
    let first = format!("step-{per_epoch}");
    assert!(
        said.contains(&format!(
            "1 set(s) were pruned before this follower started and cannot be tested: {first}"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "every set is tested but 1 pruned before they could be ({first})"
        )),
        "{said}"
    );
}

#[test]
fn two_followers_of_a_run_test_each_set_once() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "3", "--keep-checkpoints", "3"],
    );
    let run = train_run(&s);
    let dir = s.store().run_dir(&run).join("checkpoints");
    // The sets are put aside, to come back once both followers follow the "running" run.
    let aside = s.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    let mut sets = flammable_core::checkpoint::numbered_checkpoints(&dir);
    sets.reverse();
    for name in &sets {
        for ext in ["safetensors", "optimizer.safetensors", "ron"] {
            let file = format!("{name}.{ext}");
            std::fs::rename(dir.join(&file), aside.join(&file)).unwrap();
        }
    }
    let lock = std::fs::File::open(s.store().lock_path(&run)).unwrap();
    lock.lock().unwrap();
    let spawn_follower = || {
        KillOnDrop(
            s.command("digits")
                .args(["test", "--follow", "--every", "-q", &run])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut followers = [spawn_follower(), spawn_follower()];
    wait_for(30, "both followers pinned", || pins(&s, &run).len() == 2);
    // The sets come back as a trainer writes them: the state file last.
    for name in &sets {
        for ext in ["safetensors", "optimizer.safetensors", "ron"] {
            let file = format!("{name}.{ext}");
            std::fs::rename(aside.join(&file), dir.join(&file)).unwrap();
        }
    }
    let steps: Vec<u64> = sets
        .iter()
        .map(|n| n.trim_start_matches("step-").parse().unwrap())
        .collect();
    wait_for(30, "every set tested", || {
        steps.iter().all(|s_| tested_steps(&s, &run).contains(s_))
    });
    drop(lock);
    for f in &mut followers {
        assert!(wait_exit(&mut f.0, 20).success());
    }
    assert_eq!(tested_steps(&s, &run), steps, "each set once");
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
