//! The probe the generated `main` uses to pick `serve`'s model loader: a task that is `Send`
//! and `Sync` gets the loader whose models any thread may compute with; one that is not (a
//! `Cell` makes it not `Sync`) still builds, with the loader of the model's own thread.
use flammable::__private::{LoaderProbe, LocalLoaderOf as _, SharedLoaderOf as _};
use flammable::prelude::*;
use std::cell::Cell;

struct Plain {
    w: Tensor,
}

#[flammable::task(no_main)]
impl Plain {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Plain {
            w: env.builder().get((2, 2), "w")?,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(vec![]))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}

struct Counting {
    w: Tensor,
    forwards: Cell<u64>,
}

#[flammable::task(no_main)]
impl Counting {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Counting {
            w: env.builder().get((2, 2), "w")?,
            forwards: Cell::new(0),
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(vec![]))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forwards.set(self.forwards.get() + 1);
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}

fn main() {
    // The expression the generated `main` writes, for each task.
    let plain = &&LoaderProbe::<Plain>::NEW;
    assert!(plain.shares_models());
    let _loader = plain.serve_loader();
    let counting = &&LoaderProbe::<Counting>::NEW;
    assert!(!counting.shares_models());
    let _loader = counting.serve_loader();
}
