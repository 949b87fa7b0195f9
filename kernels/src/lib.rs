//! # tritonite-kernels
//!
//! Kernels written in the tritonite block language, with their fp64 references:
//! - [`matmul`]: `a · b` and `a · bᵀ` on the tensor cores (the language's `dot`), f16/bf16 inputs,
//!   f32 accumulation; [`matmul::matmul`].
//! - [`partials`]: the column sums of per-program partials that backward passes reduce with.
//! - [`rmsnorm`]: RMSNorm forward and backward with weight, offset, bias, fused residual, output
//!   dtype and strided rows; typed entry points [`rmsnorm::rms_norm`] and
//!   [`rmsnorm::rms_norm_backward`].
//! - [`layernorm`]: LayerNorm forward and backward with optional weight and bias, strided rows, and
//!   `mean`/`rstd` saved; [`layernorm::layer_norm`] and [`layernorm::layer_norm_backward`].
//! - [`softmax`]: softmax along the last dimension, forward and backward, rows of any length
//!   (online max/sum over chunks); [`softmax::softmax`] and [`softmax::softmax_backward`].
//! - [`cross_entropy`]: cross-entropy over logits `[M, V]` with integer targets, `ignore_index`,
//!   per-row loss, mean/sum reduction, and the gradient in place or out of place;
//!   [`cross_entropy::cross_entropy`] and [`cross_entropy::cross_entropy_backward`].
//!
//! Kernels run through launch [`plan`]s on a [`backend::Backend`]: the CPU interpreter
//! ([`cpu::Cpu`]) or, with the `gpu` feature, `gpu::GpuExecutor`.

#![warn(missing_docs)]

pub mod backend;
pub mod cpu;
pub mod cross_entropy;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod layernorm;
pub mod matmul;
pub mod partials;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod rmsnorm;
pub mod rmsnorm_linear;
pub mod rowwise;
pub mod softmax;
pub mod split_k;
pub mod tensor;
pub mod tuning;

pub use error::KernelError;
