//! Signals: to other processes (stopping a run, `rm --force`), and whether this process
//! ignores one.

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

/// True when this process ignores `signal`, as `nohup` makes the program it starts ignore
/// SIGHUP: a handler installed for it would undo that choice.
#[cfg(unix)]
pub fn is_ignored(signal: i32) -> bool {
    // SAFETY: an all-zero `sigaction` is a valid value of that plain C struct, and
    // sigaction(2) with a null new action only writes the current disposition of `signal`
    // into it, changing nothing.
    #[allow(unsafe_code)]
    let current = unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut current) == 0).then_some(current)
    };
    current.is_some_and(|c| c.sa_sigaction == libc::SIG_IGN)
}

/// Whether a signal is ignored is known on Unix only.
#[cfg(not(unix))]
pub fn is_ignored(_signal: i32) -> bool {
    false
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
