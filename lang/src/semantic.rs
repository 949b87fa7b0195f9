//! The typing rules of the language: implicit casts, broadcasting, and the errors a kernel author sees.
//!
//! The builder's methods only normalize their arguments and call one function here; every rule about
//! which operands are accepted, how they are converted and what an error says lives in this file.

use crate::error::LangError;
use crate::ir::{BinOp, CmpOp, Eviction, Lit, Meta, Op, OpKind, Param, ReduceOp, Region, UnOp, ValueId};
use crate::types::{DType, Elem, Type};

/// An operand as the builder receives it: a traced value or a Rust literal.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operand {
    Value(ValueId),
    Lit(Lit),
}

/// The mutable state behind a kernel builder.
pub(crate) struct State {
    pub name: String,
    pub params: Vec<Param>,
    pub meta: Vec<Meta>,
    /// Programs per cluster (1 until the kernel declares clusters).
    pub cluster: u32,
    /// See [`crate::ir::Kernel::waits_for_previous_launch`].
    pub waits_for_previous_launch: bool,
    pub types: Vec<Type>,
    /// Regions under construction; `regions[0]` is the kernel body, the last one is current.
    pub regions: Vec<Region>,
    /// The first error met; later errors are usually consequences of it.
    pub error: Option<LangError>,
}

impl State {
    pub fn new(name: &str) -> State {
        State {
            name: name.to_string(),
            params: vec![],
            meta: vec![],
            cluster: 1,
            waits_for_previous_launch: false,
            types: vec![],
            regions: vec![Region::default()],
            error: None,
        }
    }

    pub fn ty(&self, v: ValueId) -> &Type {
        &self.types[v.0 as usize]
    }

    pub fn new_value(&mut self, ty: Type) -> ValueId {
        self.types.push(ty);
        ValueId(self.types.len() as u32 - 1)
    }

    /// Appends an op with one result of type `ty` to the current region.
    pub fn emit(&mut self, kind: OpKind, ty: Type) -> ValueId {
        let v = self.new_value(ty);
        self.push_op(kind, vec![v]);
        v
    }

    pub fn push_op(&mut self, kind: OpKind, results: Vec<ValueId>) {
        let region = self.regions.last_mut().expect("the kernel body region always exists");
        region.ops.push(Op { kind, results });
    }

    /// Records an error (the first one wins) and returns a placeholder value of type `ty`.
    pub fn fail(&mut self, op: &str, detail: String, hint: Option<&str>, ty: Type) -> ValueId {
        if self.error.is_none() {
            self.error = Some(LangError {
                kernel: self.name.clone(),
                op: op.to_string(),
                detail,
                hint: hint.map(str::to_string),
            });
        }
        self.emit(OpKind::Const(Lit::Int(0)), ty)
    }
}

/// How strongly an operand's dtype is fixed: a traced value's is, a literal's is not.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Strong(DType),
    WeakInt,
    WeakFloat,
    WeakBool,
}

fn kind_of(st: &State, a: Operand) -> Result<Kind, Elem> {
    match a {
        Operand::Value(v) => match st.ty(v).elem {
            Elem::Scalar(d) => Ok(Kind::Strong(d)),
            p @ Elem::Ptr(_) => Err(p),
        },
        Operand::Lit(Lit::Int(_)) => Ok(Kind::WeakInt),
        Operand::Lit(Lit::Float(_)) => Ok(Kind::WeakFloat),
        Operand::Lit(Lit::Bool(_)) => Ok(Kind::WeakBool),
    }
}

fn shape_of(st: &State, a: Operand) -> Vec<usize> {
    match a {
        Operand::Value(v) => st.ty(v).shape.clone(),
        Operand::Lit(_) => vec![],
    }
}

fn describe(st: &State, a: Operand) -> String {
    match a {
        Operand::Value(v) => format!("{v}: {}", st.ty(v)),
        Operand::Lit(l) => format!("literal {l}"),
    }
}

/// The common dtype of two numeric operands.
///
/// 1) Two operands of one dtype keep it.
/// 2) A Rust literal takes the other operand's dtype; a float literal next to an integer value makes
///    both `f32`.
/// 3) Two floats: the wider wins; `f16` with `bf16` gives `f32` (neither holds the other).
/// 4) An integer with a float gives the float.
/// 5) Two integers: the wider wins.
/// 6) Two literals: `i32` for integers, `f32` if either is a float, `bool` for two booleans.
fn promote(a: Kind, b: Kind) -> Option<DType> {
    use DType::*;
    use Kind::*;
    let widest_float = |x: DType, y: DType| match (x, y) {
        (F32, _) | (_, F32) => F32,
        (F16, F16) => F16,
        (BF16, BF16) => BF16,
        _ => F32,
    };
    Some(match (a, b) {
        (Strong(x), Strong(y)) if x == y => x,
        (Strong(Bool), _) | (_, Strong(Bool)) => return None,
        (Strong(x), Strong(y)) if x.is_float() && y.is_float() => widest_float(x, y),
        (Strong(x), Strong(_)) if x.is_float() => x,
        (Strong(_), Strong(y)) if y.is_float() => y,
        (Strong(_), Strong(_)) => I64,
        (Strong(x), WeakInt) | (WeakInt, Strong(x)) => x,
        (Strong(x), WeakFloat) | (WeakFloat, Strong(x)) => {
            if x.is_float() {
                x
            } else {
                F32
            }
        }
        (WeakBool, WeakBool) => Bool,
        (WeakBool, _) | (_, WeakBool) => return None,
        (WeakInt, WeakInt) => I32,
        _ => F32,
    })
}

/// The shape two operands broadcast to, numpy style: align on the right, then each pair of
/// dimensions must be equal or contain a 1.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| match (x, y) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Makes a value of dtype `dtype` from an operand, inserting a constant or a cast as needed.
fn coerce(st: &mut State, a: Operand, dtype: DType) -> ValueId {
    match a {
        Operand::Lit(l) => {
            let lit = match dtype {
                DType::Bool => Lit::Bool(l.as_f64() != 0.0),
                d if d.is_int() => Lit::Int(l.as_i64()),
                _ => Lit::Float(l.as_f64()),
            };
            st.emit(OpKind::Const(lit), Type::scalar(dtype))
        }
        Operand::Value(v) => cast(st, v, dtype),
    }
}

/// Converts a value to `dtype` (no op when it already is).
pub(crate) fn cast(st: &mut State, v: ValueId, dtype: DType) -> ValueId {
    let ty = st.ty(v).clone();
    match ty.elem {
        Elem::Scalar(d) if d == dtype => v,
        Elem::Scalar(_) => st.emit(OpKind::Cast(v), ty.with_elem(Elem::Scalar(dtype))),
        Elem::Ptr(_) => st.fail(
            "cast",
            format!("cannot cast pointer {v}: {ty} to {dtype}"),
            Some("offset pointers with `+` instead"),
            ty,
        ),
    }
}

/// Broadcasts `v` to `shape`: a scalar is splatted; a block gets leading size-1 dimensions, then
/// its size-1 dimensions repeated.
pub(crate) fn broadcast_to(st: &mut State, v: ValueId, shape: &[usize]) -> ValueId {
    let ty = st.ty(v).clone();
    if ty.shape == shape {
        return v;
    }
    if ty.is_scalar() {
        return st.emit(OpKind::Splat(v), Type { elem: ty.elem, shape: shape.to_vec() });
    }
    if broadcast_shape(&ty.shape, shape).as_deref() != Some(shape) {
        return st.fail(
            "broadcast",
            format!("cannot broadcast {v}: {ty} to shape {shape:?}"),
            Some("each dimension must match or be 1; use expand_dims to add one"),
            Type { elem: ty.elem, shape: shape.to_vec() },
        );
    }
    let mut cur = v;
    while st.ty(cur).shape.len() < shape.len() {
        cur = expand_dims(st, cur, 0);
    }
    if st.ty(cur).shape == shape {
        return cur;
    }
    st.emit(OpKind::Broadcast(cur), Type { elem: ty.elem, shape: shape.to_vec() })
}

/// Inserts a size-1 dimension at `axis` (0 ≤ axis ≤ rank).
pub(crate) fn expand_dims(st: &mut State, v: ValueId, axis: usize) -> ValueId {
    let ty = st.ty(v).clone();
    if axis > ty.shape.len() {
        return st.fail(
            "expand_dims",
            format!("axis {axis} is out of range for {v}: {ty} (rank {})", ty.shape.len()),
            Some("the axis may be at most the rank"),
            ty,
        );
    }
    let mut shape = ty.shape.clone();
    shape.insert(axis, 1);
    st.emit(OpKind::ExpandDims(v, axis), Type { elem: ty.elem, shape })
}

/// Brings operands to one dtype and one shape (rules in [`promote`] and [`broadcast_shape`]).
fn unify(st: &mut State, op: &str, ops: &[Operand], dtype: Option<DType>) -> Option<Vec<ValueId>> {
    let mut kinds = vec![];
    for &a in ops {
        match kind_of(st, a) {
            Ok(k) => kinds.push(k),
            Err(elem) => {
                st.fail(
                    op,
                    format!("operand {} is a pointer ({elem}); {op} takes numbers", describe(st, a)),
                    Some("load through the pointer first"),
                    Type::scalar(DType::I32),
                );
                return None;
            }
        }
    }
    let dtype = match dtype {
        Some(d) => d,
        None => {
            let mut acc = kinds[0];
            for &k in &kinds[1..] {
                match promote(acc, k) {
                    Some(d) => acc = Kind::Strong(d),
                    None => {
                        let list: Vec<String> = ops.iter().map(|&a| describe(st, a)).collect();
                        st.fail(
                            op,
                            format!("cannot combine bool with a number: {}", list.join(" and ")),
                            Some("cast the mask with .cast(DType::I32) or use where()"),
                            Type::scalar(DType::I32),
                        );
                        return None;
                    }
                }
            }
            match acc {
                Kind::Strong(d) => d,
                other => promote(other, other).unwrap_or(DType::I32),
            }
        }
    };
    let mut shape: Vec<usize> = vec![];
    for &a in ops {
        let s = shape_of(st, a);
        match broadcast_shape(&shape, &s) {
            Some(b) => shape = b,
            None => {
                let list: Vec<String> = ops.iter().map(|&a| describe(st, a)).collect();
                st.fail(
                    op,
                    format!("shapes do not broadcast: {}", list.join(" and ")),
                    Some("each dimension must match or be 1; use expand_dims or broadcast_to"),
                    Type::scalar(dtype),
                );
                return None;
            }
        }
    }
    let values = ops
        .iter()
        .map(|&a| {
            let v = coerce(st, a, dtype);
            broadcast_to(st, v, &shape)
        })
        .collect();
    Some(values)
}

fn placeholder(st: &mut State) -> ValueId {
    st.emit(OpKind::Const(Lit::Int(0)), Type::scalar(DType::I32))
}

/// `a <op> b` for arithmetic, min/max and logic; `pointer + integer` offsets a pointer.
pub(crate) fn binary(st: &mut State, op: BinOp, a: Operand, b: Operand) -> ValueId {
    // Pointer arithmetic: `ptr + offsets` or `offsets + ptr`.
    let is_ptr = |st: &State, x: Operand| matches!(x, Operand::Value(v) if matches!(st.ty(v).elem, Elem::Ptr(_)));
    if op == BinOp::Add && (is_ptr(st, a) || is_ptr(st, b)) {
        let (p, o) = if is_ptr(st, a) { (a, b) } else { (b, a) };
        let Operand::Value(p) = p else { unreachable!("is_ptr holds only for values") };
        return add_ptr(st, p, o);
    }
    let name = op.name();
    let Some(vals) = unify(st, name, &[a, b], None) else {
        return placeholder(st);
    };
    let ty = st.ty(vals[0]).clone();
    let d = ty.dtype().expect("unify yields numbers");
    // 7) Arithmetic needs numbers, logic needs bool or integers, `%` needs integers.
    let ok = match op {
        BinOp::And | BinOp::Or => d == DType::Bool || d.is_int(),
        BinOp::Rem => d.is_int(),
        _ => d != DType::Bool,
    };
    if !ok {
        let hint = match op {
            BinOp::And | BinOp::Or => "combine masks (bool) or integers",
            BinOp::Rem => "cast to an integer type first",
            _ => "masks are bool: use where(mask, a, b) or cast first",
        };
        return st.fail(name, format!("{name} is not defined on {ty}"), Some(hint), ty);
    }
    st.emit(OpKind::Binary(op, vals[0], vals[1]), ty)
}

/// `ptr + offset`: offsets are integers counted in elements; shapes broadcast.
pub(crate) fn add_ptr(st: &mut State, p: ValueId, off: Operand) -> ValueId {
    let pty = st.ty(p).clone();
    let off = match off {
        Operand::Lit(Lit::Int(i)) => st.emit(OpKind::Const(Lit::Int(i)), Type::scalar(DType::I64)),
        Operand::Value(v) if st.ty(v).dtype().is_some_and(DType::is_int) => v,
        other => {
            let d = describe(st, other);
            return st.fail(
                "add",
                format!("pointer {p}: {pty} can only be offset by integers, got {d}"),
                Some("offsets count elements: cast them to i32 or i64"),
                pty,
            );
        }
    };
    let oty = st.ty(off).clone();
    let Some(shape) = broadcast_shape(&pty.shape, &oty.shape) else {
        return st.fail(
            "add",
            format!("pointer {p}: {pty} and offsets {off}: {oty} do not broadcast"),
            Some("each dimension must match or be 1"),
            pty,
        );
    };
    let p = broadcast_to(st, p, &shape);
    let off = broadcast_to(st, off, &shape);
    st.emit(OpKind::AddPtr(p, off), Type { elem: pty.elem, shape })
}

/// Elementwise comparison; the result is `bool`.
pub(crate) fn compare(st: &mut State, op: CmpOp, a: Operand, b: Operand) -> ValueId {
    let Some(vals) = unify(st, op.name(), &[a, b], None) else {
        return placeholder(st);
    };
    let ty = st.ty(vals[0]).with_elem(Elem::Scalar(DType::Bool));
    st.emit(OpKind::Cmp(op, vals[0], vals[1]), ty)
}

/// Elementwise unary math.
pub(crate) fn unary(st: &mut State, op: UnOp, a: ValueId) -> ValueId {
    let ty = st.ty(a).clone();
    let ok = match (op, ty.elem) {
        (_, Elem::Ptr(_)) => false,
        (UnOp::Not, Elem::Scalar(d)) => d == DType::Bool,
        (_, Elem::Scalar(DType::Bool)) => false,
        (u, Elem::Scalar(d)) if u.float_only() => d.is_float(),
        _ => true,
    };
    if !ok {
        let hint = if op.float_only() { "cast to f32 first" } else { "not defined for this element type" };
        return st.fail(op.name(), format!("{} is not defined on {a}: {ty}", op.name()), Some(hint), ty);
    }
    st.emit(OpKind::Unary(op, a), ty)
}

/// `where(cond, a, b)`: `a` where `cond` holds, else `b`.
pub(crate) fn select(st: &mut State, c: Operand, a: Operand, b: Operand) -> ValueId {
    let cond_ok = match c {
        Operand::Value(v) => st.ty(v).elem == Elem::Scalar(DType::Bool),
        Operand::Lit(l) => matches!(l, Lit::Bool(_)),
    };
    if !cond_ok {
        let d = describe(st, c);
        return st.fail(
            "where",
            format!("condition {d} is not bool"),
            Some("compare first, e.g. x.lt(n)"),
            Type::scalar(DType::F32),
        );
    }
    let Some(ab) = unify(st, "where", &[a, b], None) else {
        return placeholder(st);
    };
    let shape = broadcast_shape(&shape_of(st, c), &st.ty(ab[0]).shape);
    let Some(shape) = shape else {
        let (dc, da) = (describe(st, c), describe(st, a));
        return st.fail(
            "where",
            format!("condition {dc} does not broadcast with {da}"),
            None,
            Type::scalar(DType::F32),
        );
    };
    let c = coerce(st, c, DType::Bool);
    let c = broadcast_to(st, c, &shape);
    let a = broadcast_to(st, ab[0], &shape);
    let b = broadcast_to(st, ab[1], &shape);
    let ty = st.ty(a).clone();
    st.emit(OpKind::Select(c, a, b), ty)
}

/// `[start, end)` as an `i32` block; the length must be a power of two (blocks map onto threads).
pub(crate) fn arange(st: &mut State, start: i64, end: i64) -> ValueId {
    let len = end - start;
    let fits = i32::try_from(start).is_ok() && i32::try_from(end).is_ok();
    if len <= 0 || !(len as u64).is_power_of_two() || !fits {
        return st.fail(
            "arange",
            format!("arange({start}, {end}) has length {len}; block lengths must be positive powers of two within i32"),
            Some("round the block up to a power of two and mask the tail"),
            Type::block(DType::I32, &[len.max(1) as usize]),
        );
    }
    st.emit(OpKind::Arange { start, end }, Type::block(DType::I32, &[len as usize]))
}

/// `ptr`'s pointee where `mask` holds, `other` (or zero) elsewhere.
pub(crate) fn load(
    st: &mut State,
    ptr: ValueId,
    mask: Option<Operand>,
    other: Option<Operand>,
    staged: bool,
    evict: Eviction,
) -> ValueId {
    let pty = st.ty(ptr).clone();
    let Elem::Ptr(d) = pty.elem else {
        return st.fail(
            "load",
            format!("{ptr}: {pty} is not a pointer"),
            Some("pass a pointer argument plus offsets"),
            pty,
        );
    };
    let out_ty = Type::block(d, &pty.shape);
    if staged && pty.shape.is_empty() {
        return st.fail(
            "load_staged",
            format!("{ptr}: {pty} is a single pointer; staging copies blocks"),
            Some("load a block (a pointer plus an arange of offsets), or use load"),
            out_ty,
        );
    }
    if other.is_some() && mask.is_none() {
        return st.fail(
            "load",
            "`other` given without a mask".into(),
            Some("pass the mask that selects the lanes to read"),
            out_ty,
        );
    }
    let mask = match mask {
        None => None,
        Some(m) => match mask_for(st, "load", m, &pty.shape) {
            Some(m) => Some(m),
            None => return placeholder(st),
        },
    };
    let other = other.map(|o| {
        let v = coerce(st, o, d);
        broadcast_to(st, v, &pty.shape)
    });
    st.emit(OpKind::Load { ptr, mask, other, staged, evict }, out_ty)
}

/// Checks that `m` is a bool mask broadcastable to `shape`, and broadcasts it.
fn mask_for(st: &mut State, op: &str, m: Operand, shape: &[usize]) -> Option<ValueId> {
    let Operand::Value(m) = m else {
        st.fail(
            op,
            "the mask must be a traced bool value".into(),
            Some("compare offsets with the bound, e.g. offs.lt(n)"),
            Type::scalar(DType::Bool),
        );
        return None;
    };
    let mty = st.ty(m).clone();
    if mty.elem != Elem::Scalar(DType::Bool) {
        st.fail(
            op,
            format!("mask {m}: {mty} is not bool"),
            Some("compare offsets with the bound, e.g. offs.lt(n)"),
            mty,
        );
        return None;
    }
    if broadcast_shape(&mty.shape, shape).as_deref() != Some(shape) {
        st.fail(op, format!("mask {m}: {mty} does not broadcast to the pointer shape {shape:?}"), None, mty);
        return None;
    }
    Some(broadcast_to(st, m, shape))
}

/// Writes `value` (cast to the pointee dtype, broadcast to the pointer shape) where `mask` holds.
pub(crate) fn store(st: &mut State, ptr: ValueId, value: Operand, mask: Option<Operand>, evict: Eviction) {
    let pty = st.ty(ptr).clone();
    let Elem::Ptr(d) = pty.elem else {
        st.fail("store", format!("{ptr}: {pty} is not a pointer"), Some("pass a pointer argument plus offsets"), pty);
        return;
    };
    if let Operand::Value(v) = value {
        let vty = st.ty(v).clone();
        if vty.dtype().is_none() {
            st.fail("store", format!("value {v}: {vty} is a pointer; only numbers can be stored"), None, vty);
            return;
        }
        if broadcast_shape(&vty.shape, &pty.shape).as_deref() != Some(&pty.shape[..]) {
            st.fail(
                "store",
                format!("value {v}: {vty} does not fit pointer {ptr}: {pty}"),
                Some("the value must have the pointer's shape (or broadcast to it)"),
                vty,
            );
            return;
        }
    }
    let mask = match mask {
        None => None,
        Some(m) => match mask_for(st, "store", m, &pty.shape) {
            Some(m) => Some(m),
            None => return,
        },
    };
    // 8) Stores convert the value to the pointee dtype (round to nearest even), like Triton.
    let v = coerce(st, value, d);
    let v = broadcast_to(st, v, &pty.shape);
    st.push_op(OpKind::Store { ptr, value: v, mask, evict }, vec![]);
}

/// Adds `value` (cast to the pointee dtype) to the number at the single pointer `ptr`, once per
/// program where the scalar `mask` holds; the result is the number replaced.
pub(crate) fn atomic_add(st: &mut State, ptr: ValueId, value: Operand, mask: Option<Operand>) -> ValueId {
    let pty = st.ty(ptr).clone();
    let d = match pty.elem {
        Elem::Ptr(d @ (DType::I32 | DType::F32)) if pty.is_scalar() => d,
        _ => {
            return st.fail(
                "atomic_add",
                format!("{ptr}: {pty} is not a single i32 or f32 pointer"),
                Some("pass one element's pointer (an argument plus a scalar offset) of an i32 or f32 buffer"),
                Type::scalar(DType::I32),
            );
        }
    };
    if let Operand::Value(v) = value {
        let vty = st.ty(v).clone();
        if !vty.is_scalar() || vty.dtype().is_none() {
            return st.fail(
                "atomic_add",
                format!("value {v}: {vty} is not a scalar number"),
                Some("add one number a program"),
                Type::scalar(d),
            );
        }
    }
    let mask = match mask {
        None => None,
        Some(m) => match mask_for(st, "atomic_add", m, &[]) {
            Some(m) => Some(m),
            None => return st.emit(OpKind::Const(Lit::Int(0)), Type::scalar(d)),
        },
    };
    let v = coerce(st, value, d);
    st.emit(OpKind::AtomicAdd { ptr, value: v, mask }, Type::scalar(d))
}

/// Reduces `axis` of a block away.
pub(crate) fn reduce(st: &mut State, op: ReduceOp, v: ValueId, axis: usize) -> ValueId {
    let ty = st.ty(v).clone();
    let name = op.name();
    if ty.is_scalar() || axis >= ty.shape.len() {
        return st.fail(
            name,
            format!("axis {axis} is out of range for {v}: {ty}"),
            Some("reduce a block along one of its axes"),
            ty,
        );
    }
    match ty.dtype() {
        Some(d) if d != DType::Bool => {}
        _ => {
            return st.fail(
                name,
                format!("cannot reduce {v}: {ty}"),
                Some("reductions take numbers; cast masks first"),
                ty,
            );
        }
    }
    let mut shape = ty.shape.clone();
    shape.remove(axis);
    st.emit(OpKind::Reduce(op, v, axis), Type { elem: ty.elem, shape })
}

/// Combines `v` across the programs of a cluster (see [`OpKind::ClusterReduce`]).
pub(crate) fn cluster_reduce(st: &mut State, op: ReduceOp, v: ValueId) -> ValueId {
    let ty = st.ty(v).clone();
    let name = format!("cluster_{}", op.name());
    match ty.dtype() {
        Some(d) if d != DType::Bool => st.emit(OpKind::ClusterReduce(op, v), ty),
        _ => st.fail(&name, format!("cannot combine {v}: {ty}"), Some("cluster reductions take numbers"), ty),
    }
}

/// The transpose of a 2-D block.
pub(crate) fn trans(st: &mut State, v: ValueId) -> ValueId {
    let ty = st.ty(v).clone();
    if ty.shape.len() != 2 {
        return st.fail("trans", format!("cannot transpose {v}: {ty}"), Some("trans takes 2-D blocks"), ty);
    }
    st.emit(OpKind::Trans(v), Type { elem: ty.elem, shape: vec![ty.shape[1], ty.shape[0]] })
}

/// `acc + a · b` (see [`OpKind::Dot`]).
pub(crate) fn dot(st: &mut State, a: ValueId, b: ValueId, acc: ValueId) -> ValueId {
    let (at, bt, ct) = (st.ty(a).clone(), st.ty(b).clone(), st.ty(acc).clone());
    let out = |at: &Type, bt: &Type| {
        let m = at.shape.first().copied().unwrap_or(1);
        let n = bt.shape.get(1).copied().unwrap_or(1);
        Type::block(DType::F32, &[m, n])
    };
    let sixteen = |t: &Type| matches!(t.dtype(), Some(DType::F16 | DType::BF16));
    if at.shape.len() != 2 || bt.shape.len() != 2 || at.shape[1] != bt.shape[0] {
        let want = out(&at, &bt);
        return st.fail(
            "dot",
            format!("cannot multiply {a}: {at} by {b}: {bt}"),
            Some("dot takes 2-D blocks [M, K] and [K, N]"),
            want,
        );
    }
    let want = out(&at, &bt);
    if !sixteen(&at) || at.elem != bt.elem {
        return st.fail(
            "dot",
            format!("operands {a}: {at} and {b}: {bt} must share a 16-bit float dtype"),
            Some("cast both to f16 or bf16 (the tensor cores multiply 16-bit floats)"),
            want,
        );
    }
    if ct != want {
        return st.fail(
            "dot",
            format!("the accumulator {acc}: {ct} must be {want}"),
            Some("start from k.zeros(&[M, N], DType::F32)"),
            want,
        );
    }
    st.emit(OpKind::Dot { a, b, acc }, want)
}

/// An `i32` scalar for a loop bound.
pub(crate) fn loop_bound(st: &mut State, what: &str, a: Operand) -> ValueId {
    match a {
        Operand::Lit(Lit::Int(i)) if i32::try_from(i).is_ok() => {
            st.emit(OpKind::Const(Lit::Int(i)), Type::scalar(DType::I32))
        }
        Operand::Value(v) if *st.ty(v) == Type::scalar(DType::I32) => v,
        other => {
            let d = describe(st, other);
            st.fail(
                "for_range",
                format!("the {what} {d} is not an i32 scalar"),
                Some("loop bounds are i32 scalars: cast with .cast(DType::I32)"),
                Type::scalar(DType::I32),
            )
        }
    }
}
