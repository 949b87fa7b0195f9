//! # tritonite-runtime
//!
//! Runs PTX produced by `tritonite-lowering` on an NVIDIA GPU through cudarc. libcuda is opened at
//! run time: this crate builds and its callers run on machines without CUDA, where
//! [`Device::open`] returns [`RuntimeError::NoDriver`] or [`RuntimeError::NoDevice`] instead of
//! panicking.

mod buffer;
mod device;
mod error;
mod launch;

pub use buffer::DeviceBuffer;
pub use device::Device;
pub use error::RuntimeError;
pub use launch::{GpuKernel, KernelArg};
