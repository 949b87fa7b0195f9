//! The typed block IR: what the builder produces, the verifier checks, the interpreter runs and the
//! lowering compiles.
//!
//! A kernel is one region of operations in SSA form. Every value has a [`Type`] known when the kernel
//! is built: a scalar or a block with a compile-time shape. Loops carry values explicitly
//! ([`OpKind::For`] and [`OpKind::While`] with `init` and a terminating [`OpKind::Yield`]), so
//! nothing is mutated.

use std::fmt::{self, Write as _};

use crate::types::{DType, Type};

/// Identifies one SSA value of a kernel; an index into [`Kernel::types`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// How long the caches should keep the lines a load or store touches, as Triton's
/// `eviction_policy`: a hint that changes speed, never values. The interpreter ignores it; on the
/// GPU `First` and `Last` set the L1 eviction priority and an L2 cache policy of the access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Eviction {
    /// The caches' default policy.
    #[default]
    Normal,
    /// Evict these lines first: data read or written once (a streamed tensor).
    First,
    /// Evict these lines last: data read again soon (a weight every program reads, a row walked
    /// twice).
    Last,
}

impl Eviction {
    /// The name Triton gives the policy (`evict_first`, `evict_last`), or `None` for the default.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Eviction::Normal => None,
            Eviction::First => Some("evict_first"),
            Eviction::Last => Some("evict_last"),
        }
    }
}

/// A literal constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    /// A floating-point literal.
    Float(f64),
    /// An integer literal.
    Int(i64),
    /// A boolean literal.
    Bool(bool),
}

impl Lit {
    /// The literal as `f64` (booleans are 0 or 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Lit::Float(v) => v,
            Lit::Int(v) => v as f64,
            Lit::Bool(b) => b as u8 as f64,
        }
    }

    /// The literal as `i64` (floats truncate toward zero).
    pub fn as_i64(self) -> i64 {
        match self {
            Lit::Float(v) => v as i64,
            Lit::Int(v) => v,
            Lit::Bool(b) => b as i64,
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Float(v) => write!(f, "{v:?}"),
            Lit::Int(v) => write!(f, "{v}"),
            Lit::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// What a kernel argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A pointer to global memory the kernel only reads.
    Ptr(DType),
    /// A pointer to global memory the kernel may write.
    MutPtr(DType),
    /// A scalar passed by value.
    Scalar(DType),
}

impl ParamKind {
    /// The dtype of the pointee or of the scalar.
    pub fn dtype(self) -> DType {
        match self {
            ParamKind::Ptr(d) | ParamKind::MutPtr(d) | ParamKind::Scalar(d) => d,
        }
    }

    /// True for pointer arguments.
    pub fn is_ptr(self) -> bool {
        !matches!(self, ParamKind::Scalar(_))
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::Ptr(d) => write!(f, "*{d}"),
            ParamKind::MutPtr(d) => write!(f, "*mut {d}"),
            ParamKind::Scalar(d) => write!(f, "{d}"),
        }
    }
}

/// A kernel argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    /// The name the kernel author gave it.
    pub name: String,
    /// Pointer or scalar, and its dtype.
    pub kind: ParamKind,
}

/// Elementwise binary operations. Operands share one type (the builder inserts casts and broadcasts).
///
/// On the GPU, a float `Mul` whose product feeds an `Add`, a `Sub` or a sum may be fused with it
/// into one multiply-add, rounded once (as Triton's default `enable_fp_fusion`); the interpreter
/// rounds each operation, so results may differ in the last bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (integers truncate toward zero)
    Div,
    /// `a % b` (integers; sign of the dividend)
    Rem,
    /// Larger of the two (NaN-propagating for floats).
    Max,
    /// Smaller of the two (NaN-propagating for floats).
    Min,
    /// Logical/bitwise and (bool, integers).
    And,
    /// Logical/bitwise or (bool, integers).
    Or,
}

impl BinOp {
    /// The mnemonic used in IR dumps.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
            BinOp::Rem => "rem",
            BinOp::Max => "max",
            BinOp::Min => "min",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

/// Comparisons; the result is a `bool` value of the operands' shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
}

impl CmpOp {
    /// The mnemonic used in IR dumps.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
        }
    }
}

/// Elementwise unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-a`
    Neg,
    /// `!a` for bool.
    Not,
    /// `|a|`
    Abs,
    /// Square root (floats).
    Sqrt,
    /// Reciprocal square root (floats).
    Rsqrt,
    /// Natural exponential (floats).
    Exp,
    /// Natural logarithm (floats).
    Log,
}

impl UnOp {
    /// The mnemonic used in IR dumps.
    pub fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "neg",
            UnOp::Not => "not",
            UnOp::Abs => "abs",
            UnOp::Sqrt => "sqrt",
            UnOp::Rsqrt => "rsqrt",
            UnOp::Exp => "exp",
            UnOp::Log => "log",
        }
    }

    /// True for operations defined on floats only.
    pub fn float_only(self) -> bool {
        matches!(self, UnOp::Sqrt | UnOp::Rsqrt | UnOp::Exp | UnOp::Log)
    }
}

/// Reductions along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

impl ReduceOp {
    /// The mnemonic used in IR dumps.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }

    /// The elementwise operation the reduction folds with.
    pub fn combiner(self) -> BinOp {
        match self {
            ReduceOp::Sum => BinOp::Add,
            ReduceOp::Max => BinOp::Max,
            ReduceOp::Min => BinOp::Min,
        }
    }
}

/// One operation and its operands. Results are listed in [`Op::results`].
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// The value of kernel argument `index`.
    Param(usize),
    /// A scalar constant of the result type.
    Const(Lit),
    /// The program's index along a grid axis (`i32`).
    ProgramId(u32),
    /// The number of programs along a grid axis (`i32`).
    NumPrograms(u32),
    /// `[start, start + 1, …, end - 1]` as an `i32` block.
    Arange {
        /// First value.
        start: i64,
        /// One past the last value.
        end: i64,
    },
    /// A scalar repeated to the result shape.
    Splat(ValueId),
    /// A block whose size-1 dimensions are repeated to the result shape (same rank).
    Broadcast(ValueId),
    /// Inserts a size-1 dimension at `axis`.
    ExpandDims(ValueId, usize),
    /// Elementwise binary operation.
    Binary(BinOp, ValueId, ValueId),
    /// Elementwise comparison.
    Cmp(CmpOp, ValueId, ValueId),
    /// Elementwise unary operation.
    Unary(UnOp, ValueId),
    /// Elementwise `if cond { a } else { b }`.
    Select(ValueId, ValueId, ValueId),
    /// Elementwise conversion to the result dtype (round to nearest even; float → int truncates).
    Cast(ValueId),
    /// Pointer plus an integer offset counted in elements.
    AddPtr(ValueId, ValueId),
    /// Reads global memory where `mask` is true; elsewhere yields `other` (or zero).
    Load {
        /// Pointer (scalar or block).
        ptr: ValueId,
        /// Optional `bool` mask of the pointer's shape.
        mask: Option<ValueId>,
        /// Optional value for masked-off lanes, of the result type.
        other: Option<ValueId>,
        /// Staged through shared memory (a block without `other`): the same values, but on the GPU
        /// the block is copied asynchronously into shared memory and each use reads it from there,
        /// so while it is in flight, or carried to the next iteration of a loop, it holds no
        /// registers.
        staged: bool,
        /// How long the caches should keep the lines read (not for staged loads).
        evict: Eviction,
    },
    /// Writes `value` to global memory where `mask` is true. Produces no result.
    Store {
        /// Pointer (scalar or block).
        ptr: ValueId,
        /// Value of the pointer's shape and the pointee dtype.
        value: ValueId,
        /// Optional `bool` mask of the pointer's shape.
        mask: Option<ValueId>,
        /// How long the caches should keep the lines written.
        evict: Eviction,
    },
    /// Adds `value` to the number at the single pointer `ptr` (`i32` or `f32`) as one atomic
    /// read-modify-write, once per program, where the scalar `mask` holds; every thread of the
    /// program gets the number it replaced (zero where masked off). Relaxed: the add is atomic
    /// across the launch's programs but orders no other memory access — enough for programs to
    /// hand out work through a counter (Triton's `tl.atomic_add` on a scalar pointer with
    /// `sem="relaxed"`).
    AtomicAdd {
        /// A single pointer into a writable argument.
        ptr: ValueId,
        /// A scalar of the pointee dtype.
        value: ValueId,
        /// Optional scalar `bool`.
        mask: Option<ValueId>,
    },
    /// Lets the next launch on the stream start once every program of this launch has passed
    /// here (or exited), if that kernel [waits for the previous launch](Kernel::waits_for_previous_launch).
    /// Produces no result, and changes nothing this program computes.
    ReleaseNextLaunch,
    /// Reduces `axis` of a block away.
    Reduce(ReduceOp, ValueId, usize),
    /// Combines a value (scalar or block, elementwise) across the programs of this program's
    /// cluster (see [`Kernel::cluster`]), in the order of their ranks; every program of the
    /// cluster gets the same result. Every program of a cluster must reach it the same number of
    /// times.
    ClusterReduce(ReduceOp, ValueId),
    /// The transpose of a 2-D block.
    Trans(ValueId),
    /// `acc + a · b` for blocks `a: [M, K]` and `b: [K, N]` of one 16-bit float dtype and an `f32`
    /// accumulator `acc: [M, N]`: every product is exact in `f32` and the sums are `f32`, added in
    /// order of `k` (tensor cores add in an order of their own).
    Dot {
        /// Left operand `[M, K]`.
        a: ValueId,
        /// Right operand `[K, N]`.
        b: ValueId,
        /// Accumulator `[M, N]`, `f32`.
        acc: ValueId,
    },
    /// `for iv in (lo..hi).step_by(step)` with loop-carried values. Results are the final values.
    For {
        /// Lower bound (`i32` scalar).
        lo: ValueId,
        /// Upper bound, exclusive (`i32` scalar).
        hi: ValueId,
        /// Step, > 0 (`i32` scalar).
        step: ValueId,
        /// Initial loop-carried values.
        init: Vec<ValueId>,
        /// The loop body; its arguments are `[iv, carried…]`, it ends with a `Yield`.
        body: Region,
    },
    /// `while cond(carried) { carried = body(carried) }`: runs `body` as long as `cond` holds,
    /// carrying values from one trip to the next. Results are the values `cond` last saw (it saw
    /// them false). In a cluster, `cond` must come out the same in every program of a loop that
    /// holds a cluster reduction.
    While {
        /// Initial loop-carried values.
        init: Vec<ValueId>,
        /// The test; its arguments are the carried values, it ends with a `Yield` of one scalar
        /// `bool` (go on).
        cond: Region,
        /// The loop body; its arguments are the carried values, it ends with a `Yield` of the
        /// next ones.
        body: Region,
    },
    /// Terminates a loop body with the next loop-carried values (a while loop's test: with
    /// whether to go on).
    Yield(Vec<ValueId>),
}

impl OpKind {
    /// The values this op reads (a loop's bounds and initial values; not what its body reads).
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            OpKind::Param(_)
            | OpKind::Const(_)
            | OpKind::ProgramId(_)
            | OpKind::NumPrograms(_)
            | OpKind::Arange { .. }
            | OpKind::ReleaseNextLaunch => vec![],
            OpKind::Splat(v)
            | OpKind::Broadcast(v)
            | OpKind::ExpandDims(v, _)
            | OpKind::Unary(_, v)
            | OpKind::Cast(v)
            | OpKind::Reduce(_, v, _)
            | OpKind::ClusterReduce(_, v)
            | OpKind::Trans(v) => vec![*v],
            OpKind::Binary(_, a, b) | OpKind::Cmp(_, a, b) | OpKind::AddPtr(a, b) => vec![*a, *b],
            OpKind::Select(c, a, b) => vec![*c, *a, *b],
            OpKind::Dot { a, b, acc } => vec![*a, *b, *acc],
            OpKind::Load { ptr, mask, other, .. } => [Some(*ptr), *mask, *other].into_iter().flatten().collect(),
            OpKind::Store { ptr, value, mask, .. } | OpKind::AtomicAdd { ptr, value, mask } => {
                [Some(*ptr), Some(*value), *mask].into_iter().flatten().collect()
            }
            OpKind::For { lo, hi, step, init, .. } => {
                [*lo, *hi, *step].into_iter().chain(init.iter().copied()).collect()
            }
            OpKind::While { init, .. } => init.clone(),
            OpKind::Yield(vs) => vs.clone(),
        }
    }

    /// The regions nested in this op (a loop's body; a while loop's test, then its body).
    pub fn regions(&self) -> Vec<&Region> {
        match self {
            OpKind::For { body, .. } => vec![body],
            OpKind::While { cond, body, .. } => vec![cond, body],
            _ => vec![],
        }
    }
}

/// One operation of a region.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// The values it defines (none for `Store`/`Yield`).
    pub results: Vec<ValueId>,
}

/// A straight-line list of operations with block arguments (used for loop bodies).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Region {
    /// Values defined on entry (the induction variable and the carried values of a loop).
    pub args: Vec<ValueId>,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

/// A compile-time meta-parameter as recorded in the kernel (already folded into the IR).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    /// Name, e.g. `BLOCK_SIZE`.
    pub name: String,
    /// Value.
    pub value: i64,
}

/// A complete kernel: arguments, meta-parameters, the body and the type of every value.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Kernel name (a valid symbol).
    pub name: String,
    /// Arguments in call order.
    pub params: Vec<Param>,
    /// Meta-parameters the kernel was built with.
    pub meta: Vec<Meta>,
    /// Programs per cluster along grid axis 0 (1: no clusters). The programs `c·cluster …
    /// c·cluster + cluster − 1` form cluster `c`: they run at the same time and combine values
    /// with [`OpKind::ClusterReduce`]; a launch's grid along axis 0 is a multiple of it.
    pub cluster: u32,
    /// Whether a launch may start before the previous launch on its stream has finished
    /// (programmatic dependent launch, sm_90 and later): each program first waits until that
    /// launch has finished and its writes are visible, so what it computes is the same, but its
    /// scheduling and start-up can overlap the previous launch's tail once that one has passed
    /// [`OpKind::ReleaseNextLaunch`] in every program. Elsewhere launches run one after another.
    pub waits_for_previous_launch: bool,
    /// The body.
    pub body: Region,
    /// `types[v.0]` is the type of value `v`.
    pub types: Vec<Type>,
}

impl Kernel {
    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.types[v.0 as usize]
    }

    /// The value of a meta-parameter, if the kernel recorded it.
    pub fn meta_value(&self, name: &str) -> Option<i64> {
        self.meta.iter().find(|m| m.name == name).map(|m| m.value)
    }

    /// The readable text form of the kernel (also its `Display`).
    pub fn dump(&self) -> String {
        self.to_string()
    }

    fn write_region(&self, out: &mut String, region: &Region, depth: usize) {
        for op in &region.ops {
            let pad = "  ".repeat(depth);
            out.push_str(&pad);
            if !op.results.is_empty() {
                let rs: Vec<String> = op.results.iter().map(|r| r.to_string()).collect();
                let _ = write!(out, "{} = ", rs.join(", "));
            }
            let list = |vs: &[ValueId]| -> String { vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ") };
            match &op.kind {
                OpKind::Param(i) => {
                    let _ = write!(out, "param {}", self.params[*i].name);
                }
                OpKind::Const(l) => {
                    let _ = write!(out, "const {l}");
                }
                OpKind::ProgramId(a) => {
                    let _ = write!(out, "program_id {a}");
                }
                OpKind::NumPrograms(a) => {
                    let _ = write!(out, "num_programs {a}");
                }
                OpKind::Arange { start, end } => {
                    let _ = write!(out, "arange {start}..{end}");
                }
                OpKind::Splat(v) => {
                    let _ = write!(out, "splat {v}");
                }
                OpKind::Broadcast(v) => {
                    let _ = write!(out, "broadcast {v}");
                }
                OpKind::ExpandDims(v, a) => {
                    let _ = write!(out, "expand_dims {v}, axis={a}");
                }
                OpKind::Binary(b, x, y) => {
                    let _ = write!(out, "{} {x}, {y}", b.name());
                }
                OpKind::Cmp(c, x, y) => {
                    let _ = write!(out, "cmp {} {x}, {y}", c.name());
                }
                OpKind::Unary(u, x) => {
                    let _ = write!(out, "{} {x}", u.name());
                }
                OpKind::Select(c, a, b) => {
                    let _ = write!(out, "where {c}, {a}, {b}");
                }
                OpKind::Cast(v) => {
                    let _ = write!(out, "cast {v}");
                }
                OpKind::AddPtr(p, o) => {
                    let _ = write!(out, "addptr {p}, {o}");
                }
                OpKind::Load { ptr, mask, other, staged, evict } => {
                    let _ = write!(out, "{} {ptr}", if *staged { "load.staged" } else { "load" });
                    if let Some(m) = mask {
                        let _ = write!(out, ", mask={m}");
                    }
                    if let Some(o) = other {
                        let _ = write!(out, ", other={o}");
                    }
                    if let Some(e) = evict.name() {
                        let _ = write!(out, ", {e}");
                    }
                }
                OpKind::ReleaseNextLaunch => out.push_str("release_next_launch"),
                OpKind::AtomicAdd { ptr, value, mask } => {
                    let _ = write!(out, "atomic_add {ptr}, {value}");
                    if let Some(m) = mask {
                        let _ = write!(out, ", mask={m}");
                    }
                }
                OpKind::Store { ptr, value, mask, evict } => {
                    let _ = write!(out, "store {ptr}, {value}");
                    if let Some(m) = mask {
                        let _ = write!(out, ", mask={m}");
                    }
                    if let Some(e) = evict.name() {
                        let _ = write!(out, ", {e}");
                    }
                }
                OpKind::Reduce(r, v, a) => {
                    let _ = write!(out, "reduce {} {v}, axis={a}", r.name());
                }
                OpKind::ClusterReduce(r, v) => {
                    let _ = write!(out, "cluster_reduce {} {v}", r.name());
                }
                OpKind::Trans(v) => {
                    let _ = write!(out, "trans {v}");
                }
                OpKind::Dot { a, b, acc } => {
                    let _ = write!(out, "dot {a}, {b}, acc={acc}");
                }
                OpKind::For { lo, hi, step, init, body } => {
                    let args = &body.args;
                    let _ = write!(out, "for {} = {lo} to {hi} step {step}", args[0]);
                    if !init.is_empty() {
                        let carried: Vec<String> =
                            args[1..].iter().zip(init).map(|(a, i)| format!("{a} = {i}")).collect();
                        let _ = write!(out, " iter({})", carried.join(", "));
                    }
                    out.push_str(" {\n");
                    self.write_region(out, body, depth + 1);
                    let _ = write!(out, "{pad}}}");
                }
                OpKind::While { init, cond, body } => {
                    let carried = |r: &Region| -> String {
                        r.args.iter().zip(init).map(|(a, i)| format!("{a} = {i}")).collect::<Vec<_>>().join(", ")
                    };
                    let _ = writeln!(out, "while ({}) {{", carried(cond));
                    self.write_region(out, cond, depth + 1);
                    let _ = writeln!(out, "{pad}}} do ({}) {{", carried(body));
                    self.write_region(out, body, depth + 1);
                    let _ = write!(out, "{pad}}}");
                }
                OpKind::Yield(vs) => {
                    let _ = write!(out, "yield {}", list(vs));
                }
            }
            if !op.results.is_empty() {
                let ts: Vec<String> = op.results.iter().map(|r| self.ty(*r).to_string()).collect();
                let _ = write!(out, " : {}", ts.join(", "));
            }
            out.push('\n');
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<String> = self.params.iter().map(|p| format!("{}: {}", p.name, p.kind)).collect();
        write!(f, "kernel {}({})", self.name, params.join(", "))?;
        if !self.meta.is_empty() {
            let meta: Vec<String> = self.meta.iter().map(|m| format!("{} = {}", m.name, m.value)).collect();
            write!(f, " meta {{{}}}", meta.join(", "))?;
        }
        if self.cluster > 1 {
            write!(f, " cluster {}", self.cluster)?;
        }
        if self.waits_for_previous_launch {
            f.write_str(" waits_for_previous_launch")?;
        }
        f.write_str(" {\n")?;
        let mut body = String::new();
        self.write_region(&mut body, &self.body, 1);
        f.write_str(&body)?;
        f.write_str("}\n")
    }
}

/// Calls `f` on every op of `region` and of the regions nested in it, outer ops first.
pub fn walk_ops<'a>(region: &'a Region, f: &mut impl FnMut(&'a Op)) {
    for op in &region.ops {
        f(op);
        for r in op.kind.regions() {
            walk_ops(r, f);
        }
    }
}
