//! `--device`: `cpu`, `cuda[:N]`, `metal[:N]`, or `auto` (the best one compiled in).

use crate::error::{Error, Result};
use candle_core::Device;

/// Opens the device `spec` names; `auto` picks CUDA, then Metal, then the CPU.
pub fn open_device(spec: &str) -> Result<(Device, String)> {
    let (kind, index) = match spec.split_once(':') {
        Some(("cpu" | "auto", _)) => {
            return Err(Error::usage(format!(
                "--device {spec}: {} takes no index (there is one CPU device)",
                &spec[..spec.find(':').unwrap_or(spec.len())]
            )))
        }
        Some((k, i)) => {
            let i: usize = i.parse().map_err(|_| {
                Error::usage(format!(
                    "--device {spec}: the index after `:` must be a number"
                ))
            })?;
            (k, i)
        }
        None => (spec, 0),
    };
    let fail = |e: candle_core::Error| Error::usage(format!("--device {spec}: {e}"));
    match kind {
        "auto" if candle_core::utils::cuda_is_available() => {
            Ok((Device::new_cuda(0).map_err(fail)?, "cuda:0".into()))
        }
        "auto" if candle_core::utils::metal_is_available() => {
            Ok((Device::new_metal(0).map_err(fail)?, "metal:0".into()))
        }
        "auto" | "cpu" => Ok((Device::Cpu, "cpu".into())),
        "cuda" => Ok((
            Device::new_cuda(index).map_err(fail)?,
            format!("cuda:{index}"),
        )),
        "metal" => Ok((
            Device::new_metal(index).map_err(fail)?,
            format!("metal:{index}"),
        )),
        _ => Err(Error::usage(format!(
            "--device {spec}: expected auto, cpu, cuda, cuda:N, metal or metal:N"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_auto_and_errors() {
        assert_eq!(open_device("cpu").unwrap().1, "cpu");
        assert!(open_device("auto").is_ok());
        assert!(open_device("tpu")
            .unwrap_err()
            .to_string()
            .contains("expected auto"));
        assert!(open_device("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(open_device("cuda")
            .unwrap_err()
            .to_string()
            .contains("--device cuda"));
    }
}
