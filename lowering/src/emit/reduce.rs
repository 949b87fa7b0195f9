//! Reductions along one dimension of a block, as a recipe of named steps (after Triton's
//! ReduceOpToLLVM): reduce within the thread → reduce within the warp (butterfly shuffles over the
//! lanes along that dimension) → store each warp's partials to shared memory → barrier → every
//! thread combines the warps' partials. The result keeps the other dimension's distribution, so a
//! row reduction of a 2-D block comes out laid out as that block's rows.
//!
//! Cluster reductions combine a value across the programs (CTAs) of a cluster through distributed
//! shared memory: each program stores its value to its shared memory → cluster barrier → every
//! thread reads each program's copy (`mapa` + `ld.shared::cluster`) and combines them in rank
//! order → arrives at the next cluster barrier without waiting. It waits at the next cluster
//! reduction, before its store, or at the kernel's end: no program overwrites or leaves its buffer
//! while another may still read it, and none waits for the slowest reader before going on. A
//! kernel with cluster reductions arrives once at its start, so arrivals and waits alternate.

use tritonite_lang::ir::{ReduceOp, ValueId};
use tritonite_lang::DType;

use super::{mlir_type, Emitter};
use crate::error::LowerError;
use crate::layout::BlockedLayout;

impl Emitter<'_> {
    /// Reduces `axis` of block `v`: a scalar for a 1-D block, this thread's vector of the result
    /// for a 2-D one.
    pub(crate) fn reduce(&mut self, op: ReduceOp, v: ValueId, axis: usize) -> Result<String, LowerError> {
        let d = self.ty(v).dtype().expect("reductions take numbers");
        if !(d.is_float() || d == DType::I32) {
            return Err(LowerError::Unsupported {
                kernel: self.k.name.clone(),
                what: format!("reduction of {d} blocks (f16, bf16, f32 and i32 are lowered)"),
            });
        }
        let l = self.layout(v);
        // A 1-D block reduces along the dimension it runs along.
        let dim = if self.ty(v).shape.len() == 2 { axis } else { Self::long_dim(&l) };
        let keep = 1 - dim;
        let src = self.num(v);
        let t = mlir_type(d);
        let n = l.elems_per_thread();
        // Cross-thread steps run in f32 (or i32): 16-bit floats widen once, after step 1.
        let at = if d.is_float() { DType::F32 } else { d };
        let mut partials = vec![];
        for k in 0..l.elems(keep) {
            let items: Vec<String> = (0..l.elems(dim))
                .map(|j| {
                    let e = if dim == 1 { l.flat(k, j) } else { l.flat(j, k) };
                    self.assign(&format!("vector.extract {src}[{e}] : {t} from vector<{n}x{t}>"))
                })
                .collect();
            let p = self.tree(op, d, items);
            partials.push(if at != d { self.assign(&format!("arith.extf {p} : {t} to f32")) } else { p });
        }
        if l.has_replicas(dim) {
            partials = self.mask_replicas(op, at, partials, &l, dim);
        }
        // Replicas hold the identity, so combining over every lane and warp along `dim` leaves the
        // result in all of them.
        partials = self.reduce_within_warp(op, at, partials, &l, dim);
        if l.warps_per_cta[dim] > 1 {
            partials = self.reduce_across_warps(op, at, partials, &l, dim);
        }
        if at != d {
            partials = partials.into_iter().map(|p| self.assign(&format!("arith.truncf {p} : f32 to {t}"))).collect();
        }
        Ok(if self.ty(v).shape.len() == 1 {
            partials.pop().expect("one element")
        } else {
            let m = partials.len();
            self.assign(&format!("vector.from_elements {} : vector<{m}x{t}>", partials.join(", ")))
        })
    }

    fn combine(&mut self, op: ReduceOp, d: DType, a: &str, b: &str) -> String {
        let t = mlir_type(d);
        let name = match (op, d.is_float()) {
            (ReduceOp::Sum, true) => "arith.addf",
            (ReduceOp::Max, true) => "arith.maximumf",
            (ReduceOp::Min, true) => "arith.minimumf",
            (ReduceOp::Sum, false) => "arith.addi",
            (ReduceOp::Max, false) => "arith.maxsi",
            (ReduceOp::Min, false) => "arith.minsi",
        };
        self.assign(&format!("{name} {a}, {b} : {t}"))
    }

    fn identity(&mut self, op: ReduceOp, d: DType) -> String {
        let v = match (op, d.is_float()) {
            (ReduceOp::Sum, _) => 0.0,
            (ReduceOp::Max, true) => f64::NEG_INFINITY,
            (ReduceOp::Min, true) => f64::INFINITY,
            (ReduceOp::Max, false) => i32::MIN as f64,
            (ReduceOp::Min, false) => i32::MAX as f64,
        };
        self.constant(d, v, mlir_type(d))
    }

    /// Step 1: a pairwise tree (the same association in every thread and every run).
    fn tree(&mut self, op: ReduceOp, d: DType, mut items: Vec<String>) -> String {
        while items.len() > 1 {
            let half = items.len().div_ceil(2);
            let mut next = vec![];
            for i in 0..items.len() / 2 {
                let (a, b) = (items[i].clone(), items[i + half].clone());
                next.push(self.combine(op, d, &a, &b));
            }
            if items.len() % 2 == 1 {
                next.push(items[half - 1].clone());
            }
            items = next;
        }
        items.pop().expect("blocks have at least one element")
    }

    /// Threads holding only copies along `dim` contribute the identity.
    fn mask_replicas(
        &mut self,
        op: ReduceOp,
        d: DType,
        partials: Vec<String>,
        l: &BlockedLayout,
        dim: usize,
    ) -> Vec<String> {
        let id = self.identity(op, d);
        let owner = self.owns_along(l, dim);
        partials
            .into_iter()
            .map(|p| self.assign(&format!("arith.select {owner}, {p}, {id} : {}", mlir_type(d))))
            .collect()
    }

    /// Step 2: butterfly shuffles over the lane bits of `dim` (columns are the low lane bits);
    /// afterwards every lane holds the warp's result for its elements.
    fn reduce_within_warp(
        &mut self,
        op: ReduceOp,
        d: DType,
        partials: Vec<String>,
        l: &BlockedLayout,
        dim: usize,
    ) -> Vec<String> {
        let t = mlir_type(d);
        let stride = if dim == 1 { 1 } else { l.threads_per_warp[1] };
        let width = self.const_i32(crate::layout::WARP_SIZE as i64);
        let mut out = vec![];
        for p in partials {
            let mut acc = p;
            let mut k = l.threads_per_warp[dim] / 2;
            while k >= 1 {
                let o = self.const_i32((k * stride) as i64);
                let r = self.fresh();
                self.line(&format!("{r}, {r}_ok = gpu.shuffle xor {acc}, {o}, {width} : {t}"));
                acc = self.combine(op, d, &acc, &r);
                k /= 2;
            }
            out.push(acc);
        }
        out
    }

    /// Steps 3–5: the first lane along `dim` of each warp stores its partials (one per element
    /// kept), barrier, every thread combines the warps' partials for its own elements.
    fn reduce_across_warps(
        &mut self,
        op: ReduceOp,
        d: DType,
        partials: Vec<String>,
        l: &BlockedLayout,
        dim: usize,
    ) -> Vec<String> {
        let keep = 1 - dim;
        let warps = l.warps_per_cta[dim];
        let len = l.shape[keep];
        let (buf, memref) = self.shared_buffer(d, warps * len);
        // This thread's warp along `dim`, its lane along `dim`, and its owner along `keep`.
        let td = self.thread_coord(l, dim);
        let tpw = self.const_i32(l.threads_per_warp[dim] as i64);
        let warp = self.assign(&format!("arith.divui {td}, {tpw} : i32"));
        let lane = self.assign(&format!("arith.remui {td}, {tpw} : i32"));
        let zero = self.const_i32(0);
        let first = self.assign(&format!("arith.cmpi eq, {lane}, {zero} : i32"));
        let writer = if l.has_replicas(keep) {
            let owns = self.owns_along(l, keep);
            self.assign(&format!("arith.andi {first}, {owns} : i1"))
        } else {
            first
        };
        let ubase = self.owned_base(l, keep);
        let lenc = self.const_i32(len as i64);
        let row_of_warp = self.assign(&format!("arith.muli {warp}, {lenc} : i32"));
        // Index in the buffer of kept element `k` for warp slot `w_off` (an i32 SSA value).
        let index = |e: &mut Self, k: usize, w_off: &str| {
            let g = e.const_i32(l.global_index(keep, 0, k) as i64);
            let g = e.assign(&format!("arith.addi {g}, {ubase} : i32"));
            let i = e.assign(&format!("arith.addi {g}, {w_off} : i32"));
            e.assign(&format!("arith.index_cast {i} : i32 to index"))
        };
        // The leading barrier keeps a repeated reduction (in a loop) from overwriting values that
        // slower warps are still reading.
        self.line("gpu.barrier");
        self.line(&format!("scf.if {writer} {{"));
        self.indent += 1;
        for (k, p) in partials.iter().enumerate() {
            let i = index(self, k, &row_of_warp);
            self.line(&format!("memref.store {p}, {buf}[{i}] : {memref}"));
        }
        self.indent -= 1;
        self.line("}");
        self.line("gpu.barrier");
        let mut out = vec![];
        for k in 0..partials.len() {
            let mut items = vec![];
            for w in 0..warps {
                let off = self.const_i32((w * len) as i64);
                let i = index(self, k, &off);
                items.push(self.assign(&format!("memref.load {buf}[{i}] : {memref}")));
            }
            out.push(self.tree(op, d, items));
        }
        out
    }

    /// Combines `v` (a scalar or a 1-D block) across the programs of the kernel's cluster; see
    /// the module's doc.
    pub(crate) fn cluster_reduce(&mut self, op: ReduceOp, v: ValueId) -> Result<String, LowerError> {
        let size = self.k.cluster;
        let src = self.num(v);
        if size == 1 {
            return Ok(src);
        }
        let d = self.ty(v).dtype().expect("cluster reductions take numbers");
        let rank = self.ty(v).shape.len();
        if !(d.is_float() || d == DType::I32) || rank > 1 {
            return Err(LowerError::Unsupported {
                kernel: self.k.name.clone(),
                what: format!(
                    "cluster reduction of {} (scalars and 1-D blocks of floats or i32 are lowered)",
                    self.ty(v)
                ),
            });
        }
        let t = mlir_type(d);
        let at = if d.is_float() { DType::F32 } else { d };
        let att = mlir_type(at);
        // This thread's elements, their places in the buffer, and whether this thread writes them.
        let (items, places, writer, len) = if rank == 0 {
            let zero = self.const_i32(0);
            let tid = self.tid.clone();
            (
                vec![src.clone()],
                vec![zero.clone()],
                Some(self.assign(&format!("arith.cmpi eq, {tid}, {zero} : i32"))),
                1,
            )
        } else {
            let l = self.layout(v);
            let dim = Self::long_dim(&l);
            let n = l.elems_per_thread();
            let base = self.owned_base(&l, dim);
            let mut items = vec![];
            let mut places = vec![];
            for i in 0..n {
                items.push(self.assign(&format!("vector.extract {src}[{i}] : {t} from vector<{n}x{t}>")));
                let g = self.const_i32(l.global_index(dim, 0, i) as i64);
                places.push(self.assign(&format!("arith.addi {g}, {base} : i32")));
            }
            (items, places, self.is_owner(&l), l.shape[dim])
        };
        let items: Vec<String> = items
            .into_iter()
            .map(|x| if at != d { self.assign(&format!("arith.extf {x} : {t} to f32")) } else { x })
            .collect();
        let buf = self.shared_ptr(at, len);
        let addrs: Vec<String> = places
            .iter()
            .map(|p| {
                self.assign(&format!("llvm.getelementptr {buf}[{p}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, {att}"))
            })
            .collect();
        self.cluster_wait();
        if let Some(w) = &writer {
            self.line(&format!("scf.if {w} {{"));
            self.indent += 1;
        }
        for (x, a) in items.iter().zip(&addrs) {
            self.line(&format!("llvm.store {x}, {a} : {att}, !llvm.ptr<3>"));
        }
        if writer.is_some() {
            self.indent -= 1;
            self.line("}");
        }
        self.cluster_arrive();
        self.cluster_wait();
        let (constraint, ptx) = if d.is_float() { ("f", "f32") } else { ("r", "s32") };
        let asm = format!("{{ .reg .u32 t; mapa.shared::cluster.u32 t, $1, $2; ld.shared::cluster.{ptx} $0, [t]; }}");
        let mut out = vec![];
        for a in &addrs {
            let a32 = self.assign(&format!("llvm.ptrtoint {a} : !llvm.ptr<3> to i32"));
            let mut acc: Option<String> = None;
            for r in 0..size {
                let rc = self.const_i32(r as i64);
                // Side effects keep the read between the two barriers.
                let x = self.assign(&format!(
                    "llvm.inline_asm has_side_effects asm_dialect = att \"{asm}\", \"={constraint},r,r\" {a32}, {rc} : (i32, i32) -> {att}"
                ));
                acc = Some(match acc {
                    Some(acc) => self.combine(op, at, &acc, &x),
                    None => x,
                });
            }
            let acc = acc.expect("a cluster has programs");
            out.push(if at != d { self.assign(&format!("arith.truncf {acc} : f32 to {t}")) } else { acc });
        }
        self.cluster_arrive();
        Ok(if rank == 0 {
            out.pop().expect("one element")
        } else {
            let n = out.len();
            self.assign(&format!("vector.from_elements {} : vector<{n}x{t}>", out.join(", ")))
        })
    }

    /// This thread arrives at the cluster barrier: what it wrote to shared memory before
    /// (release) is visible to every thread of the cluster after their wait.
    pub(crate) fn cluster_arrive(&mut self) {
        self.line("llvm.inline_asm has_side_effects asm_dialect = att \"barrier.cluster.arrive.release;\", \"~{memory}\" : () -> ()");
    }

    /// This thread waits until every thread of every program of the cluster has arrived (acquire).
    pub(crate) fn cluster_wait(&mut self) {
        self.line("llvm.inline_asm has_side_effects asm_dialect = att \"barrier.cluster.wait.acquire;\", \"~{memory}\" : () -> ()");
    }
}
