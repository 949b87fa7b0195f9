//! # tritonite-kernels
//!
//! Kernels written in the tritonite block language, with their fp64 references:
//! - [`rmsnorm`]: RMSNorm forward (`y`, `rstd`) and backward (`dx`, deterministic `dw`).
//!
//! [`cpu`] runs them on the CPU interpreter with argument checks.

pub mod cpu;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod rmsnorm;

pub use error::KernelError;
