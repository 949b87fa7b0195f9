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
//! its last exchange is in: no peer writes to it after that.

use tritonite_lang::ir::{Op, OpKind, ReduceOp, ValueId};
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
        let site = self.cluster_sites[&r].clone();
        let t = mlir_type(d);
        let at = if d.is_float() { DType::F32 } else { d };
        let att = mlir_type(at);
        // Thread 0 announces the bytes its program expects, and sends a scalar.
        let lead = self.is_first_thread();
        let zero = self.const_i32(0);
        // This thread's elements, their places in a program's slot, and whether this thread sends
        // them.
        let (items, places, writer, len) = if rank == 0 {
            (vec![src.clone()], vec![zero.clone()], Some(lead.clone()), 1)
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
        // Two buffers of `size` slots of `len`, used in turn: a peer sends its next exchange's
        // values only after receiving this one's from every program, so only after this program
        // has read the buffer's previous values.
        let buf = self.shared_ptr(at, 2 * size * len);
        let uses = self.assign(&format!("llvm.load {} : !llvm.ptr -> i32", site.uses));
        let one = self.const_i32(1);
        let next = self.assign(&format!("arith.addi {uses}, {one} : i32"));
        self.line(&format!("llvm.store {next}, {} : i32, !llvm.ptr", site.uses));
        let which = self.assign(&format!("arith.andi {uses}, {one} : i32"));
        let half = self.assign(&format!("arith.shrui {uses}, {one} : i32"));
        let parity = self.assign(&format!("arith.andi {half}, {one} : i32"));
        let mbar = self.shared_addr(&site.mbars, "i64", &which);
        let slots = self.const_i32((size * len) as i64);
        let first_slot = self.assign(&format!("arith.muli {which}, {slots} : i32"));
        // This program's expected bytes: every program's `len` values.
        let bytes = self.const_i32((size * len * 4) as i64);
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
        // Send this program's values to its slot in every program (itself included), once every
        // thread here has read the previous exchange's values: a peer answers with its next
        // exchange's, which go to the buffer that exchange used.
        self.line("gpu.barrier");
        let me = self.assign("nvvm.read.ptx.sreg.cluster.ctarank : i32");
        let len_c = self.const_i32(len as i64);
        let my_slot = self.assign(&format!("arith.muli {me}, {len_c} : i32"));
        let mine = self.assign(&format!("arith.addi {first_slot}, {my_slot} : i32"));
        if let Some(w) = &writer {
            self.line(&format!("scf.if {w} {{"));
            self.indent += 1;
        }
        let (constraint, ptx) = if d.is_float() { ("f", "f32") } else { ("r", "b32") };
        for (x, p) in items.iter().zip(&places) {
            let at_place = self.assign(&format!("arith.addi {mine}, {p} : i32"));
            let a = self.shared_addr(&buf, att, &at_place);
            for peer in 0..size {
                let pc = self.const_i32(peer as i64);
                self.asm_void(
                    &format!(
                        "{{ .reg .u32 a, m; mapa.shared::cluster.u32 a, $0, $3; mapa.shared::cluster.u32 m, $2, $3; \
                         st.async.shared::cluster.mbarrier::complete_tx::bytes.{ptx} [a], $1, [m]; }}"
                    ),
                    &format!("r,{constraint},r,r"),
                    &[a.clone(), x.clone(), mbar.clone(), pc],
                    &format!("i32, {att}, i32, i32"),
                );
            }
        }
        if writer.is_some() {
            self.indent -= 1;
            self.line("}");
        }
        // Wait until every program's values are here, then combine them.
        self.line("scf.while : () -> () {");
        self.indent += 1;
        let done = self.assign(&format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [$1], $2; selp.u32 $0, 1, 0, p; }}\", \"=r,r,r,~{{memory}}\" {mbar}, {parity} : (i32, i32) -> i32"
        ));
        let waiting = self.assign(&format!("arith.cmpi eq, {done}, {zero} : i32"));
        self.line(&format!("scf.condition({waiting})"));
        self.indent -= 1;
        self.line("} do {");
        self.indent += 1;
        self.line("scf.yield");
        self.indent -= 1;
        self.line("}");
        // One value a program from 16 programs on: through one lane each (see the module docs).
        let by_lanes = len == 1 && size >= LANE_COMBINE_MIN && size.is_power_of_two();
        let mut out = vec![];
        for p in &places {
            let acc = if by_lanes {
                self.cluster_combine_by_lanes(op, at, &buf, &first_slot, p, size)
            } else {
                let mut acc: Option<String> = None;
                for peer in 0..size {
                    let offset = self.const_i32((peer * len) as i64);
                    let x = self.cluster_slot(at, &buf, &first_slot, p, &offset);
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
            out.pop().expect("one element")
        } else {
            let n = out.len();
            self.assign(&format!("vector.from_elements {} : vector<{n}x{t}>", out.join(", ")))
        })
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

    /// Combines the `size` programs' values at `place` (one value a program; `size` a power of
    /// two) through one lane each: in each group of `size` lanes, lane `i` of the group loads
    /// program `i`'s and a butterfly over the group combines them: one value in a register rather
    /// than `size`.
    fn cluster_combine_by_lanes(
        &mut self,
        op: ReduceOp,
        at: DType,
        buf: &str,
        first_slot: &str,
        place: &str,
        size: usize,
    ) -> String {
        let group = self.const_i32(size as i64);
        let tid = self.tid.clone();
        let peer = self.assign(&format!("arith.remui {tid}, {group} : i32"));
        let x = self.cluster_slot(at, buf, first_slot, place, &peer);
        self.butterfly(op, at, x, size, 1)
    }

    /// This thread waits until every thread of every program of the cluster has arrived (acquire).
    pub(crate) fn cluster_wait(&mut self) {
        self.asm_void("barrier.cluster.wait.acquire;", "", &[], "");
    }
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
    match &op.kind {
        OpKind::ClusterReduce(..) => true,
        OpKind::For { body, .. } => {
            let mut found = false;
            tritonite_lang::ir::walk_ops(body, &mut |o| found |= matches!(o.kind, OpKind::ClusterReduce(..)));
            found
        }
        _ => false,
    }
}

/// From how many values (warps' partials, a cluster's programs) a combine loads one value a lane
/// and shuffles, rather than loading them all into every thread. Measured on the H100 (session
/// 13): with 16 and 32 the registers saved pay (RMSNorm forward 1024 × 262144, 32 warps,
/// clusters of 16: 537 → 376 µs; backward, 16 warps: 816 → 735 µs); with 4 to 8 the shuffles'
/// latency costs more (backward 32768 × 5120, clusters of 5, 4 warps: 367 → 387 µs).
const LANE_COMBINE_MIN: usize = 16;
