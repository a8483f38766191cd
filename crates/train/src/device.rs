//! `--device cpu|cuda[:N]`, and running generic code on the backend it names.
//!
//! burn fixes the backend at compile time, so a device choice is turned into a call of a
//! generic function: implement [`OnBackend`] once and [`DeviceChoice::run`] dispatches it.

use std::fmt;
use std::str::FromStr;

use burn::backend::{Autodiff, Flex};
use model::Kernels;

use crate::TrainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: use cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Work generic over the backend: inference runs on `I`, training and explanations
/// differentiate through `Autodiff<I>`.
pub trait OnBackend {
    type Output;
    fn run<I: Kernels>(self, device: I::Device) -> Self::Output;
}

/// Work generic over the backend that takes several devices of it (data-parallel training).
pub trait OnDevices {
    type Output;
    fn run<I: Kernels>(self, devices: Vec<I::Device>) -> Self::Output;
}

/// The CPU backend.
pub type Cpu = Autodiff<Flex>;

impl DeviceChoice {
    /// Fails early, with the fix, when the device cannot be used by this build or machine.
    pub fn check(self) -> Result<(), TrainError> {
        match self {
            DeviceChoice::Cpu => Ok(()),
            DeviceChoice::Cuda(index) => cuda::check(index),
        }
    }

    pub fn run<W: OnBackend>(self, work: W) -> Result<W::Output, TrainError> {
        match self {
            DeviceChoice::Cpu => Ok(work.run::<Flex>(Default::default())),
            DeviceChoice::Cuda(index) => cuda::run(index, work),
        }
    }
}

/// Runs `work` on `devices`, which must all be of one kind: the CPU (as often as given: the
/// replicas share its cores), or CUDA GPUs (each once).
pub fn run_on_devices<W: OnDevices>(
    devices: &[DeviceChoice],
    work: W,
) -> Result<W::Output, TrainError> {
    let cuda: Vec<usize> = devices
        .iter()
        .filter_map(|d| match d {
            DeviceChoice::Cuda(index) => Some(*index),
            DeviceChoice::Cpu => None,
        })
        .collect();
    match cuda.len() {
        0 => Ok(work.run::<Flex>(vec![Default::default(); devices.len().max(1)])),
        n if n == devices.len() => {
            let mut distinct = cuda.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() != n {
                return Err(TrainError::Device(format!(
                    "--devices names a GPU twice ({}): give each GPU once",
                    list(devices)
                )));
            }
            cuda::run_on_all(&cuda, work)
        }
        _ => Err(TrainError::Device(format!(
            "--devices mixes the CPU and GPUs ({}): the replicas must all be on the CPU or all on GPUs",
            list(devices)
        ))),
    }
}

fn list(devices: &[DeviceChoice]) -> String {
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    names.join(",")
}

/// Runs a benchmark's `work` on the device and precision its command line names (the trailing
/// `[cpu|cuda[:N]] [f32|tf32]` of the examples; `None`: the CPU, and `precision` by default),
/// and panics with the reason when they are not usable: benchmarks have no one to recover.
pub fn run_benchmark<W: OnBackend>(
    work: W,
    device: Option<&str>,
    precision: Option<&str>,
    default_precision: kernels::Precision,
) -> W::Output {
    let device: DeviceChoice = device.unwrap_or("cpu").parse().expect("a device");
    let precision = precision.map_or(Ok(default_precision), str::parse);
    kernels::set_precision(precision.expect("a precision"));
    device.run(work).expect("a usable device")
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    use burn::prelude::*;

    pub fn check(index: usize) -> Result<(), TrainError> {
        keep_compiled_kernels();
        probe(&CudaDevice::new(index)).map_err(|why| {
            TrainError::Device(format!(
                "CUDA device {index} is not usable ({why}): is an NVIDIA driver installed and \
                 the GPU visible to `nvidia-smi`? --device cpu runs without one"
            ))
        })
    }

    pub fn run<W: OnBackend>(index: usize, work: W) -> Result<W::Output, TrainError> {
        check(index)?;
        Ok(work.run::<Cuda>(CudaDevice::new(index)))
    }

    pub fn run_on_all<W: OnDevices>(indices: &[usize], work: W) -> Result<W::Output, TrainError> {
        for &index in indices {
            check(index)?;
        }
        Ok(work.run::<Cuda>(indices.iter().map(|&i| CudaDevice::new(i)).collect()))
    }

    /// Turns on cubecl's cache of compiled kernels (see `kernels::cube::cache`); a cache that
    /// cannot be made only costs time, so it is a warning.
    fn keep_compiled_kernels() {
        let Some(dir) = kernels::cube::cache::default_dir() else {
            return;
        };
        if let Err(why) = kernels::cube::cache::keep_compiled_kernels(&dir) {
            eprintln!(
                "warning: cannot keep compiled GPU kernels in {}: {why}; every run compiles them \
                 again (set GRADCAM_CACHE_DIR to a writable folder)",
                dir.display()
            );
        }
    }

    /// cubecl panics when the driver or the device is missing; turn that into an error.
    fn probe(device: &CudaDevice) -> Result<(), String> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result =
            std::panic::catch_unwind(|| Tensor::<Cuda, 1>::ones([1], device).into_scalar());
        std::panic::set_hook(hook);
        result.map(|_| ()).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "no CUDA driver or device".into())
        })
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::*;

    pub fn run<W: OnBackend>(index: usize, _work: W) -> Result<W::Output, TrainError> {
        Err(check(index).unwrap_err())
    }

    pub fn run_on_all<W: OnDevices>(indices: &[usize], _work: W) -> Result<W::Output, TrainError> {
        Err(check(indices[0]).unwrap_err())
    }

    pub fn check(_index: usize) -> Result<(), TrainError> {
        Err(TrainError::Device(
            "this build has no CUDA support: rebuild with `--features cuda` (e.g. `cargo run --release \
             --features cuda -p train -- --device cuda`)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!(
            "gpu"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("cpu, cuda or cuda:N")
        );
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
    }
}
