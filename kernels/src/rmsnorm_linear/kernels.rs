//! The fused RMSNorm → Linear kernel in the block language: the matmul kernel's `a · Wᵀ` loop with
//! `a = x ⊙ g` and `Σ x²` accumulated beside it, then each row scaled by its `rstd`.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::RmsNormLinearSpec;
use crate::matmul::MatmulConfig;
use crate::split_k;

/// Builds the kernel.
///
/// Arguments, in order: `x, g, w, y, m: i32, n: i32, k: i32, eps: f32, stride_x: i64,
/// stride_w: i64, stride_y: i64` (`x: [m, k]`, `g: [k]`, `w: [n, k]`, `y: [m, n]`, rows
/// contiguous); grid `[ceil(m / BLOCK_M) · ceil(n / BLOCK_N), 1, 1]` (column tiles fastest: the
/// config's `group_m` is not used).
///
/// With `cfg.split_k > 1`: `y` is the f32 partials `[split_k, m, n]` (`stride_y = n`), an f32
/// `sumsq: [split_k, m]` follows it, a last argument `k_per_split: i32` follows `stride_y`, the grid
/// is `[tiles, split_k, 1]`, and [`crate::split_k::sum_splits`] finishes the rows.
pub fn rms_norm_linear(spec: &RmsNormLinearSpec, cfg: &MatmulConfig) -> Result<Kernel, LangError> {
    build_kernel(&format!("rmsnorm_linear_{}_{}", spec.dtype.name(), spec.out.name()), |k| trace(k, spec, cfg))
}

fn trace<'k>(k: &'k KernelBuilder, spec: &RmsNormLinearSpec, cfg: &MatmulConfig) {
    let bm = k.meta("BLOCK_M", cfg.block_m as i64);
    let bn = k.meta("BLOCK_N", cfg.block_n as i64);
    let bk = k.meta("BLOCK_K", cfg.block_k as i64);
    k.meta("SPLIT_K", cfg.split_k as i64);
    let x = k.ptr_arg("x", spec.dtype);
    let g = k.ptr_arg("g", spec.dtype);
    let w = k.ptr_arg("w", spec.dtype);
    // Split along k, each program writes its slice's f32 partial sums, and its slice's Σx².
    let split = cfg.split_k > 1;
    let y = k.mut_ptr_arg("y", if split { DType::F32 } else { spec.out });
    let sumsq_out = split.then(|| k.mut_ptr_arg("sumsq", DType::F32));
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let kk = k.scalar_arg("k", DType::I32);
    let eps = k.scalar_arg("eps", DType::F32);
    let stride_x = k.scalar_arg("stride_x", DType::I64);
    let stride_w = k.scalar_arg("stride_w", DType::I64);
    let stride_y = k.scalar_arg("stride_y", DType::I64);
    let slice = split_k::slice(k, cfg.split_k, kk);

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
    let (acc, sumsq) = if cfg.prefetch {
        let (x0, g0, w0) = load(slice.lo);
        let out = k.for_range(slice.lo, slice.hi, bk, &[acc, sumsq, x0, g0, w0], |k0, c| {
            let (xn, gn, wn) = load(k0 + bk);
            let (acc, sumsq) = step(c[0], c[1], (c[2], c[3], c[4]));
            vec![acc, sumsq, xn, gn, wn]
        });
        (out[0], out[1])
    } else {
        let out = k.for_range(slice.lo, slice.hi, bk, &[acc, sumsq], |k0, c| {
            let (acc, sumsq) = step(c[0], c[1], load(k0));
            vec![acc, sumsq]
        });
        (out[0], out[1])
    };
    let tile_ok = row_ok & cols.lt(n).expand_dims(0);
    match (slice.index, sumsq_out) {
        (Some(s), Some(sumsq_out)) => {
            // Slice s of the partials [S, M, N] and of Σx² [S, M] (the first column tile writes it).
            let (m64, s64) = (m.cast(DType::I64), s.cast(DType::I64));
            let y_ptrs = y
                + s64 * (m64 * n.cast(DType::I64))
                + (rows.cast(DType::I64) * stride_y).expand_dims(1)
                + cols.expand_dims(0);
            k.store_masked(y_ptrs, acc, tile_ok);
            k.store_masked(sumsq_out + s64 * m64 + rows, sumsq, rows.lt(m) & pid_n.equal(0));
        }
        _ => {
            let rstd = (sumsq / kk.cast(DType::F32) + eps).rsqrt();
            let y_ptrs = y + (rows.cast(DType::I64) * stride_y).expand_dims(1) + cols.expand_dims(0);
            k.store_masked(y_ptrs, acc * rstd.expand_dims(1), tile_ok);
        }
    }
}
