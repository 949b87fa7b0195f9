//! Global loads and stores. A thread's elements are split into groups of `w` contiguous elements,
//! `w` as wide as the axis analysis proves safe (contiguous, aligned, one mask value per group,
//! at most 16 bytes); each group is one vector access, predicated by its mask bit.

use tritonite_lang::ir::ValueId;

use super::{mlir_type, Emitter, Lowered};
use crate::axis_info::AxisInfo;
use crate::error::LowerError;

/// Largest power of two ≤ `x` (x ≥ 1).
fn floor_pow2(x: u64) -> u64 {
    1 << (63 - x.max(1).leading_zeros())
}

impl Emitter<'_> {
    fn info_of(&self, v: ValueId) -> AxisInfo {
        self.info.get(&v).copied().unwrap_or(AxisInfo { contiguity: 1, constancy: 1, divisibility: 1 })
    }

    /// The widest group of elements one access may cover for pointer block `ptr` under `mask`.
    pub(crate) fn group_width(&self, ptr: ValueId, mask: Option<ValueId>) -> usize {
        let elem = match self.ty(ptr).elem {
            tritonite_lang::Elem::Ptr(d) => d.size_bytes() as u64,
            tritonite_lang::Elem::Scalar(_) => unreachable!("loads take pointers"),
        };
        let layout = self.layout(ptr);
        let p = self.info_of(ptr);
        let mut w =
            (layout.size_per_thread[1] as u64).min(p.contiguity).min((p.divisibility / elem).max(1)).min(16 / elem);
        if let Some(m) = mask {
            w = w.min(self.info_of(m).constancy);
        }
        floor_pow2(w) as usize
    }

    /// The address of element `e` of this thread's part of pointer block `(base, offs)`.
    pub(crate) fn element_address(
        &mut self,
        base: &str,
        offs: &Option<(String, tritonite_lang::DType)>,
        e: usize,
        n: usize,
        elem: &str,
    ) -> String {
        match offs {
            None => base.to_string(),
            Some((o, d)) => {
                let it = mlir_type(*d);
                let off = self.assign(&format!("vector.extract {o}[{e}] : {it} from vector<{n}x{it}>"));
                self.assign(&format!("llvm.getelementptr {base}[{off}] : (!llvm.ptr<1>, {it}) -> !llvm.ptr<1>, {elem}"))
            }
        }
    }

    /// Element `e` (w = 1) or the `w` elements from `e` of a thread vector of `n` elements.
    pub(crate) fn slice(&mut self, v: &str, e: usize, w: usize, n: usize, elem: &str) -> String {
        if w == n && w > 1 {
            v.to_string()
        } else if w == 1 {
            self.assign(&format!("vector.extract {v}[{e}] : {elem} from vector<{n}x{elem}>"))
        } else {
            self.assign(&format!("vector.extract_strided_slice {v} {{offsets = [{e}], sizes = [{w}], strides = [1]}} : vector<{n}x{elem}> to vector<{w}x{elem}>"))
        }
    }

    pub(crate) fn load(
        &mut self,
        ptr: ValueId,
        mask: Option<ValueId>,
        other: Option<ValueId>,
        r: ValueId,
    ) -> Result<String, LowerError> {
        let elem = self.pointee(ptr);
        let rt = self.thread_type(r);
        let esize = self.ty(r).dtype().expect("loads yield numbers").size_bytes();
        let mask_name = mask.map(|m| self.num(m));
        let other_name = match other {
            Some(o) => self.num(o),
            None => self.constant(self.ty(r).dtype().expect("loads yield numbers"), 0.0, &rt),
        };
        match self.get(ptr).clone() {
            Lowered::Ptr(p) => {
                let load = format!("llvm.load {p} {{alignment = {esize} : i64}} : !llvm.ptr<1> -> {elem}");
                Ok(match mask_name {
                    None => self.assign(&load),
                    Some(m) => self.predicated_value(&m, &load, &other_name, elem),
                })
            }
            Lowered::PtrBlock { base, offs } => {
                let n = self.elems(ptr);
                let w = self.group_width(ptr, mask);
                let gt = if w == 1 { elem.to_string() } else { format!("vector<{w}x{elem}>") };
                let mut acc = other_name.clone();
                for g in 0..n / w {
                    let e = g * w;
                    let addr = self.element_address(&base, &offs, e, n, elem);
                    let load = format!("llvm.load {addr} {{alignment = {} : i64}} : !llvm.ptr<1> -> {gt}", w * esize);
                    let part = match &mask_name {
                        None => self.assign(&load),
                        Some(m) => {
                            let bit = self.slice(m, e, 1, n, "i1");
                            let other_part = self.slice(&other_name, e, w, n, elem);
                            self.predicated_value(&bit, &load, &other_part, &gt)
                        }
                    };
                    acc = if w == n && w > 1 {
                        part
                    } else if w == 1 {
                        self.assign(&format!("vector.insert {part}, {acc} [{e}] : {elem} into vector<{n}x{elem}>"))
                    } else {
                        self.assign(&format!("vector.insert_strided_slice {part}, {acc} {{offsets = [{e}], strides = [1]}} : {gt} into vector<{n}x{elem}>"))
                    };
                }
                Ok(acc)
            }
            other => unreachable!("load through {other:?}"),
        }
    }

    /// `if pred { <load> } else { other }` as a value of type `ty`.
    pub(crate) fn predicated_value(&mut self, pred: &str, load: &str, other: &str, ty: &str) -> String {
        let r = self.fresh();
        self.line(&format!("{r} = scf.if {pred} -> ({ty}) {{"));
        self.indent += 1;
        let l = self.assign(load);
        self.line(&format!("scf.yield {l} : {ty}"));
        self.indent -= 1;
        self.line("} else {");
        self.indent += 1;
        self.line(&format!("scf.yield {other} : {ty}"));
        self.indent -= 1;
        self.line("}");
        r
    }

    /// Emits `store` under `pred` (when there is one).
    fn predicated_store(&mut self, pred: Option<String>, store: &str) {
        match pred {
            None => self.line(store),
            Some(p) => {
                self.line(&format!("scf.if {p} {{"));
                self.indent += 1;
                self.line(store);
                self.indent -= 1;
                self.line("}");
            }
        }
    }

    fn and(&mut self, a: Option<String>, b: Option<String>) -> Option<String> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.assign(&format!("arith.andi {a}, {b} : i1"))),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn store(&mut self, ptr: ValueId, value: ValueId, mask: Option<ValueId>) -> Result<(), LowerError> {
        let elem = self.pointee(ptr);
        let esize = self.ty(value).dtype().expect("stores take numbers").size_bytes();
        let v = self.num(value);
        let mask_name = mask.map(|m| self.num(m));
        match self.get(ptr).clone() {
            Lowered::Ptr(p) => {
                // Every thread holds the scalar: thread 0 alone writes it.
                let first = self.is_first_thread();
                let pred = self.and(Some(first), mask_name);
                self.predicated_store(
                    pred,
                    &format!("llvm.store {v}, {p} {{alignment = {esize} : i64}} : {elem}, !llvm.ptr<1>"),
                );
            }
            Lowered::PtrBlock { base, offs } => {
                let layout = self.layout(ptr);
                let n = layout.elems_per_thread();
                let w = self.group_width(ptr, mask);
                let gt = if w == 1 { elem.to_string() } else { format!("vector<{w}x{elem}>") };
                let owner = self.is_owner(&layout);
                for g in 0..n / w {
                    let e = g * w;
                    let addr = self.element_address(&base, &offs, e, n, elem);
                    let part = self.slice(&v, e, w, n, elem);
                    let bit = mask_name.as_ref().map(|m| self.slice(m, e, 1, n, "i1"));
                    let pred = self.and(owner.clone(), bit);
                    self.predicated_store(
                        pred,
                        &format!("llvm.store {part}, {addr} {{alignment = {} : i64}} : {gt}, !llvm.ptr<1>", w * esize),
                    );
                }
            }
            other => unreachable!("store through {other:?}"),
        }
        Ok(())
    }
}
