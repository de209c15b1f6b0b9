// A test program: it states its expectations with unwrap.
#![allow(clippy::unwrap_used)]
//! The four `#[serve(..)]` steps: a request of text bytes, samples of different lengths
//! joined and split again by the task's own collate and uncollate, and a plain-text reply.
use flammable::prelude::*;

struct Lengths;

#[flammable::task(no_main)]
impl Lengths {
    #[init]
    fn new(_env: &Env) -> Result<Self> {
        Ok(Lengths)
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(vec![]))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }

    #[loss]
    fn loss(&self, out: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(out.sum_all()?)
    }

    /// Text such as "1 2 3" becomes a vector.
    #[serve(decode)]
    fn decode(body: &[u8]) -> Result<Tensor> {
        let text = std::str::from_utf8(body).map_err(Error::msg)?;
        let values: Vec<f32> = text
            .split_whitespace()
            .map(|w| w.parse::<f32>().map_err(Error::msg))
            .collect::<Result<_>>()?;
        Ok(Tensor::new(values, &Device::Cpu)?)
    }

    /// Samples of any length: one row each, padded with zeros.
    #[serve(collate)]
    fn collate(&self, inputs: Vec<Tensor>) -> Result<Tensor> {
        let width = inputs.iter().map(|t| t.dims()[1]).max().unwrap_or(0);
        let rows = inputs
            .iter()
            .map(|t| Ok(t.pad_with_zeros(1, 0, width - t.dims()[1])?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }

    #[serve(uncollate)]
    fn uncollate(&self, output: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
        (0..sizes.len())
            .map(|i| Ok(output.narrow(0, i, 1)?))
            .collect()
    }

    #[postprocess]
    fn total(&self, output: &Tensor) -> Result<f32> {
        Ok(output.sum_all()?.to_scalar::<f32>()?)
    }

    #[serve(encode)]
    fn encode(&self, result: &Output) -> Result<Payload> {
        Ok(Payload {
            content_type: "text/plain".into(),
            body: format!("{}\n", result.parse::<f32>()?).into_bytes(),
        })
    }
}

fn main() {
    let env = Env::new(Device::Cpu, 0);
    let task = <Lengths as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let samples = vec![
        <Lengths as Task>::decode_request(b"1 2 3", "text/plain").unwrap(),
        <Lengths as Task>::decode_request(b"10", "").unwrap(),
    ];
    assert!(<Lengths as Task>::decode_request(b"1 x", "").is_err());
    let replies = task.serve_batch(samples, &env).unwrap();
    let bodies: Vec<String> = replies
        .iter()
        .map(|p| String::from_utf8(p.body.clone()).unwrap())
        .collect();
    assert_eq!(bodies, ["6\n", "10\n"]);
    assert_eq!(replies[0].content_type, "text/plain");
}
