//! The launches of one softmax problem, as a [`Plan`] any executor runs. Shapes and strides here are
//! already validated by [`super::api`]; these functions check the spec, the config and the shape.

use std::sync::OnceLock;

use super::kernels::{backward, forward};
use super::{SoftmaxConfig, SoftmaxSpec};
use crate::error::KernelError;
use crate::plan::{check_shape, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};

/// Which softmax kernel, with every argument its builder takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Variant {
    Forward { spec: SoftmaxSpec, block: usize, rows: usize, row_in_block: bool },
    Backward { spec: SoftmaxSpec, block: usize, rows: usize, row_in_block: bool },
}

fn shared(v: Variant) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<Variant>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&v, || match &v {
        Variant::Forward { spec, block, rows, row_in_block } => forward(spec, *block, *rows, *row_in_block),
        Variant::Backward { spec, block, rows, row_in_block } => backward(spec, *block, *rows, *row_in_block),
    })
}

/// The forward's problem: `m` rows of `n` columns and the row strides (elements) of `x` and `y`.
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
    /// Both operands contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> ForwardShape {
        ForwardShape { m, n, stride_x: n, stride_y: n }
    }
}

/// The backward's problem: `m` rows of `n` columns and the row strides of `y`, `dy` and `dx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardShape {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of `y`.
    pub stride_y: usize,
    /// Row stride of `dy`.
    pub stride_dy: usize,
    /// Row stride of `dx`.
    pub stride_dx: usize,
}

impl BackwardShape {
    /// Every operand contiguous (`stride = n`).
    pub fn contiguous(m: usize, n: usize) -> BackwardShape {
        BackwardShape { m, n, stride_y: n, stride_dy: n, stride_dx: n }
    }
}

/// The forward of `spec` over `shape`: input `x`, output `y`. No launch when `m = 0`.
pub fn forward_plan(spec: &SoftmaxSpec, shape: &ForwardShape, cfg: &SoftmaxConfig) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let mut plan = Plan::default();
    plan.buffer("x", spec.x, span(m, n, shape.stride_x), Role::Input);
    plan.buffer("y", spec.out, span(m, n, shape.stride_y), Role::Output);
    if m > 0 {
        let kernel = shared(Variant::Forward {
            spec: *spec,
            block: cfg.block_size,
            rows: cfg.rows,
            row_in_block: cfg.row_in_block(n),
        })?;
        let args = vec![
            PlanArg::Buffer("x"),
            PlanArg::Buffer("y"),
            PlanArg::I32(m as i32),
            PlanArg::I32(n as i32),
            PlanArg::I64(shape.stride_x as i64),
            PlanArg::I64(shape.stride_y as i64),
        ];
        plan.launches.push(Launch {
            kernel,
            grid: [m.div_ceil(cfg.rows) as u32, 1, 1],
            args,
            num_warps: cfg.num_warps,
        });
    }
    Ok(plan)
}

/// The backward of `spec` over `shape`: inputs `y, dy`, output `dx`. No launch when `m = 0`.
pub fn backward_plan(spec: &SoftmaxSpec, shape: &BackwardShape, cfg: &SoftmaxConfig) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let (m, n) = (shape.m, shape.n);
    check_shape(m, n)?;
    let mut plan = Plan::default();
    plan.buffer("y", spec.out, span(m, n, shape.stride_y), Role::Input);
    plan.buffer("dy", spec.out, span(m, n, shape.stride_dy), Role::Input);
    plan.buffer("dx", spec.x, span(m, n, shape.stride_dx), Role::Output);
    if m > 0 {
        let kernel = shared(Variant::Backward {
            spec: *spec,
            block: cfg.block_size,
            rows: cfg.rows,
            row_in_block: cfg.row_in_block(n),
        })?;
        let args = vec![
            PlanArg::Buffer("y"),
            PlanArg::Buffer("dy"),
            PlanArg::Buffer("dx"),
            PlanArg::I32(m as i32),
            PlanArg::I32(n as i32),
            PlanArg::I64(shape.stride_y as i64),
            PlanArg::I64(shape.stride_dy as i64),
            PlanArg::I64(shape.stride_dx as i64),
        ];
        plan.launches.push(Launch {
            kernel,
            grid: [m.div_ceil(cfg.rows) as u32, 1, 1],
            args,
            num_warps: cfg.num_warps,
        });
    }
    Ok(plan)
}
