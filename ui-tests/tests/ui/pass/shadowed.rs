//! The generated code names everything by absolute paths: a task still compiles, without a
//! warning, where `Result`, `Ok`, `Option` and a module `flammable` are shadowed.
#![deny(warnings)]
// A test program: it states its expectations with unwrap.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
type Result<T> = std::result::Result<T, ()>;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
enum Option {}
#[allow(dead_code)]
mod flammable {}

use ::flammable::candle_core::Tensor;
use ::flammable::{Batch, Batches, Env, Metrics};

// clap's derive names `Option` unqualified, so the hyperparameters live out of reach of the
// shadowing (a child module does not see its parent's items).
mod hyper {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
    pub struct Hyper {
        /// Scale.
        #[arg(long, default_value_t = 1.0)]
        pub scale: f64,
    }
}
use hyper::Hyper;

struct Shadowed {
    scale: f64,
}

#[::flammable::task(no_main, epochs = 3, experiment = "shadowed")]
impl Shadowed {
    #[init]
    fn new(hp: &Hyper, _env: &Env) -> ::flammable::Result<Self> {
        ::core::result::Result::Ok(Shadowed { scale: hp.scale })
    }

    #[data(train)]
    fn train_data(&self) -> ::flammable::Result<Batches> {
        ::core::result::Result::Ok(Batches::from_vec(vec![]))
    }

    #[data(validation)]
    fn validation_data(&self) -> ::flammable::Result<Vec<Batch>> {
        ::core::result::Result::Ok(vec![])
    }

    #[forward]
    fn forward(&self, x: &Tensor, train: bool) -> ::flammable::Result<Tensor> {
        let s = if train { self.scale } else { 1.0 };
        ::core::result::Result::Ok((x * s)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, batch: &Batch) -> ::flammable::Result<Tensor> {
        ::core::result::Result::Ok((out - &batch.target)?.sqr()?.mean_all()?)
    }

    #[metric]
    fn error(&self, out: &Tensor, y: &Tensor) -> ::flammable::Result<Tensor> {
        ::core::result::Result::Ok((out - y)?.abs()?.mean_all()?)
    }

    #[step(reduce)]
    fn worst(&self, _name: &str, values: &[f64], _sizes: &[usize]) -> ::flammable::Result<f64> {
        ::core::result::Result::Ok(values.iter().copied().fold(0.0, f64::max))
    }

    #[allow(dead_code)]
    fn unused_metrics(&self) -> Metrics {
        Metrics::new()
    }
}

fn main() {
    use ::flammable::Task;
    assert_eq!(<Shadowed as Task>::experiment(), "shadowed");
    let config = <Shadowed as Task>::default_config();
    assert_eq!(config.epochs, 3);
    let env = Env::new(::flammable::candle_core::Device::Cpu, 0).with_config(config);
    let task = <Shadowed as Task>::new(&Hyper { scale: 2.0 }, &env).unwrap();
    task.fit(&env).unwrap();
}
