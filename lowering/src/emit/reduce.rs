//! Reductions of a 1-D block to a scalar, as a recipe of named steps (after Triton's
//! ReduceOpToLLVM): reduce within the thread → reduce within the warp (butterfly shuffles) →
//! store each warp's result to shared memory → barrier → every thread combines the warps' results.

use tritonite_lang::ir::{ReduceOp, ValueId};
use tritonite_lang::DType;

use super::{mlir_type, Emitter};
use crate::error::LowerError;
use crate::layout::WARP_SIZE;

impl Emitter<'_> {
    pub(crate) fn reduce(&mut self, op: ReduceOp, v: ValueId) -> Result<String, LowerError> {
        let d = self.ty(v).dtype().expect("reductions take numbers");
        if !(d.is_float() || d == DType::I32) {
            return Err(LowerError::Unsupported {
                kernel: self.k.name.clone(),
                what: format!("reduction of {d} blocks (f16, bf16, f32 and i32 are lowered)"),
            });
        }
        let layout = self.layout(&self.ty(v).shape);
        let src = self.num(v);
        let partial = self.reduce_within_thread(op, d, &src, layout.elems_per_thread());
        // Cross-thread steps run in f32 (or i32): 16-bit floats widen once here.
        let (acc, at) = if d.is_float() && d != DType::F32 {
            (self.assign(&format!("arith.extf {partial} : {} to f32", mlir_type(d))), DType::F32)
        } else {
            (partial, d)
        };
        let acc = if layout.has_replicas() { self.mask_replicas(op, at, &acc, layout.threads_used()) } else { acc };
        // Replicas hold the identity, so combining over every lane and every warp leaves the
        // result in all threads: a reduction's scalar is uniform, like any scalar.
        let acc = self.reduce_within_warp(op, at, &acc);
        let warps = layout.warps_per_cta;
        let acc = if warps > 1 { self.reduce_across_warps(op, at, &acc, warps) } else { acc };
        Ok(if at != d { self.assign(&format!("arith.truncf {acc} : f32 to {}", mlir_type(d))) } else { acc })
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

    /// Step 1: a pairwise tree over the thread's own elements.
    fn reduce_within_thread(&mut self, op: ReduceOp, d: DType, v: &str, n: usize) -> String {
        let t = mlir_type(d);
        let mut items: Vec<String> =
            (0..n).map(|i| self.assign(&format!("vector.extract {v}[{i}] : {t} from vector<{n}x{t}>"))).collect();
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

    /// Threads holding only copies contribute the identity.
    fn mask_replicas(&mut self, op: ReduceOp, d: DType, v: &str, used: usize) -> String {
        let id = self.identity(op, d);
        let n = self.const_i32(used as i64);
        let tid = self.tid.clone();
        let owner = self.assign(&format!("arith.cmpi ult, {tid}, {n} : i32"));
        self.assign(&format!("arith.select {owner}, {v}, {id} : {}", mlir_type(d)))
    }

    /// Step 2: butterfly shuffles; afterwards every lane holds its warp's result.
    fn reduce_within_warp(&mut self, op: ReduceOp, d: DType, v: &str) -> String {
        let t = mlir_type(d);
        let width = self.const_i32(WARP_SIZE as i64);
        let mut acc = v.to_string();
        let mut offset = WARP_SIZE / 2;
        while offset >= 1 {
            let o = self.const_i32(offset as i64);
            let r = self.fresh();
            self.line(&format!("{r}, {r}_ok = gpu.shuffle xor {acc}, {o}, {width} : {t}"));
            acc = self.combine(op, d, &acc, &r);
            offset /= 2;
        }
        acc
    }

    /// Steps 3–5: lane 0 of each warp stores, barrier, every thread combines all warps' values.
    fn reduce_across_warps(&mut self, op: ReduceOp, d: DType, v: &str, warps: usize) -> String {
        let t = mlir_type(d);
        let buf = format!("%smem{}", self.smem.len());
        self.smem.push((buf.clone(), t, warps));
        let memref = format!("memref<{warps}x{t}, #gpu.address_space<workgroup>>");
        let tid = self.tid.clone();
        let ws = self.const_i32(WARP_SIZE as i64);
        let warp = self.assign(&format!("arith.divui {tid}, {ws} : i32"));
        let lane = self.assign(&format!("arith.remui {tid}, {ws} : i32"));
        let zero = self.const_i32(0);
        let lane0 = self.assign(&format!("arith.cmpi eq, {lane}, {zero} : i32"));
        let widx = self.assign(&format!("arith.index_cast {warp} : i32 to index"));
        // The leading barrier keeps a repeated reduction (in a loop) from overwriting values that
        // slower warps are still reading.
        self.line("gpu.barrier");
        self.line(&format!("scf.if {lane0} {{"));
        self.indent += 1;
        self.line(&format!("memref.store {v}, {buf}[{widx}] : {memref}"));
        self.indent -= 1;
        self.line("}");
        self.line("gpu.barrier");
        let mut items: Vec<String> = (0..warps)
            .map(|i| {
                let idx = self.assign(&format!("arith.constant {i} : index"));
                self.assign(&format!("memref.load {buf}[{idx}] : {memref}"))
            })
            .collect();
        while items.len() > 1 {
            let half = items.len() / 2;
            let mut next = vec![];
            for i in 0..half {
                let (a, b) = (items[i].clone(), items[i + half].clone());
                next.push(self.combine(op, d, &a, &b));
            }
            items = next;
        }
        items.pop().expect("at least one warp")
    }
}
