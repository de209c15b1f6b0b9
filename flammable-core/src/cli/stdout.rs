//! Writing results to stdout without panicking: `println!` panics when stdout is closed
//! (`runs | head -1`) or full (`> /dev/full`). A closed pipe ends the command quietly; any
//! other failure is one line naming stdout.

use crate::error::{Error, Result};
use std::io::Write;

/// Writes `text` and a newline to stdout.
pub fn line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(from_io)
}

/// Maps an error writing to stdout: a closed reader becomes [`Error::OutputClosed`], which the
/// command line ends on quietly.
pub fn from_io(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::OutputClosed
    } else {
        Error::io("cannot write", "stdout", e)
    }
}

/// `println!` that returns an error instead of panicking (see [`line`]); use in functions
/// returning `Result`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::stdout::line(&format!($($arg)*))?
    };
}
pub(crate) use outln;
