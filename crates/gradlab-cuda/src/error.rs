//! The one error type of the crate.

use cudarc::driver::DriverError;

/// Result alias used throughout the crate.
pub type Result<T, E = CudaError> = std::result::Result<T, E>;

/// Everything that can go wrong between the host and the GPU.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// libcuda could not be opened: no NVIDIA driver on this machine.
    #[error(
        "no CUDA driver found (libcuda.so could not be loaded): install the NVIDIA driver, \
         or run on a machine with a GPU"
    )]
    NoDriver,
    /// libnvrtc could not be opened, so kernels cannot be compiled.
    #[error(
        "no NVRTC found (libnvrtc.so.13 could not be loaded): put CUDA 13.0's lib64 on \
         LD_LIBRARY_PATH, or `source scripts/cuda-env.sh` for the pinned copy from PyPI"
    )]
    NoNvrtc,
    /// The driver is present but has no usable device.
    #[error("no CUDA device {ordinal}: {source}")]
    NoDevice {
        ordinal: usize,
        #[source]
        source: DriverError,
    },
    /// A driver call failed.
    #[error("CUDA driver call failed during {op}: {source}")]
    Driver {
        op: String,
        #[source]
        source: DriverError,
    },
    /// NVRTC rejected a kernel source file.
    #[error("NVRTC could not compile kernels/{file} for {arch}: {message}")]
    Compile {
        file: &'static str,
        arch: String,
        message: String,
    },
    /// The device ran out of memory even after the allocator released its cache.
    #[error("out of GPU memory allocating {bytes} bytes ({in_use} bytes in use): {source}")]
    OutOfMemory {
        bytes: usize,
        in_use: usize,
        #[source]
        source: DriverError,
    },
    /// Arguments that do not describe a valid problem (shapes, lengths, strides).
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
}

impl CudaError {
    pub(crate) fn driver(op: impl Into<String>) -> impl FnOnce(DriverError) -> CudaError {
        let op = op.into();
        move |source| CudaError::Driver { op, source }
    }

    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> CudaError {
        CudaError::InvalidArgument {
            op,
            message: message.into(),
        }
    }
}
