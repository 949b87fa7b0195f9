//! Errors of the kernel library.

use thiserror::Error;
use tritonite_lang::{InterpError, LangError};

/// Why a kernel could not be built or run.
#[derive(Debug, Error)]
pub enum KernelError {
    /// An argument has the wrong length, dtype or value; nothing was written.
    #[error("argument `{arg}`: expected {expected}, got {got}")]
    BadArgument {
        /// The argument's name.
        arg: &'static str,
        /// What was expected.
        expected: String,
        /// What was passed.
        got: String,
    },
    /// The kernel failed to build (a bug in the kernel or an unsupported config).
    #[error(transparent)]
    Lang(#[from] LangError),
    /// The interpreter rejected a run.
    #[error(transparent)]
    Interp(#[from] InterpError),
    /// Lowering to PTX failed.
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Lower(#[from] tritonite_lowering::LowerError),
    /// The GPU runtime failed (including: no driver, no GPU).
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Runtime(#[from] tritonite_runtime::RuntimeError),
}
