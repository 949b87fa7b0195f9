//! Opening a GPU.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaStream};

use crate::error::RuntimeError;
use crate::launch::GpuKernel;
use crate::pool::Pool;

/// One GPU and the stream work is queued on.
#[derive(Clone)]
pub struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// Freed output allocations of this stream, for reuse (shared by clones).
    pub(crate) pool: Arc<Pool>,
    /// The L2 flush kernel of [`Device::time_ms`], loaded at its first use (shared by clones).
    flush_kernel: Arc<OnceLock<GpuKernel>>,
    ordinal: usize,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.ordinal)
    }
}

impl Device {
    /// Opens GPU `ordinal`. Without a driver or a GPU this is an error, never a panic.
    pub fn open(ordinal: usize) -> Result<Device, RuntimeError> {
        if !driver_present() {
            return Err(RuntimeError::NoDriver);
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| RuntimeError::NoDevice { ordinal, reason: e.to_string() })?;
        // SAFETY: all work of a `Device` is queued on its one stream, so stream order alone keeps
        // every use of a buffer after its allocation and before its free. Without per-buffer
        // events, an allocation is one driver call and a launch records nothing.
        unsafe { ctx.disable_event_tracking() };
        // A non-blocking stream of our own: launches do not order with the legacy default stream.
        let stream = ctx.new_stream().map_err(RuntimeError::driver("creating a stream"))?;
        keep_freed_memory(&ctx)?;
        Ok(Device { ctx, stream, pool: Arc::default(), flush_kernel: Arc::default(), ordinal })
    }

    /// Work on `stream`, a stream of a context someone else made (a framework's, e.g. candle's
    /// device stream): launches and allocations queue on it, in order with the framework's own
    /// work. The context's settings (event tracking) are left as they are.
    pub fn from_stream(stream: Arc<CudaStream>) -> Device {
        let ctx = stream.context().clone();
        let ordinal = ctx.ordinal();
        Device { ctx, stream, pool: Arc::default(), flush_kernel: Arc::default(), ordinal }
    }

    /// Frees the output allocations this device keeps for reuse (at most 256 MiB; see
    /// [`DeviceBuffer::uninit`](crate::DeviceBuffer::uninit)), e.g. before a framework needs the
    /// memory. Returns how many bytes were kept.
    pub fn trim_pool(&self) -> usize {
        self.pool.trim()
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> Result<String, RuntimeError> {
        self.ctx.name().map_err(RuntimeError::driver("reading the device name"))
    }

    /// Compute capability `(major, minor)`.
    pub fn compute_capability(&self) -> Result<(i32, i32), RuntimeError> {
        self.ctx.compute_capability().map_err(RuntimeError::driver("reading the compute capability"))
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> Result<u32, RuntimeError> {
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
        self.ctx
            .attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map(|v| v as u32)
            .map_err(RuntimeError::driver("reading the SM count"))
    }

    /// The CUDA version the driver supports, e.g. `13.0`.
    pub fn driver_version(&self) -> Result<String, RuntimeError> {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: libcuda is loaded (a context exists) and `v` outlives the call.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }
            .result()
            .map_err(RuntimeError::driver("reading the driver version"))?;
        Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<(), RuntimeError> {
        self.stream.synchronize().map_err(RuntimeError::driver("synchronizing"))
    }

    /// Times `work` with CUDA events (created with timing): `warmup` untimed runs, then `reps`
    /// timed runs; returns each run's milliseconds. `work`'s errors pass through unchanged.
    ///
    /// Timed as `triton.testing.do_bench` times: before each run, a kernel writes zeros over a
    /// 256 MiB buffer (as `do_bench`'s `cache.zero_()` does, see `L2_FLUSH_PTX`), which flushes
    /// the L2 and keeps the GPU busy while the host queues the start event, the run and the end
    /// event, so a run's time is the GPU's alone and never includes the host's launch latency.
    /// One synchronization at the end.
    pub fn time_ms<E: From<RuntimeError>>(
        &self,
        warmup: usize,
        reps: usize,
        mut work: impl FnMut() -> Result<(), E>,
    ) -> Result<Vec<f32>, E> {
        use cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
        let flush = L2Flush::new(self)?;
        for _ in 0..warmup {
            flush.run(self)?;
            work()?;
        }
        let mut events = Vec::with_capacity(reps);
        for _ in 0..reps {
            flush.run(self)?;
            let start =
                self.stream.record_event(Some(CU_EVENT_DEFAULT)).map_err(RuntimeError::driver("recording an event"))?;
            work()?;
            let end =
                self.stream.record_event(Some(CU_EVENT_DEFAULT)).map_err(RuntimeError::driver("recording an event"))?;
            events.push((start, end));
        }
        self.synchronize()?;
        let times = events
            .iter()
            .map(|(start, end)| start.elapsed_ms(end).map_err(RuntimeError::driver("reading an event")))
            .collect::<Result<Vec<f32>, RuntimeError>>()?;
        Ok(times)
    }
}

/// Threads a program of the L2 flush kernel.
const FLUSH_THREADS: u32 = 256;

/// 16-byte stores a thread of the L2 flush kernel makes (at a stride of the grid).
const FLUSH_STORES: u32 = 4;

/// The L2 flush's kernel: thread `t` of a grid of `g` threads writes zeros to the 16-byte words
/// `t, t + g, …` of `buf` below `words`, as PyTorch's vectorized fill kernel does for `zero_()`
/// (the flush of `do_bench`, which the peers are timed with). It replaced a driver memset
/// (`cuMemsetD8Async`); on the H100 the RMSNorm benchmark measured the same after either within
/// 0.3% on 13 of its 14 shapes, and the backward of 1024 × 262144 646 µs after the memset, 658
/// after the kernel.
const L2_FLUSH_PTX: &str = r#"
.version 7.0
.target sm_70
.address_size 64
.visible .entry tritonite_l2_flush(.param .u64 buf, .param .u32 words)
{
    .reg .pred %p;
    .reg .b32 %r<9>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [buf];
    cvta.to.global.u64 %rd1, %rd1;
    ld.param.u32 %r1, [words];
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    mov.u32 %r6, %nctaid.x;
    mul.lo.s32 %r7, %r6, %r3;
    mov.u32 %r8, 0;
next:
    setp.ge.u32 %p, %r5, %r1;
    @%p bra done;
    mul.wide.u32 %rd2, %r5, 16;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.u32 [%rd3], {%r8, %r8, %r8, %r8};
    add.s32 %r5, %r5, %r7;
    bra next;
done:
    ret;
}
"#;

/// A 256 MiB buffer (of one `time_ms` call, freed after it) and the device's kernel that
/// overwrites it, to flush the L2 between timed runs.
struct L2Flush<'d> {
    kernel: &'d GpuKernel,
    buf: crate::buffer::DeviceBuffer,
}

impl<'d> L2Flush<'d> {
    const BYTES: usize = 256 << 20;

    fn new(device: &'d Device) -> Result<L2Flush<'d>, RuntimeError> {
        use tritonite_lang::ir::{Param, ParamKind};
        use tritonite_lang::DType;
        let kernel = match device.flush_kernel.get() {
            Some(k) => k,
            None => {
                let params = vec![
                    Param { name: "buf".into(), kind: ParamKind::MutPtr(DType::I32) },
                    Param { name: "words".into(), kind: ParamKind::Scalar(DType::I32) },
                ];
                let meta = crate::launch::KernelMeta {
                    threads: FLUSH_THREADS,
                    cluster: 1,
                    shared_bytes: 0,
                    waits_for_previous: false,
                };
                let k = GpuKernel::load(device, L2_FLUSH_PTX, None, "tritonite_l2_flush", params, meta)?;
                device.flush_kernel.get_or_init(|| k)
            }
        };
        let buf = crate::buffer::DeviceBuffer::zeroed_unpooled(device, DType::I32, Self::BYTES / 4)?;
        Ok(L2Flush { kernel, buf })
    }

    fn run(&self, device: &Device) -> Result<(), RuntimeError> {
        use crate::launch::KernelArg;
        let words = (Self::BYTES / 16) as u32;
        let programs = words.div_ceil(FLUSH_THREADS * FLUSH_STORES);
        self.kernel.launch(device, [programs, 1, 1], &[KernelArg::Buffer(&self.buf, 0), KernelArg::I32(words as i32)])
    }
}

/// Lets the device's default memory pool (which stream-ordered allocations come from) keep what
/// is freed instead of unmapping it at every synchronization: without this, each allocation too
/// large for our own pool maps fresh memory, which costs as much as the kernel at large shapes.
/// Memory freed into it stays available to every stream-ordered allocation of the process, as in
/// PyTorch's caching allocator.
fn keep_freed_memory(ctx: &CudaContext) -> Result<(), RuntimeError> {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: the context is current (it was just created on this thread) and `pool`/`threshold`
    // outlive the calls, which only read `threshold` and write `pool`.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .map_err(RuntimeError::driver("finding the default memory pool"))?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .result()
        .map_err(RuntimeError::driver("setting the memory pool's release threshold"))
    }
}

/// Whether the CUDA driver library can be loaded (it may also be linked in already, when a
/// framework such as candle links it): probed without cudarc, which panics when it is absent.
fn driver_present() -> bool {
    const NAMES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];
    // SAFETY: loading libcuda runs no initialisers that depend on this process's state.
    NAMES.iter().any(|name| unsafe { libloading::Library::new(*name) }.is_ok())
}
