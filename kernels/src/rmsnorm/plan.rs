//! The launches of one RMSNorm problem: which kernel variant, its grid and its arguments, as a
//! [`Plan`] any executor runs. Shapes and strides here are already validated by [`super::api`];
//! these functions check only the config.

use std::sync::OnceLock;

use tritonite_lang::DType;

use super::kernels::{backward, forward, Tiling};
use super::{RmsNormConfig, RmsNormSpec};
use crate::error::KernelError;
use crate::partials;
use crate::plan::{check_shape, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};

/// Which RMSNorm kernel, with every argument its builder takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Variant {
    Forward { spec: RmsNormSpec, tiling: Tiling, weight_early: bool },
    Backward { spec: RmsNormSpec, dro: bool, tiling: Tiling },
}

/// The kernel of `v`, built once per process.
fn shared(v: Variant) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<Variant>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&v, || match &v {
        Variant::Forward { spec, tiling, weight_early } => forward(spec, tiling, *weight_early),
        Variant::Backward { spec, dro, tiling } => backward(spec, *dro, tiling),
    })
}

/// The forward's problem: `m` rows of `n` columns, and the row stride (in elements) of each
/// row-major operand. A stride of an operand the spec does not have is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ForwardShape {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of `x`.
    pub stride_x: usize,
    /// Row stride of `residual`.
    pub stride_residual: usize,
    /// Row stride of `y`.
    pub stride_y: usize,
    /// Row stride of `residual_out`.
    pub stride_residual_out: usize,
}

impl ForwardShape {
    /// Every operand contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> ForwardShape {
        ForwardShape { m, n, stride_x: n, stride_residual: n, stride_y: n, stride_residual_out: n }
    }
}

/// The backward's problem: `m` rows of `n` columns and the row stride of each row-major operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackwardShape {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of `x` (the saved `h`).
    pub stride_x: usize,
    /// Row stride of `dy`.
    pub stride_dy: usize,
    /// Row stride of `dresidual_out`.
    pub stride_dresidual_out: usize,
    /// Row stride of `dx`.
    pub stride_dx: usize,
    /// Row stride of `dresidual`.
    pub stride_dresidual: usize,
}

impl BackwardShape {
    /// Every operand contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> BackwardShape {
        BackwardShape { m, n, stride_x: n, stride_dy: n, stride_dresidual_out: n, stride_dx: n, stride_dresidual: n }
    }
}

/// Whether the forward loads the weight next to x (see [`forward`]): for rows held in one
/// program while a thread holds at most 16 elements of the tile. More registers would cost
/// programs per SM: 32768 × 5120 bf16 at 8 warps went from 64 to 72 registers, 4 to 3 programs
/// an SM, 0.99 → 0.95 of copy.
pub(crate) fn weight_early(cfg: &RmsNormConfig, tiling: &Tiling) -> bool {
    let per_thread = cfg.rows * cfg.block_size / (32 * cfg.num_warps as usize);
    tiling.row_in_block && (cfg.cluster == 1 || cfg.prefetch) && per_thread <= 16
}

/// The kernel variant `cfg` makes for rows of `n` columns: held in registers (in one program, or
/// split over a cluster) when they fit, else walked in chunks. A cluster that cannot hold a row,
/// or a prefetch or staging of rows not held, is an error.
pub fn tiling(cfg: &RmsNormConfig, n: usize) -> Result<Tiling, KernelError> {
    let held = n <= cfg.cluster * cfg.block_size;
    if cfg.cluster > 1 && !held {
        return Err(KernelError::BadArgument {
            arg: "cluster",
            expected: format!("1, or a cluster that holds a row: cluster × block_size ≥ N = {n}"),
            got: format!("{} × {}", cfg.cluster, cfg.block_size),
        });
    }
    for (arg, on) in [("prefetch", cfg.prefetch), ("staged", cfg.staged)] {
        if on && !held {
            return Err(KernelError::BadArgument {
                arg,
                expected: format!("off for rows walked in chunks (N = {n} > cluster × block_size)"),
                got: format!("on, with {} × {}", cfg.cluster, cfg.block_size),
            });
        }
    }
    // Rows walked in chunks have `cluster = 1` (checked above).
    Ok(Tiling {
        block_size: cfg.block_size,
        rows: cfg.rows,
        row_in_block: held,
        cluster: cfg.cluster,
        prefetch: cfg.prefetch,
        staged: cfg.staged,
    })
}

fn stride(s: usize) -> PlanArg {
    PlanArg::I64(s as i64)
}

/// The forward of `spec` over `shape`: inputs `x, [residual], [w], [bias]`; outputs `y, rstd [m]`
/// (f32) and `[residual_out]`. One program (a cluster of `cfg.cluster`) per tile of rows when a
/// row fits the block (the cluster's blocks) and is not prefetched, else at most `cfg.programs`
/// persistent programs (clusters). No launch when `m = 0`.
pub fn forward_plan(
    spec: &RmsNormSpec,
    shape: &ForwardShape,
    eps: f32,
    offset: f32,
    cfg: &RmsNormConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let mut plan = Plan::default();
    plan.buffer("x", spec.x, span(m, n, shape.stride_x), Role::Input);
    let mut args = vec![PlanArg::Buffer("x")];
    if let Some(d) = spec.residual {
        plan.buffer("residual", d, span(m, n, shape.stride_residual), Role::Input);
        args.push(PlanArg::Buffer("residual"));
    }
    if let Some(d) = spec.weight {
        plan.buffer("w", d, n, Role::Input);
        args.push(PlanArg::Buffer("w"));
    }
    if let Some(d) = spec.bias {
        plan.buffer("bias", d, n, Role::Input);
        args.push(PlanArg::Buffer("bias"));
    }
    plan.buffer("y", spec.out, span(m, n, shape.stride_y), Role::Output);
    args.push(PlanArg::Buffer("y"));
    if let Some(d) = spec.residual_out {
        plan.buffer("residual_out", d, span(m, n, shape.stride_residual_out), Role::Output);
        args.push(PlanArg::Buffer("residual_out"));
    }
    plan.buffer("rstd", DType::F32, m, Role::Output);
    args.extend([PlanArg::Buffer("rstd"), PlanArg::I32(m as i32), PlanArg::I32(n as i32), stride(shape.stride_x)]);
    if spec.residual.is_some() {
        args.push(stride(shape.stride_residual));
    }
    args.push(stride(shape.stride_y));
    if spec.residual_out.is_some() {
        args.push(stride(shape.stride_residual_out));
    }
    args.push(PlanArg::F32(eps));
    if spec.weight.is_some() {
        args.push(PlanArg::F32(offset));
    }
    if m > 0 {
        let tiling = tiling(cfg, n)?;
        let weight_early = weight_early(cfg, &tiling);
        let kernel = shared(Variant::Forward { spec: *spec, tiling, weight_early })?;
        let tiles = m.div_ceil(cfg.rows);
        let per_tile = tiling.row_in_block && !tiling.prefetch;
        let programs = tiling.cluster * if per_tile { tiles } else { tiles.min(cfg.programs) };
        plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: cfg.num_warps });
    }
    Ok(plan)
}

/// The backward of `spec` over `shape`: inputs `x` (the saved `h`), `[w]`, `dy`, `rstd`,
/// `[dresidual_out]` (when `has_dresidual_out`); outputs `dx`, `[dresidual]`, `[dw]`, `[dbias]`.
/// `cfg.programs` persistent programs (at most one per tile of rows; clusters of
/// `cfg.cluster` programs when rows are split over clusters) each own a row of the f32 partials.
pub fn backward_plan(
    spec: &RmsNormSpec,
    has_dresidual_out: bool,
    shape: &BackwardShape,
    offset: f32,
    cfg: &RmsNormConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let tiling = tiling(cfg, n)?;
    let programs = cfg.programs.min(m.div_ceil(cfg.rows).max(1));
    let mut plan = Plan::default();
    plan.buffer("x", spec.saved(), span(m, n, shape.stride_x), Role::Input);
    let mut args = vec![PlanArg::Buffer("x")];
    if let Some(d) = spec.weight {
        plan.buffer("w", d, n, Role::Input);
        args.push(PlanArg::Buffer("w"));
    }
    plan.buffer("dy", spec.out, span(m, n, shape.stride_dy), Role::Input);
    plan.buffer("rstd", DType::F32, m, Role::Input);
    args.extend([PlanArg::Buffer("dy"), PlanArg::Buffer("rstd")]);
    if has_dresidual_out {
        plan.buffer("dresidual_out", spec.saved(), span(m, n, shape.stride_dresidual_out), Role::Input);
        args.push(PlanArg::Buffer("dresidual_out"));
    }
    plan.buffer("dx", spec.x, span(m, n, shape.stride_dx), Role::Output);
    args.push(PlanArg::Buffer("dx"));
    if let Some(d) = spec.residual {
        plan.buffer("dresidual", d, span(m, n, shape.stride_dresidual), Role::Output);
        args.push(PlanArg::Buffer("dresidual"));
    }
    let grads = partials::weight_and_bias(spec.weight, spec.bias);
    args.extend(partials::declare(&mut plan, &grads, programs, n));
    args.extend([PlanArg::I32(m as i32), PlanArg::I32(n as i32), stride(shape.stride_x), stride(shape.stride_dy)]);
    if has_dresidual_out {
        args.push(stride(shape.stride_dresidual_out));
    }
    args.push(stride(shape.stride_dx));
    if spec.residual.is_some() {
        args.push(stride(shape.stride_dresidual));
    }
    if spec.weight.is_some() {
        args.push(PlanArg::F32(offset));
    }
    let kernel = shared(Variant::Backward { spec: *spec, dro: has_dresidual_out, tiling })?;
    let grid = [(programs * cfg.cluster) as u32, 1, 1];
    plan.launches.push(Launch { kernel, grid, args, num_warps: cfg.num_warps });
    partials::push_sums(&mut plan, &grads, programs, n)?;
    Ok(plan)
}
