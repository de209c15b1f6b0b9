//! `watch`, the terminal dashboard, driven in a real 80×24 terminal (tmux: send-keys,
//! capture-pane) against a live training.

use crate::common::{
    assert_one_line_error, flammable_bin, skip_or_fail, wait_for, KillOnDrop, Sandbox,
};
use std::path::Path;
use std::process::Command;

/// A tmux server of its own (`-L`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `flammable watch` of store `store`, started in `dir`, in an 80×24 session "watch" of
    /// a tmux server of its own (socket `flammable-NAME-PID`).
    fn watch(name: &str, dir: &Path, store: &Path) -> Tmux {
        let tmux = Tmux {
            socket: format!("flammable-{name}-{}", std::process::id()),
        };
        let store = format!("FLAMMABLE_STORE={}", store.display());
        let started = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "80",
            "-y",
            "24",
            "-e",
            &store,
            "-c",
            &dir.display().to_string(),
            &flammable_bin().display().to_string(),
            "watch",
        ]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        tmux
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "watch"]).stdout)
            .into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The number after `step ` on the screen.
fn step_on(screen: &str) -> Option<u64> {
    let at = screen.find("step ")?;
    screen[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn watch_follows_a_live_run_in_80x24_and_q_quits() {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip_or_fail("tmux is not installed (apt-get install tmux)");
        return;
    }
    let s = Sandbox::repo();
    // A store whose path alone is wider than the terminal.
    let path = s
        .path()
        .join("a-store-folder-whose-name-alone-fills-most-of-an-eighty-column-terminal");
    let store = flammable::store::Store::at(&path);
    let _trainer = KillOnDrop(
        s.command("digits")
            .env("FLAMMABLE_STORE", &path)
            .args(["train", "-q", "--epochs", "100000", "-m", "watched"])
            .spawn()
            .unwrap(),
    );
    let mut run = String::new();
    wait_for(60, "the run's first points", || {
        if let Some(r) = store.records().unwrap_or_default().first() {
            run = r.id.clone();
            return std::fs::metadata(store.metrics_path(&r.id)).is_ok_and(|m| m.len() > 0);
        }
        false
    });
    let tmux = Tmux::watch("watch", s.path(), &path);
    let mut first = String::new();
    wait_for(20, "the dashboard", || {
        first = tmux.screen();
        first.contains("flammable watch") && first.contains(&run) && first.contains("loss")
    });
    assert!(
        first.contains("running") && first.contains("watched"),
        "{first}"
    );
    assert!(first.lines().all(|l| l.chars().count() <= 80), "{first}");
    assert!(first.lines().count() <= 24, "{first}");
    // The header keeps its hint; the store's path gives way, from its start.
    let header = first.lines().next().unwrap_or_default();
    assert!(
        header.contains("1 running · q quits · …") && header.trim_end().ends_with("-terminal"),
        "{header}"
    );
    // It refreshes by itself: the step moves on.
    let step = step_on(&first).unwrap_or_else(|| panic!("no step shown:\n{first}"));
    wait_for(20, "the step to advance", || {
        step_on(&tmux.screen()).is_some_and(|now| now > step)
    });
    // q quits: the session (whose only program is watch) ends.
    tmux.cmd(&["send-keys", "-t", "watch", "q"]);
    wait_for(10, "watch to quit", || {
        !tmux.cmd(&["has-session", "-t", "watch"]).status.success()
    });
}

#[test]
fn with_nothing_running_watch_shows_the_newest_run_as_it_ended() {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip_or_fail("tmux is not installed (apt-get install tmux)");
        return;
    }
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    s.ok("digits", &["test", "-q"]);
    let tmux = Tmux::watch("watch-ended", s.path(), &s.path().join("store"));
    // The newest run is the test run, which has no series: its panel shows its final
    // metrics, not an empty box (the dashboard stays a moment, then gives the terminal back).
    let mut screen = String::new();
    wait_for(20, "the test run's metrics", || {
        screen = tmux.screen();
        screen.contains("finished") && screen.contains("accuracy")
    });
    assert!(screen.contains("none running"), "{screen}");
    let accuracy = screen
        .lines()
        .find(|l| l.contains("accuracy"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.trim_end_matches('│').parse::<f64>().ok())
        });
    assert!(accuracy.is_some_and(|a| a > 0.5), "{screen}");
}

#[test]
fn watch_says_so_when_stdout_is_not_a_terminal() {
    let s = Sandbox::new();
    std::fs::create_dir(s.path().join("store")).unwrap();
    let out = Command::new(flammable_bin())
        .arg("watch")
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, &["needs a terminal"]);
}
