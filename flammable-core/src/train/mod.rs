//! Training: the [`trainer::Trainer`] the steps share, optimizers, learning-rate schedules,
//! gradient clipping and accumulation, the device-side loss buffers and their read-backs,
//! and the progress display.

// AdamW's update of a variable on the CPU, in three vectorised passes.
#[cfg(feature = "candle")]
mod adamw_cpu;
#[cfg(feature = "candle")]
mod best;
#[cfg(feature = "candle")]
mod checkpointing;
#[cfg(feature = "candle")]
mod distributed;
#[cfg(feature = "candle")]
pub mod grad;
#[cfg(feature = "candle")]
mod host_values;
#[cfg(feature = "candle")]
pub mod optim;
#[cfg(feature = "candle")]
pub mod pooled;
#[cfg(feature = "candle")]
pub mod progress;
#[cfg(feature = "candle")]
mod readback;
#[cfg(feature = "candle")]
pub mod scalars;
#[cfg(feature = "candle")]
pub mod trainer;
