//! Backend and device choice. The model code is generic over burn's `Backend`; the backends
//! nodes run on are named here (training with autodiff, evaluation without).

use std::str::FromStr;

use super::ExecError;

/// `--device`: `cpu` (burn's flex backend) or `cuda[:N]` (needs the `cuda` cargo feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = ExecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| ExecError::UnknownDevice(other.to_string())),
        }
    }
}

impl DeviceChoice {
    /// Fails early, before any node runs, when this build cannot use the device.
    pub fn check_available(self) -> Result<(), ExecError> {
        match self {
            DeviceChoice::Cpu => Ok(()),
            DeviceChoice::Cuda(_) if cfg!(feature = "cuda") => Ok(()),
            DeviceChoice::Cuda(n) => Err(ExecError::NoCuda(format!("cuda:{n}"))),
        }
    }

    /// Backend name recorded in status files and Parquet metadata.
    pub fn backend(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "flex",
            DeviceChoice::Cuda(_) => "cuda",
        }
    }

    pub fn device_name(self) -> String {
        match self {
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(n) => format!("cuda:{n}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_rejects_cuda_without_the_feature() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
        let cuda = DeviceChoice::Cuda(0).check_available();
        if cfg!(feature = "cuda") {
            assert!(cuda.is_ok());
        } else {
            assert!(cuda.unwrap_err().to_string().contains("--features cuda"));
        }
    }
}
