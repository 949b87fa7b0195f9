//! # tritonite
//!
//! A Triton-style block-level kernel language for Rust. Kernels are Rust functions that trace block
//! operations into a typed IR ([`lang`]); the IR runs on an exact CPU interpreter and is lowered
//! through MLIR to PTX for NVIDIA GPUs ([`lowering`]). [`kernels`] holds the kernels written in the
//! language (RMSNorm forward and backward first). [`autograd`] makes them autograd ops of candle
//! and burn (features `candle` and `burn`).
//!
//! This facade re-exports the member crates so applications depend on one crate.

pub use tritonite_autograd as autograd;
pub use tritonite_kernels as kernels;
pub use tritonite_lang as lang;
pub use tritonite_lowering as lowering;
pub use tritonite_runtime as runtime;
