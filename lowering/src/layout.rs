//! Layouts: which thread of a program owns which elements of a block.
//!
//! A [`BlockedLayout`] follows Triton's blocked layout for blocks of rank 1 and 2. Every block is
//! seen as 2-D (`[1, n]` for a 1-D block); along each dimension `d` a thread owns runs of
//! `size_per_thread[d]` contiguous elements, the threads of a warp then the warps of the program
//! tile the block (columns fastest), and the tile repeats until the block is covered. Each thread
//! keeps its elements as one vector, rows outer and columns inner.
//!
//! 1-D block of 32 elements, `size_per_thread = [1, 4]`, 4 threads along the columns (the tile is
//! 16 elements, repeated twice):
//!
//! ```text
//! element: 0  1  2  3 | 4  5  6  7 | 8  9 10 11 |12 13 14 15 |16 17 18 19 | …  |28 29 30 31
//! thread:  t0 t0 t0 t0| t1 t1 t1 t1| t2 t2 t2 t2| t3 t3 t3 t3| t0 t0 t0 t0| …  | t3 t3 t3 t3
//! ```
//!
//! When a dimension is shorter than the threads along it, the extra threads hold copies
//! ("replicas") of the elements of thread `t mod used`; they neither store nor count twice in
//! reductions.
//!
//! [`assign`] gives every block value of a kernel its layout. A kernel with 2-D blocks has one
//! parameter set for them (chosen from its largest 2-D block); a 1-D block that meets 2-D blocks
//! (through `expand_dims`, a reduction, or arithmetic with such values) is laid out as the rows
//! (`[n, 1]`) or the columns (`[1, n]`) of that parameter set — Triton's slice layouts — so that
//! `expand_dims` costs nothing and a row reduction's result lines up with the rows it came from.

use std::collections::HashMap;

use tritonite_lang::ir::{walk_ops, Kernel, OpKind, Region, ValueId};

use crate::error::LowerError;

/// Threads per warp on NVIDIA GPUs.
pub const WARP_SIZE: usize = 32;

/// The distribution of a block (seen as 2-D) over the threads of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockedLayout {
    /// Block shape `[rows, cols]` (powers of two).
    pub shape: [usize; 2],
    /// Contiguous elements each thread owns per repetition, per dimension.
    pub size_per_thread: [usize; 2],
    /// Threads of a warp along each dimension (product 32).
    pub threads_per_warp: [usize; 2],
    /// Warps along each dimension (product: warps per program).
    pub warps_per_cta: [usize; 2],
}

impl BlockedLayout {
    /// The layout of a 1-D block of `n` elements over `num_warps` warps with vectors of `vec`
    /// elements (all powers of two).
    pub fn new(n: usize, num_warps: usize, vec: usize) -> BlockedLayout {
        BlockedLayout {
            shape: [1, n],
            size_per_thread: [1, vec],
            threads_per_warp: [1, WARP_SIZE],
            warps_per_cta: [1, num_warps],
        }
        .with_shape([1, n])
    }

    /// The default layout of a 2-D block `[rows, cols]`: vectors of `vec` along the columns,
    /// lanes along the columns as far as they go and the rest along the rows, then warps the
    /// same way (after Triton's default blocked encoding).
    pub fn new_2d(shape: [usize; 2], num_warps: usize, vec: usize) -> BlockedLayout {
        let spt = vec.min(shape[1]).max(1);
        let tpw_c = (shape[1] / spt).clamp(1, WARP_SIZE);
        let wpc_c = (shape[1] / (spt * tpw_c)).clamp(1, num_warps);
        BlockedLayout {
            shape,
            size_per_thread: [1, spt],
            threads_per_warp: [WARP_SIZE / tpw_c, tpw_c],
            warps_per_cta: [num_warps / wpc_c, wpc_c],
        }
    }

    /// The layout of a kernel whose 2-D blocks meet `dot`, from the shape `[m, n]` of the dot's
    /// result: 8 × 4 lanes per warp and rows one per thread, so that every thread's elements pair
    /// up into the accumulator fragments of `mma.sync.m16n8k16` (rows `g` and `g + 8` of a tile,
    /// columns `2q` and `2q + 1`, for lane `4g + q`); vectors of up to `vec` along the columns for
    /// the loads around it. Which rows and columns a fragment stands for is free: the dot places
    /// its operands in shared memory to match. Warps split `m` and `n` (in steps of 16 and 8) so
    /// that each warp's tile stays near square (Triton's choice). `None` when `m` is no multiple
    /// of 16 or `n` of 8 for the warps.
    pub fn for_dot(shape: [usize; 2], num_warps: usize, vec: usize) -> Option<BlockedLayout> {
        let [m, n] = shape;
        let mut w = [1usize, 1];
        while w[0] * w[1] < num_warps {
            let rows_split = m % (32 * w[0]) == 0;
            let cols_split = n % (16 * w[1]) == 0;
            match (rows_split, cols_split) {
                (true, true) if m / (16 * w[0]) >= n / (8 * w[1]) => w[0] *= 2,
                (_, true) => w[1] *= 2,
                (true, false) => w[0] *= 2,
                (false, false) => return None,
            }
        }
        if m % (16 * w[0]) != 0 || n % (8 * w[1]) != 0 {
            return None;
        }
        Some(BlockedLayout {
            shape,
            size_per_thread: [1, vec.min(n / (4 * w[1])).max(1)],
            threads_per_warp: [8, 4],
            warps_per_cta: w,
        })
    }

    /// The same distribution applied to a block of another shape (vectors shrink to fit).
    pub fn with_shape(self, shape: [usize; 2]) -> BlockedLayout {
        let mut l = self;
        l.shape = shape;
        for (spt, n) in l.size_per_thread.iter_mut().zip(shape) {
            *spt = (*spt).min(n).max(1);
        }
        l
    }

    /// Threads in the program.
    pub fn num_threads(&self) -> usize {
        self.threads(0) * self.threads(1)
    }

    /// Threads along dimension `d`.
    pub fn threads(&self, d: usize) -> usize {
        self.threads_per_warp[d] * self.warps_per_cta[d]
    }

    /// Threads along `d` that own distinct elements; the others are replicas.
    pub fn used(&self, d: usize) -> usize {
        self.threads(d).min(self.shape[d] / self.size_per_thread[d])
    }

    /// True when some threads along `d` only hold copies.
    pub fn has_replicas(&self, d: usize) -> bool {
        self.used(d) < self.threads(d)
    }

    /// Elements a thread holds along `d`.
    pub fn elems(&self, d: usize) -> usize {
        self.shape[d] / self.used(d)
    }

    /// Elements each thread holds (its registers for this block).
    pub fn elems_per_thread(&self) -> usize {
        self.elems(0) * self.elems(1)
    }

    /// The index along `d` of a thread's `e`-th element along `d`, for the owner `u < used(d)`.
    pub fn global_index(&self, d: usize, u: usize, e: usize) -> usize {
        let spt = self.size_per_thread[d];
        (e / spt) * spt * self.used(d) + u * spt + e % spt
    }

    /// The position in the thread's vector of its element `(e0, e1)`.
    pub fn flat(&self, e0: usize, e1: usize) -> usize {
        e0 * self.elems(1) + e1
    }
}

/// What a 1-D block is to the kernel's 2-D blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Lives along the rows of the 2-D blocks (`[n, 1]`).
    Rows,
    /// Lives along the columns of the 2-D blocks (`[1, n]`).
    Cols,
}

/// The layout of every block value of one kernel.
#[derive(Clone, Debug)]
pub struct Layouts {
    of: HashMap<ValueId, BlockedLayout>,
}

impl Layouts {
    /// The layout of block `v` (`None` for scalars).
    pub fn get(&self, v: ValueId) -> Option<BlockedLayout> {
        self.of.get(&v).copied()
    }
}

/// Union-find over values, with a role per class.
struct Classes {
    parent: HashMap<ValueId, ValueId>,
    role: HashMap<ValueId, Role>,
    conflict: Option<ValueId>,
}

impl Classes {
    fn find(&mut self, v: ValueId) -> ValueId {
        let p = *self.parent.get(&v).unwrap_or(&v);
        if p == v {
            return v;
        }
        let root = self.find(p);
        self.parent.insert(v, root);
        root
    }

    fn set_role(&mut self, v: ValueId, role: Role) {
        let r = self.find(v);
        match self.role.get(&r) {
            Some(&old) if old != role => self.conflict = self.conflict.or(Some(v)),
            _ => {
                self.role.insert(r, role);
            }
        }
    }

    fn union(&mut self, a: ValueId, b: ValueId) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        self.parent.insert(rb, ra);
        if let Some(role) = self.role.remove(&rb) {
            self.set_role(ra, role);
        }
    }
}

/// Gives every block value of `k` its layout for `num_warps` warps and `vec`-element vectors.
pub fn assign(k: &Kernel, num_warps: usize, vec: usize) -> Result<Layouts, LowerError> {
    let rank = |v: ValueId| k.ty(v).shape.len();
    let mut cls = Classes { parent: HashMap::new(), role: HashMap::new(), conflict: None };
    let mut largest: Option<[usize; 2]> = None;
    let mut err = None;
    walk_ops(&k.body, &mut |op| {
        let r = op.results.first().copied();
        if let Some(r) = r {
            let s = &k.ty(r).shape;
            if s.len() > 2 && err.is_none() {
                err = Some(LowerError::Unsupported {
                    kernel: k.name.clone(),
                    what: format!("{r}: {}: blocks of rank {} (the GPU lowering handles ranks 0–2)", k.ty(r), s.len()),
                });
            }
            if s.len() == 2 && largest.is_none_or(|l| s[0] * s[1] > l[0] * l[1]) {
                largest = Some([s[0], s[1]]);
            }
        }
        // Elementwise operands share the result's layout.
        let same: Vec<ValueId> = match &op.kind {
            OpKind::Binary(..)
            | OpKind::Cmp(..)
            | OpKind::AddPtr(..)
            | OpKind::Unary(..)
            | OpKind::Cast(..)
            | OpKind::Broadcast(..)
            | OpKind::ClusterReduce(..)
            | OpKind::Select(..)
            | OpKind::Load { .. }
            | OpKind::Store { .. } => op.kind.operands(),
            _ => vec![],
        };
        let anchor = r.or(same.first().copied());
        for v in same {
            if let Some(a) = anchor {
                if rank(v) > 0 && rank(a) == rank(v) {
                    cls.union(a, v);
                }
            }
        }
        match &op.kind {
            OpKind::ExpandDims(v, axis) if rank(*v) == 1 => {
                cls.set_role(*v, if *axis == 0 { Role::Cols } else { Role::Rows })
            }
            OpKind::Reduce(_, v, axis) if rank(*v) == 2 => {
                let r = r.expect("reductions have a result");
                cls.set_role(r, if *axis == 0 { Role::Cols } else { Role::Rows })
            }
            OpKind::For { init, body, .. } => {
                let yields = match body.ops.last().map(|o| &o.kind) {
                    Some(OpKind::Yield(vs)) => vs.clone(),
                    _ => vec![],
                };
                for (i, v) in init.iter().enumerate() {
                    if rank(*v) > 0 {
                        cls.union(*v, body.args[i + 1]);
                        cls.union(*v, op.results[i]);
                        if let Some(y) = yields.get(i) {
                            cls.union(*v, *y);
                        }
                    }
                }
            }
            OpKind::While { init, cond, body } => {
                let yields = match body.ops.last().map(|o| &o.kind) {
                    Some(OpKind::Yield(vs)) => vs.clone(),
                    _ => vec![],
                };
                for (i, v) in init.iter().enumerate() {
                    if rank(*v) > 0 {
                        for w in [cond.args[i], body.args[i], op.results[i]].into_iter().chain(yields.get(i).copied()) {
                            cls.union(*v, w);
                        }
                    }
                }
            }
            _ => {}
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(v) = cls.conflict {
        return Err(LowerError::Unsupported {
            kernel: k.name.clone(),
            what: format!(
                "{v}: {} is used both as rows and as columns of 2-D blocks (needs a layout conversion)",
                k.ty(v)
            ),
        });
    }
    // A dot's accumulator decides the distribution of every 2-D block.
    let mut dot_shape = None;
    walk_ops(&k.body, &mut |op| {
        if let (OpKind::Dot { .. }, Some(r)) = (&op.kind, op.results.first()) {
            let s = &k.ty(*r).shape;
            dot_shape.get_or_insert([s[0], s[1]]);
        }
    });
    let params = match dot_shape {
        Some(s) => Some(BlockedLayout::for_dot(s, num_warps, vec).ok_or_else(|| LowerError::Unsupported {
            kernel: k.name.clone(),
            what: format!(
                "a dot result of {s:?} over {num_warps} warps (rows must be a multiple of 16 and columns of 8 \
                 per warp; use bigger blocks or fewer warps)"
            ),
        })?),
        None => largest.map(|s| BlockedLayout::new_2d(s, num_warps, vec)),
    };
    let mut of = HashMap::new();
    let mut place = |v: ValueId, cls: &mut Classes| {
        let s = &k.ty(v).shape;
        let layout = match (s.len(), params) {
            (0, _) => return,
            (2, Some(p)) => p.with_shape([s[0], s[1]]),
            (1, p) => {
                let root = cls.find(v);
                match (cls.role.get(&root), p) {
                    (Some(Role::Rows), Some(p)) => p.with_shape([s[0], 1]),
                    (Some(Role::Cols), Some(p)) => p.with_shape([1, s[0]]),
                    _ => BlockedLayout::new(s[0], num_warps, vec),
                }
            }
            _ => unreachable!("ranks above 2 are rejected above"),
        };
        of.insert(v, layout);
    };
    place_region(&k.body, &mut |v| place(v, &mut cls));
    Ok(Layouts { of })
}

/// Calls `f` on every value a region defines (results and block arguments, nested).
fn place_region(r: &Region, f: &mut impl FnMut(ValueId)) {
    for a in &r.args {
        f(*a);
    }
    for op in &r.ops {
        for v in &op.results {
            f(*v);
        }
        for r in op.kind.regions() {
            place_region(r, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_owners(l: &BlockedLayout) {
        let mut seen = vec![0; l.shape[0] * l.shape[1]];
        for u0 in 0..l.used(0) {
            for u1 in 0..l.used(1) {
                for e0 in 0..l.elems(0) {
                    for e1 in 0..l.elems(1) {
                        let (g0, g1) = (l.global_index(0, u0, e0), l.global_index(1, u1, e1));
                        seen[g0 * l.shape[1] + g1] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{l:?}");
    }

    #[test]
    fn every_element_has_exactly_one_owner() {
        for n in [1, 2, 16, 64, 256, 1024, 4096] {
            for warps in [1, 2, 4, 8] {
                for vec in [1, 2, 4, 8] {
                    check_owners(&BlockedLayout::new(n, warps, vec));
                    for rows in [1, 2, 4, 16, 64] {
                        let l = BlockedLayout::new_2d([rows, n], warps, vec);
                        assert_eq!(l.threads_per_warp[0] * l.threads_per_warp[1], WARP_SIZE);
                        assert_eq!(l.warps_per_cta[0] * l.warps_per_cta[1], warps);
                        check_owners(&l);
                        check_owners(&l.with_shape([rows, 1]));
                        check_owners(&l.with_shape([1, n]));
                    }
                }
            }
        }
    }

    #[test]
    fn dot_layouts_pair_into_mma_fragments() {
        for (shape, warps) in
            [([16, 8], 1), ([16, 32], 4), ([64, 64], 4), ([128, 128], 8), ([128, 256], 8), ([16, 128], 4)]
        {
            let l = BlockedLayout::for_dot(shape, warps, 8).expect("a valid dot layout");
            check_owners(&l);
            assert_eq!(l.warps_per_cta[0] * l.warps_per_cta[1], warps);
            assert!(!l.has_replicas(0) && !l.has_replicas(1), "{l:?}");
            assert!(l.elems(0).is_multiple_of(2) && l.elems(1).is_multiple_of(2), "{l:?}");
        }
        assert_eq!(BlockedLayout::for_dot([128, 128], 4, 8).unwrap().warps_per_cta, [2, 2]);
        assert!(BlockedLayout::for_dot([8, 64], 1, 8).is_none());
        assert!(BlockedLayout::for_dot([16, 8], 4, 8).is_none());
    }

    #[test]
    fn rows_of_a_wide_block_go_to_warps() {
        // [4, 256] bf16 over 4 warps: a warp per row, 8 contiguous elements per thread.
        let l = BlockedLayout::new_2d([4, 256], 4, 8);
        assert_eq!(l.threads_per_warp, [1, 32]);
        assert_eq!(l.warps_per_cta, [4, 1]);
        assert_eq!((l.elems(0), l.elems(1)), (1, 8));
    }
}
