//! Errors of the lowering.

use thiserror::Error;

/// Why a kernel could not be lowered to PTX.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LowerError {
    /// The kernel uses something this lowering does not handle yet.
    #[error("kernel `{kernel}`: not supported by the GPU lowering: {what}")]
    Unsupported {
        /// Kernel name.
        kernel: String,
        /// What is unsupported.
        what: String,
    },
    /// A compile option is out of range.
    #[error("compile option `{option}`: expected {expected}, got {got}")]
    BadOption {
        /// The option's name.
        option: &'static str,
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// MLIR rejected the emitted module or a pass failed (a lowering bug): the diagnostics say why.
    #[error("kernel `{kernel}`: MLIR stage `{stage}` failed:\n{diagnostics}")]
    Mlir {
        /// Kernel name.
        kernel: String,
        /// The pipeline stage that failed.
        stage: &'static str,
        /// MLIR's diagnostics.
        diagnostics: String,
    },
    /// ptxas could not be run or rejected the PTX.
    #[error("ptxas: {0}")]
    Ptxas(String),
    /// A build without the compiler found no cached PTX for a kernel variant.
    #[error("kernel `{kernel}`: no cached PTX in `{dir}` and this build has no compiler; compile it on a machine with the `compiler` feature and copy the cache")]
    NotCached {
        /// Kernel name.
        kernel: String,
        /// The cache directory searched.
        dir: String,
    },
    /// The kernel did not verify.
    #[error(transparent)]
    Lang(#[from] tritonite_lang::LangError),
}
