//! The fused RMSNorm → Linear kernel in the block language: the matmul kernel's `a · Wᵀ` loop with
//! `a = x ⊙ g` and `Σ x²` accumulated beside it, then each row scaled by its `rstd`.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::RmsNormLinearSpec;
use crate::matmul::MatmulConfig;

/// Builds the kernel.
///
/// Arguments, in order: `x, g, w, y, m: i32, n: i32, k: i32, eps: f32, stride_x: i64,
/// stride_w: i64, stride_y: i64` (`x: [m, k]`, `g: [k]`, `w: [n, k]`, `y: [m, n]`, rows
/// contiguous); grid `[ceil(m / BLOCK_M) · ceil(n / BLOCK_N), 1, 1]` (column tiles fastest: the
/// config's `group_m` is not used).
pub fn rms_norm_linear(spec: &RmsNormLinearSpec, cfg: &MatmulConfig) -> Result<Kernel, LangError> {
    build_kernel(&format!("rmsnorm_linear_{}_{}", spec.dtype.name(), spec.out.name()), |k| trace(k, spec, cfg))
}

fn trace<'k>(k: &'k KernelBuilder, spec: &RmsNormLinearSpec, cfg: &MatmulConfig) {
    let bm = k.meta("BLOCK_M", cfg.block_m as i64);
    let bn = k.meta("BLOCK_N", cfg.block_n as i64);
    let bk = k.meta("BLOCK_K", cfg.block_k as i64);
    let x = k.ptr_arg("x", spec.dtype);
    let g = k.ptr_arg("g", spec.dtype);
    let w = k.ptr_arg("w", spec.dtype);
    let y = k.mut_ptr_arg("y", spec.out);
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let kk = k.scalar_arg("k", DType::I32);
    let eps = k.scalar_arg("eps", DType::F32);
    let stride_x = k.scalar_arg("stride_x", DType::I64);
    let stride_w = k.scalar_arg("stride_w", DType::I64);
    let stride_y = k.scalar_arg("stride_y", DType::I64);

    let pid = k.program_id(0);
    let tiles_n = (n + (bn - 1)) / bn;
    let (pid_m, pid_n) = (pid / tiles_n, pid % tiles_n);
    let rows = pid_m * bm + k.arange(0, bm);
    let cols = pid_n * bn + k.arange(0, bn);
    // W's rows are y's columns: a second arange, laid out along rows.
    let w_rows = pid_n * bn + k.arange(0, bn);
    let ks = k.arange(0, bk);
    let row_ok = rows.lt(m).expand_dims(1);
    let w_ok = w_rows.lt(n).expand_dims(1);
    let x_ptrs = x + (rows.cast(DType::I64) * stride_x).expand_dims(1) + ks.expand_dims(0);
    let w_ptrs = w + (w_rows.cast(DType::I64) * stride_w).expand_dims(1) + ks.expand_dims(0);
    let load = |k0: Value<'k>| {
        let k_ok = (ks + k0).lt(kk);
        let xt = k.load_masked(x_ptrs + k0, row_ok & k_ok.expand_dims(0), 0.0);
        let gt = k.load_masked(g + ks + k0, k_ok, 0.0);
        let wt = k.load_masked(w_ptrs + k0, w_ok & k_ok.expand_dims(0), 0.0);
        (xt, gt, wt)
    };
    let acc = k.zeros(&[cfg.block_m, cfg.block_n], DType::F32);
    let sumsq = k.zeros(&[cfg.block_m], DType::F32);
    let step = |acc: Value<'k>, sumsq: Value<'k>, (xt, gt, wt): (Value<'k>, Value<'k>, Value<'k>)| {
        let xf = xt.cast(DType::F32);
        let xg = (xf * gt.cast(DType::F32).expand_dims(0)).cast(spec.dtype);
        (k.dot(xg, wt.trans(), acc), sumsq + (xf * xf).sum(1))
    };
    let zero = k.constant(0, DType::I32);
    let (acc, sumsq) = if cfg.prefetch {
        let (x0, g0, w0) = load(zero);
        let out = k.for_range(0, kk, bk, &[acc, sumsq, x0, g0, w0], |k0, c| {
            let (xn, gn, wn) = load(k0 + bk);
            let (acc, sumsq) = step(c[0], c[1], (c[2], c[3], c[4]));
            vec![acc, sumsq, xn, gn, wn]
        });
        (out[0], out[1])
    } else {
        let out = k.for_range(0, kk, bk, &[acc, sumsq], |k0, c| {
            let (acc, sumsq) = step(c[0], c[1], load(k0));
            vec![acc, sumsq]
        });
        (out[0], out[1])
    };
    let rstd = (sumsq / kk.cast(DType::F32) + eps).rsqrt();
    let y_ptrs = y + (rows.cast(DType::I64) * stride_y).expand_dims(1) + cols.expand_dims(0);
    k.store_masked(y_ptrs, acc * rstd.expand_dims(1), row_ok & cols.lt(n).expand_dims(0));
}
