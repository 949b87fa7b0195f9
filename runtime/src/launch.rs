//! Loading PTX and launching kernels with checked arguments.

use std::ffi::c_void;

use cudarc::driver::{CudaFunction, DevicePtr};
use tritonite_lang::ir::{Param, ParamKind};
use tritonite_lang::DType;

use crate::buffer::DeviceBuffer;
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

/// The most parameters a kernel may have.
const MAX_ARGS: usize = 64;

/// `CU_LAUNCH_PARAM_BUFFER_POINTER` and `CU_LAUNCH_PARAM_BUFFER_SIZE` of `cuda.h`: the keys of
/// `cuLaunchKernel`'s `extra` list that pass the parameters as one buffer.
const LAUNCH_PARAM_BUFFER_POINTER: *mut c_void = std::ptr::without_provenance_mut(1);
const LAUNCH_PARAM_BUFFER_SIZE: *mut c_void = std::ptr::without_provenance_mut(2);

/// What every launch of a kernel needs besides its grid and arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelMeta {
    /// Threads per program.
    pub threads: u32,
    /// Programs per cluster along grid axis 0 (1: launched without clusters; more than 8 needs a
    /// device that allows non-portable cluster sizes).
    pub cluster: u32,
    /// Bytes of dynamic shared memory per program.
    pub shared_bytes: u32,
    /// Launched with programmatic stream serialization: a launch may start before the previous
    /// one on the stream has finished (the kernel waits for it itself: compiled from a kernel
    /// that [waits for the previous launch](tritonite_lang::Kernel::waits_for_previous_launch),
    /// for sm_90 or later).
    pub waits_for_previous: bool,
}

/// A kernel loaded on a device, with its parameter list for argument checks.
pub struct GpuKernel {
    func: CudaFunction,
    name: String,
    params: Vec<Param>,
    meta: KernelMeta,
    /// Where each parameter starts in the kernel's parameter buffer and the buffer's size, when
    /// the driver confirmed them: launches then pass one packed buffer, which the driver copies
    /// whole, instead of a pointer per parameter.
    packed: Option<(Vec<usize>, usize)>,
}

/// Bytes of a parameter of `kind` in the parameter buffer (also its alignment).
fn param_size(kind: ParamKind) -> usize {
    match kind {
        ParamKind::Ptr(_) | ParamKind::MutPtr(_) => 8,
        ParamKind::Scalar(d) => d.size_bytes(),
    }
}

/// The parameter buffer's layout (each parameter at the next multiple of its size) when the driver
/// reports the same offsets and sizes for `func`; `None` when it does not or cannot say (drivers
/// before CUDA 12.4).
fn packed_layout(func: &CudaFunction, params: &[Param]) -> Option<(Vec<usize>, usize)> {
    // Older drivers lack `cuFuncGetParamInfo` (and calling a missing symbol would panic).
    let mut version: std::ffi::c_int = 0;
    // SAFETY: libcuda is loaded (a kernel is) and `version` outlives the call.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
    if r.result().is_err() || version < 12040 {
        return None;
    }
    let mut offsets = Vec::with_capacity(params.len());
    let mut end = 0usize;
    for (i, p) in params.iter().enumerate() {
        let size = param_size(p.kind);
        let offset = end.next_multiple_of(size);
        let (mut got_offset, mut got_size) = (0usize, 0usize);
        // SAFETY: `func` is a loaded kernel and both outputs outlive the call.
        let r =
            unsafe { cudarc::driver::sys::cuFuncGetParamInfo(func.cu_function(), i, &mut got_offset, &mut got_size) };
        if r.result().is_err() || (got_offset, got_size) != (offset, size) {
            return None;
        }
        offsets.push(offset);
        end = offset + size;
    }
    Some((offsets, end))
}

impl GpuKernel {
    /// Loads a cubin when given one (no JIT at load time), else the PTX text, and finds kernel
    /// `name` in it; its launches take the threads, cluster and shared memory of `meta`.
    pub fn load(
        device: &Device,
        ptx: &str,
        cubin: Option<&[u8]>,
        name: &str,
        params: Vec<Param>,
        meta: KernelMeta,
    ) -> Result<GpuKernel, RuntimeError> {
        let image = match cubin {
            Some(c) => cudarc::nvrtc::Ptx::from_binary(c.to_vec()),
            None => cudarc::nvrtc::Ptx::from_src(ptx),
        };
        let module = device.ctx.load_module(image).map_err(RuntimeError::driver("loading the kernel image"))?;
        let func = module.load_function(name).map_err(RuntimeError::driver("finding the kernel in its module"))?;
        let packed = packed_layout(&func, &params);
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
        // Dynamic shared memory is asked for whenever there is some: beyond 48 KiB of static and
        // dynamic together a launch without it fails.
        if meta.shared_bytes > 0 {
            // SAFETY: `func` is a loaded kernel.
            unsafe {
                cudarc::driver::sys::cuFuncSetAttribute(
                    func.cu_function(),
                    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    meta.shared_bytes as i32,
                )
            }
            .result()
            .map_err(RuntimeError::driver("allowing the kernel's dynamic shared memory"))?;
        }
        if meta.cluster > 8 {
            use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED;
            // SAFETY: `func` is a loaded kernel.
            unsafe {
                cudarc::driver::sys::cuFuncSetAttribute(
                    func.cu_function(),
                    CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
                    1,
                )
            }
            .result()
            .map_err(RuntimeError::driver("allowing clusters of more than 8 programs"))?;
        }
        Ok(GpuKernel { func, name: name.to_string(), params, meta, packed })
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
        if !grid[0].is_multiple_of(self.meta.cluster) {
            return Err(RuntimeError::Grid {
                kernel: self.name.clone(),
                grid,
                why: format!("axis 0 must be a multiple of the kernel's cluster size {}", self.meta.cluster),
            });
        }
        // One 8-byte slot per argument (addresses, i64; i32 and f32 in the low bytes): the driver
        // reads each parameter's size from the kernel, from the slot's start, little-endian.
        let mut slots = [0u64; MAX_ARGS];
        if args.len() > MAX_ARGS {
            return Err(RuntimeError::Argument {
                kernel: self.name.clone(),
                index: MAX_ARGS,
                name: "-".into(),
                expected: format!("at most {MAX_ARGS} arguments"),
                got: format!("{} arguments", args.len()),
            });
        }
        // Where the context tracks buffers across streams (a framework's context), owned buffers
        // take part: the launch waits for their last writers and records itself on them.
        let tracking = device.ctx.is_managing_stream_synchronization();
        let mut guards = Vec::new();
        for (i, (p, a)) in self.params.iter().zip(args).enumerate() {
            let slot = match (p.kind, a) {
                (ParamKind::Ptr(d) | ParamKind::MutPtr(d), KernelArg::Buffer(b, offset))
                    if b.dtype() == d && *offset <= b.len() =>
                {
                    if let (true, Some(slice)) = (tracking, b.data.slice()) {
                        guards.push(slice.device_ptr(&device.stream).1);
                    }
                    Some(b.address() + (offset * b.dtype().size_bytes()) as u64)
                }
                (ParamKind::Scalar(DType::I32), KernelArg::I32(v)) => Some(*v as u32 as u64),
                (ParamKind::Scalar(DType::I64), KernelArg::I64(v)) => Some(*v as u64),
                (ParamKind::Scalar(DType::F32), KernelArg::F32(v)) => Some(v.to_bits() as u64),
                _ => None,
            };
            let Some(slot) = slot else {
                return Err(RuntimeError::Argument {
                    kernel: self.name.clone(),
                    index: i,
                    name: p.name.clone(),
                    expected: p.kind.to_string(),
                    got: format!("{a:?}"),
                });
            };
            slots[i] = slot;
        }
        device.ctx.bind_to_thread().map_err(RuntimeError::driver("making the context current"))?;
        // Overlapping the previous launch only on our own stream order: where the context orders
        // buffers across streams with events, every launch waits for its inputs in full.
        let overlap = self.meta.waits_for_previous && !tracking;
        let launch = |params: *mut *mut c_void, extra: *mut *mut c_void| {
            // SAFETY: the argument count and types were checked against the kernel's parameters,
            // every address is a live device allocation of the declared dtype, and what `params`
            // and `extra` point to outlives the call (the driver copies the values before it
            // returns).
            unsafe {
                if self.meta.cluster == 1 && !overlap {
                    cudarc::driver::sys::cuLaunchKernel(
                        self.func.cu_function(),
                        grid[0],
                        grid[1],
                        grid[2],
                        self.meta.threads,
                        1,
                        1,
                        self.meta.shared_bytes,
                        device.stream.cu_stream(),
                        params,
                        extra,
                    )
                } else {
                    use cudarc::driver::sys::{CUlaunchAttribute, CUlaunchAttributeID, CUlaunchConfig};
                    let mut attrs: [CUlaunchAttribute; 2] = std::mem::zeroed();
                    let mut count = 0;
                    if self.meta.cluster > 1 {
                        let attr = &mut attrs[count];
                        attr.id = CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
                        attr.value.clusterDim.x = self.meta.cluster;
                        attr.value.clusterDim.y = 1;
                        attr.value.clusterDim.z = 1;
                        count += 1;
                    }
                    if overlap {
                        let attr = &mut attrs[count];
                        attr.id = CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
                        attr.value.programmaticStreamSerializationAllowed = 1;
                        count += 1;
                    }
                    let config = CUlaunchConfig {
                        gridDimX: grid[0],
                        gridDimY: grid[1],
                        gridDimZ: grid[2],
                        blockDimX: self.meta.threads,
                        blockDimY: 1,
                        blockDimZ: 1,
                        sharedMemBytes: self.meta.shared_bytes,
                        hStream: device.stream.cu_stream(),
                        attrs: attrs.as_mut_ptr(),
                        numAttrs: count as u32,
                    };
                    cudarc::driver::sys::cuLaunchKernelEx(&config, self.func.cu_function(), params, extra)
                }
            }
            .result()
            .map_err(RuntimeError::driver("launching"))
        };
        match &self.packed {
            Some((offsets, size)) => {
                // One buffer laid out as the kernel's parameters (little-endian values).
                let mut buffer = [0u8; 8 * MAX_ARGS];
                for ((p, &offset), slot) in self.params.iter().zip(offsets).zip(&slots) {
                    let n = param_size(p.kind);
                    buffer[offset..offset + n].copy_from_slice(&slot.to_le_bytes()[..n]);
                }
                let mut size = *size;
                let mut extra = [
                    LAUNCH_PARAM_BUFFER_POINTER,
                    buffer.as_mut_ptr().cast(),
                    LAUNCH_PARAM_BUFFER_SIZE,
                    (&mut size as *mut usize).cast(),
                    std::ptr::null_mut(),
                ];
                launch(std::ptr::null_mut(), extra.as_mut_ptr())?;
            }
            None => {
                let mut params = [std::ptr::null_mut::<c_void>(); MAX_ARGS];
                for (param, slot) in params.iter_mut().zip(slots.iter_mut()).take(args.len()) {
                    *param = (slot as *mut u64).cast();
                }
                launch(params.as_mut_ptr(), std::ptr::null_mut())?;
            }
        }
        drop(guards);
        Ok(())
    }
}
