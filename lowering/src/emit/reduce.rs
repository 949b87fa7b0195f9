//! Reductions along one dimension of a block, as a recipe of named steps (after Triton's
//! ReduceOpToLLVM): reduce within the thread → reduce within the warp (butterfly shuffles over the
//! lanes along that dimension) → store each warp's partials to shared memory → barrier → every
//! thread combines the warps' partials (from 16 warps on, each lane loads one and a butterfly
//! combines them, which saves the registers of holding them all). The result keeps the other
//! dimension's distribution, so a row reduction of a 2-D block comes out laid out as that block's
//! rows.
//!
//! Cluster reductions combine a value across the programs (CTAs) of a cluster through distributed
//! shared memory, pushed rather than pulled (Quack's exchange): each program sends its value into
//! its slot of every program's buffer with `st.async`, which counts the bytes on the receiver's
//! mbarrier → each program waits on its own mbarrier until all `size` values are in → combines them
//! in the same order in every program (from 16 programs on, for one value a program, a butterfly
//! over lanes; else rank order), so every program gets the same bits. No cluster barrier per
//! exchange and no fence: one barrier arrival at the kernel's start (after thread 0 initializes the
//! mbarriers) and its wait before the first exchange, so no program writes to a peer that has not
//! started. Each reduction has two buffers and two mbarriers, used in turn (a per-thread counter
//! picks them and the mbarrier's phase), and a program sends only after all its threads passed a
//! block barrier: a peer can send its next values only after it got this exchange's from every
//! program, so a buffer is never overwritten before every thread read it. A program may leave once
//! its last exchange is in: no peer writes to it after that. In clusters of 16, a block
//! reduction whose result only feeds a cluster reduction skips the block barrier altogether: each
//! warp sends its partial to every program and the combine spans all the warps of the cluster
//! (`cluster_reduce_fused`).

use std::collections::HashMap;

use tritonite_lang::ir::{Op, OpKind, ReduceOp, ValueId};
use tritonite_lang::DType;

use super::{mlir_type, Emitter};
use crate::error::LowerError;
use crate::layout::{BlockedLayout, WARP_SIZE};

impl Emitter<'_> {
    /// Reduces `axis` of block `v`: a scalar for a 1-D block, this thread's vector of the result
    /// for a 2-D one.
    pub(crate) fn reduce(&mut self, op: ReduceOp, v: ValueId, axis: usize) -> Result<String, LowerError> {
        let w = self.warp_partials(op, v, axis)?;
        let mut partials = w.partials;
        if w.layout.warps_per_cta[w.dim] > 1 {
            partials = self.reduce_across_warps(op, w.at, partials, &w.layout, w.dim);
        }
        Ok(self.reduced_value(v, w.d, w.at, partials))
    }

    /// Steps 1 and 2 of reducing `axis` of block `v`: every lane ends with its warp's partials
    /// (one per element kept, in f32 for floats).
    fn warp_partials(&mut self, op: ReduceOp, v: ValueId, axis: usize) -> Result<WarpPartials, LowerError> {
        let d = self.ty(v).dtype().expect("reductions take numbers");
        if !(d.is_float() || d == DType::I32) {
            return Err(LowerError::Unsupported {
                kernel: self.k.name.clone(),
                what: format!("reduction of {d} blocks (f16, bf16, f32 and i32 are lowered)"),
            });
        }
        let l = self.layout(v);
        let dim = Self::reduced_dim(self.ty(v).shape.len(), &l, axis);
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
        Ok(WarpPartials { partials, layout: l, dim, d, at })
    }

    /// The dimension a reduction along `axis` of a block of `rank` laid out as `l` runs along (a
    /// 1-D block reduces along the dimension it runs along).
    fn reduced_dim(rank: usize, l: &BlockedLayout, axis: usize) -> usize {
        if rank == 2 {
            axis
        } else {
            Self::long_dim(l)
        }
    }

    /// The reduction of `v` from the combined partials (in `at`): a scalar for a 1-D block, this
    /// thread's vector of the result for a 2-D one, in `v`'s dtype `d`.
    fn reduced_value(&mut self, v: ValueId, d: DType, at: DType, mut partials: Vec<String>) -> String {
        let t = mlir_type(d);
        if at != d {
            partials = partials.into_iter().map(|p| self.assign(&format!("arith.truncf {p} : f32 to {t}"))).collect();
        }
        if self.ty(v).shape.len() == 1 {
            partials.pop().expect("one element")
        } else {
            let m = partials.len();
            self.assign(&format!("vector.from_elements {} : vector<{m}x{t}>", partials.join(", ")))
        }
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
        // A float sum's adds may contract with the products feeding them (see `binary`).
        let flags = if op == ReduceOp::Sum && d.is_float() { " fastmath<contract>" } else { "" };
        self.assign(&format!("{name} {a}, {b}{flags} : {t}"))
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
        let stride = Self::lane_stride(l, dim);
        partials.into_iter().map(|p| self.butterfly(op, d, p, l.threads_per_warp[dim], stride)).collect()
    }

    /// The lane distance between neighbours along `dim` (columns are the low lane bits).
    fn lane_stride(l: &BlockedLayout, dim: usize) -> usize {
        if dim == 1 {
            1
        } else {
            l.threads_per_warp[1]
        }
    }

    /// Combines `acc` over groups of `lanes` lanes (a power of two) `stride` apart by butterfly
    /// shuffles: every lane of a group ends with the same bits (each level combines the same two
    /// values, in either order).
    fn butterfly(&mut self, op: ReduceOp, d: DType, mut acc: String, lanes: usize, stride: usize) -> String {
        let t = mlir_type(d);
        let width = self.const_i32(crate::layout::WARP_SIZE as i64);
        let mut k = lanes / 2;
        while k >= 1 {
            let o = self.const_i32((k * stride) as i64);
            let r = self.fresh();
            self.line(&format!("{r}, {r}_ok = gpu.shuffle xor {acc}, {o}, {width} : {t}"));
            acc = self.combine(op, d, &acc, &r);
            k /= 2;
        }
        acc
    }

    /// `v` (of MLIR type `t`: `i32` or `f32`), which every lane of the warp already holds, as
    /// lane 0's copy: the same value, but ptxas can now tell it is the same in every lane, so that
    /// branches and loops it decides (a `while_loop` over tiles claimed at run time) need no
    /// handling of lanes that part ways, and shuffles under them no per-lane fallback.
    pub(crate) fn warp_uniform(&mut self, v: &str, t: &str) -> String {
        let width = self.const_i32(crate::layout::WARP_SIZE as i64);
        let lane0 = self.const_i32(0);
        let r = self.fresh();
        self.line(&format!("{r}, {r}_ok = gpu.shuffle idx {v}, {lane0}, {width} : {t}"));
        r
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
        if (LANE_COMBINE_MIN..=l.threads_per_warp[dim]).contains(&warps) {
            // Each lane loads one warp's partial (lane `i` along `dim` the partial of warp
            // `i % warps`) and a butterfly over `warps` lanes combines them: one value in a
            // register per kept element, not `warps`.
            let wc = self.const_i32(warps as i64);
            let slot = self.assign(&format!("arith.remui {lane}, {wc} : i32"));
            let off = self.assign(&format!("arith.muli {slot}, {lenc} : i32"));
            for k in 0..partials.len() {
                let i = index(self, k, &off);
                let x = self.assign(&format!("memref.load {buf}[{i}] : {memref}"));
                out.push(self.butterfly(op, d, x, warps, Self::lane_stride(l, dim)));
            }
            return out;
        }
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

    /// The cluster reductions' setup, at the kernel's start: for each, two mbarriers (thread 0
    /// initializes them) and a use counter; then every thread arrives at the cluster barrier that
    /// the first exchange waits at, so no program writes to a peer before the peer has started
    /// and initialized its mbarriers.
    pub(crate) fn cluster_prologue(&mut self) {
        if self.k.cluster <= 1 {
            return;
        }
        let mut sites = vec![];
        tritonite_lang::ir::walk_ops(&self.k.body, &mut |op| {
            if let OpKind::ClusterReduce(..) = op.kind {
                sites.push(op.results[0]);
            }
        });
        if sites.is_empty() {
            return;
        }
        self.fused_reductions = fused_reductions(self);
        let (zero, one) = (self.const_i32(0), self.const_i32(1));
        let mut mbars = vec![];
        for r in sites {
            let ptr = self.shared_ptr(DType::I64, 2);
            let uses = self.assign(&format!("llvm.alloca {one} x i32 : (i32) -> !llvm.ptr"));
            self.line(&format!("llvm.store {zero}, {uses} : i32, !llvm.ptr"));
            mbars.push(ptr.clone());
            self.cluster_sites.insert(r, ClusterSite { mbars: ptr, uses });
        }
        let first = self.is_first_thread();
        self.line(&format!("scf.if {first} {{"));
        self.indent += 1;
        for ptr in mbars {
            for b in 0..2 {
                let a = self.shared_addr(&ptr, "i64", b);
                self.asm_void("mbarrier.init.shared::cta.b64 [$0], 1;", "r", &[a], "i32");
            }
        }
        self.asm_void("fence.mbarrier_init.release.cluster;", "", &[], "");
        self.indent -= 1;
        self.line("}");
        self.asm_void("barrier.cluster.arrive.relaxed;", "", &[], "");
        self.cluster_wait_pending = true;
    }

    /// The 32-bit shared-memory address of element `i` (a constant or an `i32` SSA value) of the
    /// shared buffer `ptr` of `elem`.
    fn shared_addr(&mut self, ptr: &str, elem: &str, i: impl std::fmt::Display) -> String {
        let i = i.to_string();
        let index_ty = if i.starts_with('%') { ", i32" } else { "" };
        let at =
            self.assign(&format!("llvm.getelementptr {ptr}[{i}] : (!llvm.ptr<3>{index_ty}) -> !llvm.ptr<3>, {elem}"));
        self.assign(&format!("llvm.ptrtoint {at} : !llvm.ptr<3> to i32"))
    }

    /// Inline PTX without results, operands `args` of MLIR types `types` (comma-separated).
    pub(crate) fn asm_void(&mut self, ptx: &str, constraints: &str, args: &[String], types: &str) {
        let clobber =
            if constraints.is_empty() { "~{memory}".to_string() } else { format!("{constraints},~{{memory}}") };
        self.line(&format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{ptx}\", \"{clobber}\" {} : ({types}) -> ()",
            args.join(", ")
        ));
    }

    /// Combines `v` (a scalar or a 1-D block) across the programs of the kernel's cluster; see
    /// the module docs. `r` is the reduction's result (its site).
    pub(crate) fn cluster_reduce(&mut self, op: ReduceOp, v: ValueId, r: ValueId) -> Result<String, LowerError> {
        let size = self.k.cluster as usize;
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
        let zero = self.const_i32(0);
        // This thread's elements, their places in a program's slot, and whether this thread sends
        // them.
        let (items, places, writer, len) = if rank == 0 {
            let lead = self.is_first_thread();
            (vec![src.clone()], vec![zero.clone()], Some(lead), 1)
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
        let ex = self.open_exchange(r, at, size * len);
        // Send this program's values to its slot in every program (itself included), once every
        // thread here has read the previous exchange's values: a peer answers with its next
        // exchange's, which go to the buffer that exchange used.
        self.line("gpu.barrier");
        let me = self.assign("nvvm.read.ptx.sreg.cluster.ctarank : i32");
        let len_c = self.const_i32(len as i64);
        let my_slot = self.assign(&format!("arith.muli {me}, {len_c} : i32"));
        if let Some(w) = &writer {
            self.line(&format!("scf.if {w} {{"));
            self.indent += 1;
        }
        for (x, p) in items.iter().zip(&places) {
            let slot = self.assign(&format!("arith.addi {my_slot}, {p} : i32"));
            for peer in 0..size {
                let pc = self.const_i32(peer as i64);
                self.send(&ex, at, &slot, x, &pc);
            }
        }
        if writer.is_some() {
            self.indent -= 1;
            self.line("}");
        }
        self.wait_exchange(&ex);
        // One value a program from 16 programs on: through one lane each (see the module docs).
        let by_lanes = len == 1 && size >= LANE_COMBINE_MIN && size.is_power_of_two();
        let mut out = vec![];
        for p in &places {
            let acc = if by_lanes {
                let group = self.const_i32(size as i64);
                let tid = self.tid.clone();
                let peer = self.assign(&format!("arith.remui {tid}, {group} : i32"));
                let x = self.cluster_slot(at, &ex.buf, &ex.first_slot, p, &peer);
                self.butterfly(op, at, x, size, 1)
            } else {
                let mut acc: Option<String> = None;
                for peer in 0..size {
                    let offset = self.const_i32((peer * len) as i64);
                    let x = self.cluster_slot(at, &ex.buf, &ex.first_slot, p, &offset);
                    acc = Some(match acc {
                        Some(acc) => self.combine(op, at, &acc, &x),
                        None => x,
                    });
                }
                acc.expect("a cluster has programs")
            };
            out.push(if at != d { self.assign(&format!("arith.truncf {acc} : f32 to {t}")) } else { acc });
        }
        Ok(if rank == 0 {
            let r = out.pop().expect("one element");
            self.warp_uniform(&r, t)
        } else {
            let n = out.len();
            self.assign(&format!("vector.from_elements {} : vector<{n}x{t}>", out.join(", ")))
        })
    }

    /// A block reduction whose only use is a cluster reduction of the same kind (site `r`), as
    /// one exchange (see [`fused_reductions`]): each warp sends its partial straight to every
    /// program — lane `p` to program `p`, into slot `rank · warps + warp` — with no block barrier,
    /// and after the wait every lane combines the `warps × cluster` slots `lane, lane + 32, …` in
    /// order and a butterfly over the warp finishes, the same bits in every thread of every
    /// program. A buffer is safe to reuse without the barrier: a warp sends exchange `k + 2` only
    /// after its program received exchange `k + 1` from every warp of every program, each of
    /// which sent it after reading exchange `k`.
    pub(crate) fn cluster_reduce_fused(
        &mut self,
        op: ReduceOp,
        v: ValueId,
        axis: usize,
        r: ValueId,
    ) -> Result<String, LowerError> {
        let size = self.k.cluster as usize;
        let w = self.warp_partials(op, v, axis)?;
        let warps = w.layout.warps_per_cta[w.dim];
        let slots = warps * size;
        let partial = w.partials.first().cloned().expect("one element kept");
        let ex = self.open_exchange(r, w.at, slots);
        let (lane, warp) = self.lane_and_warp();
        let me = self.assign("nvvm.read.ptx.sreg.cluster.ctarank : i32");
        let wc = self.const_i32(warps as i64);
        let first_of_mine = self.assign(&format!("arith.muli {me}, {wc} : i32"));
        let slot = self.assign(&format!("arith.addi {first_of_mine}, {warp} : i32"));
        let cluster = self.const_i32(size as i64);
        let sends = self.assign(&format!("arith.cmpi ult, {lane}, {cluster} : i32"));
        self.line(&format!("scf.if {sends} {{"));
        self.indent += 1;
        self.send(&ex, w.at, &slot, &partial, &lane);
        self.indent -= 1;
        self.line("}");
        self.wait_exchange(&ex);
        let zero = self.const_i32(0);
        let mut items = vec![];
        for base in (0..slots).step_by(WARP_SIZE) {
            let b = self.const_i32(base as i64);
            let i = self.assign(&format!("arith.addi {lane}, {b} : i32"));
            if base + WARP_SIZE <= slots {
                items.push(self.cluster_slot(w.at, &ex.buf, &ex.first_slot, &zero, &i));
            } else {
                // Lanes past the last slot read the last one and take the identity.
                let last = self.const_i32(slots as i64 - 1);
                let inside = self.assign(&format!("arith.cmpi ule, {i}, {last} : i32"));
                let at_i = self.assign(&format!("arith.minui {i}, {last} : i32"));
                let x = self.cluster_slot(w.at, &ex.buf, &ex.first_slot, &zero, &at_i);
                let id = self.identity(op, w.at);
                let att = mlir_type(w.at);
                items.push(self.assign(&format!("arith.select {inside}, {x}, {id} : {att}")));
            }
        }
        let mine = self.tree(op, w.at, items);
        let all = self.butterfly(op, w.at, mine, WARP_SIZE, 1);
        // A scalar result, like the unfused one's, comes from lane 0 (see `warp_uniform`).
        let all = if self.ty(r).shape.is_empty() { self.warp_uniform(&all, mlir_type(w.at)) } else { all };
        Ok(self.reduced_value(v, w.d, w.at, vec![all]))
    }

    /// Starts an exchange of `slots` values of `at` a program at site `r`: picks this use's
    /// buffer (of two) and mbarrier phase, and thread 0 announces the bytes its program expects.
    fn open_exchange(&mut self, r: ValueId, at: DType, slots: usize) -> Exchange {
        let site = self.cluster_sites[&r].clone();
        // Two buffers of `slots` values, used in turn (see the module docs).
        let buf = self.shared_ptr(at, 2 * slots);
        let uses = self.assign(&format!("llvm.load {} : !llvm.ptr -> i32", site.uses));
        let one = self.const_i32(1);
        let next = self.assign(&format!("arith.addi {uses}, {one} : i32"));
        self.line(&format!("llvm.store {next}, {} : i32, !llvm.ptr", site.uses));
        let which = self.assign(&format!("arith.andi {uses}, {one} : i32"));
        let half = self.assign(&format!("arith.shrui {uses}, {one} : i32"));
        let parity = self.assign(&format!("arith.andi {half}, {one} : i32"));
        let mbar = self.shared_addr(&site.mbars, "i64", &which);
        let slots_c = self.const_i32(slots as i64);
        let first_slot = self.assign(&format!("arith.muli {which}, {slots_c} : i32"));
        let bytes = self.const_i32((slots * 4) as i64);
        let lead = self.is_first_thread();
        self.line(&format!("scf.if {lead} {{"));
        self.indent += 1;
        self.asm_void(
            "{ .reg .b64 s; mbarrier.arrive.expect_tx.shared::cta.b64 s, [$0], $1; }",
            "r,r",
            &[mbar.clone(), bytes],
            "i32, i32",
        );
        self.indent -= 1;
        self.line("}");
        Exchange { buf, mbar, parity, first_slot }
    }

    /// Sends `x` (of `at`) into slot `slot` of this use's buffer in program `peer` (`i32` SSA
    /// values), counted on that program's mbarrier.
    fn send(&mut self, ex: &Exchange, at: DType, slot: &str, x: &str, peer: &str) {
        let att = mlir_type(at);
        let (constraint, ptx) = if at.is_float() { ("f", "f32") } else { ("r", "b32") };
        let i = self.assign(&format!("arith.addi {}, {slot} : i32", ex.first_slot));
        let a = self.shared_addr(&ex.buf, att, &i);
        self.asm_void(
            &format!(
                "{{ .reg .u32 a, m; mapa.shared::cluster.u32 a, $0, $3; mapa.shared::cluster.u32 m, $2, $3; \
                 st.async.shared::cluster.mbarrier::complete_tx::bytes.{ptx} [a], $1, [m]; }}"
            ),
            &format!("r,{constraint},r,r"),
            &[a, x.to_string(), ex.mbar.clone(), peer.to_string()],
            &format!("i32, {att}, i32, i32"),
        );
    }

    /// Waits until every value of this use of the exchange is here.
    fn wait_exchange(&mut self, ex: &Exchange) {
        let zero = self.const_i32(0);
        self.line("scf.while : () -> () {");
        self.indent += 1;
        let done = self.assign(&format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [$1], $2; selp.u32 $0, 1, 0, p; }}\", \"=r,r,r,~{{memory}}\" {}, {} : (i32, i32) -> i32",
            ex.mbar, ex.parity
        ));
        let waiting = self.assign(&format!("arith.cmpi eq, {done}, {zero} : i32"));
        self.line(&format!("scf.condition({waiting})"));
        self.indent -= 1;
        self.line("} do {");
        self.indent += 1;
        self.line("scf.yield");
        self.indent -= 1;
        self.line("}");
    }

    /// Loads the value at `place` of the program whose slot starts `offset` (an `i32` SSA value)
    /// after `first_slot` in the exchange buffer `buf` of `at`.
    fn cluster_slot(&mut self, at: DType, buf: &str, first_slot: &str, place: &str, offset: &str) -> String {
        let att = mlir_type(at);
        let slot = self.assign(&format!("arith.addi {first_slot}, {offset} : i32"));
        let i = self.assign(&format!("arith.addi {slot}, {place} : i32"));
        let at_i = self.assign(&format!("llvm.getelementptr {buf}[{i}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, {att}"));
        self.assign(&format!("llvm.load {at_i} : !llvm.ptr<3> -> {att}"))
    }

    /// This thread waits until every thread of every program of the cluster has arrived (acquire).
    pub(crate) fn cluster_wait(&mut self) {
        self.asm_void("barrier.cluster.wait.acquire;", "", &[], "");
    }
}

/// What steps 1 and 2 of a reduction leave: every lane's warp partials (in `at`), over `dim` of
/// `layout`, for a block of dtype `d`.
struct WarpPartials {
    partials: Vec<String>,
    layout: BlockedLayout,
    dim: usize,
    d: DType,
    at: DType,
}

/// One use of a cluster exchange: this use's buffer (`!llvm.ptr<3>`, two buffers' worth from
/// `buf`, this one from slot `first_slot`), its mbarrier's 32-bit address and the phase parity
/// to wait for.
struct Exchange {
    buf: String,
    mbar: String,
    parity: String,
    first_slot: String,
}

/// The block reductions of the kernel that run as one exchange with the cluster reduction right
/// after them ([`Emitter::cluster_reduce_fused`]), by the block reduction's result → the cluster
/// reduction's: in clusters of at least [`FUSE_MIN_CLUSTER`], same kind, the block reduction's
/// result used by nothing else, one element kept (a row of a one-row tile, or a 1-D block),
/// reduced over whole warps.
pub(crate) fn fused_reductions(e: &Emitter<'_>) -> HashMap<ValueId, ValueId> {
    if (e.k.cluster as usize) < FUSE_MIN_CLUSTER {
        return HashMap::new();
    }
    let mut uses: HashMap<ValueId, usize> = HashMap::new();
    tritonite_lang::ir::walk_ops(&e.k.body, &mut |op| {
        for v in op.kind.operands() {
            *uses.entry(v).or_default() += 1;
        }
    });
    let mut pairs = HashMap::new();
    let mut regions = vec![&e.k.body];
    while let Some(region) = regions.pop() {
        for op in &region.ops {
            regions.extend(op.kind.regions());
        }
        for w in region.ops.windows(2) {
            let (OpKind::Reduce(a, v, axis), OpKind::ClusterReduce(b, x)) = (&w[0].kind, &w[1].kind) else {
                continue;
            };
            let r = w[0].results[0];
            if a != b || *x != r || uses.get(&r) != Some(&1) {
                continue;
            }
            let l = e.layout(*v);
            let dim = Emitter::reduced_dim(e.ty(*v).shape.len(), &l, *axis);
            let keep = 1 - dim;
            if l.shape[keep] == 1 && l.threads(keep) == 1 && l.threads_per_warp[dim] == WARP_SIZE {
                pairs.insert(r, w[1].results[0]);
            }
        }
    }
    pairs
}

/// A cluster reduction's state: its two mbarriers (an `!llvm.ptr<3>` to two `i64`) and the
/// counter of its uses so far (an `!llvm.ptr` to an `i32`, kept in a register by LLVM), whose
/// lowest bit picks the buffer and mbarrier and whose next bit is that mbarrier's phase.
#[derive(Clone, Debug)]
pub(crate) struct ClusterSite {
    mbars: String,
    uses: String,
}

/// Whether `op` is, or its body holds, a cluster reduction.
pub(crate) fn holds_cluster_reduce(op: &Op) -> bool {
    let mut found = matches!(op.kind, OpKind::ClusterReduce(..));
    for r in op.kind.regions() {
        tritonite_lang::ir::walk_ops(r, &mut |o| found |= matches!(o.kind, OpKind::ClusterReduce(..)));
    }
    found
}

/// From how many programs a cluster runs a block reduction and the cluster reduction of its
/// result as one exchange. Measured on the H100 (session 15, RMSNorm bf16): clusters of 16,
/// backward 1024 × 262144 at 16 warps 675 → 651 µs, at 8 warps (4096 × 65536) and the forward
/// at 16 and 32 warps unchanged; smaller clusters measured slower (backward 16384 × 32768 in
/// clusters of 2, 1098 → 1198 µs; 32768 × 4096 in clusters of 4, 284 → 375 µs; the forward of
/// 4096 × 65536 in clusters of 4, 367 → 495 µs, where ptxas gives the kernel 75 registers rather
/// than 64 and the SM one program rather than 2).
const FUSE_MIN_CLUSTER: usize = 16;

/// From how many values (warps' partials, a cluster's programs) a combine loads one value a lane
/// and shuffles, rather than loading them all into every thread. Measured on the H100 (session
/// 13): with 16 and 32 the registers saved pay (RMSNorm forward 1024 × 262144, 32 warps,
/// clusters of 16: 537 → 376 µs; backward, 16 warps: 816 → 735 µs); with 4 to 8 the shuffles'
/// latency costs more (backward 32768 × 5120, clusters of 5, 4 warps: 367 → 387 µs).
const LANE_COMBINE_MIN: usize = 16;
