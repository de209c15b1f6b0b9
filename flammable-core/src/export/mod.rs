//! Exports of runs into the formats other tools read, from the store after the fact (never
//! inside a training loop, so they cost training nothing and can be repeated).

pub mod tensorboard;
