//! The CPU interpreter: runs a kernel over a grid of programs on host buffers, with the semantics
//! the GPU must match.
//!
//! - Every float operation is rounded to its result dtype (`f16`/`bf16` through `half`), so a kernel
//!   that accumulates in `f32` does so here too. Reductions combine pairwise (a tree), rounding at
//!   every step, as the GPU's thread/warp/block tree does.
//! - Integers wrap at their width; division truncates toward zero; division by zero is an error.
//! - Masked-off lanes are never accessed; an unmasked lane out of bounds is an error naming the op
//!   and the program.
//! - Programs run one after another, but the interpreter checks they could run in any order: an
//!   element written by one program and touched by another in the same launch is reported as a race.
//! - On any error the caller's buffers are left untouched.

use half::{bf16, f16};

use crate::error::InterpError;
use crate::ir::{BinOp, CmpOp, Kernel, Lit, Op, OpKind, ParamKind, ReduceOp, Region, UnOp, ValueId};
use crate::types::{DType, Elem};

/// A host buffer of one dtype: what a pointer argument points to.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f16` elements.
    F16(Vec<f16>),
    /// `bf16` elements.
    BF16(Vec<bf16>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
}

impl Buffer {
    /// A buffer of `len` elements of `dtype`, every one set to `value` (rounded to the dtype).
    pub fn filled(dtype: DType, len: usize, value: f64) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(vec![value as f32; len]),
            DType::F16 => Buffer::F16(vec![f16::from_f32(value as f32); len]),
            DType::BF16 => Buffer::BF16(vec![bf16::from_f32(value as f32); len]),
            DType::I32 => Buffer::I32(vec![value as i32; len]),
            DType::I64 | DType::Bool => Buffer::I64(vec![value as i64; len]),
        }
    }

    /// A buffer of `dtype` holding `values`, each rounded to the dtype.
    pub fn from_f64(dtype: DType, values: &[f64]) -> Buffer {
        let mut b = Buffer::filled(dtype, values.len(), 0.0);
        for (i, &v) in values.iter().enumerate() {
            b.set(i, v);
        }
        b
    }

    /// The element dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F16(_) => DType::F16,
            Buffer::BF16(_) => DType::BF16,
            Buffer::I32(_) => DType::I32,
            Buffer::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F16(v) => v.len(),
            Buffer::BF16(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::I64(v) => v.len(),
        }
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f64` (exact for every dtype but large `i64`).
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Buffer::F32(v) => v[i] as f64,
            Buffer::F16(v) => v[i].to_f64(),
            Buffer::BF16(v) => v[i].to_f64(),
            Buffer::I32(v) => v[i] as f64,
            Buffer::I64(v) => v[i] as f64,
        }
    }

    /// Sets element `i`, rounding to the dtype (integers truncate).
    pub fn set(&mut self, i: usize, value: f64) {
        match self {
            Buffer::F32(v) => v[i] = value as f32,
            Buffer::F16(v) => v[i] = f16::from_f32(value as f32),
            Buffer::BF16(v) => v[i] = bf16::from_f32(value as f32),
            Buffer::I32(v) => v[i] = value as i32,
            Buffer::I64(v) => v[i] = value as i64,
        }
    }

    fn get_int(&self, i: usize) -> i64 {
        match self {
            Buffer::I32(v) => v[i] as i64,
            Buffer::I64(v) => v[i],
            other => other.get(i) as i64,
        }
    }

    fn set_int(&mut self, i: usize, value: i64) {
        match self {
            Buffer::I32(v) => v[i] = value as i32,
            Buffer::I64(v) => v[i] = value,
            other => other.set(i, value as f64),
        }
    }

    /// Elements `start .. start + len` as a new buffer.
    ///
    /// # Panics
    /// When the range is out of bounds.
    pub fn slice(&self, start: usize, len: usize) -> Buffer {
        let r = start..start + len;
        match self {
            Buffer::F32(v) => Buffer::F32(v[r].to_vec()),
            Buffer::F16(v) => Buffer::F16(v[r].to_vec()),
            Buffer::BF16(v) => Buffer::BF16(v[r].to_vec()),
            Buffer::I32(v) => Buffer::I32(v[r].to_vec()),
            Buffer::I64(v) => Buffer::I64(v[r].to_vec()),
        }
    }

    /// Overwrites elements `start .. start + src.len()` with `src` (same dtype).
    ///
    /// # Panics
    /// When the dtypes differ or the range is out of bounds.
    pub fn write_at(&mut self, start: usize, src: &Buffer) {
        let r = start..start + src.len();
        match (self, src) {
            (Buffer::F32(d), Buffer::F32(s)) => d[r].copy_from_slice(s),
            (Buffer::F16(d), Buffer::F16(s)) => d[r].copy_from_slice(s),
            (Buffer::BF16(d), Buffer::BF16(s)) => d[r].copy_from_slice(s),
            (Buffer::I32(d), Buffer::I32(s)) => d[r].copy_from_slice(s),
            (Buffer::I64(d), Buffer::I64(s)) => d[r].copy_from_slice(s),
            (d, s) => panic!("write_at: {} into {}", s.dtype(), d.dtype()),
        }
    }

    /// The host address of element 0 (for overlap and alignment checks).
    pub fn address(&self) -> u64 {
        match self {
            Buffer::F32(v) => v.as_ptr() as u64,
            Buffer::F16(v) => v.as_ptr() as u64,
            Buffer::BF16(v) => v.as_ptr() as u64,
            Buffer::I32(v) => v.as_ptr() as u64,
            Buffer::I64(v) => v.as_ptr() as u64,
        }
    }

    /// All elements as `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// One kernel argument for [`run`].
pub enum Arg<'a> {
    /// A buffer the kernel reads (for `ptr_arg` parameters).
    In(&'a Buffer),
    /// A buffer the kernel may write (for `mut_ptr_arg` parameters; also accepted for `ptr_arg`).
    Out(&'a mut Buffer),
    /// A scalar, converted to the parameter's dtype.
    Scalar(Lit),
}

impl Arg<'_> {
    fn describe(&self) -> String {
        match self {
            Arg::In(b) => format!("read-only buffer of {}", b.dtype()),
            Arg::Out(b) => format!("writable buffer of {}", b.dtype()),
            Arg::Scalar(l) => format!("scalar {l}"),
        }
    }
}

/// Marks, in `writer`, an element last updated by an atomic (of the program in the other bits).
const ATOMIC: u32 = 1 << 31;

/// A value at run time. Shapes live in the kernel's types; data is row-major.
#[derive(Clone, Debug)]
enum Val {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    Ptr { param: usize, offs: Vec<i64> },
}

impl Val {
    fn len(&self) -> usize {
        match self {
            Val::Float(v) => v.len(),
            Val::Int(v) => v.len(),
            Val::Bool(v) => v.len(),
            Val::Ptr { offs, .. } => offs.len(),
        }
    }

    /// Picks elements by index (for broadcasts and splats).
    fn gather(&self, idx: &[usize]) -> Val {
        match self {
            Val::Float(v) => Val::Float(idx.iter().map(|&i| v[i]).collect()),
            Val::Int(v) => Val::Int(idx.iter().map(|&i| v[i]).collect()),
            Val::Bool(v) => Val::Bool(idx.iter().map(|&i| v[i]).collect()),
            Val::Ptr { param, offs } => Val::Ptr { param: *param, offs: idx.iter().map(|&i| offs[i]).collect() },
        }
    }

    fn as_f64(&self, i: usize) -> f64 {
        match self {
            Val::Float(v) => v[i],
            Val::Int(v) => v[i] as f64,
            Val::Bool(v) => v[i] as u8 as f64,
            Val::Ptr { .. } => unreachable!("the verifier keeps pointers out of arithmetic"),
        }
    }

    fn as_i64(&self, i: usize) -> i64 {
        match self {
            Val::Float(v) => v[i] as i64,
            Val::Int(v) => v[i],
            Val::Bool(v) => v[i] as i64,
            Val::Ptr { .. } => unreachable!("the verifier keeps pointers out of arithmetic"),
        }
    }

    fn as_bool(&self, i: usize) -> bool {
        match self {
            Val::Bool(v) => v[i],
            other => other.as_f64(i) != 0.0,
        }
    }
}

/// Rounds `x` to the precision of float dtype `d`.
///
/// 16-bit results go through `f32`: half's `from_f64` drops low mantissa bits before rounding
/// (wrong near ties), and for one operation on f32-or-narrower inputs the double rounding through
/// f32 is exact (f32 carries more than 2p + 2 bits for p = 8 and 11).
pub fn round_to(d: DType, x: f64) -> f64 {
    match d {
        DType::F32 => x as f32 as f64,
        DType::F16 => f16::from_f32(x as f32).to_f64(),
        DType::BF16 => bf16::from_f32(x as f32).to_f64(),
        _ => x,
    }
}

fn wrap_int(d: DType, x: i64) -> i64 {
    match d {
        DType::I32 => x as i32 as i64,
        _ => x,
    }
}

fn float_binop(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Max => {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        }
        BinOp::Min => {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        }
        BinOp::Rem | BinOp::And | BinOp::Or => {
            unreachable!("the verifier rejects {op:?} on floats")
        }
    }
}

/// `op` of two integers of dtype `d`, wrapped to it (reductions' and cluster reductions' step).
fn combine_int(op: ReduceOp, d: DType, a: i64, b: i64) -> i64 {
    wrap_int(
        d,
        match op {
            ReduceOp::Sum => a.wrapping_add(b),
            ReduceOp::Max => a.max(b),
            ReduceOp::Min => a.min(b),
        },
    )
}

/// True when `region` or a loop in it holds a cluster reduction.
fn holds_cluster_reduce(region: &Region) -> bool {
    let mut found = false;
    crate::ir::walk_ops(region, &mut |op| found |= matches!(op.kind, OpKind::ClusterReduce(..)));
    found
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

struct Launch<'a, 'b> {
    kernel: &'a Kernel,
    grid: [u32; 3],
    args: &'a [Arg<'b>],
    /// Working copies of the writable buffers (`None` for read-only arguments and scalars).
    work: Vec<Option<Buffer>>,
    /// For each writable buffer: the linear id + 1 of the program that last wrote each element.
    writer: Vec<Vec<u32>>,
    pid: [u32; 3],
}

/// Runs `kernel` over `grid` programs with `args` (one per parameter, in order).
///
/// On success the writable buffers hold the results; on error they are unchanged.
pub fn run(kernel: &Kernel, grid: [u32; 3], args: &mut [Arg<'_>]) -> Result<(), InterpError> {
    if grid.contains(&0) {
        return Err(InterpError::Grid {
            kernel: kernel.name.clone(),
            grid,
            why: "every axis needs at least one program".into(),
        });
    }
    if args.len() != kernel.params.len() {
        return Err(InterpError::Argument {
            kernel: kernel.name.clone(),
            index: args.len().min(kernel.params.len()),
            name: kernel.params.get(args.len()).map(|p| p.name.clone()).unwrap_or_else(|| "-".into()),
            expected: format!("{} arguments", kernel.params.len()),
            got: format!("{} arguments", args.len()),
        });
    }
    for (i, (p, a)) in kernel.params.iter().zip(args.iter()).enumerate() {
        let ok = match (p.kind, a) {
            (ParamKind::Ptr(d), Arg::In(b)) => b.dtype() == d,
            (ParamKind::Ptr(d) | ParamKind::MutPtr(d), Arg::Out(b)) => b.dtype() == d,
            (ParamKind::Scalar(_), Arg::Scalar(_)) => true,
            _ => false,
        };
        if !ok {
            let expected = match p.kind {
                ParamKind::Ptr(d) => format!("a buffer of {d}"),
                ParamKind::MutPtr(d) => format!("a writable buffer of {d}"),
                ParamKind::Scalar(d) => format!("a scalar {d}"),
            };
            return Err(InterpError::Argument {
                kernel: kernel.name.clone(),
                index: i,
                name: p.name.clone(),
                expected,
                got: a.describe(),
            });
        }
    }
    let work: Vec<Option<Buffer>> = args
        .iter()
        .map(|a| match a {
            Arg::Out(b) => Some((**b).clone()),
            _ => None,
        })
        .collect();
    let writer = work.iter().map(|w| vec![0u32; w.as_ref().map_or(0, Buffer::len)]).collect();
    let size = kernel.cluster;
    if !grid[0].is_multiple_of(size) {
        return Err(InterpError::Grid {
            kernel: kernel.name.clone(),
            grid,
            why: format!("axis 0 must be a multiple of the kernel's cluster size {size}"),
        });
    }
    let mut launch = Launch { kernel, grid, args, work, writer, pid: [0; 3] };
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for c in 0..grid[0] / size {
                if size == 1 {
                    launch.pid = [c, y, z];
                    let mut env: Vec<Option<Val>> = vec![None; kernel.types.len()];
                    launch.region(&kernel.body, &mut env)?;
                } else {
                    let pids: Vec<[u32; 3]> = (0..size).map(|r| [c * size + r, y, z]).collect();
                    let mut envs = vec![vec![None; kernel.types.len()]; size as usize];
                    launch.cluster_region(&kernel.body, &pids, &mut envs)?;
                }
            }
        }
    }
    let Launch { work, .. } = launch;
    for (a, w) in args.iter_mut().zip(work) {
        if let (Arg::Out(b), Some(w)) = (a, w) {
            **b = w;
        }
    }
    Ok(())
}

impl Launch<'_, '_> {
    fn program_linear(&self) -> u32 {
        (self.pid[2] * self.grid[1] + self.pid[1]) * self.grid[0] + self.pid[0]
    }

    fn program_of(&self, linear: u32) -> [u32; 3] {
        let x = linear % self.grid[0];
        let y = (linear / self.grid[0]) % self.grid[1];
        [x, y, linear / (self.grid[0] * self.grid[1])]
    }

    fn buffer(&self, param: usize) -> &Buffer {
        match (&self.work[param], &self.args[param]) {
            (Some(b), _) => b,
            (None, Arg::In(b)) => b,
            _ => unreachable!("pointer parameters are checked to be buffers"),
        }
    }

    fn elem_dtype(&self, v: ValueId) -> DType {
        match self.kernel.ty(v).elem {
            Elem::Scalar(d) | Elem::Ptr(d) => d,
        }
    }

    fn region(&mut self, region: &Region, env: &mut Vec<Option<Val>>) -> Result<Option<Vec<Val>>, InterpError> {
        for op in &region.ops {
            if let Some(yielded) = self.op(op, env)? {
                return Ok(Some(yielded));
            }
        }
        Ok(None)
    }

    /// Runs a loop region (which ends with a yield) with its arguments bound to `args`; returns
    /// what it yields.
    fn region_with(
        &mut self,
        region: &Region,
        env: &mut Vec<Option<Val>>,
        args: Vec<Val>,
    ) -> Result<Vec<Val>, InterpError> {
        for (a, v) in region.args.iter().zip(args) {
            env[a.0 as usize] = Some(v);
        }
        Ok(self.region(region, env)?.expect("the verifier checks loop regions end with yield"))
    }

    /// Runs `region` for the programs of one cluster side by side (`pids[i]` with `envs[i]`), op
    /// by op, so that a cluster reduction combines every program's value. A loop that holds a
    /// cluster reduction runs in step too, which needs the same number of trips in every
    /// program (a while loop's test must agree in every program at every trip); other loops run
    /// program by program. A `yield` returns each program's values.
    fn cluster_region(
        &mut self,
        region: &Region,
        pids: &[[u32; 3]],
        envs: &mut [Vec<Option<Val>>],
    ) -> Result<Option<Vec<Vec<Val>>>, InterpError> {
        let get = |env: &Vec<Option<Val>>, v: ValueId| -> Val {
            env[v.0 as usize].clone().expect("the verifier checks values are defined before use")
        };
        for op in &region.ops {
            match &op.kind {
                OpKind::Yield(vs) => {
                    return Ok(Some(envs.iter().map(|env| vs.iter().map(|v| get(env, *v)).collect()).collect()));
                }
                OpKind::ClusterReduce(r, v) => {
                    let combined = self.cluster_combine(*r, *v, envs.iter().map(|env| get(env, *v)));
                    for env in envs.iter_mut() {
                        env[op.results[0].0 as usize] = Some(combined.clone());
                    }
                }
                OpKind::For { lo, hi, step, init, body } if holds_cluster_reduce(body) => {
                    let mut bounds = vec![];
                    for env in envs.iter() {
                        let (lo, hi, step) =
                            (get(env, *lo).as_i64(0), get(env, *hi).as_i64(0), get(env, *step).as_i64(0));
                        if step <= 0 {
                            return Err(InterpError::BadStep {
                                kernel: self.kernel.name.clone(),
                                value: op.results.first().map_or("loop".into(), |r| r.to_string()),
                                step,
                            });
                        }
                        bounds.push((lo, step, if hi > lo { (hi - lo + step - 1) / step } else { 0 }));
                    }
                    let trips = bounds[0].2;
                    if let Some(i) = bounds.iter().position(|b| b.2 != trips) {
                        return Err(InterpError::ClusterDiverged {
                            kernel: self.kernel.name.clone(),
                            first: pids[0],
                            second: pids[i],
                            first_trips: trips,
                            second_trips: bounds[i].2,
                        });
                    }
                    let mut carried: Vec<Vec<Val>> =
                        envs.iter().map(|env| init.iter().map(|v| get(env, *v)).collect()).collect();
                    for j in 0..trips {
                        for ((env, (lo, step, _)), c) in envs.iter_mut().zip(&bounds).zip(carried) {
                            env[body.args[0].0 as usize] = Some(Val::Int(vec![lo + j * step]));
                            for (a, c) in body.args[1..].iter().zip(c) {
                                env[a.0 as usize] = Some(c);
                            }
                        }
                        carried = self
                            .cluster_region(body, pids, envs)?
                            .expect("the verifier checks loop bodies end with yield");
                    }
                    for (env, c) in envs.iter_mut().zip(carried) {
                        for (r, c) in op.results.iter().zip(c) {
                            env[r.0 as usize] = Some(c);
                        }
                    }
                }
                OpKind::While { init, cond, body } if holds_cluster_reduce(cond) || holds_cluster_reduce(body) => {
                    let mut carried: Vec<Vec<Val>> =
                        envs.iter().map(|env| init.iter().map(|v| get(env, *v)).collect()).collect();
                    let mut trips = 0;
                    loop {
                        let go: Vec<bool> = self
                            .cluster_region_with(cond, pids, envs, carried.clone())?
                            .iter()
                            .map(|y| y[0].as_bool(0))
                            .collect();
                        if let Some(i) = go.iter().position(|g| *g != go[0]) {
                            return Err(InterpError::ClusterDiverged {
                                kernel: self.kernel.name.clone(),
                                first: pids[0],
                                second: pids[i],
                                first_trips: trips + go[0] as i64,
                                second_trips: trips + go[i] as i64,
                            });
                        }
                        if !go[0] {
                            break;
                        }
                        carried = self.cluster_region_with(body, pids, envs, carried)?;
                        trips += 1;
                    }
                    for (env, c) in envs.iter_mut().zip(carried) {
                        for (r, c) in op.results.iter().zip(c) {
                            env[r.0 as usize] = Some(c);
                        }
                    }
                }
                _ => {
                    for (pid, env) in pids.iter().zip(envs.iter_mut()) {
                        self.pid = *pid;
                        self.op(op, env)?;
                    }
                }
            }
        }
        Ok(None)
    }

    /// [`Self::cluster_region`] of a loop region with each program's arguments bound to its
    /// `args`; returns what each program yields.
    fn cluster_region_with(
        &mut self,
        region: &Region,
        pids: &[[u32; 3]],
        envs: &mut [Vec<Option<Val>>],
        args: Vec<Vec<Val>>,
    ) -> Result<Vec<Vec<Val>>, InterpError> {
        for (env, args) in envs.iter_mut().zip(args) {
            for (a, v) in region.args.iter().zip(args) {
                env[a.0 as usize] = Some(v);
            }
        }
        Ok(self.cluster_region(region, pids, envs)?.expect("the verifier checks loop regions end with yield"))
    }

    /// `op` over the values of a cluster's programs, in rank order: `f32` (or integer)
    /// arithmetic, as the GPU combines them, rounded once to the value's dtype at the end.
    fn cluster_combine(&self, op: ReduceOp, v: ValueId, mut vals: impl Iterator<Item = Val>) -> Val {
        let d = self.elem_dtype(v);
        let mut acc = vals.next().expect("a cluster has programs");
        for x in vals {
            acc = match (acc, x) {
                (Val::Float(a), Val::Float(b)) => Val::Float(
                    a.iter().zip(&b).map(|(&a, &b)| round_to(DType::F32, float_binop(op.combiner(), a, b))).collect(),
                ),
                (Val::Int(a), Val::Int(b)) => {
                    Val::Int(a.iter().zip(&b).map(|(&a, &b)| combine_int(op, d, a, b)).collect())
                }
                _ => unreachable!("the verifier checks cluster reductions take numbers"),
            };
        }
        match acc {
            Val::Float(a) => Val::Float(a.into_iter().map(|x| round_to(d, x)).collect()),
            other => other,
        }
    }

    /// Runs one op in this program; a `yield` returns what it yields.
    fn op(&mut self, op: &Op, env: &mut Vec<Option<Val>>) -> Result<Option<Vec<Val>>, InterpError> {
        let get = |env: &Vec<Option<Val>>, v: ValueId| -> Val {
            env[v.0 as usize].clone().expect("the verifier checks values are defined before use")
        };
        let result: Option<Val> = match &op.kind {
            OpKind::Param(i) => Some(match (&self.kernel.params[*i].kind, &self.args[*i]) {
                (ParamKind::Scalar(d), Arg::Scalar(l)) => {
                    if d.is_float() {
                        Val::Float(vec![round_to(*d, l.as_f64())])
                    } else {
                        Val::Int(vec![wrap_int(*d, l.as_i64())])
                    }
                }
                _ => Val::Ptr { param: *i, offs: vec![0] },
            }),
            OpKind::Const(l) => {
                let d = self.elem_dtype(op.results[0]);
                Some(match d {
                    DType::Bool => Val::Bool(vec![l.as_f64() != 0.0]),
                    d if d.is_int() => Val::Int(vec![wrap_int(d, l.as_i64())]),
                    d => Val::Float(vec![round_to(d, l.as_f64())]),
                })
            }
            OpKind::ProgramId(a) => Some(Val::Int(vec![self.pid[*a as usize] as i64])),
            OpKind::NumPrograms(a) => Some(Val::Int(vec![self.grid[*a as usize] as i64])),
            OpKind::Arange { start, end } => Some(Val::Int((*start..*end).collect())),
            OpKind::Splat(v) => {
                let n = self.kernel.ty(op.results[0]).numel();
                Some(get(env, *v).gather(&vec![0; n]))
            }
            OpKind::Broadcast(v) => {
                let src = self.kernel.ty(*v).shape.clone();
                let dst = self.kernel.ty(op.results[0]).shape.clone();
                let (ss, ds) = (strides(&src), strides(&dst));
                let idx: Vec<usize> = (0..dst.iter().product::<usize>())
                    .map(|lin| {
                        (0..dst.len()).map(|d| if src[d] == 1 { 0 } else { (lin / ds[d]) % dst[d] * ss[d] }).sum()
                    })
                    .collect();
                Some(get(env, *v).gather(&idx))
            }
            OpKind::ExpandDims(v, _) => Some(get(env, *v)),
            OpKind::Binary(b, x, y) => Some(self.binary(*b, op.results[0], &get(env, *x), &get(env, *y))?),
            OpKind::Cmp(c, x, y) => Some(self.compare(*c, *x, &get(env, *x), &get(env, *y))),
            OpKind::Unary(u, x) => Some(self.unary(*u, op.results[0], &get(env, *x))),
            OpKind::Select(c, a, b) => {
                let (c, a, b) = (get(env, *c), get(env, *a), get(env, *b));
                let pick: Vec<usize> = (0..c.len()).collect();
                Some(match (a, b) {
                    (Val::Float(a), Val::Float(b)) => {
                        Val::Float(pick.iter().map(|&i| if c.as_bool(i) { a[i] } else { b[i] }).collect())
                    }
                    (Val::Int(a), Val::Int(b)) => {
                        Val::Int(pick.iter().map(|&i| if c.as_bool(i) { a[i] } else { b[i] }).collect())
                    }
                    (Val::Bool(a), Val::Bool(b)) => {
                        Val::Bool(pick.iter().map(|&i| if c.as_bool(i) { a[i] } else { b[i] }).collect())
                    }
                    _ => unreachable!("the verifier checks where's operands share a type"),
                })
            }
            OpKind::Cast(v) => Some(self.cast(op.results[0], &get(env, *v))),
            OpKind::AddPtr(p, o) => {
                let (Val::Ptr { param, offs }, o) = (get(env, *p), get(env, *o)) else {
                    unreachable!("the verifier checks addptr takes a pointer")
                };
                Some(Val::Ptr { param, offs: offs.iter().enumerate().map(|(i, b)| b + o.as_i64(i)).collect() })
            }
            OpKind::Load { ptr, mask, other, .. } => {
                let p = get(env, *ptr);
                let mask = mask.map(|m| get(env, m));
                let other = other.map(|o| get(env, o));
                Some(self.load(op.results[0], &p, mask.as_ref(), other.as_ref())?)
            }
            // Launches run one after another here.
            OpKind::ReleaseNextLaunch => None,
            OpKind::Store { ptr, value, mask, .. } => {
                let mask = mask.map(|m| get(env, m));
                self.store(*ptr, &get(env, *ptr), &get(env, *value), mask.as_ref())?;
                None
            }
            OpKind::AtomicAdd { ptr, value, mask } => {
                let on = mask.is_none_or(|m| get(env, m).as_bool(0));
                Some(match (on, get(env, *value)) {
                    (true, v) => self.atomic_add(*ptr, &get(env, *ptr), &v)?,
                    (false, Val::Float(_)) => Val::Float(vec![0.0]),
                    (false, _) => Val::Int(vec![0]),
                })
            }
            OpKind::Reduce(r, v, axis) => Some(self.reduce(*r, *v, *axis, &get(env, *v))),
            // A cluster of one (larger clusters run through `cluster_region`).
            OpKind::ClusterReduce(_, v) => Some(get(env, *v)),
            OpKind::Trans(v) => {
                let s = &self.kernel.ty(*v).shape;
                let (rows, cols) = (s[0], s[1]);
                let idx: Vec<usize> = (0..rows * cols).map(|i| (i % rows) * cols + i / rows).collect();
                Some(get(env, *v).gather(&idx))
            }
            OpKind::Dot { a, b, acc } => Some(self.dot(*a, *b, &get(env, *a), &get(env, *b), &get(env, *acc))),
            OpKind::For { lo, hi, step, init, body } => {
                let (lo, hi, step) = (get(env, *lo).as_i64(0), get(env, *hi).as_i64(0), get(env, *step).as_i64(0));
                if step <= 0 {
                    return Err(InterpError::BadStep {
                        kernel: self.kernel.name.clone(),
                        value: op.results.first().map_or("loop".into(), |r| r.to_string()),
                        step,
                    });
                }
                let mut carried: Vec<Val> = init.iter().map(|v| get(env, *v)).collect();
                let mut i = lo;
                while i < hi {
                    env[body.args[0].0 as usize] = Some(Val::Int(vec![i]));
                    for (a, c) in body.args[1..].iter().zip(carried.drain(..)) {
                        env[a.0 as usize] = Some(c);
                    }
                    carried = self.region(body, env)?.expect("the verifier checks loop bodies end with yield");
                    i += step;
                }
                for (r, c) in op.results.iter().zip(carried) {
                    env[r.0 as usize] = Some(c);
                }
                None
            }
            OpKind::While { init, cond, body } => {
                let mut carried: Vec<Val> = init.iter().map(|v| get(env, *v)).collect();
                loop {
                    let go = self.region_with(cond, env, carried.clone())?;
                    if !go[0].as_bool(0) {
                        break;
                    }
                    carried = self.region_with(body, env, carried)?;
                }
                for (r, c) in op.results.iter().zip(carried) {
                    env[r.0 as usize] = Some(c);
                }
                None
            }
            OpKind::Yield(vs) => return Ok(Some(vs.iter().map(|v| get(env, *v)).collect())),
        };
        if let Some(val) = result {
            env[op.results[0].0 as usize] = Some(val);
        }
        Ok(None)
    }

    fn binary(&self, op: BinOp, result: ValueId, a: &Val, b: &Val) -> Result<Val, InterpError> {
        let d = self.elem_dtype(result);
        Ok(match (a, b) {
            (Val::Float(a), Val::Float(b)) => {
                Val::Float(a.iter().zip(b).map(|(&x, &y)| round_to(d, float_binop(op, x, y))).collect())
            }
            (Val::Bool(a), Val::Bool(b)) => Val::Bool(
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| match op {
                        BinOp::And => x && y,
                        BinOp::Or => x || y,
                        _ => unreachable!("the verifier allows only and/or on bool"),
                    })
                    .collect(),
            ),
            (Val::Int(a), Val::Int(b)) => {
                let mut out = Vec::with_capacity(a.len());
                for (&x, &y) in a.iter().zip(b) {
                    let r = match op {
                        BinOp::Add => x.wrapping_add(y),
                        BinOp::Sub => x.wrapping_sub(y),
                        BinOp::Mul => x.wrapping_mul(y),
                        BinOp::Div | BinOp::Rem => {
                            if y == 0 {
                                return Err(InterpError::DivisionByZero {
                                    kernel: self.kernel.name.clone(),
                                    value: result.to_string(),
                                    program: self.pid,
                                });
                            }
                            if op == BinOp::Div {
                                x.wrapping_div(y)
                            } else {
                                x.wrapping_rem(y)
                            }
                        }
                        BinOp::Max => x.max(y),
                        BinOp::Min => x.min(y),
                        BinOp::And => x & y,
                        BinOp::Or => x | y,
                    };
                    out.push(wrap_int(d, r));
                }
                Val::Int(out)
            }
            _ => unreachable!("the verifier checks binary operands share a type"),
        })
    }

    fn compare(&self, op: CmpOp, operand: ValueId, a: &Val, b: &Val) -> Val {
        let float = self.elem_dtype(operand).is_float();
        Val::Bool(
            (0..a.len())
                .map(|i| {
                    let ord =
                        if float { a.as_f64(i).partial_cmp(&b.as_f64(i)) } else { Some(a.as_i64(i).cmp(&b.as_i64(i))) };
                    use std::cmp::Ordering::*;
                    match (op, ord) {
                        (CmpOp::Ne, None) => true,
                        (_, None) => false,
                        (CmpOp::Lt, Some(o)) => o == Less,
                        (CmpOp::Le, Some(o)) => o != Greater,
                        (CmpOp::Gt, Some(o)) => o == Greater,
                        (CmpOp::Ge, Some(o)) => o != Less,
                        (CmpOp::Eq, Some(o)) => o == Equal,
                        (CmpOp::Ne, Some(o)) => o != Equal,
                    }
                })
                .collect(),
        )
    }

    fn unary(&self, op: UnOp, result: ValueId, a: &Val) -> Val {
        let d = self.elem_dtype(result);
        match a {
            Val::Float(v) => Val::Float(
                v.iter()
                    .map(|&x| {
                        round_to(
                            d,
                            match op {
                                UnOp::Neg => -x,
                                UnOp::Abs => x.abs(),
                                UnOp::Sqrt => x.sqrt(),
                                UnOp::Rsqrt => 1.0 / x.sqrt(),
                                UnOp::Exp => x.exp(),
                                UnOp::Log => x.ln(),
                                UnOp::Not => unreachable!("the verifier allows not on bool only"),
                            },
                        )
                    })
                    .collect(),
            ),
            Val::Int(v) => Val::Int(
                v.iter()
                    .map(|&x| {
                        wrap_int(
                            d,
                            match op {
                                UnOp::Neg => x.wrapping_neg(),
                                UnOp::Abs => x.wrapping_abs(),
                                _ => unreachable!("the verifier allows only neg/abs on integers"),
                            },
                        )
                    })
                    .collect(),
            ),
            Val::Bool(v) => Val::Bool(v.iter().map(|&x| !x).collect()),
            Val::Ptr { .. } => unreachable!("the verifier keeps pointers out of arithmetic"),
        }
    }

    fn cast(&self, result: ValueId, a: &Val) -> Val {
        let d = self.elem_dtype(result);
        let n = a.len();
        match d {
            DType::Bool => Val::Bool((0..n).map(|i| a.as_bool(i)).collect()),
            d if d.is_float() => Val::Float((0..n).map(|i| round_to(d, a.as_f64(i))).collect()),
            d => Val::Int(
                (0..n)
                    .map(|i| match a {
                        // Float to integer truncates and saturates (NaN gives 0), as PTX cvt.rzi does.
                        Val::Float(v) => wrap_int(d, if d == DType::I32 { v[i] as i32 as i64 } else { v[i] as i64 }),
                        other => wrap_int(d, other.as_i64(i)),
                    })
                    .collect(),
            ),
        }
    }

    fn check_bounds(&self, op: &'static str, value: ValueId, param: usize, off: i64) -> Result<usize, InterpError> {
        let len = self.buffer(param).len();
        if off < 0 || off as usize >= len {
            return Err(InterpError::OutOfBounds {
                kernel: self.kernel.name.clone(),
                op,
                value: value.to_string(),
                program: self.pid,
                param: self.kernel.params[param].name.clone(),
                offset: off,
                len,
            });
        }
        Ok(off as usize)
    }

    fn race(&self, param: usize, offset: usize, first: u32, access: &'static str) -> InterpError {
        InterpError::Race {
            kernel: self.kernel.name.clone(),
            param: self.kernel.params[param].name.clone(),
            offset: offset as i64,
            first: self.program_of((first & !ATOMIC) - 1),
            second: self.pid,
            access,
        }
    }

    fn load(&self, result: ValueId, p: &Val, mask: Option<&Val>, other: Option<&Val>) -> Result<Val, InterpError> {
        let Val::Ptr { param, offs } = p else { unreachable!("the verifier checks load takes a pointer") };
        let d = self.elem_dtype(result);
        let buf = self.buffer(*param);
        let me = self.program_linear() + 1;
        let mut floats = vec![];
        let mut ints = vec![];
        for (i, &off) in offs.iter().enumerate() {
            let active = mask.is_none_or(|m| m.as_bool(i));
            if active {
                let at = self.check_bounds("load", result, *param, off)?;
                if let Some(&w) = self.writer[*param].get(at) {
                    if w != 0 && w != me {
                        return Err(self.race(*param, at, w, "read"));
                    }
                }
                if d.is_float() {
                    floats.push(buf.get(at))
                } else {
                    ints.push(buf.get_int(at))
                }
            } else if d.is_float() {
                floats.push(other.map_or(0.0, |o| o.as_f64(i)));
            } else {
                ints.push(other.map_or(0, |o| o.as_i64(i)));
            }
        }
        Ok(if d.is_float() { Val::Float(floats) } else { Val::Int(ints) })
    }

    fn store(&mut self, ptr_id: ValueId, p: &Val, v: &Val, mask: Option<&Val>) -> Result<(), InterpError> {
        let Val::Ptr { param, offs } = p else { unreachable!("the verifier checks store takes a pointer") };
        let me = self.program_linear() + 1;
        // Check every lane first so that a failing store writes nothing.
        let mut targets = vec![];
        for (i, &off) in offs.iter().enumerate() {
            if mask.is_none_or(|m| m.as_bool(i)) {
                let at = self.check_bounds("store", ptr_id, *param, off)?;
                let w = self.writer[*param][at];
                if w != 0 && w != me {
                    return Err(self.race(*param, at, w, "wrote"));
                }
                targets.push((i, at));
            }
        }
        let buf = self.work[*param].as_mut().expect("the verifier checks stores go to writable arguments");
        for &(i, at) in &targets {
            match v {
                Val::Float(f) => buf.set(at, f[i]),
                other => buf.set_int(at, other.as_i64(i)),
            }
            self.writer[*param][at] = me;
        }
        Ok(())
    }

    /// Adds `v` to the number at `p` and returns the number replaced. Other programs' atomics
    /// may touch it too; their plain loads and stores may not.
    fn atomic_add(&mut self, ptr_id: ValueId, p: &Val, v: &Val) -> Result<Val, InterpError> {
        let Val::Ptr { param, offs } = p else { unreachable!("the verifier checks atomic_add takes a pointer") };
        let me = self.program_linear() + 1;
        let at = self.check_bounds("atomic_add", ptr_id, *param, offs[0])?;
        let w = self.writer[*param][at];
        if w != 0 && w != me && w & ATOMIC == 0 {
            return Err(self.race(*param, at, w, "wrote"));
        }
        let buf = self.work[*param].as_mut().expect("the verifier checks atomics go to writable arguments");
        let old = match v {
            Val::Float(f) => {
                let old = buf.get(at);
                buf.set(at, round_to(DType::F32, old + f[0]));
                Val::Float(vec![old])
            }
            other => {
                let old = buf.get_int(at);
                buf.set_int(at, (old as i32).wrapping_add(other.as_i64(0) as i32) as i64);
                Val::Int(vec![old])
            }
        };
        self.writer[*param][at] = me | ATOMIC;
        Ok(old)
    }

    /// `acc + a · b`: each product of two 16-bit floats is exact in `f32`; the sum is rounded to
    /// `f32` after every term, in order of `k`.
    fn dot(&self, a: ValueId, b: ValueId, av: &Val, bv: &Val, cv: &Val) -> Val {
        let (m, k) = (self.kernel.ty(a).shape[0], self.kernel.ty(a).shape[1]);
        let n = self.kernel.ty(b).shape[1];
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let mut s = cv.as_f64(i * n + j);
                for kk in 0..k {
                    s = round_to(DType::F32, s + av.as_f64(i * k + kk) * bv.as_f64(kk * n + j));
                }
                out.push(s);
            }
        }
        Val::Float(out)
    }

    fn reduce(&self, op: ReduceOp, v: ValueId, axis: usize, a: &Val) -> Val {
        let shape = &self.kernel.ty(v).shape;
        let d = self.elem_dtype(v);
        let st = strides(shape);
        let (len, stride) = (shape[axis], st[axis]);
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let combine = op.combiner();
        let mut out_f = vec![];
        let mut out_i = vec![];
        for o in 0..outer {
            for i in 0..inner {
                let base = o * len * stride + i;
                match a {
                    Val::Float(x) => {
                        let mut items: Vec<f64> = (0..len).map(|j| x[base + j * stride]).collect();
                        while items.len() > 1 {
                            let half = items.len().div_ceil(2);
                            for j in 0..items.len() / 2 {
                                items[j] = round_to(d, float_binop(combine, items[j], items[j + half]));
                            }
                            items.truncate(half);
                        }
                        out_f.push(items[0]);
                    }
                    Val::Int(x) => {
                        let mut acc = x[base];
                        for j in 1..len {
                            let y = x[base + j * stride];
                            acc = combine_int(op, d, acc, y);
                        }
                        out_i.push(acc);
                    }
                    _ => unreachable!("the verifier checks reductions take numbers"),
                }
            }
        }
        if matches!(a, Val::Float(_)) {
            Val::Float(out_f)
        } else {
            Val::Int(out_i)
        }
    }
}
