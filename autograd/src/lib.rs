//! # tritonite-autograd
//!
//! tritonite's RMSNorm forward and backward as autograd ops of Rust training frameworks:
//! - [`op`]: the framework-neutral pair over device buffers that every adapter calls (the forward
//!   saves `rstd` for the backward);
//! - `candle` (feature `candle`, candle 0.11 CUDA): a `CustomOp2` with a real backward and a
//!   drop-in `RmsNorm` module;
//! - `burn` (feature `burn`, burn 0.21 CUDA + `Autodiff`): our forward and our backward through
//!   burn's `Backward`, and a drop-in `RmsNorm` module.
//!
//! [`op::stats`] counts the calls, so a training loop can show that our kernels ran.

#![warn(missing_docs)]

#[cfg(feature = "burn")]
pub mod burn;
#[cfg(feature = "candle")]
pub mod candle;
pub mod error;
pub mod op;

pub use error::AutogradError;
