//! A task for the tests of several processes: its batches made by a function (`--batches`
//! an epoch), and one rank that can be made to fail at its third step (`--fail-rank`).

use flammable::prelude::*;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    /// Batches an epoch (made by `Batches::from_fn`).
    #[arg(long, default_value_t = 4)]
    batches: usize,
    /// The rank whose third forward pass fails.
    #[arg(long)]
    fail_rank: Option<usize>,
}

struct Ranks {
    w: Tensor,
    batches: usize,
    fails: bool,
    calls: std::sync::atomic::AtomicUsize,
}

#[flammable::task]
impl Ranks {
    #[init]
    fn new(hp: &Hyper, env: &Env) -> Result<Self> {
        let rank = flammable::collective::world().map_or(0, |w| w.rank());
        Ok(Ranks {
            w: env.builder().get((2, 1), "w")?,
            batches: hp.batches,
            fails: hp.fail_rank == Some(rank),
            calls: Default::default(),
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        let n = self.batches;
        Ok(Batches::from_fn(move |_epoch| {
            let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
            let y = Tensor::new(&[[3f32]], &Device::Cpu)?;
            Ok((0..n).map(move |_| Ok(Batch::new(x.clone(), y.clone()))))
        }))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.fails && n == 2 {
            return Err(Error::msg("this rank's data source broke"));
        }
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}
