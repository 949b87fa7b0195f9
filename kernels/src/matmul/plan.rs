//! The launch of one matmul, as a [`Plan`] any executor runs. Shapes and strides here are already
//! validated by [`super::api`]; this checks the spec and the config.

use std::sync::OnceLock;

use super::kernels::matmul;
use super::{MatmulConfig, MatmulSpec};
use crate::error::KernelError;
use crate::plan::{check_i32_dims, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};
use crate::split_k::{k_per_split, SumSplits};

use tritonite_lang::DType;

fn shared(spec: MatmulSpec, cfg: MatmulConfig) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<(MatmulSpec, MatmulConfig)>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&(spec, cfg), || matmul(&spec, &cfg))
}

/// One matmul problem: `c[m, n] = a[m, k] · b` with row strides (elements) of each operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    /// Rows of `a` and `c`.
    pub m: usize,
    /// Columns of `c`.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Row stride of `a`.
    pub stride_a: usize,
    /// Row stride of `b` (`[k, n]`, or `[n, k]` when transposed).
    pub stride_b: usize,
    /// Row stride of `c`.
    pub stride_c: usize,
}

impl MatmulShape {
    /// Every operand contiguous.
    pub fn contiguous(m: usize, n: usize, k: usize, b_transposed: bool) -> MatmulShape {
        MatmulShape { m, n, k, stride_a: k, stride_b: if b_transposed { k } else { n }, stride_c: n }
    }
}

/// The matmul of `spec` over `shape`: inputs `a, b`, output `c`. No launch when `c` is empty;
/// `c = 0` when `k = 0`. With `cfg.split_k > 1`, a scratch `c_partial` (f32 `[split_k, m, n]`)
/// and a second launch that sums its slices into `c`.
pub fn matmul_plan(spec: &MatmulSpec, shape: &MatmulShape, cfg: &MatmulConfig) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let MatmulShape { m, n, k, .. } = *shape;
    check_i32_dims(&[("m", m), ("n", n), ("k", k)])?;
    let (b_rows, b_cols) = if spec.b_transposed { (n, k) } else { (k, n) };
    let mut plan = Plan::default();
    plan.buffer("a", spec.dtype, span(m, k, shape.stride_a), Role::Input);
    plan.buffer("b", spec.dtype, span(b_rows, b_cols, shape.stride_b), Role::Input);
    plan.buffer("c", spec.out, span(m, n, shape.stride_c), Role::Output);
    if m == 0 || n == 0 {
        return Ok(plan);
    }
    let tiles = m.div_ceil(cfg.block_m) * n.div_ceil(cfg.block_n);
    let split = cfg.split_k > 1;
    let (c, stride_c) = if split {
        plan.buffer("c_partial", DType::F32, cfg.split_k * m * n, Role::Scratch);
        ("c_partial", n)
    } else {
        ("c", shape.stride_c)
    };
    let mut args = vec![
        PlanArg::Buffer("a"),
        PlanArg::Buffer("b"),
        PlanArg::Buffer(c),
        PlanArg::I32(m as i32),
        PlanArg::I32(n as i32),
        PlanArg::I32(k as i32),
        PlanArg::I64(shape.stride_a as i64),
        PlanArg::I64(shape.stride_b as i64),
        PlanArg::I64(stride_c as i64),
    ];
    if split {
        args.push(PlanArg::I32(k_per_split(k, cfg.split_k, cfg.block_k) as i32));
    }
    let grid = [tiles as u32, cfg.split_k as u32, 1];
    plan.launches.push(Launch { kernel: shared(*spec, *cfg)?, grid, args, num_warps: cfg.num_warps });
    if split {
        let sum = SumSplits {
            partial: "c_partial",
            rstd: None,
            out: ("c", spec.out),
            splits: cfg.split_k,
            m,
            n,
            stride_out: shape.stride_c,
        };
        sum.push(&mut plan)?;
    }
    Ok(plan)
}
