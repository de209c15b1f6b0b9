//! Training: the [`trainer::Trainer`] the steps share, optimizers, learning-rate schedules,
//! gradient clipping and accumulation, the device-side loss buffers and their read-backs,
//! and the progress display.

pub mod grad;
pub mod optim;
pub mod progress;
pub mod scalars;
pub mod schedule;
pub mod trainer;
