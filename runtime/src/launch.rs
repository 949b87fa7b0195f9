//! Loading PTX and launching kernels with checked arguments.

use cudarc::driver::{CudaFunction, DevicePtr, LaunchConfig, PushKernelArg};
use tritonite_lang::ir::{Param, ParamKind};
use tritonite_lang::DType;

use crate::buffer::{DeviceBuffer, Memory};
use crate::device::Device;
use crate::error::RuntimeError;

/// One launch argument.
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A device buffer from an element offset on, for pointer parameters.
    Buffer(&'a DeviceBuffer, usize),
    /// An `i32` scalar.
    I32(i32),
    /// An `i64` scalar.
    I64(i64),
    /// An `f32` scalar.
    F32(f32),
}

/// A kernel loaded on a device, with its parameter list for argument checks.
pub struct GpuKernel {
    func: CudaFunction,
    name: String,
    params: Vec<Param>,
    threads: u32,
}

impl GpuKernel {
    /// Loads a cubin when given one (no JIT at load time), else the PTX text, and finds kernel
    /// `name` in it.
    pub fn load(
        device: &Device,
        ptx: &str,
        cubin: Option<&[u8]>,
        name: &str,
        params: Vec<Param>,
        threads: u32,
    ) -> Result<GpuKernel, RuntimeError> {
        let image = match cubin {
            Some(c) => cudarc::nvrtc::Ptx::from_binary(c.to_vec()),
            None => cudarc::nvrtc::Ptx::from_src(ptx),
        };
        let module = device.ctx.load_module(image).map_err(RuntimeError::driver("loading the kernel image"))?;
        let func = module.load_function(name).map_err(RuntimeError::driver("finding the kernel in its module"))?;
        Ok(GpuKernel { func, name: name.to_string(), params, threads })
    }

    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Launches `grid` programs with `args` (one per parameter) on the device's stream.
    pub fn launch(&self, device: &Device, grid: [u32; 3], args: &[KernelArg<'_>]) -> Result<(), RuntimeError> {
        if args.len() != self.params.len() {
            return Err(RuntimeError::Argument {
                kernel: self.name.clone(),
                index: args.len().min(self.params.len()),
                name: "-".into(),
                expected: format!("{} arguments", self.params.len()),
                got: format!("{} arguments", args.len()),
            });
        }
        if grid.contains(&0) {
            return Ok(());
        }
        // Every value the launch points at must outlive the launch call.
        let mut ptrs: Vec<u64> = Vec::with_capacity(args.len());
        let mut guards = Vec::new();
        for (i, (p, a)) in self.params.iter().zip(args).enumerate() {
            let ok = match (p.kind, a) {
                (ParamKind::Ptr(d) | ParamKind::MutPtr(d), KernelArg::Buffer(b, offset)) => {
                    b.dtype() == d && *offset <= b.len()
                }
                (ParamKind::Scalar(DType::I32), KernelArg::I32(_)) => true,
                (ParamKind::Scalar(DType::I64), KernelArg::I64(_)) => true,
                (ParamKind::Scalar(DType::F32), KernelArg::F32(_)) => true,
                _ => false,
            };
            if !ok {
                return Err(RuntimeError::Argument {
                    kernel: self.name.clone(),
                    index: i,
                    name: p.name.clone(),
                    expected: p.kind.to_string(),
                    got: format!("{a:?}"),
                });
            }
            if let KernelArg::Buffer(b, offset) = a {
                // Owned memory takes part in cudarc's event tracking where the context has it on;
                // borrowed memory is ordered by the stream it is used on.
                if let Memory::Owned(slice) = &b.data {
                    guards.push(slice.device_ptr(&device.stream).1);
                }
                ptrs.push(b.address() + (offset * b.dtype().size_bytes()) as u64);
            }
        }
        let mut builder = device.stream.launch_builder(&self.func);
        let mut next_ptr = ptrs.iter();
        for a in args {
            match a {
                KernelArg::Buffer(..) => builder.arg(next_ptr.next().expect("one address per buffer")),
                KernelArg::I32(v) => builder.arg(v),
                KernelArg::I64(v) => builder.arg(v),
                KernelArg::F32(v) => builder.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid[0], grid[1], grid[2]),
            block_dim: (self.threads, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument count and types were checked against the kernel's parameters, and
        // every pointer is a live device allocation of the declared dtype.
        unsafe { builder.launch(cfg) }.map_err(RuntimeError::driver("launching"))?;
        drop(guards);
        Ok(())
    }
}
