//! Device buffers: typed views of device memory that move to and from the interpreter's [`Buffer`].

use std::mem::ManuallyDrop;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr};
use half::{bf16, f16};
use tritonite_lang::{Buffer, DType};

use crate::device::Device;
use crate::error::RuntimeError;
use crate::pool::Pool;

/// A buffer of `len` elements of `dtype` in device memory: its own allocation, or a view of memory
/// someone else owns (a framework's tensor, see [`DeviceBuffer::borrowed`]).
pub struct DeviceBuffer {
    pub(crate) data: Memory,
    dtype: DType,
    len: usize,
    address: u64,
}

/// Who frees a buffer's memory.
pub(crate) enum Memory {
    /// This buffer: freed on drop, in stream order.
    Owned(CudaSlice<u8>),
    /// This buffer, from the device's pool: given back to it on drop.
    Pooled(Pooled),
    /// Someone else; the buffer is a view.
    Borrowed,
}

impl Memory {
    /// The allocation, when this buffer has one.
    pub(crate) fn slice(&self) -> Option<&CudaSlice<u8>> {
        match self {
            Memory::Owned(s) => Some(s),
            Memory::Pooled(p) => p.slice.as_ref(),
            Memory::Borrowed => None,
        }
    }
}

/// An allocation of a device's [`Pool`], given back when dropped.
pub(crate) struct Pooled {
    slice: Option<CudaSlice<u8>>,
    pool: Arc<Pool>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(s) = self.slice.take() {
            self.pool.give(s);
        }
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({} x {})", self.len, self.dtype)
    }
}

fn bytes_of(b: &Buffer) -> Vec<u8> {
    match b {
        Buffer::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn from_bytes(dtype: DType, bytes: &[u8]) -> Buffer {
    match dtype {
        DType::F32 => {
            Buffer::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        }
        DType::F16 => {
            Buffer::F16(bytes.chunks_exact(2).map(|c| f16::from_le_bytes(c.try_into().expect("2 bytes"))).collect())
        }
        DType::BF16 => {
            Buffer::BF16(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes(c.try_into().expect("2 bytes"))).collect())
        }
        DType::I32 => {
            Buffer::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        }
        DType::I64 | DType::Bool => {
            Buffer::I64(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        }
    }
}

impl DeviceBuffer {
    /// Copies a host buffer to the device.
    pub fn upload(device: &Device, host: &Buffer) -> Result<DeviceBuffer, RuntimeError> {
        let bytes = bytes_of(host);
        let data = if bytes.is_empty() { device.stream.alloc_zeros::<u8>(1) } else { device.stream.clone_htod(&bytes) }
            .map_err(RuntimeError::driver("uploading a buffer"))?;
        let address = {
            let (address, _sync) = data.device_ptr(&device.stream);
            address
        };
        Ok(DeviceBuffer { data: Memory::Owned(data), dtype: host.dtype(), len: host.len(), address })
    }

    /// A zeroed buffer of its own allocation, outside the device's pool (freed to the driver on
    /// drop): scratch too large to keep, such as the benchmarks' L2 flush buffer.
    pub(crate) fn zeroed_unpooled(device: &Device, dtype: DType, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        let data = device
            .stream
            .alloc_zeros::<u8>((len * dtype.size_bytes()).max(1))
            .map_err(RuntimeError::driver("allocating a scratch buffer"))?;
        let address = data.device_ptr(&device.stream).0;
        Ok(DeviceBuffer { data: Memory::Owned(data), dtype, len, address })
    }

    /// A view of `len` elements of `dtype` at device address `address`, memory this buffer does
    /// not own and never frees (a framework tensor's storage, handed to a kernel).
    ///
    /// # Safety
    /// `address` must point to at least `len` elements of `dtype` in the device's context that stay
    /// allocated, and are not written by anyone else, until the work queued on them is done.
    pub unsafe fn borrowed(address: u64, dtype: DType, len: usize) -> DeviceBuffer {
        DeviceBuffer { data: Memory::Borrowed, dtype, len, address }
    }

    /// Hands this buffer's allocation over as a typed cudarc slice (a framework's tensor storage
    /// takes it, and frees it in the end). An error for borrowed memory, or when `T` is not
    /// this buffer's element size.
    pub fn into_cuda_slice<T: DeviceRepr>(self) -> Result<CudaSlice<T>, RuntimeError> {
        if std::mem::size_of::<T>() != self.dtype.size_bytes() {
            return Err(RuntimeError::Buffer(format!(
                "a {} buffer handed over as elements of {} bytes",
                self.dtype,
                std::mem::size_of::<T>()
            )));
        }
        let slice = match self.data {
            Memory::Owned(s) => s,
            // Out of the pool for good: the framework frees it.
            Memory::Pooled(mut p) => p.slice.take().expect("a pooled buffer holds its allocation until dropped"),
            Memory::Borrowed => {
                return Err(RuntimeError::Buffer("a borrowed buffer handed over as an owned allocation".into()))
            }
        };
        let stream = slice.stream().clone();
        let ptr = slice.leak();
        // SAFETY: `ptr` is the allocation `slice` owned (at least `len` elements of this size, in
        // `stream`'s context), and nothing else frees it now that `slice` leaked it.
        Ok(unsafe { stream.upgrade_device_ptr::<T>(ptr, self.len) })
    }

    /// Runs `f` on this buffer's memory as a cudarc slice of bytes (a temporary view for
    /// borrowed memory, never freed).
    fn with_slice<R>(&self, device: &Device, f: impl FnOnce(&CudaSlice<u8>) -> R) -> R {
        match self.data.slice() {
            Some(s) => f(s),
            None => {
                let bytes = (self.len * self.dtype.size_bytes()).max(1);
                // SAFETY: `borrowed`'s contract keeps the memory allocated; ManuallyDrop keeps
                // the view from freeing it.
                let view = ManuallyDrop::new(unsafe { device.stream.upgrade_device_ptr::<u8>(self.address, bytes) });
                f(&view)
            }
        }
    }

    /// A device buffer of `len` elements with unspecified contents, for outputs a launch writes
    /// whole: from the device's pool of freed allocations (no driver call) or a new stream-ordered
    /// allocation; no copy, no fill. Dropping it gives the memory back to the pool.
    pub fn uninit(device: &Device, dtype: DType, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        let bytes = (len * dtype.size_bytes()).max(1);
        let data = device.pool.take(&device.stream, bytes)?;
        let address = data.device_ptr(&device.stream).0;
        let pooled = Pooled { slice: Some(data), pool: device.pool.clone() };
        Ok(DeviceBuffer { data: Memory::Pooled(pooled), dtype, len, address })
    }

    /// A device buffer of `len` elements, every one `value` (NaN poisons outputs before a run).
    pub fn filled(device: &Device, dtype: DType, len: usize, value: f64) -> Result<DeviceBuffer, RuntimeError> {
        DeviceBuffer::upload(device, &Buffer::filled(dtype, len, value))
    }

    /// Copies the buffer back to the host.
    pub fn download(&self, device: &Device) -> Result<Buffer, RuntimeError> {
        if self.len == 0 {
            return Ok(Buffer::filled(self.dtype, 0, 0.0));
        }
        let bytes = self
            .with_slice(device, |s| device.stream.clone_dtoh(s))
            .map_err(RuntimeError::driver("downloading a buffer"))?;
        Ok(from_bytes(self.dtype, &bytes[..self.len * self.dtype.size_bytes()]))
    }

    /// Copies `src` into this buffer on the device (same dtype and length).
    pub fn copy_from(&mut self, device: &Device, src: &DeviceBuffer) -> Result<(), RuntimeError> {
        if src.dtype != self.dtype || src.len != self.len {
            return Err(RuntimeError::Buffer(format!(
                "copy of {} x {} into {} x {}",
                src.len, src.dtype, self.len, self.dtype
            )));
        }
        let bytes = self.len * self.dtype.size_bytes();
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: both buffers hold `bytes` bytes (same dtype and length), and the copy is queued on
        // the device's stream, in order with every launch that reads or writes them.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(self.address, src.address, bytes, device.stream.cu_stream())
        }
        .map_err(RuntimeError::driver("copying on the device"))
    }

    /// Element dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of element 0 (for alignment and overlap checks, and interop).
    pub fn address(&self) -> u64 {
        self.address
    }
}
