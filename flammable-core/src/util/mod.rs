//! Small tools every layer uses: atomic file writes, RON text, the allocator's tuning.
//! No candle, no store, no Git.

#[cfg(feature = "candle")]
pub mod allocator;
pub mod atomic;
pub mod parallel;
pub mod ron_text;
pub mod signal;
