//! # tritonite-runtime
//!
//! Runs PTX produced by `tritonite-lowering` on an NVIDIA GPU through cudarc. libcuda is opened at
//! run time: this crate builds and its callers run on machines without CUDA, where
//! [`Device::open`] returns [`RuntimeError::NoDriver`] or [`RuntimeError::NoDevice`] instead of
//! panicking.
//!
//! Framework interop: [`Device::from_stream`] queues work on a framework's stream, and
//! [`DeviceBuffer::borrowed`] / [`DeviceBuffer::into_cuda_slice`] pass memory in and out. The
//! [`cudarc`] re-exported here is the one the frameworks (candle 0.11, burn 0.21) use.

mod buffer;
mod device;
mod error;
mod launch;
mod pool;

pub use buffer::DeviceBuffer;
pub use device::Device;
pub use error::RuntimeError;
pub use launch::{GpuKernel, KernelArg, KernelMeta};

pub use cudarc;
