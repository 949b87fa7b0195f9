//! The IR verifier: checks that a kernel is well formed before it is interpreted or lowered.
//!
//! The builder already rejects most mistakes as they are traced; the verifier is the contract
//! between `lang` and its consumers, so it re-checks everything they rely on, whoever built the IR.

use std::collections::HashMap;

use crate::error::LangError;
use crate::ir::{BinOp, Eviction, Kernel, OpKind, ParamKind, Region, UnOp, ValueId};
use crate::types::{DType, Elem, Type};

struct Verifier<'a> {
    kernel: &'a Kernel,
    defined: Vec<bool>,
    /// For pointer values: the index of the argument they point into.
    root: HashMap<ValueId, usize>,
}

/// Checks a kernel; the error names the op, the values and their types.
pub fn verify(kernel: &Kernel) -> Result<(), LangError> {
    let mut v = Verifier { kernel, defined: vec![false; kernel.types.len()], root: HashMap::new() };
    if !(1..=16).contains(&kernel.cluster) {
        return Err(v.err("cluster", format!("a cluster of {} programs (1 to 16 expected)", kernel.cluster)));
    }
    v.region(&kernel.body, None)
}

impl Verifier<'_> {
    fn err(&self, op: &str, detail: String) -> LangError {
        LangError { kernel: self.kernel.name.clone(), op: op.to_string(), detail, hint: None }
    }

    fn ty(&self, v: ValueId) -> &Type {
        &self.kernel.types[v.0 as usize]
    }

    fn desc(&self, v: ValueId) -> String {
        format!("{v}: {}", self.ty(v))
    }

    fn define(&mut self, v: ValueId) -> Result<(), LangError> {
        let slot = self.defined.get_mut(v.0 as usize).ok_or_else(|| LangError {
            kernel: self.kernel.name.clone(),
            op: "ir".into(),
            detail: format!("value {v} has no type"),
            hint: None,
        })?;
        if *slot {
            return Err(self.err("ir", format!("value {v} is defined twice")));
        }
        *slot = true;
        Ok(())
    }

    fn use_(&self, op: &str, v: ValueId) -> Result<(), LangError> {
        match self.defined.get(v.0 as usize) {
            Some(true) => Ok(()),
            _ => Err(self.err(
                op,
                format!("uses {v}, which is not defined here (values made inside a loop body are not visible after it; return them as loop-carried values)"),
            )),
        }
    }

    fn number(&self, op: &str, v: ValueId) -> Result<DType, LangError> {
        self.ty(v)
            .dtype()
            .ok_or_else(|| self.err(op, format!("operand {} is a pointer, expected a number", self.desc(v))))
    }

    fn same(&self, op: &str, a: ValueId, b: ValueId) -> Result<(), LangError> {
        if self.ty(a) != self.ty(b) {
            return Err(self.err(op, format!("operands differ: {} vs {}", self.desc(a), self.desc(b))));
        }
        Ok(())
    }

    fn expect_ty(&self, op: &str, v: ValueId, want: &Type) -> Result<(), LangError> {
        if self.ty(v) != want {
            return Err(self.err(op, format!("result {} should be {want}", self.desc(v))));
        }
        Ok(())
    }

    /// A loop's initial values: defined here, and numbers.
    fn carried_inits(&self, op: &str, init: &[ValueId]) -> Result<(), LangError> {
        for v in init {
            self.use_(op, *v)?;
            if self.ty(*v).dtype().is_none() {
                return Err(self.err(op, format!("cannot carry pointer {} through a loop", self.desc(*v))));
            }
        }
        Ok(())
    }

    /// Each carried value's region argument and result have its initial value's type.
    fn carried_types(
        &self,
        op: &str,
        init: &[ValueId],
        args: &[ValueId],
        results: &[ValueId],
    ) -> Result<(), LangError> {
        for ((i, a), r) in init.iter().zip(args).zip(results) {
            if self.ty(*i) != self.ty(*a) || self.ty(*i) != self.ty(*r) {
                return Err(self.err(op, format!("carried value {} changes type in the loop", self.desc(*i))));
            }
        }
        Ok(())
    }

    /// A loop region (checked by [`Self::region`] to end with a yield) yields values of `want`.
    fn yields(&self, op: &str, region: &Region, want: &[Type]) -> Result<(), LangError> {
        let Some(OpKind::Yield(ys)) = region.ops.last().map(|o| &o.kind) else { return Ok(()) };
        if ys.len() != want.len() {
            return Err(self.err(op, format!("yields {} values for {} expected", ys.len(), want.len())));
        }
        for (y, t) in ys.iter().zip(want) {
            if self.ty(*y) != t {
                return Err(self.err(op, format!("yields {} where {t} is expected", self.desc(*y))));
            }
        }
        Ok(())
    }

    /// Checks `region`'s ops; a loop's region (`in_loop`: the loop op's name and what the region
    /// is to it) must end with a yield.
    fn region(&mut self, region: &Region, in_loop: Option<(&str, &str)>) -> Result<(), LangError> {
        let mut scoped: Vec<ValueId> = region.args.clone();
        for &a in &region.args {
            self.define(a)?;
        }
        for (i, op) in region.ops.iter().enumerate() {
            let last = i + 1 == region.ops.len();
            self.op(&op.kind, &op.results, in_loop.is_some() && last)?;
            for &r in &op.results {
                self.define(r)?;
                scoped.push(r);
            }
        }
        if let Some((op, what)) = in_loop {
            if !matches!(region.ops.last().map(|o| &o.kind), Some(OpKind::Yield(_))) {
                return Err(self.err(op, format!("a loop's {what} must end with yield")));
            }
        }
        for v in scoped {
            self.defined[v.0 as usize] = false;
        }
        Ok(())
    }

    fn op(&mut self, kind: &OpKind, results: &[ValueId], may_yield: bool) -> Result<(), LangError> {
        let k = self.kernel;
        let one = |name: &str| -> Result<ValueId, LangError> {
            match results {
                [r] => Ok(*r),
                _ => Err(self.err(name, format!("expected one result, found {}", results.len()))),
            }
        };
        match kind {
            OpKind::Param(i) => {
                let r = one("param")?;
                let p = k.params.get(*i).ok_or_else(|| self.err("param", format!("argument {i} does not exist")))?;
                let want = match p.kind {
                    ParamKind::Ptr(d) | ParamKind::MutPtr(d) => Type { elem: Elem::Ptr(d), shape: vec![] },
                    ParamKind::Scalar(d) => Type::scalar(d),
                };
                self.expect_ty("param", r, &want)?;
                if p.kind.is_ptr() {
                    self.root.insert(r, *i);
                }
            }
            OpKind::Const(_) => {
                let r = one("const")?;
                if !self.ty(r).is_scalar() || self.ty(r).dtype().is_none() {
                    return Err(self.err("const", format!("{} must be a scalar number", self.desc(r))));
                }
            }
            OpKind::ProgramId(a) | OpKind::NumPrograms(a) => {
                let r = one("program_id")?;
                if *a > 2 {
                    return Err(self.err("program_id", format!("axis {a} does not exist")));
                }
                self.expect_ty("program_id", r, &Type::scalar(DType::I32))?;
            }
            OpKind::Arange { start, end } => {
                let r = one("arange")?;
                let len = end - start;
                if len <= 0 || !(len as u64).is_power_of_two() {
                    return Err(self.err("arange", format!("length {len} is not a positive power of two")));
                }
                self.expect_ty("arange", r, &Type::block(DType::I32, &[len as usize]))?;
            }
            OpKind::Splat(v) => {
                let r = one("splat")?;
                self.use_("splat", *v)?;
                let (vt, rt) = (self.ty(*v), self.ty(r));
                if !vt.is_scalar() || vt.elem != rt.elem || rt.is_scalar() {
                    return Err(self.err("splat", format!("cannot splat {} to {}", self.desc(*v), rt)));
                }
                self.inherit_root(*v, r);
            }
            OpKind::Broadcast(v) => {
                let r = one("broadcast")?;
                self.use_("broadcast", *v)?;
                let (vt, rt) = (self.ty(*v), self.ty(r));
                let ok = vt.elem == rt.elem
                    && vt.shape.len() == rt.shape.len()
                    && vt.shape.iter().zip(&rt.shape).all(|(a, b)| a == b || *a == 1);
                if !ok {
                    return Err(self.err("broadcast", format!("cannot broadcast {} to {}", self.desc(*v), rt)));
                }
                self.inherit_root(*v, r);
            }
            OpKind::ExpandDims(v, axis) => {
                let r = one("expand_dims")?;
                self.use_("expand_dims", *v)?;
                let mut shape = self.ty(*v).shape.clone();
                if *axis > shape.len() {
                    return Err(self.err("expand_dims", format!("axis {axis} out of range for {}", self.desc(*v))));
                }
                shape.insert(*axis, 1);
                let want = Type { elem: self.ty(*v).elem, shape };
                self.expect_ty("expand_dims", r, &want)?;
                self.inherit_root(*v, r);
            }
            OpKind::Binary(op, a, b) => {
                let r = one(op.name())?;
                self.use_(op.name(), *a)?;
                self.use_(op.name(), *b)?;
                self.same(op.name(), *a, *b)?;
                let d = self.number(op.name(), *a)?;
                let ok = match op {
                    BinOp::And | BinOp::Or => d == DType::Bool || d.is_int(),
                    BinOp::Rem => d.is_int(),
                    _ => d != DType::Bool,
                };
                if !ok {
                    return Err(self.err(op.name(), format!("not defined on {}", self.desc(*a))));
                }
                let want = self.ty(*a).clone();
                self.expect_ty(op.name(), r, &want)?;
            }
            OpKind::Cmp(op, a, b) => {
                let r = one(op.name())?;
                self.use_(op.name(), *a)?;
                self.use_(op.name(), *b)?;
                self.same(op.name(), *a, *b)?;
                self.number(op.name(), *a)?;
                let want = self.ty(*a).with_elem(Elem::Scalar(DType::Bool));
                self.expect_ty(op.name(), r, &want)?;
            }
            OpKind::Unary(op, a) => {
                let r = one(op.name())?;
                self.use_(op.name(), *a)?;
                let d = self.number(op.name(), *a)?;
                let ok = match op {
                    UnOp::Not => d == DType::Bool,
                    u if u.float_only() => d.is_float(),
                    _ => d != DType::Bool,
                };
                if !ok {
                    return Err(self.err(op.name(), format!("not defined on {}", self.desc(*a))));
                }
                let want = self.ty(*a).clone();
                self.expect_ty(op.name(), r, &want)?;
            }
            OpKind::Select(c, a, b) => {
                let r = one("where")?;
                for v in [c, a, b] {
                    self.use_("where", *v)?;
                }
                self.same("where", *a, *b)?;
                self.number("where", *a)?;
                if *self.ty(*c) != self.ty(*a).with_elem(Elem::Scalar(DType::Bool)) {
                    return Err(
                        self.err("where", format!("condition {} must be bool of the operands' shape", self.desc(*c)))
                    );
                }
                let want = self.ty(*a).clone();
                self.expect_ty("where", r, &want)?;
            }
            OpKind::Cast(v) => {
                let r = one("cast")?;
                self.use_("cast", *v)?;
                self.number("cast", *v)?;
                self.number("cast", r)?;
                if self.ty(*v).shape != self.ty(r).shape {
                    return Err(self.err("cast", format!("changes shape: {} to {}", self.desc(*v), self.ty(r))));
                }
            }
            OpKind::AddPtr(p, o) => {
                let r = one("addptr")?;
                self.use_("addptr", *p)?;
                self.use_("addptr", *o)?;
                let (pt, ot) = (self.ty(*p), self.ty(*o));
                if !matches!(pt.elem, Elem::Ptr(_)) || !ot.dtype().is_some_and(DType::is_int) || pt.shape != ot.shape {
                    return Err(self.err(
                        "addptr",
                        format!(
                            "needs a pointer and integer offsets of one shape, got {} and {}",
                            self.desc(*p),
                            self.desc(*o)
                        ),
                    ));
                }
                let want = pt.clone();
                self.expect_ty("addptr", r, &want)?;
                self.inherit_root(*p, r);
            }
            OpKind::Load { ptr, mask, other, staged, evict } => {
                let r = one("load")?;
                self.use_("load", *ptr)?;
                let pt = self.ty(*ptr).clone();
                let Elem::Ptr(d) = pt.elem else {
                    return Err(self.err("load", format!("{} is not a pointer", self.desc(*ptr))));
                };
                self.pointer_root("load", *ptr)?;
                if let Some(m) = mask {
                    self.use_("load", *m)?;
                    if *self.ty(*m) != pt.with_elem(Elem::Scalar(DType::Bool)) {
                        return Err(self.err(
                            "load",
                            format!("mask {} must be bool of the pointer's shape {:?}", self.desc(*m), pt.shape),
                        ));
                    }
                }
                let want = Type::block(d, &pt.shape);
                if let Some(o) = other {
                    self.use_("load", *o)?;
                    if mask.is_none() || *self.ty(*o) != want {
                        return Err(
                            self.err("load", format!("other {} must be {want} and come with a mask", self.desc(*o)))
                        );
                    }
                }
                if *staged && *evict != Eviction::Normal {
                    return Err(self.err("load", "a staged load takes no eviction policy".into()));
                }
                if *staged && (pt.shape.is_empty() || other.is_some()) {
                    return Err(self.err(
                        "load",
                        format!(
                            "a staged load reads a block of pointers, zeros where masked off; got {}",
                            self.desc(*ptr)
                        ),
                    ));
                }
                self.expect_ty("load", r, &want)?;
            }
            OpKind::ReleaseNextLaunch => {
                if !results.is_empty() {
                    return Err(self.err("release_next_launch", "it has no results".into()));
                }
            }
            OpKind::Store { ptr, value, mask, .. } => {
                if !results.is_empty() {
                    return Err(self.err("store", "a store has no results".into()));
                }
                self.use_("store", *ptr)?;
                self.use_("store", *value)?;
                let pt = self.ty(*ptr).clone();
                let Elem::Ptr(d) = pt.elem else {
                    return Err(self.err("store", format!("{} is not a pointer", self.desc(*ptr))));
                };
                self.writable("store", "stores", *ptr)?;
                if *self.ty(*value) != Type::block(d, &pt.shape) {
                    return Err(self.err(
                        "store",
                        format!("value {} must be {d} of the pointer's shape {:?}", self.desc(*value), pt.shape),
                    ));
                }
                if let Some(m) = mask {
                    self.use_("store", *m)?;
                    if *self.ty(*m) != pt.with_elem(Elem::Scalar(DType::Bool)) {
                        return Err(self.err(
                            "store",
                            format!("mask {} must be bool of the pointer's shape {:?}", self.desc(*m), pt.shape),
                        ));
                    }
                }
            }
            OpKind::AtomicAdd { ptr, value, mask } => {
                let r = one("atomic_add")?;
                self.use_("atomic_add", *ptr)?;
                self.use_("atomic_add", *value)?;
                let pt = self.ty(*ptr).clone();
                let d = match pt.elem {
                    Elem::Ptr(d @ (DType::I32 | DType::F32)) if pt.is_scalar() => d,
                    _ => {
                        return Err(
                            self.err("atomic_add", format!("{} is not a single i32 or f32 pointer", self.desc(*ptr)))
                        )
                    }
                };
                self.writable("atomic_add", "adds", *ptr)?;
                if *self.ty(*value) != Type::scalar(d) {
                    return Err(self.err("atomic_add", format!("value {} must be a scalar {d}", self.desc(*value))));
                }
                if let Some(m) = mask {
                    self.use_("atomic_add", *m)?;
                    if *self.ty(*m) != Type::scalar(DType::Bool) {
                        return Err(self.err("atomic_add", format!("mask {} must be a scalar bool", self.desc(*m))));
                    }
                }
                self.expect_ty("atomic_add", r, &Type::scalar(d))?;
            }
            OpKind::Reduce(op, v, axis) => {
                let r = one(op.name())?;
                self.use_(op.name(), *v)?;
                let d = self.number(op.name(), *v)?;
                let vt = self.ty(*v).clone();
                if d == DType::Bool || *axis >= vt.shape.len() {
                    return Err(self.err(op.name(), format!("cannot reduce {} along axis {axis}", self.desc(*v))));
                }
                let mut shape = vt.shape.clone();
                shape.remove(*axis);
                self.expect_ty(op.name(), r, &Type { elem: vt.elem, shape })?;
            }
            OpKind::ClusterReduce(op, v) => {
                let name = format!("cluster_{}", op.name());
                let r = one(&name)?;
                self.use_(&name, *v)?;
                if self.number(&name, *v)? == DType::Bool {
                    return Err(self.err(&name, format!("cannot combine {}", self.desc(*v))));
                }
                let vt = self.ty(*v).clone();
                self.expect_ty(&name, r, &vt)?;
            }
            OpKind::Trans(v) => {
                let r = one("trans")?;
                self.use_("trans", *v)?;
                let vt = self.ty(*v).clone();
                if vt.shape.len() != 2 || vt.dtype().is_none() {
                    return Err(self.err("trans", format!("cannot transpose {}", self.desc(*v))));
                }
                self.expect_ty("trans", r, &Type { elem: vt.elem, shape: vec![vt.shape[1], vt.shape[0]] })?;
            }
            OpKind::Dot { a, b, acc } => {
                let r = one("dot")?;
                for v in [a, b, acc] {
                    self.use_("dot", *v)?;
                }
                let (at, bt, ct) = (self.ty(*a).clone(), self.ty(*b).clone(), self.ty(*acc).clone());
                let ok = at.shape.len() == 2
                    && bt.shape.len() == 2
                    && at.shape[1] == bt.shape[0]
                    && matches!(at.dtype(), Some(DType::F16 | DType::BF16))
                    && at.elem == bt.elem
                    && ct == Type::block(DType::F32, &[at.shape[0], bt.shape[1]]);
                if !ok {
                    return Err(self.err(
                        "dot",
                        format!(
                            "{} · {} + {}: needs [M, K] · [K, N] of one 16-bit float dtype and an f32 [M, N] accumulator",
                            self.desc(*a),
                            self.desc(*b),
                            self.desc(*acc)
                        ),
                    ));
                }
                self.expect_ty("dot", r, &ct)?;
            }
            OpKind::For { lo, hi, step, init, body } => {
                for b in [lo, hi, step] {
                    self.use_("for_range", *b)?;
                    if *self.ty(*b) != Type::scalar(DType::I32) {
                        return Err(self.err("for_range", format!("bound {} must be an i32 scalar", self.desc(*b))));
                    }
                }
                self.carried_inits("for_range", init)?;
                if body.args.len() != init.len() + 1 || results.len() != init.len() {
                    return Err(self.err(
                        "for_range",
                        format!(
                            "{} carried values but {} body arguments and {} results",
                            init.len(),
                            body.args.len(),
                            results.len()
                        ),
                    ));
                }
                if *self.ty(body.args[0]) != Type::scalar(DType::I32) {
                    return Err(self.err("for_range", "the induction variable must be i32".into()));
                }
                self.carried_types("for_range", init, &body.args[1..], results)?;
                self.region(body, Some(("for_range", "body")))?;
                let want: Vec<Type> = body.args[1..].iter().map(|a| self.ty(*a).clone()).collect();
                self.yields("for_range", body, &want)?;
            }
            OpKind::While { init, cond, body } => {
                self.carried_inits("while_loop", init)?;
                if cond.args.len() != init.len() || body.args.len() != init.len() || results.len() != init.len() {
                    return Err(self.err(
                        "while_loop",
                        format!(
                            "{} carried values but {} test arguments, {} body arguments and {} results",
                            init.len(),
                            cond.args.len(),
                            body.args.len(),
                            results.len()
                        ),
                    ));
                }
                self.carried_types("while_loop", init, &cond.args, results)?;
                self.carried_types("while_loop", init, &body.args, results)?;
                self.region(cond, Some(("while_loop", "test")))?;
                self.yields("while_loop", cond, &[Type::scalar(DType::Bool)])?;
                self.region(body, Some(("while_loop", "body")))?;
                let want: Vec<Type> = init.iter().map(|a| self.ty(*a).clone()).collect();
                self.yields("while_loop", body, &want)?;
            }
            OpKind::Yield(vs) => {
                if !may_yield {
                    return Err(self.err("yield", "yield may only end a loop body".into()));
                }
                for v in vs {
                    self.use_("yield", *v)?;
                }
            }
        }
        Ok(())
    }

    fn inherit_root(&mut self, from: ValueId, to: ValueId) {
        if let Some(&r) = self.root.get(&from) {
            self.root.insert(to, r);
        }
    }

    /// An error unless pointer `p` points into a writable argument (`verb`: what `op` does
    /// through it, for the message).
    fn writable(&self, op: &str, verb: &str, p: ValueId) -> Result<(), LangError> {
        let k = self.kernel;
        let root = self.pointer_root(op, p)?;
        if matches!(k.params[root].kind, ParamKind::MutPtr(_)) {
            return Ok(());
        }
        Err(LangError {
            kernel: k.name.clone(),
            op: op.into(),
            detail: format!("{verb} through `{}`, which is a read-only argument", k.params[root].name),
            hint: Some("declare it with mut_ptr_arg".into()),
        })
    }

    fn pointer_root(&self, op: &str, p: ValueId) -> Result<usize, LangError> {
        self.root.get(&p).copied().ok_or_else(|| {
            self.err(
                op,
                format!("pointer {} is not derived from a pointer argument by offsets and broadcasts", self.desc(p)),
            )
        })
    }
}
