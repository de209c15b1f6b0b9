//! Training: the [`trainer::Trainer`] the steps share, optimizers, learning-rate schedules,
//! gradient clipping and accumulation, the device-side loss buffers and their read-backs,
//! and the progress display.

// Learning-rate schedules are plain numbers: `TrainConfig` names them, without candle.
pub mod schedule;

#[cfg(feature = "candle")]
pub mod grad;
#[cfg(feature = "candle")]
pub mod optim;
#[cfg(feature = "candle")]
pub mod pooled;
#[cfg(feature = "candle")]
pub mod progress;
#[cfg(feature = "candle")]
pub mod scalars;
#[cfg(feature = "candle")]
pub mod trainer;
