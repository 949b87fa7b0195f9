//! RMSNorm forward and backward, written in the block language.
//!
//! Forward, one program per row: `rstd = 1 / sqrt(mean(x²) + eps)`, `y = x · rstd · w`.
//! Backward, a persistent grid of `G` programs striding over rows:
//! `dx = rstd · (dy·w − x · rstd² · mean(dy·w·x))`, and each program sums `dy · x · rstd` over its
//! rows into its own row of `dw_partial[G, N]`; a second kernel adds the `G` rows up into `dw`.
//! No atomics: the result is the same run to run.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use crate::error::KernelError;
use crate::plan::{check_block, check_shape, Launch, Plan, PlanArg, Role};

/// Meta-parameters of the forward and backward kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RmsNormConfig {
    /// dtype of `x` and `y` (and of `dy`, `dx`).
    pub dtype: DType,
    /// dtype of the weight (and of `dw`), or `None` for no weight.
    pub weight: Option<DType>,
    /// Columns handled per step (a power of two).
    pub block_size: usize,
    /// True when `N ≤ block_size`: the row is loaded once and held between reduction and use (and
    /// the backward keeps its `dw` partials in registers). Otherwise rows are walked in chunks.
    pub row_in_block: bool,
}

impl RmsNormConfig {
    /// A config for rows of `n` columns with the given block size.
    pub fn new(dtype: DType, weight: Option<DType>, n: usize, block_size: usize) -> Self {
        RmsNormConfig { dtype, weight, block_size, row_in_block: n <= block_size }
    }
}

fn record_common(k: &KernelBuilder, dtype: DType, weight: Option<DType>, block: usize, row_in_block: bool) -> i64 {
    k.meta("DTYPE_BITS", dtype.bits() as i64);
    k.meta("HAS_WEIGHT", weight.is_some() as i64);
    k.meta("ROW_IN_BLOCK", row_in_block as i64);
    k.meta("BLOCK_SIZE", block as i64)
}

fn kernel_name(base: &str, dtype: DType, weight: Option<DType>) -> String {
    match weight {
        Some(w) => format!("{base}_{}_w{}", dtype.name(), w.name()),
        None => format!("{base}_{}", dtype.name()),
    }
}

/// The pointer to the first element of row `row`: `base + row * stride`, in 64-bit offsets.
fn row_ptr<'k>(base: Value<'k>, row: Value<'k>, stride: Value<'k>) -> Value<'k> {
    base + row.cast(DType::I64) * stride
}

/// Builds the forward kernel.
///
/// Arguments: `x, [w], y, rstd, n: i32, stride_x: i64, stride_y: i64, eps: f32`; grid `[M, 1, 1]`.
pub fn forward(cfg: &RmsNormConfig) -> Result<Kernel, LangError> {
    build_kernel(&kernel_name("rms_norm_fwd", cfg.dtype, cfg.weight), |k| {
        let block = record_common(k, cfg.dtype, cfg.weight, cfg.block_size, cfg.row_in_block);
        let x = k.ptr_arg("x", cfg.dtype);
        let w = cfg.weight.map(|d| k.ptr_arg("w", d));
        let y = k.mut_ptr_arg("y", cfg.dtype);
        let rstd_out = k.mut_ptr_arg("rstd", DType::F32);
        let n = k.scalar_arg("n", DType::I32);
        let stride_x = k.scalar_arg("stride_x", DType::I64);
        let stride_y = k.scalar_arg("stride_y", DType::I64);
        let eps = k.scalar_arg("eps", DType::F32);

        let row = k.program_id(0);
        let x_row = row_ptr(x, row, stride_x);
        let y_row = row_ptr(y, row, stride_y);
        let cols = k.arange(0, block);
        let scale = |xv, offs, mask, rstd| {
            let normed: Value = xv * rstd;
            match w {
                Some(w) => normed * k.load_masked(w + offs, mask, 0.0).cast(DType::F32),
                None => normed,
            }
        };
        if cfg.row_in_block {
            let mask = cols.lt(n);
            let xv = k.load_masked(x_row + cols, mask, 0.0).cast(DType::F32);
            let rstd = ((xv * xv).sum(0) / n.cast(DType::F32) + eps).rsqrt();
            k.store(rstd_out + row, rstd);
            k.store_masked(y_row + cols, scale(xv, cols, mask, rstd), mask);
        } else {
            let acc = k.zeros(&[cfg.block_size], DType::F32);
            let acc = k.for_range(0, n, block, &[acc], |start, c| {
                let offs = start + cols;
                let xv = k.load_masked(x_row + offs, offs.lt(n), 0.0).cast(DType::F32);
                vec![c[0] + xv * xv]
            });
            let rstd = (acc[0].sum(0) / n.cast(DType::F32) + eps).rsqrt();
            k.store(rstd_out + row, rstd);
            k.for_range(0, n, block, &[], |start, _| {
                let offs = start + cols;
                let mask = offs.lt(n);
                let xv = k.load_masked(x_row + offs, mask, 0.0).cast(DType::F32);
                k.store_masked(y_row + offs, scale(xv, offs, mask, rstd), mask);
                vec![]
            });
        }
    })
}

/// Builds the backward kernel, which writes `dx` and, with a weight, `dw_partial[G, N]` (f32).
///
/// Arguments: `x, [w], dy, rstd, dx, [dw_partial], m: i32, n: i32, stride_x: i64, stride_dy: i64,
/// stride_dx: i64`; grid `[G, 1, 1]` with any `G ≥ 1` (each program strides over rows).
pub fn backward(cfg: &RmsNormConfig) -> Result<Kernel, LangError> {
    build_kernel(&kernel_name("rms_norm_bwd", cfg.dtype, cfg.weight), |k| {
        let block = record_common(k, cfg.dtype, cfg.weight, cfg.block_size, cfg.row_in_block);
        let x = k.ptr_arg("x", cfg.dtype);
        let w = cfg.weight.map(|d| k.ptr_arg("w", d));
        let dy = k.ptr_arg("dy", cfg.dtype);
        let rstd_in = k.ptr_arg("rstd", DType::F32);
        let dx = k.mut_ptr_arg("dx", cfg.dtype);
        let dw_partial = cfg.weight.map(|_| k.mut_ptr_arg("dw_partial", DType::F32));
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let stride_x = k.scalar_arg("stride_x", DType::I64);
        let stride_dy = k.scalar_arg("stride_dy", DType::I64);
        let stride_dx = k.scalar_arg("stride_dx", DType::I64);

        let pid = k.program_id(0);
        let programs = k.num_programs(0);
        let cols = k.arange(0, block);
        let n_f = n.cast(DType::F32);
        // This program's row of dw_partial.
        let partial_row = dw_partial.map(|p| row_ptr(p, pid, n.cast(DType::I64)));
        let load_f32 = |p, offs, mask| k.load_masked(p + offs, mask, 0.0).cast(DType::F32);
        let weighted = |dyv, offs, mask| match w {
            Some(w) => dyv * load_f32(w, offs, mask),
            None => dyv,
        };

        if cfg.row_in_block {
            let mask = cols.lt(n);
            let dw_acc = k.zeros(&[cfg.block_size], DType::F32);
            let w_block = w.map(|w| load_f32(w, cols, mask));
            let out = k.for_range(pid, m, programs, &[dw_acc], |row, c| {
                let xv = load_f32(row_ptr(x, row, stride_x), cols, mask);
                let dyv = load_f32(row_ptr(dy, row, stride_dy), cols, mask);
                let rstd = k.load(rstd_in + row);
                let wdy = match w_block {
                    Some(wb) => dyv * wb,
                    None => dyv,
                };
                let c_row = (wdy * xv).sum(0) * rstd * rstd / n_f;
                let dxv = (wdy - xv * c_row) * rstd;
                k.store_masked(row_ptr(dx, row, stride_dx) + cols, dxv, mask);
                vec![c[0] + dyv * xv * rstd]
            });
            if let Some(p) = partial_row {
                k.store_masked(p + cols, out[0], mask);
            }
        } else {
            if let Some(p) = partial_row {
                k.for_range(0, n, block, &[], |start, _| {
                    let offs = start + cols;
                    k.store_masked(p + offs, 0.0, offs.lt(n));
                    vec![]
                });
            }
            k.for_range(pid, m, programs, &[], |row, _| {
                let (x_row, dy_row) = (row_ptr(x, row, stride_x), row_ptr(dy, row, stride_dy));
                let rstd = k.load(rstd_in + row);
                let acc = k.zeros(&[cfg.block_size], DType::F32);
                let acc = k.for_range(0, n, block, &[acc], |start, c| {
                    let offs = start + cols;
                    let mask = offs.lt(n);
                    let wdy = weighted(load_f32(dy_row, offs, mask), offs, mask);
                    vec![c[0] + wdy * load_f32(x_row, offs, mask)]
                });
                let c_row = acc[0].sum(0) * rstd * rstd / n_f;
                let dx_row = row_ptr(dx, row, stride_dx);
                k.for_range(0, n, block, &[], |start, _| {
                    let offs = start + cols;
                    let mask = offs.lt(n);
                    let xv = load_f32(x_row, offs, mask);
                    let dyv = load_f32(dy_row, offs, mask);
                    let wdy = weighted(dyv, offs, mask);
                    k.store_masked(dx_row + offs, (wdy - xv * c_row) * rstd, mask);
                    if let Some(p) = partial_row {
                        let prev = k.load_masked(p + offs, mask, 0.0);
                        k.store_masked(p + offs, prev + dyv * xv * rstd, mask);
                    }
                    vec![]
                });
                vec![]
            });
        }
    })
}

/// Builds the second backward stage: `dw[j] = Σ_p dw_partial[p, j]`, summed in f32, stored as
/// `w_dtype`.
///
/// Arguments: `dw_partial, dw, programs: i32, n: i32`; grid `[ceil(N / block_size), 1, 1]`.
pub fn dw_reduce(w_dtype: DType, block_size: usize) -> Result<Kernel, LangError> {
    build_kernel(&format!("rms_norm_dw_reduce_{}", w_dtype.name()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let partial = k.ptr_arg("dw_partial", DType::F32);
        let dw = k.mut_ptr_arg("dw", w_dtype);
        let programs = k.scalar_arg("programs", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let cols = k.program_id(0) * block + k.arange(0, block);
        let mask = cols.lt(n);
        let acc = k.zeros(&[block_size], DType::F32);
        let acc = k.for_range(0, programs, 1, &[acc], |p, c| {
            let row = row_ptr(partial, p, n.cast(DType::I64));
            vec![c[0] + k.load_masked(row + cols, mask, 0.0)]
        });
        k.store_masked(dw + cols, acc[0], mask);
    })
}

/// The forward as a launch plan: inputs `x [m·n]`, `w [n]` (with a weight); outputs `y [m·n]`,
/// `rstd [m]` (f32). Rows are contiguous (`stride = n`).
#[allow(clippy::too_many_arguments)]
pub fn forward_plan(
    dtype: DType,
    weight: Option<DType>,
    m: usize,
    n: usize,
    eps: f32,
    block_size: usize,
    num_warps: u32,
) -> Result<Plan, KernelError> {
    check_shape(m, n)?;
    check_block(block_size)?;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(KernelError::BadArgument {
            arg: "eps",
            expected: "a finite value > 0".into(),
            got: eps.to_string(),
        });
    }
    let mut plan = Plan::default();
    plan.buffer("x", dtype, m * n, Role::Input);
    if let Some(w) = weight {
        plan.buffer("w", w, n, Role::Input);
    }
    plan.buffer("y", dtype, m * n, Role::Output);
    plan.buffer("rstd", DType::F32, m, Role::Output);
    if m > 0 {
        let kernel = forward(&RmsNormConfig::new(dtype, weight, n, block_size))?;
        let mut args = vec![PlanArg::Buffer("x")];
        args.extend(weight.map(|_| PlanArg::Buffer("w")));
        args.extend([
            PlanArg::Buffer("y"),
            PlanArg::Buffer("rstd"),
            PlanArg::I32(n as i32),
            PlanArg::I64(n as i64),
            PlanArg::I64(n as i64),
            PlanArg::F32(eps),
        ]);
        plan.launches.push(Launch { kernel, grid: [m as u32, 1, 1], args, num_warps });
    }
    Ok(plan)
}

/// Columns per program of the `dw` reduction.
pub const DW_REDUCE_BLOCK: usize = 256;

/// The backward as a launch plan with `programs` persistent programs: inputs `x, [w], dy, rstd`;
/// outputs `dx [m·n]` and, with a weight, `dw [n]`.
#[allow(clippy::too_many_arguments)]
pub fn backward_plan(
    dtype: DType,
    weight: Option<DType>,
    m: usize,
    n: usize,
    block_size: usize,
    num_warps: u32,
    programs: usize,
) -> Result<Plan, KernelError> {
    check_shape(m, n)?;
    check_block(block_size)?;
    if programs == 0 {
        return Err(KernelError::BadArgument { arg: "programs", expected: "at least 1".into(), got: "0".into() });
    }
    let programs = programs.min(m.max(1));
    let mut plan = Plan::default();
    plan.buffer("x", dtype, m * n, Role::Input);
    if let Some(w) = weight {
        plan.buffer("w", w, n, Role::Input);
    }
    plan.buffer("dy", dtype, m * n, Role::Input);
    plan.buffer("rstd", DType::F32, m, Role::Input);
    plan.buffer("dx", dtype, m * n, Role::Output);
    let kernel = backward(&RmsNormConfig::new(dtype, weight, n, block_size))?;
    let mut args = vec![PlanArg::Buffer("x")];
    args.extend(weight.map(|_| PlanArg::Buffer("w")));
    args.extend([PlanArg::Buffer("dy"), PlanArg::Buffer("rstd"), PlanArg::Buffer("dx")]);
    if weight.is_some() {
        args.push(PlanArg::Buffer("dw_partial"));
    }
    args.extend([
        PlanArg::I32(m as i32),
        PlanArg::I32(n as i32),
        PlanArg::I64(n as i64),
        PlanArg::I64(n as i64),
        PlanArg::I64(n as i64),
    ]);
    plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps });
    if let Some(w) = weight {
        plan.buffer("dw_partial", DType::F32, programs * n, Role::Scratch);
        plan.buffer("dw", w, n, Role::Output);
        let reduce = dw_reduce(w, DW_REDUCE_BLOCK)?;
        let args = vec![
            PlanArg::Buffer("dw_partial"),
            PlanArg::Buffer("dw"),
            PlanArg::I32(programs as i32),
            PlanArg::I32(n as i32),
        ];
        plan.launches.push(Launch {
            kernel: reduce,
            grid: [n.div_ceil(DW_REDUCE_BLOCK) as u32, 1, 1],
            args,
            num_warps: 4,
        });
    }
    Ok(plan)
}
