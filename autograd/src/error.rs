//! Errors of the adapters.

use thiserror::Error;
use tritonite_kernels::KernelError;
use tritonite_runtime::RuntimeError;

/// Why an adapter could not run our RMSNorm.
#[derive(Debug, Error)]
pub enum AutogradError {
    /// The kernel library rejected the call (bad shape or dtype) or failed to run it.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The GPU runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A tensor of a kind the adapter does not run (dtype, device, layout), with what it takes.
    #[error("tritonite RMSNorm: unsupported {0}")]
    Unsupported(String),
    /// An argument does not fit the op: which one, what was expected, what was given.
    #[error("tritonite RMSNorm: argument `{arg}`: expected {expected}, got {got}")]
    BadArgument {
        /// The argument's name.
        arg: &'static str,
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
}
