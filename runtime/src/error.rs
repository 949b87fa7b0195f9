//! Errors of the runtime.

use thiserror::Error;

/// Why a GPU operation failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// libcuda could not be found: no NVIDIA driver on this machine.
    #[error("no CUDA driver: libcuda was not found on this machine")]
    NoDriver,
    /// The driver is present but the GPU could not be opened.
    #[error("no usable GPU {ordinal}: {reason}")]
    NoDevice {
        /// The device ordinal asked for.
        ordinal: usize,
        /// The driver's reason.
        reason: String,
    },
    /// A driver call failed.
    #[error("CUDA driver error during {during}: {source}")]
    Driver {
        /// What was being done.
        during: &'static str,
        /// The driver's error.
        source: cudarc::driver::DriverError,
    },
    /// A launch argument does not match the kernel's parameter.
    #[error("kernel `{kernel}` argument {index} (`{name}`): expected {expected}, got {got}")]
    Argument {
        /// Kernel name.
        kernel: String,
        /// Position.
        index: usize,
        /// Parameter name.
        name: String,
        /// What the kernel declares.
        expected: String,
        /// What was passed.
        got: String,
    },
    /// A grid the kernel cannot be launched on (its axis 0 is no multiple of the kernel's
    /// cluster size).
    #[error("kernel `{kernel}`: grid {grid:?} is invalid: {why}")]
    Grid {
        /// Kernel name.
        kernel: String,
        /// The grid asked for.
        grid: [u32; 3],
        /// What is wrong.
        why: String,
    },
    /// A buffer operation was given mismatched sizes or dtypes.
    #[error("{0}")]
    Buffer(String),
}

impl RuntimeError {
    pub(crate) fn driver(during: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> RuntimeError {
        move |source| RuntimeError::Driver { during, source }
    }
}
