//! The launches of one LayerNorm problem: which kernel variant, its grid and its arguments, as a
//! [`Plan`] any executor runs. Shapes and strides here are already validated by [`super::api`];
//! these functions check the spec, the config and the shape.

use std::sync::OnceLock;

use tritonite_lang::DType;

use super::kernels::{backward, forward};
use super::{LayerNormConfig, LayerNormSpec};
use crate::error::KernelError;
use crate::partials;
use crate::plan::{check_shape, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};

/// Which LayerNorm kernel, with every argument its builder takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Variant {
    Forward { spec: LayerNormSpec, block: usize, rows: usize, row_in_block: bool },
    Backward { spec: LayerNormSpec, block: usize, rows: usize, row_in_block: bool },
}

/// The kernel of `v`, built once per process.
fn shared(v: Variant) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<Variant>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&v, || match &v {
        Variant::Forward { spec, block, rows, row_in_block } => forward(spec, *block, *rows, *row_in_block),
        Variant::Backward { spec, block, rows, row_in_block } => backward(spec, *block, *rows, *row_in_block),
    })
}

/// The forward's problem: `m` rows of `n` columns and the row stride (elements) of `x` and `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardShape {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of `x`.
    pub stride_x: usize,
    /// Row stride of `y`.
    pub stride_y: usize,
}

impl ForwardShape {
    /// Every operand contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> ForwardShape {
        ForwardShape { m, n, stride_x: n, stride_y: n }
    }
}

/// The backward's problem: `m` rows of `n` columns and the row stride of each row-major operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardShape {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of `x`.
    pub stride_x: usize,
    /// Row stride of `dy`.
    pub stride_dy: usize,
    /// Row stride of `dx`.
    pub stride_dx: usize,
}

impl BackwardShape {
    /// Every operand contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> BackwardShape {
        BackwardShape { m, n, stride_x: n, stride_dy: n, stride_dx: n }
    }
}

fn stride(s: usize) -> PlanArg {
    PlanArg::I64(s as i64)
}

/// The forward of `spec` over `shape`: inputs `x, [w], [bias]`; outputs `y`, `mean [m]` and
/// `rstd [m]` (f32). No launch when `m = 0`.
pub fn forward_plan(
    spec: &LayerNormSpec,
    shape: &ForwardShape,
    eps: f32,
    cfg: &LayerNormConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let mut plan = Plan::default();
    plan.buffer("x", spec.x, span(m, n, shape.stride_x), Role::Input);
    let mut args = vec![PlanArg::Buffer("x")];
    if let Some(d) = spec.weight {
        plan.buffer("w", d, n, Role::Input);
        args.push(PlanArg::Buffer("w"));
    }
    if let Some(d) = spec.bias {
        plan.buffer("bias", d, n, Role::Input);
        args.push(PlanArg::Buffer("bias"));
    }
    plan.buffer("y", spec.out, span(m, n, shape.stride_y), Role::Output);
    plan.buffer("mean", DType::F32, m, Role::Output);
    plan.buffer("rstd", DType::F32, m, Role::Output);
    args.extend([
        PlanArg::Buffer("y"),
        PlanArg::Buffer("mean"),
        PlanArg::Buffer("rstd"),
        PlanArg::I32(m as i32),
        PlanArg::I32(n as i32),
        stride(shape.stride_x),
        stride(shape.stride_y),
        PlanArg::F32(eps),
    ]);
    if m > 0 {
        let kernel = shared(Variant::Forward {
            spec: *spec,
            block: cfg.block_size,
            rows: cfg.rows,
            row_in_block: cfg.row_in_block(n),
        })?;
        let programs = m.div_ceil(cfg.rows);
        plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: cfg.num_warps });
    }
    Ok(plan)
}

/// The backward of `spec` over `shape`: inputs `x, [w], dy, mean, rstd`; outputs `dx`, `[dw]`,
/// `[dbias]`. `cfg.programs` persistent programs (at most one per tile of rows) each own a row of
/// the f32 partials, which a second launch per parameter sums in a fixed order.
pub fn backward_plan(spec: &LayerNormSpec, shape: &BackwardShape, cfg: &LayerNormConfig) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let programs = cfg.programs.min(m.div_ceil(cfg.rows).max(1));
    let mut plan = Plan::default();
    plan.buffer("x", spec.x, span(m, n, shape.stride_x), Role::Input);
    let mut args = vec![PlanArg::Buffer("x")];
    if let Some(d) = spec.weight {
        plan.buffer("w", d, n, Role::Input);
        args.push(PlanArg::Buffer("w"));
    }
    plan.buffer("dy", spec.out, span(m, n, shape.stride_dy), Role::Input);
    plan.buffer("mean", DType::F32, m, Role::Input);
    plan.buffer("rstd", DType::F32, m, Role::Input);
    plan.buffer("dx", spec.x, span(m, n, shape.stride_dx), Role::Output);
    args.extend([PlanArg::Buffer("dy"), PlanArg::Buffer("mean"), PlanArg::Buffer("rstd"), PlanArg::Buffer("dx")]);
    let grads = partials::weight_and_bias(spec.weight, spec.bias);
    args.extend(partials::declare(&mut plan, &grads, programs, n));
    args.extend([
        PlanArg::I32(m as i32),
        PlanArg::I32(n as i32),
        stride(shape.stride_x),
        stride(shape.stride_dy),
        stride(shape.stride_dx),
    ]);
    let kernel = shared(Variant::Backward {
        spec: *spec,
        block: cfg.block_size,
        rows: cfg.rows,
        row_in_block: cfg.row_in_block(n),
    })?;
    plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: cfg.num_warps });
    partials::push_sums(&mut plan, &grads, programs, n)?;
    Ok(plan)
}
