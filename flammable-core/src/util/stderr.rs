//! Writing messages to stderr without panicking: `eprintln!` panics when stderr is closed
//! (`train 2>&1 | head -1` once `head` has exited), which would turn a training into a crashed
//! run. A message that cannot be written is dropped; the run's log keeps its copy.

use std::io::Write;

/// Writes `text` and a newline to stderr; nothing when stderr is closed or full. One write
/// of both (stderr is unbuffered, and `writeln!` would write them apart): the lines of
/// processes sharing a stderr (the ranks under `mpiexec`) then never run into each other.
pub fn line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(format!("{text}\n").as_bytes());
}

/// `eprintln!` that never panics (see [`line`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::util::stderr::line(&format!($($arg)*))
    };
}
pub(crate) use errln;
