//! The plan of the fused RMSNorm → Linear kernel and its typed entry point, over any [`Backend`]:
//! every argument is validated before anything is allocated or launched.

use std::sync::OnceLock;

use tritonite_lang::DType;

use super::kernels::rms_norm_linear as build;
use super::RmsNormLinearSpec;
use crate::backend::{alloc_scratch, Backend, Binding};
use crate::error::KernelError;
use crate::matmul::tuning::{DotKernel, Problem};
use crate::matmul::MatmulConfig;
use crate::plan::{check_i32_dims, span, KernelMemo, Launch, Plan, PlanArg, Role, SharedKernel};
use crate::split_k::{k_per_split, SumSplits};
use crate::tensor::{check_vector, Rows, Storage};
use crate::tuning::config_for;

fn shared(spec: RmsNormLinearSpec, cfg: MatmulConfig) -> Result<SharedKernel, KernelError> {
    static MEMO: OnceLock<KernelMemo<(RmsNormLinearSpec, MatmulConfig)>> = OnceLock::new();
    MEMO.get_or_init(KernelMemo::new).get(&(spec, cfg), || build(&spec, &cfg))
}

/// One problem: `x: [m, k]` (row stride `stride_x`), `w: [n, k]` (row stride `stride_w`), `y: [m, n]`
/// contiguous.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormLinearShape {
    /// Rows of `x` and `y`.
    pub m: usize,
    /// Outputs per row (rows of `w`).
    pub n: usize,
    /// Features (columns of `x` and `w`).
    pub k: usize,
    /// Row stride of `x`.
    pub stride_x: usize,
    /// Row stride of `w`.
    pub stride_w: usize,
    /// RMSNorm's ε.
    pub eps: f32,
}

/// The launch of `spec` over `shape`: inputs `x, g, w`, output `y`. No launch when `y` is empty.
pub fn rms_norm_linear_plan(
    spec: &RmsNormLinearSpec,
    shape: &RmsNormLinearShape,
    cfg: &MatmulConfig,
) -> Result<Plan, KernelError> {
    spec.check()?;
    cfg.check()?;
    let RmsNormLinearShape { m, n, k, .. } = *shape;
    check_i32_dims(&[("m", m), ("n", n), ("k", k)])?;
    let mut plan = Plan::default();
    plan.buffer("x", spec.dtype, span(m, k, shape.stride_x), Role::Input);
    plan.buffer("g", spec.dtype, k, Role::Input);
    plan.buffer("w", spec.dtype, span(n, k, shape.stride_w), Role::Input);
    plan.buffer("y", spec.out, m * n, Role::Output);
    if m == 0 || n == 0 {
        return Ok(plan);
    }
    let tiles = m.div_ceil(cfg.block_m) * n.div_ceil(cfg.block_n);
    let split = cfg.split_k > 1;
    let mut args = vec![PlanArg::Buffer("x"), PlanArg::Buffer("g"), PlanArg::Buffer("w")];
    if split {
        plan.buffer("y_partial", DType::F32, cfg.split_k * m * n, Role::Scratch);
        plan.buffer("sumsq_partial", DType::F32, cfg.split_k * m, Role::Scratch);
        args.extend([PlanArg::Buffer("y_partial"), PlanArg::Buffer("sumsq_partial")]);
    } else {
        args.push(PlanArg::Buffer("y"));
    }
    args.extend([
        PlanArg::I32(m as i32),
        PlanArg::I32(n as i32),
        PlanArg::I32(k as i32),
        PlanArg::F32(shape.eps),
        PlanArg::I64(shape.stride_x as i64),
        PlanArg::I64(shape.stride_w as i64),
        PlanArg::I64(n as i64),
    ]);
    if split {
        args.push(PlanArg::I32(k_per_split(k, cfg.split_k, cfg.block_k) as i32));
    }
    let grid = [tiles as u32, cfg.split_k as u32, 1];
    plan.launches.push(Launch { kernel: shared(*spec, *cfg)?, grid, args, num_warps: cfg.num_warps });
    if split {
        let sum = SumSplits {
            partial: "y_partial",
            rstd: Some(("sumsq_partial", k, shape.eps)),
            out: ("y", spec.out),
            splits: cfg.split_k,
            m,
            n,
            stride_out: n,
        };
        sum.push(&mut plan)?;
    }
    Ok(plan)
}

/// The operands of [`rms_norm_linear`].
#[derive(Debug)]
pub struct RmsNormLinearArgs<'a, S> {
    /// `[m, k]`, f16 or bf16.
    pub x: Rows<'a, S>,
    /// RMSNorm's weight, `k` elements of `x`'s dtype.
    pub g: &'a S,
    /// The Linear weight `[n, k]` (PyTorch's layout), `x`'s dtype.
    pub w: Rows<'a, S>,
    /// RMSNorm's ε.
    pub eps: f32,
    /// Dtype of `y`; default `x`'s.
    pub out_dtype: Option<DType>,
    /// Kernel config; default: the backend's cached (or tuned) config, else
    /// [`super::heuristic`].
    pub config: Option<MatmulConfig>,
}

/// `y = rmsnorm(x; g) · wᵀ` in one kernel; returns `y` (a new contiguous `[m, n]` buffer) and the
/// config that ran.
pub fn rms_norm_linear<B: Backend>(
    backend: &B,
    args: &RmsNormLinearArgs<'_, B::Buffer>,
) -> Result<(B::Buffer, MatmulConfig), KernelError> {
    let (x, w) = (&args.x, &args.w);
    let spec = RmsNormLinearSpec { dtype: x.buf.dtype(), out: args.out_dtype.unwrap_or(x.buf.dtype()) };
    spec.check()?;
    let (m, k, n) = (x.rows, x.cols, w.rows);
    x.check("x", spec.dtype, m, k)?;
    w.check("w", spec.dtype, n, k)?;
    check_vector("g", args.g, spec.dtype, k)?;
    if !(args.eps.is_finite() && args.eps >= 0.0) {
        return Err(KernelError::BadArgument {
            arg: "eps",
            expected: "a finite ε ≥ 0".into(),
            got: args.eps.to_string(),
        });
    }
    let problem = Problem { kernel: DotKernel::RmsNormLinear, dtype: spec.dtype, out: spec.out, m, n, k };
    let cfg = config_for(backend, args.config, &problem)?;
    let shape = RmsNormLinearShape { m, n, k, stride_x: x.row_stride, stride_w: w.row_stride, eps: args.eps };
    let plan = rms_norm_linear_plan(&spec, &shape, &cfg)?;
    let y = backend.alloc_output(spec.out, m * n)?;
    let scratch = alloc_scratch(backend, &plan)?;
    let mut bindings = vec![
        Binding { name: "x", buf: x.buf, offset: x.offset },
        Binding::whole("g", args.g),
        Binding { name: "w", buf: w.buf, offset: w.offset },
        Binding::whole("y", &y),
    ];
    bindings.extend(scratch.iter().map(|(name, b)| Binding::whole(name, b)));
    backend.run(&plan, &bindings)?;
    Ok((y, cfg))
}
