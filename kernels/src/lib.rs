//! # tritonite-kernels
//!
//! Kernels written in the tritonite block language, with their fp64 references:
//! - [`partials`]: the column sums of per-program partials that backward passes reduce with.
//! - [`rmsnorm`]: RMSNorm forward and backward with weight, offset, bias, fused residual, output
//!   dtype and strided rows; typed entry points [`rmsnorm::rms_norm`] and
//!   [`rmsnorm::rms_norm_backward`].
//!
//! Kernels run through launch [`plan`]s on a [`backend::Backend`]: the CPU interpreter
//! ([`cpu::Cpu`]) or, with the `gpu` feature, `gpu::GpuExecutor`.

#![warn(missing_docs)]

pub mod backend;
pub mod cpu;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod partials;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod rmsnorm;
pub mod tensor;
pub mod tuning;

pub use error::KernelError;
