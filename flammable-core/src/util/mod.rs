//! Small tools every layer uses: atomic file writes, RON text, panic messages, the
//! allocator's tuning, signals to other processes.
//! No candle, no store, no Git.

#[cfg(feature = "candle")]
pub mod allocator;
pub mod atomic;
pub mod counted;
pub mod host;
pub mod memory;
pub mod number;
pub mod panic;
pub mod parallel;
pub mod printable;
pub mod ron_text;
pub mod shell;
pub mod signal;
pub mod stderr;
