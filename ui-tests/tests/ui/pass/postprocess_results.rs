//! What a `#[postprocess]` step may return: any result serde can write — an enum, one that is
//! not `Send` (an `Rc`), one that borrows the task (its lifetime elided in the path, as Rust
//! allows) — reads back as RON and as JSON.
// A test program: it states its expectations with unwrap.
#![allow(clippy::unwrap_used)]
use flammable::prelude::*;
use std::rc::Rc;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Verdict {
    Cat,
    Dog(u8),
}

/// Not `Send`.
#[derive(serde::Serialize)]
struct Shared {
    label: Rc<str>,
}

/// Borrows the task.
#[derive(serde::Serialize)]
struct Named<'a> {
    name: &'a str,
}

macro_rules! task_returning {
    ($task:ident, $result:ty, |$s:ident, $out:ident| $make:expr) => {
        pub struct $task {
            w: Tensor,
            name: String,
        }

        #[flammable::task(no_main)]
        impl $task {
            #[init]
            fn new(env: &Env) -> Result<Self> {
                Ok($task {
                    w: env.builder().get((2, 2), "w")?,
                    name: "seven".into(),
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

            #[postprocess]
            fn verdict(&self, output: &Tensor) -> Result<$result> {
                let ($s, $out) = (self, output);
                let _ = (&$s.name, $out);
                Ok($make)
            }
        }
    };
}

task_returning!(Kept, Verdict, |task, out| Verdict::Dog(
    out.dims().len() as u8
));
task_returning!(NotSend, Shared, |task, out| Shared {
    label: Rc::from(format!("{}", out.dims().len())),
});
#[allow(elided_lifetimes_in_paths, mismatched_lifetime_syntaxes)]
mod elided {
    use super::*;
    task_returning!(Borrowing, Named, |task, out| Named {
        name: task.name.as_str(),
    });
}
use elided::Borrowing;
task_returning!(BorrowingNamed, Named<'_>, |task, out| Named {
    name: task.name.as_str(),
});

fn main() {
    let env = Env::new(Device::Cpu, 0);
    let out = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    let kept = <Kept as Task>::new(&NoHyperparameters {}, &env)
        .unwrap()
        .postprocess(&out)
        .unwrap();
    assert_eq!(kept.as_ron(), "Dog(2)");
    assert_eq!(kept.to_json().unwrap().to_string(), "{\"Dog\":2}");
    assert_eq!(kept.parse::<Verdict>().unwrap(), Verdict::Dog(2));
    let shared = <NotSend as Task>::new(&NoHyperparameters {}, &env)
        .unwrap()
        .postprocess(&out)
        .unwrap();
    assert_eq!(shared.to_json().unwrap().to_string(), "{\"label\":\"2\"}");
    assert!(
        shared.as_ron().contains("label: \"2\""),
        "{}",
        shared.as_ron()
    );
    let named = <Borrowing as Task>::new(&NoHyperparameters {}, &env)
        .unwrap()
        .postprocess(&out)
        .unwrap();
    assert_eq!(named.to_json().unwrap().to_string(), "{\"name\":\"seven\"}");
    let _ = Verdict::Cat;
}
