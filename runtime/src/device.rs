//! Opening a GPU.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};

use crate::error::RuntimeError;
use crate::pool::Pool;

/// One GPU and the stream work is queued on.
#[derive(Clone)]
pub struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// Freed output allocations of this stream, for reuse (shared by clones).
    pub(crate) pool: Arc<Pool>,
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
        Ok(Device { ctx, stream, pool: Arc::default(), ordinal })
    }

    /// Work on `stream`, a stream of a context someone else made (a framework's, e.g. candle's
    /// device stream): launches and allocations queue on it, in order with the framework's own
    /// work. The context's settings (event tracking) are left as they are.
    pub fn from_stream(stream: Arc<CudaStream>) -> Device {
        let ctx = stream.context().clone();
        let ordinal = ctx.ordinal();
        Device { ctx, stream, pool: Arc::default(), ordinal }
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
    /// Timed as `triton.testing.do_bench` times: before each run, a 256 MiB buffer is zeroed, which
    /// flushes the L2 and keeps the GPU busy while the host queues the start event, the run and
    /// the end event, so a run's time is the GPU's alone and never includes the host's launch
    /// latency. One synchronization at the end.
    pub fn time_ms<E: From<RuntimeError>>(
        &self,
        warmup: usize,
        reps: usize,
        mut work: impl FnMut() -> Result<(), E>,
    ) -> Result<Vec<f32>, E> {
        use cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
        const FLUSH_BYTES: usize = 256 << 20;
        let mut flush = self
            .stream
            .alloc_zeros::<u8>(FLUSH_BYTES)
            .map_err(RuntimeError::driver("allocating the L2 flush buffer"))?;
        let mut flush_l2 = || self.stream.memset_zeros(&mut flush).map_err(RuntimeError::driver("flushing the L2"));
        for _ in 0..warmup {
            flush_l2()?;
            work()?;
        }
        let mut events = Vec::with_capacity(reps);
        for _ in 0..reps {
            flush_l2()?;
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
