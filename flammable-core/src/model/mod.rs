//! What a model is made of: seeded variables ([`vars::Vars`]), seeded generators
//! ([`rng`]), layers candle lacks ([`nn::Dropout`]), and the compute device.

pub mod device;
pub mod nn;
pub mod rng;
pub mod vars;
