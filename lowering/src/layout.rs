//! Layouts: which thread of a program owns which elements of a block.
//!
//! A [`BlockedLayout`] follows Triton's blocked layout, restricted to 1-D blocks for now: each
//! thread owns `size_per_thread` contiguous elements (one 16-byte vector when the dtype allows),
//! threads of a warp and then warps tile the block, and the tile repeats until the block is covered.
//!
//! Block of 32 elements, `size_per_thread = 4`, 4 threads (the tile is 16 elements, repeated twice):
//!
//! ```text
//! element: 0  1  2  3 | 4  5  6  7 | 8  9 10 11 |12 13 14 15 |16 17 18 19 | …  |28 29 30 31
//! thread:  t0 t0 t0 t0| t1 t1 t1 t1| t2 t2 t2 t2| t3 t3 t3 t3| t0 t0 t0 t0| …  | t3 t3 t3 t3
//! ```
//!
//! When the block is smaller than one tile of all threads, the extra threads hold copies
//! ("replicas") of the elements of thread `t mod threads_used`; they neither store nor count twice
//! in reductions.

/// Threads per warp on NVIDIA GPUs.
pub const WARP_SIZE: usize = 32;

/// The distribution of a 1-D block over the threads of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockedLayout {
    /// Block length (a power of two).
    pub shape: usize,
    /// Contiguous elements each thread owns per repetition.
    pub size_per_thread: usize,
    /// Threads per warp (32).
    pub threads_per_warp: usize,
    /// Warps per program.
    pub warps_per_cta: usize,
}

impl BlockedLayout {
    /// The layout of a block of `shape` elements over `num_warps` warps with vectors of `vec`
    /// elements (both powers of two).
    pub fn new(shape: usize, num_warps: usize, vec: usize) -> BlockedLayout {
        BlockedLayout {
            shape,
            size_per_thread: vec.min(shape).max(1),
            threads_per_warp: WARP_SIZE,
            warps_per_cta: num_warps,
        }
    }

    /// Threads in the program.
    pub fn num_threads(&self) -> usize {
        self.threads_per_warp * self.warps_per_cta
    }

    /// Threads that own distinct elements; the others are replicas.
    pub fn threads_used(&self) -> usize {
        self.num_threads().min(self.shape / self.size_per_thread)
    }

    /// How many times the tile of all used threads repeats over the block.
    pub fn repetitions(&self) -> usize {
        self.shape / (self.size_per_thread * self.threads_used())
    }

    /// Elements each thread holds (its registers for this block).
    pub fn elems_per_thread(&self) -> usize {
        self.size_per_thread * self.repetitions()
    }

    /// True when some threads only hold copies.
    pub fn has_replicas(&self) -> bool {
        self.threads_used() < self.num_threads()
    }

    /// The block index of a thread's `e`-th element, for the owning thread `u < threads_used()`.
    pub fn global_index(&self, u: usize, e: usize) -> usize {
        let spt = self.size_per_thread;
        (e / spt) * spt * self.threads_used() + u * spt + e % spt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_has_exactly_one_owner() {
        for shape in [1, 2, 16, 64, 256, 1024, 4096] {
            for warps in [1, 2, 4, 8] {
                for vec in [1, 2, 4, 8] {
                    let l = BlockedLayout::new(shape, warps, vec);
                    let mut seen = vec![0; shape];
                    for u in 0..l.threads_used() {
                        for e in 0..l.elems_per_thread() {
                            seen[l.global_index(u, e)] += 1;
                        }
                    }
                    assert!(seen.iter().all(|&c| c == 1), "{l:?}");
                }
            }
        }
    }
}
