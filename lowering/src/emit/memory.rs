//! Global loads and stores. A thread's elements are split into groups of `w` contiguous elements,
//! `w` as wide as the axis analysis proves safe (contiguous, aligned, one mask value per group,
//! at most 16 bytes); each group is one vector access, predicated by its mask bit. An access with
//! an eviction policy is inline PTX, as Triton emits it: `ld`/`st` with the L1 eviction priority
//! and an L2 cache policy (`createpolicy.fractional`) of the same kind.

use tritonite_lang::ir::{Eviction, ValueId};

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
        evict: Eviction,
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
            Lowered::Ptr(p) => Ok(match mask_name {
                None => self.load_group(&p, elem, 1, esize, evict),
                Some(m) => self.predicated(&m, |e| e.load_group(&p, elem, 1, esize, evict), &other_name, elem),
            }),
            Lowered::PtrBlock { base, offs } => {
                let n = self.elems(ptr);
                let w = self.group_width(ptr, mask);
                let gt = if w == 1 { elem.to_string() } else { format!("vector<{w}x{elem}>") };
                let mut acc = other_name.clone();
                for g in 0..n / w {
                    let e = g * w;
                    let addr = self.element_address(&base, &offs, e, n, elem);
                    let part = match &mask_name {
                        None => self.load_group(&addr, elem, w, esize, evict),
                        Some(m) => {
                            let bit = self.slice(m, e, 1, n, "i1");
                            let other_part = self.slice(&other_name, e, w, n, elem);
                            self.predicated(&bit, |e| e.load_group(&addr, elem, w, esize, evict), &other_part, &gt)
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

    /// One access's bits as PTX registers: `(count, constraint letter, MLIR integer type, PTX
    /// vector prefix and type)` for `bytes` bytes (2, 4, 8 or 16), or `None` for other sizes.
    fn hinted_registers(bytes: usize) -> Option<(usize, char, &'static str, &'static str)> {
        match bytes {
            2 => Some((1, 'h', "i16", "b16")),
            4 => Some((1, 'r', "i32", "b32")),
            8 => Some((2, 'r', "i32", "v2.b32")),
            16 => Some((4, 'r', "i32", "v4.b32")),
            _ => None,
        }
    }

    /// The PTX of an access under `evict`, `None` under the default policy: the opening of a scope
    /// that creates the L2 policy `%policy`, and the qualifiers of `ld`/`st`.
    fn hint_ptx(evict: Eviction) -> Option<(String, String)> {
        let kind = evict.name()?;
        let scope = format!("{{ .reg .b64 %policy; createpolicy.fractional.L2::{kind}.b64 %policy, 1.0; ");
        Some((scope, format!(".L1::{kind}.L2::cache_hint")))
    }

    /// Loads `w` elements of MLIR type `elem` (`esize` bytes each) from `addr`: a plain load, or
    /// with a policy other than the default, inline PTX (a 1-byte access stays plain: the policy
    /// is a hint).
    fn load_group(&mut self, addr: &str, elem: &str, w: usize, esize: usize, evict: Eviction) -> String {
        let gt = if w == 1 { elem.to_string() } else { format!("vector<{w}x{elem}>") };
        let (Some((count, letter, it, vty)), Some((scope, qualifiers))) =
            (Self::hinted_registers(w * esize), Self::hint_ptx(evict))
        else {
            return self
                .assign(&format!("llvm.load {addr} {{alignment = {} : i64}} : !llvm.ptr<1> -> {gt}", w * esize));
        };
        let outs = (0..count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let outs = if count == 1 { outs } else { format!("{{{outs}}}") };
        let ptx = format!("{scope}ld.global{qualifiers}.{vty} {outs}, [${count}], %policy; }}");
        let constraints = format!("{},l", vec![format!("={letter}"); count].join(","));
        // One output register is the value; several come back as a struct.
        let rt = if count == 1 { it.to_string() } else { format!("!llvm.struct<({})>", vec![it; count].join(", ")) };
        let r = self.assign(&format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{ptx}\", \"{constraints}\" {addr} : (!llvm.ptr<1>) -> {rt}"
        ));
        let bits = if count == 1 {
            r
        } else {
            let parts: Vec<String> =
                (0..count).map(|i| self.assign(&format!("llvm.extractvalue {r}[{i}] : {rt}"))).collect();
            self.assign(&format!("vector.from_elements {} : vector<{count}x{it}>", parts.join(", ")))
        };
        let bt = if count == 1 { it.to_string() } else { format!("vector<{count}x{it}>") };
        if bt == gt {
            bits
        } else {
            self.assign(&format!("llvm.bitcast {bits} : {bt} to {gt}"))
        }
    }

    /// The store of `part` (`w` elements of `elem`, `esize` bytes each) to `addr`: a plain store,
    /// or with a policy other than the default, inline PTX (a 1-byte access stays plain).
    fn store_group(&mut self, part: &str, addr: &str, elem: &str, w: usize, esize: usize, evict: Eviction) -> String {
        let gt = if w == 1 { elem.to_string() } else { format!("vector<{w}x{elem}>") };
        let (Some((count, letter, it, vty)), Some((scope, qualifiers))) =
            (Self::hinted_registers(w * esize), Self::hint_ptx(evict))
        else {
            return format!("llvm.store {part}, {addr} {{alignment = {} : i64}} : {gt}, !llvm.ptr<1>", w * esize);
        };
        let bt = if count == 1 { it.to_string() } else { format!("vector<{count}x{it}>") };
        let bits =
            if bt == gt { part.to_string() } else { self.assign(&format!("llvm.bitcast {part} : {gt} to {bt}")) };
        let values: Vec<String> = if count == 1 {
            vec![bits]
        } else {
            (0..count).map(|i| self.assign(&format!("vector.extract {bits}[{i}] : {it} from {bt}"))).collect()
        };
        let ins = (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let ins = if count == 1 { ins } else { format!("{{{ins}}}") };
        let ptx = format!("{scope}st.global{qualifiers}.{vty} [$0], {ins}, %policy; }}");
        let constraints = format!("l,{}", vec![letter.to_string(); count].join(","));
        format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{ptx}\", \"{constraints},~{{memory}}\" {addr}, {} : (!llvm.ptr<1>, {}) -> ()",
            values.join(", "),
            vec![it; count].join(", ")
        )
    }

    /// `if pred { <load> } else { other }` as a value of type `ty`.
    pub(crate) fn predicated_value(&mut self, pred: &str, load: &str, other: &str, ty: &str) -> String {
        self.predicated(pred, |e| e.assign(load), other, ty)
    }

    /// `if pred { <what emit emits> } else { other }` as a value of type `ty`.
    fn predicated(&mut self, pred: &str, emit: impl FnOnce(&mut Self) -> String, other: &str, ty: &str) -> String {
        let r = self.fresh();
        self.line(&format!("{r} = scf.if {pred} -> ({ty}) {{"));
        self.indent += 1;
        let l = emit(self);
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

    /// An atomic add at a single pointer, once per program: thread 0 alone adds (where the mask
    /// holds) and hands the number it replaced (zero where masked off) to every thread through
    /// shared memory, between two barriers (the second so that a loop's next add waits for every
    /// read of this one).
    pub(crate) fn atomic_add(&mut self, ptr: ValueId, value: ValueId, mask: Option<ValueId>) -> String {
        let Lowered::Ptr(p) = self.get(ptr).clone() else {
            unreachable!("the verifier checks atomic_add takes a single pointer")
        };
        let d = self.ty(value).dtype().expect("atomic_add adds numbers");
        let t = mlir_type(d);
        let v = self.num(value);
        let mask = mask.map(|m| self.num(m));
        let first = self.is_first_thread();
        let adds = self.and(Some(first.clone()), mask).expect("the first thread adds");
        let zero = self.constant(d, 0.0, t);
        let op = if d.is_float() { "fadd" } else { "add" };
        let old = self.predicated(
            &adds,
            |e| e.assign(&format!("llvm.atomicrmw {op} {p}, {v} monotonic : !llvm.ptr<1>, {t}")),
            &zero,
            t,
        );
        let slot = self.shared_ptr(d, 1);
        self.predicated_store(Some(first), &format!("llvm.store {old}, {slot} : {t}, !llvm.ptr<3>"));
        self.line("gpu.barrier");
        let r = self.assign(&format!("llvm.load {slot} : !llvm.ptr<3> -> {t}"));
        self.line("gpu.barrier");
        self.warp_uniform(&r, t)
    }

    pub(crate) fn store(
        &mut self,
        ptr: ValueId,
        value: ValueId,
        mask: Option<ValueId>,
        evict: Eviction,
    ) -> Result<(), LowerError> {
        let elem = self.pointee(ptr);
        let esize = self.ty(value).dtype().expect("stores take numbers").size_bytes();
        let v = self.num(value);
        let mask_name = mask.map(|m| self.num(m));
        match self.get(ptr).clone() {
            Lowered::Ptr(p) => {
                // Every thread holds the scalar: thread 0 alone writes it.
                let first = self.is_first_thread();
                let pred = self.and(Some(first), mask_name);
                let store = self.store_group(&v, &p, elem, 1, esize, evict);
                self.predicated_store(pred, &store);
            }
            Lowered::PtrBlock { base, offs } => {
                let layout = self.layout(ptr);
                let n = layout.elems_per_thread();
                let w = self.group_width(ptr, mask);
                let owner = self.is_owner(&layout);
                for g in 0..n / w {
                    let e = g * w;
                    let addr = self.element_address(&base, &offs, e, n, elem);
                    let part = self.slice(&v, e, w, n, elem);
                    let bit = mask_name.as_ref().map(|m| self.slice(m, e, 1, n, "i1"));
                    let pred = self.and(owner.clone(), bit);
                    let store = self.store_group(&part, &addr, elem, w, esize, evict);
                    self.predicated_store(pred, &store);
                }
            }
            other => unreachable!("store through {other:?}"),
        }
        Ok(())
    }
}
