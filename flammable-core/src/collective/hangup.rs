//! SIGHUP as the process received it, whatever the MPI library does at load time.
//!
//! UCX, the transport under Debian's MPICH, installs a handler for SIGHUP (its
//! `UCX_DEBUG_SIGNO`) in the constructor of its library, before `main` runs and whether or
//! not MPI is used: a binary built with the feature `mpi` would then neither stop when its
//! terminal closes nor keep `nohup`'s choice to ignore the signal (a sweep reads it). The
//! disposition is read before any library's constructor — from the executable's
//! `.preinit_array`, which the dynamic loader runs first — and put back at the start of
//! `main`.

use std::sync::atomic::{AtomicU8, Ordering};

/// SIGHUP's disposition at exec: not read yet, ignored, or the default.
static AT_EXEC: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const IGNORED: u8 = 1;
const DEFAULT: u8 = 2;

/// Notes SIGHUP's disposition. Called by the dynamic loader before the libraries'
/// constructors, with the program's arguments, which it does not use.
extern "C" fn note_at_exec(_argc: i32, _argv: *const *const u8, _envp: *const *const u8) {
    let ignored = crate::util::signal::is_ignored(libc::SIGHUP);
    AT_EXEC.store(if ignored { IGNORED } else { DEFAULT }, Ordering::Relaxed);
}

// The loader calls the functions of an executable's `.preinit_array` before the constructors
// of its libraries; `used` keeps the entry although nothing names it.
#[used]
#[allow(unsafe_code)]
#[link_section = ".preinit_array"]
static NOTE_AT_EXEC: extern "C" fn(i32, *const *const u8, *const *const u8) = note_at_exec;

/// Puts SIGHUP's disposition back to what it was at exec (ignored under `nohup`, else the
/// default: the process ends when its terminal closes), undoing a library's handler. A
/// process whose disposition was not read (no preinit support) is left as it is.
pub fn restore() {
    let action = match AT_EXEC.load(Ordering::Relaxed) {
        IGNORED => libc::SIG_IGN,
        DEFAULT => libc::SIG_DFL,
        _ => return,
    };
    // SAFETY: signal(2) with SIG_IGN or SIG_DFL installs no code of ours and touches no
    // memory; it runs at the start of `main`, before any thread that could race it.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGHUP, action);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_disposition_at_exec_was_read_before_main() {
        // The test harness is an executable with this module linked in: its preinit ran.
        assert_ne!(
            super::AT_EXEC.load(std::sync::atomic::Ordering::Relaxed),
            super::UNKNOWN
        );
    }
}
