//! The launches of one cross-entropy problem, as a [`Plan`] any executor runs. Shapes and strides
//! here are already validated by [`super::api`]; these functions check the spec, the config and the
//! shape.

use std::sync::OnceLock;

use tritonite_lang::DType;

use super::kernels::{backward, forward, reduce};
use super::{CrossEntropyConfig, CrossEntropySpec, GradMode, Reduction};
use crate::error::KernelError;
use crate::plan::{check_shape, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};

/// Which cross-entropy kernel, with every argument its builder takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Variant {
    Forward { spec: CrossEntropySpec, block: usize, rows: usize, row_in_block: bool },
    Backward { spec: CrossEntropySpec, mode: GradMode, in_place: bool, block: usize, rows: usize },
    Reduce { target: DType, mean: bool, block: usize },
}

fn shared(v: Variant) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<Variant>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&v, || match &v {
        Variant::Forward { spec, block, rows, row_in_block } => forward(spec, *block, *rows, *row_in_block),
        Variant::Backward { spec, mode, in_place, block, rows } => backward(spec, *mode, *in_place, *block, *rows),
        Variant::Reduce { target, mean, block } => reduce(*target, *mean, *block),
    })
}

/// Lanes of the one-program reduction.
pub const REDUCE_BLOCK: usize = 1024;

/// Most programs along the backward's second grid axis (CUDA's limit on grid y).
pub const MAX_COLUMN_PROGRAMS: usize = 65535;

/// The forward's problem: `m` rows of `v` logits, `stride` elements apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardShape {
    /// Rows.
    pub m: usize,
    /// Classes (logits per row).
    pub v: usize,
    /// Row stride of the logits.
    pub stride: usize,
}

/// The backward's problem: `m` rows of `v` logits and the row strides of the logits and of
/// `dlogits` (ignored in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardShape {
    /// Rows.
    pub m: usize,
    /// Classes (logits per row).
    pub v: usize,
    /// Row stride of the logits.
    pub stride: usize,
    /// Row stride of `dlogits`.
    pub stride_dlogits: usize,
}

/// The forward over `shape`: inputs `logits, target`; outputs `loss [m]` and `lse [m]` (f32), and
/// with a reduction `reduced [2]` (f32: the mean or sum, then the count of rows not ignored). No
/// forward launch when `m = 0` (the reduction still runs: a mean of nothing is NaN).
pub fn forward_plan(
    spec: &CrossEntropySpec,
    shape: &ForwardShape,
    ignore_index: i64,
    reduction: Reduction,
    cfg: &CrossEntropyConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, v) = (shape.m, shape.v);
    check_shape(m, v)?;
    let mut plan = Plan::default();
    plan.buffer("logits", spec.logits, span(m, v, shape.stride), Role::Input);
    plan.buffer("target", spec.target, m, Role::Input);
    plan.buffer("loss", DType::F32, m, Role::Output);
    plan.buffer("lse", DType::F32, m, Role::Output);
    if m > 0 {
        let kernel = shared(Variant::Forward {
            spec: *spec,
            block: cfg.block_size,
            rows: cfg.rows,
            row_in_block: cfg.row_in_block(v),
        })?;
        let args = vec![
            PlanArg::Buffer("logits"),
            PlanArg::Buffer("target"),
            PlanArg::Buffer("loss"),
            PlanArg::Buffer("lse"),
            PlanArg::I32(m as i32),
            PlanArg::I32(v as i32),
            PlanArg::I64(shape.stride as i64),
            PlanArg::I64(ignore_index),
        ];
        plan.launches.push(Launch {
            kernel,
            grid: [m.div_ceil(cfg.rows) as u32, 1, 1],
            args,
            num_warps: cfg.num_warps,
        });
    }
    if reduction != Reduction::None {
        plan.buffer("reduced", DType::F32, 2, Role::Output);
        let kernel =
            shared(Variant::Reduce { target: spec.target, mean: reduction == Reduction::Mean, block: REDUCE_BLOCK })?;
        let args = vec![
            PlanArg::Buffer("loss"),
            PlanArg::Buffer("target"),
            PlanArg::Buffer("reduced"),
            PlanArg::I32(m as i32),
            PlanArg::I64(ignore_index),
        ];
        plan.launches.push(Launch { kernel, grid: [1, 1, 1], args, num_warps: 4 });
    }
    Ok(plan)
}

/// The backward over `shape`: inputs `logits, target, lse`, and per `mode` `dloss [m]` or
/// `reduced [2]` (f32); output `dlogits`, or the logits themselves when `in_place`. `grad` is the
/// scalar of [`GradMode::Scalar`] and [`GradMode::Mean`]. No launch when `m = 0`.
#[allow(clippy::too_many_arguments)]
pub fn backward_plan(
    spec: &CrossEntropySpec,
    shape: &BackwardShape,
    mode: GradMode,
    in_place: bool,
    ignore_index: i64,
    grad: f32,
    cfg: &CrossEntropyConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, v) = (shape.m, shape.v);
    check_shape(m, v)?;
    let mut plan = Plan::default();
    let logits_role = if in_place { Role::Output } else { Role::Input };
    plan.buffer("logits", spec.logits, span(m, v, shape.stride), logits_role);
    plan.buffer("target", spec.target, m, Role::Input);
    plan.buffer("lse", DType::F32, m, Role::Input);
    let mut args = vec![PlanArg::Buffer("logits"), PlanArg::Buffer("target"), PlanArg::Buffer("lse")];
    match mode {
        GradMode::PerRow => {
            plan.buffer("dloss", DType::F32, m, Role::Input);
            args.push(PlanArg::Buffer("dloss"));
        }
        GradMode::Mean => {
            plan.buffer("reduced", DType::F32, 2, Role::Input);
            args.push(PlanArg::Buffer("reduced"));
        }
        GradMode::Scalar => {}
    }
    if !in_place {
        plan.buffer("dlogits", spec.logits, span(m, v, shape.stride_dlogits), Role::Output);
        args.push(PlanArg::Buffer("dlogits"));
    }
    args.extend([PlanArg::I32(m as i32), PlanArg::I32(v as i32), PlanArg::I64(shape.stride as i64)]);
    if !in_place {
        args.push(PlanArg::I64(shape.stride_dlogits as i64));
    }
    args.push(PlanArg::I64(ignore_index));
    if mode != GradMode::PerRow {
        args.push(PlanArg::F32(grad));
    }
    if m > 0 {
        let kernel = shared(Variant::Backward { spec: *spec, mode, in_place, block: cfg.block_size, rows: cfg.rows })?;
        let col_programs = v.div_ceil(cfg.block_size).min(MAX_COLUMN_PROGRAMS);
        let grid = [m.div_ceil(cfg.rows) as u32, col_programs as u32, 1];
        plan.launches.push(Launch { kernel, grid, args, num_warps: cfg.num_warps });
    }
    Ok(plan)
}
