//! A caching allocator for output buffers: freed allocations are kept by size class and handed out
//! again, so a small kernel call costs no driver call for its outputs (what PyTorch's caching
//! allocator does for torch kernels).
//!
//! Reuse is safe because a device's work is queued on its one stream: a buffer dropped on the host
//! after its last launch was queued is reused only by work queued later on the same stream.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::error::RuntimeError;

/// At most this many bytes of freed allocations are kept; beyond it they go back to the driver.
pub(crate) const POOL_LIMIT_BYTES: usize = 256 << 20;

/// The size class of a request of `bytes`: the next power of two (at least 512 bytes) up to 1 MiB,
/// then the next multiple of 2 MiB, so at most 2 MiB of a large allocation is unused.
fn size_class(bytes: usize) -> usize {
    const SMALL: usize = 1 << 20;
    const GRANULE: usize = 2 << 20;
    if bytes <= SMALL {
        bytes.max(512).next_power_of_two()
    } else {
        bytes.div_ceil(GRANULE) * GRANULE
    }
}

/// Freed allocations of one stream, by size class.
#[derive(Default)]
pub(crate) struct Pool {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Ordered, not hashed: a few size classes, looked up twice per call of a small kernel.
    free: BTreeMap<usize, Vec<CudaSlice<u8>>>,
    cached_bytes: usize,
}

impl Pool {
    /// An allocation of at least `bytes` bytes on `stream`: a cached one of the same size class,
    /// else a new stream-ordered allocation of the class's size.
    pub(crate) fn take(
        &self,
        stream: &std::sync::Arc<CudaStream>,
        bytes: usize,
    ) -> Result<CudaSlice<u8>, RuntimeError> {
        let class = size_class(bytes);
        {
            let mut s = self.state.lock().expect("pool lock");
            if let Some(slice) = s.free.get_mut(&class).and_then(Vec::pop) {
                s.cached_bytes -= class;
                return Ok(slice);
            }
        }
        // SAFETY: `u8` has no invalid bit patterns; outputs are written by a launch before they are
        // read (and a download of unwritten bytes still reads valid bytes).
        unsafe { stream.alloc::<u8>(class) }.map_err(RuntimeError::driver("allocating a buffer"))
    }

    /// Keeps `slice` (an allocation [`Pool::take`] made) for reuse, or frees it when the pool is
    /// full.
    pub(crate) fn give(&self, slice: CudaSlice<u8>) {
        let class = slice.len();
        let mut s = self.state.lock().expect("pool lock");
        if s.cached_bytes + class <= POOL_LIMIT_BYTES {
            s.cached_bytes += class;
            s.free.entry(class).or_default().push(slice);
        } else {
            drop(s);
            drop(slice);
        }
    }

    /// Frees every cached allocation (in stream order); returns how many bytes were cached.
    pub(crate) fn trim(&self) -> usize {
        let mut s = self.state.lock().expect("pool lock");
        let bytes = s.cached_bytes;
        s.free.clear();
        s.cached_bytes = 0;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_and_waste_little() {
        for bytes in [1, 511, 512, 513, 4000, 1 << 20, (1 << 20) + 1, 3 << 20, 1_000_000_007] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c - bytes < (2 << 20).max(bytes), "{bytes} -> {c}");
        }
        assert_eq!(size_class(4000), 4096);
        assert_eq!(size_class(3 << 20), 4 << 20);
        assert_eq!(size_class((4 << 20) + 1), 6 << 20);
    }
}
