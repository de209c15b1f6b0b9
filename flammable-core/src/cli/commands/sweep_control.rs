//! The control pipe between a sweep and each of its runs, both ends. A run's stdin is a pipe
//! from the sweep: the sweep asks its runs to stop by writing the signal it received
//! (Ctrl-C, SIGTERM, SIGHUP), and a run whose pipe closes (the sweep's process died, even of
//! SIGKILL) stops as if asked. Either way it stops at its next step with a checkpoint, as on
//! SIGTERM, so that `train --resume` continues it. The run's stderr goes to a file of a
//! private temporary folder (0700) of the sweep's.

use super::*;
use crate::error::IoContext;
use std::io::Write;
use std::process::{ChildStdin, Stdio};

/// The environment variable through which a sweep's run learns which combination it
/// trains; when it is set, the run's stdin is the sweep's control pipe.
pub(super) const SWEEP_TRIAL_ENV: &str = "FLAMMABLE_SWEEP_TRIAL";

/// A run of the sweep, running.
pub(super) struct Running {
    pub(super) trial: usize,
    pub(super) process: std::process::Child,
    /// The write end of its control pipe; given up once the run is asked to stop.
    control: Option<ChildStdin>,
    /// Killed at once (a second Ctrl-C).
    pub(super) killed: bool,
}

impl Running {
    /// Asks the run to stop at its next step, with a checkpoint, as `signal` would.
    pub(super) fn ask_to_stop(&mut self, signal: i32) {
        if let Some(mut pipe) = self.control.take() {
            // Fails only when the run has ended already; the pipe closes either way, which
            // asks too.
            let _ = pipe.write_all(&[u8::try_from(signal).unwrap_or(15)]);
        }
    }
}

/// The sweep's running runs. Dropped while some still run (an early return), it asks them to
/// stop and waits for them: a run outlives the sweep only when the sweep's process is
/// killed, and then it stops by itself.
#[derive(Default)]
pub(super) struct Children(pub(super) Vec<Running>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            child.ask_to_stop(crate::util::signal::TERMINATE);
        }
        for child in &mut self.0 {
            let _ = child.process.wait();
        }
    }
}

/// Starts `job` of sweep `plan`: its stdin the control pipe, its stderr a file of the
/// private folder `stderr_dir`.
pub(super) fn start_run(
    exe: &Path,
    plan: &SweepPlan,
    job: &Job,
    stderr_dir: &Path,
) -> Result<Running> {
    let mut command = std::process::Command::new(exe);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let stderr_path = stderr_dir.join(format!("{}.stderr", job.trial));
    let stderr = std::fs::File::create(&stderr_path).at("cannot create", &stderr_path)?;
    let mut process = command
        .args(&job.argv)
        .env(SWEEP_ENV, &plan.id)
        .env(SWEEP_TRIAL_ENV, job.trial.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| Error::msg(format!("cannot start a run of the sweep: {e}")))?;
    let control = process.stdin.take();
    Ok(Running {
        trial: job.trial,
        process,
        control,
        killed: false,
    })
}

/// A fresh folder only this user can read (0700), removed when dropped.
pub(super) fn private_folder() -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("flammable-sweep-");
    #[cfg(unix)]
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
    #[cfg(unix)]
    builder.permissions(private);
    builder
        .tempdir()
        .map_err(|e| Error::msg(format!("cannot create a folder for the sweep's runs: {e}")))
}

/// For a run of a sweep ([`SWEEP_TRIAL_ENV`] set), whose stdin is the sweep's control pipe:
/// stops the run, through `stop` (the flag [`stop_on_signals`] returns), when the sweep asks
/// (a byte: the signal it received) or when the pipe closes (the sweep's process died, even
/// of SIGKILL: the run stops as on SIGTERM). Such a request is not a signal to this process:
/// a signal delivered to it as well (systemd and Slurm signal every process of the sweep)
/// counts as the same stop, not as the second one that ends a run at once.
pub(super) fn stop_when_the_sweep_asks(stop: &std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    if std::env::var_os(SWEEP_TRIAL_ENV).is_none() {
        return;
    }
    let stop = stop.clone();
    let watch = move || {
        let mut byte = [0u8; 1];
        let mut stdin = std::io::stdin();
        let signal = loop {
            match stdin.read(&mut byte) {
                Ok(1) if byte[0] != 0 => break usize::from(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The pipe closed, or cannot be read: the sweep is gone.
                _ => break crate::util::signal::TERMINATE as usize,
            }
        };
        // A signal that came first keeps its number.
        let _ = stop.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    };
    let started = std::thread::Builder::new()
        .name("flammable-sweep-control".into())
        .spawn(watch);
    if let Err(e) = started {
        crate::util::stderr::errln!(
            "warning: this run of a sweep will not hear the sweep stop: {e}"
        );
    }
}
