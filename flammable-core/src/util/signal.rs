//! Signals to other processes: stopping a run (`rm --force`), interrupting a sweep's runs.

/// Sends `signal` to process `pid`.
#[cfg(unix)]
pub fn send(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a process id"))?;
    if pid <= 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a process id",
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a pid above 0 names
    // one process (never a group), which the callers know to be theirs or a live run's.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Signalling another process is supported on Unix only.
#[cfg(not(unix))]
pub fn send(_pid: u32, _signal: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "signalling another process is supported on Unix only",
    ))
}

/// SIGTERM's number.
#[cfg(unix)]
pub const TERMINATE: i32 = libc::SIGTERM;
/// SIGINT's number.
#[cfg(unix)]
pub const INTERRUPT: i32 = libc::SIGINT;
/// SIGTERM's number.
#[cfg(not(unix))]
pub const TERMINATE: i32 = 15;
/// SIGINT's number.
#[cfg(not(unix))]
pub const INTERRUPT: i32 = 2;
