//! Backend and device choice. The model code is generic over burn's `Backend`; the backends
//! nodes run on are named here (training with autodiff, evaluation without), and
//! [`DeviceChoice::train_with`] / [`DeviceChoice::infer_with`] are the one place a device
//! chosen at run time becomes a backend type.

use std::str::FromStr;

use burn::tensor::backend::{AutodiffBackend, Backend};

use super::ExecError;
use crate::train::LossReads;

/// `--device`: `cpu` (burn's flex backend), `cuda[:N]` (the `cuda` cargo feature) or `wgpu`
/// (burn's cubecl stack on Vulkan, the `wgpu` cargo feature: any Vulkan GPU, or a software
/// driver such as Mesa's lavapipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
    Wgpu,
}

impl FromStr for DeviceChoice {
    type Err = ExecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| ExecError::UnknownDevice(other.to_string())),
        }
    }
}

/// Something to run on a training backend chosen at run time (generic closures do not exist).
pub trait OnTraining {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device, reads: LossReads) -> Self::Output;
}

/// Something to run on an inference backend chosen at run time.
pub trait OnInference {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

impl DeviceChoice {
    /// Fails early, before any node runs, when this build cannot use the device.
    pub fn check_available(self) -> Result<(), ExecError> {
        let (built, feature) = match self {
            DeviceChoice::Cpu => return Ok(()),
            DeviceChoice::Cuda(_) => (cfg!(feature = "cuda"), "cuda"),
            DeviceChoice::Wgpu => (cfg!(feature = "wgpu"), "wgpu"),
        };
        if built {
            Ok(())
        } else {
            Err(ExecError::NotBuilt {
                device: self.device_name(),
                feature,
            })
        }
    }

    /// Backend name recorded in status files and Parquet metadata (on the CPU, also whether the
    /// fused CPU operations ran: results differ in the last bits without them).
    pub fn backend(self) -> &'static str {
        match self {
            DeviceChoice::Cpu if crate::model::cpu_ops::fused_enabled() => "flex",
            DeviceChoice::Cpu => "flex (generic ops)",
            DeviceChoice::Cuda(_) => "cuda",
            DeviceChoice::Wgpu => "wgpu",
        }
    }

    pub fn device_name(self) -> String {
        match self {
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(n) => format!("cuda:{n}"),
            DeviceChoice::Wgpu => "wgpu".into(),
        }
    }

    /// How often training reads the loss back: every step where that costs nothing (the CPU),
    /// only at evaluations and checkpoints where it would stall a device's queue.
    pub fn loss_reads(self) -> LossReads {
        match self {
            DeviceChoice::Cpu => LossReads::EveryStep,
            _ => LossReads::AtEvaluations,
        }
    }

    /// Runs `f` on this device's training backend.
    pub fn train_with<F: OnTraining>(self, f: F) -> Result<F::Output, ExecError> {
        self.check_available()?;
        let reads = self.loss_reads();
        match self {
            DeviceChoice::Cpu => Ok(f.run::<CpuBackend>(Default::default(), reads)),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda(n) => {
                preflight::cuda()?;
                Ok(f.run::<CudaBackend>(burn::backend::cuda::CudaDevice::new(n), reads))
            }
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => {
                preflight::vulkan()?;
                Ok(f.run::<WgpuBackend>(wgpu_device(), reads))
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("check_available refused {self:?}"),
        }
    }

    /// Runs `f` on this device's inference backend.
    pub fn infer_with<F: OnInference>(self, f: F) -> Result<F::Output, ExecError> {
        self.check_available()?;
        match self {
            DeviceChoice::Cpu => Ok(f.run::<CpuInference>(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda(n) => {
                preflight::cuda()?;
                Ok(f.run::<CudaInference>(burn::backend::cuda::CudaDevice::new(n)))
            }
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => {
                preflight::vulkan()?;
                Ok(f.run::<WgpuInference>(wgpu_device()))
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("check_available refused {self:?}"),
        }
    }
}

/// The CPU evaluation backend: burn's pure-Rust flex.
pub type CpuInference = burn::backend::Flex;

/// The CPU training backend.
pub type CpuBackend = burn::backend::Autodiff<CpuInference>;

#[cfg(feature = "cuda")]
pub type CudaInference = burn::backend::Cuda;

#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<CudaInference>;

/// burn's cubecl backend on Vulkan (SPIR-V kernels; fusion and autotune as on CUDA).
#[cfg(feature = "wgpu")]
pub type WgpuInference = burn::backend::Vulkan;

#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn::backend::Autodiff<WgpuInference>;

/// The Vulkan adapter: `MECHLAB_WGPU_DEVICE=cpu` asks for a software driver (lavapipe) even where
/// a GPU is present; otherwise wgpu's default (a GPU before a CPU adapter).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> burn::backend::wgpu::WgpuDevice {
    use burn::backend::wgpu::WgpuDevice;
    match std::env::var("MECHLAB_WGPU_DEVICE").as_deref() {
        Ok("cpu") => WgpuDevice::Cpu,
        _ => WgpuDevice::DefaultDevice,
    }
}

pub mod preflight {
    //! What an accelerator runtime loads at run time, checked before the first kernel: cubecl
    //! panics deep inside a kernel launch when a library is missing, and a user should instead
    //! read which file is missing and where it was looked for.

    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    use super::ExecError;

    /// Whether the dynamic loader finds a library of one of these names.
    #[cfg(any(feature = "cuda", feature = "wgpu", test))]
    fn loadable(names: &[&str]) -> bool {
        names.iter().any(|name| {
            // SAFETY: loading a system library runs its initialisers; these are the libraries
            // the runtime itself is about to load.
            unsafe { libloading::Library::new(name) }.is_ok()
        })
    }

    /// The CUDA driver, NVRTC (cubecl compiles every kernel at run time) and the CUDA headers
    /// its kernels include.
    #[cfg(feature = "cuda")]
    pub fn cuda() -> Result<(), ExecError> {
        let mut missing = Vec::new();
        if !loadable(&["libcuda.so", "libcuda.so.1"]) {
            missing.push(
                "libcuda.so.1 (the NVIDIA driver's library; is this a GPU machine?)".to_string(),
            );
        }
        if !loadable(&[
            "libnvrtc.so",
            "libnvrtc.so.13",
            "libnvrtc.so.12",
            "libnvrtc.so.11.2",
        ]) {
            missing.push(
                "libnvrtc.so (CUDA's run-time compiler, from the CUDA toolkit or the \
                 nvidia-cuda-nvrtc wheel; put its folder on LD_LIBRARY_PATH)"
                    .to_string(),
            );
        }
        if cuda_headers().is_none() {
            missing.push(
                "cuda_runtime.h (CUDA's headers, which every kernel includes: set CUDA_PATH to \
                 the toolkit's folder; looked in $CUDA_PATH, /usr/local/cuda, /opt/cuda)"
                    .to_string(),
            );
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Preflight {
                device: "cuda",
                missing,
            })
        }
    }

    /// The folder holding `include/cuda_runtime.h`, where cubecl looks for it.
    #[cfg(feature = "cuda")]
    pub fn cuda_headers() -> Option<std::path::PathBuf> {
        let candidates = std::env::var_os("CUDA_PATH")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain(["/usr/local/cuda", "/opt/cuda", "/usr"].map(std::path::PathBuf::from));
        candidates
            .into_iter()
            .find(|p| p.join("include/cuda_runtime.h").is_file())
    }

    /// The Vulkan loader (its drivers are found by the loader itself).
    #[cfg(feature = "wgpu")]
    pub fn vulkan() -> Result<(), ExecError> {
        if loadable(&["libvulkan.so.1", "libvulkan.so"]) {
            Ok(())
        } else {
            Err(ExecError::Preflight {
                device: "wgpu",
                missing: vec![
                    "libvulkan.so.1 (the Vulkan loader: Debian's libvulkan1, with a driver such \
                     as mesa-vulkan-drivers for a CPU-only machine)"
                        .to_string(),
                ],
            })
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_missing_library_is_reported_not_loaded() {
            assert!(!super::loadable(&["libmechlab-does-not-exist.so"]));
            assert!(super::loadable(&["libc.so.6"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_rejects_those_not_built() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert_eq!("wgpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu);
        assert!("tpu".parse::<DeviceChoice>().is_err());
        let cuda = DeviceChoice::Cuda(0).check_available();
        if cfg!(feature = "cuda") {
            assert!(cuda.is_ok());
        } else {
            assert!(cuda.unwrap_err().to_string().contains("--features cuda"));
        }
        let wgpu = DeviceChoice::Wgpu.check_available();
        if cfg!(feature = "wgpu") {
            assert!(wgpu.is_ok());
        } else {
            assert!(wgpu.unwrap_err().to_string().contains("--features wgpu"));
        }
    }
}
