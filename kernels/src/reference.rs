//! fp64 references the kernels are checked against.

/// RMSNorm forward in f64: returns `(y [m·n], rstd [m])`. `x` is row-major `[m, n]`.
pub fn rms_norm_forward(x: &[f64], w: Option<&[f64]>, m: usize, n: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; m * n];
    let mut rstd = vec![0.0; m];
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let ms = row.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let rs = 1.0 / (ms + eps).sqrt();
        rstd[r] = rs;
        for j in 0..n {
            y[r * n + j] = row[j] * rs * w.map_or(1.0, |w| w[j]);
        }
    }
    (y, rstd)
}

/// RMSNorm backward in f64: returns `(dx [m·n], dw [n])` (`dw` is empty without a weight).
pub fn rms_norm_backward(
    x: &[f64],
    w: Option<&[f64]>,
    dy: &[f64],
    m: usize,
    n: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (_, rstd) = rms_norm_forward(x, w, m, n, eps);
    let mut dx = vec![0.0; m * n];
    let mut dw = vec![0.0; if w.is_some() { n } else { 0 }];
    for r in 0..m {
        let rs = rstd[r];
        let xr = &x[r * n..(r + 1) * n];
        let dyr = &dy[r * n..(r + 1) * n];
        let wv = |j: usize| w.map_or(1.0, |w| w[j]);
        let dot: f64 = (0..n).map(|j| dyr[j] * wv(j) * xr[j]).sum();
        let c = dot * rs * rs / n as f64;
        for j in 0..n {
            dx[r * n + j] = rs * (dyr[j] * wv(j) - xr[j] * c);
            if w.is_some() {
                dw[j] += dyr[j] * xr[j] * rs;
            }
        }
    }
    (dx, dw)
}

/// `‖a − b‖ / ‖b‖` (or `‖a‖` when `b` is all zeros); NaN anywhere gives NaN.
pub fn rel_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_error compares equal lengths");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if a.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// The norm of `rstd · w · dy`, the term `dx` is a difference of: the scale against which `dx`'s
/// error is measured where the difference cancels (e.g. N = 1, where `dx` is nearly zero).
pub fn rms_norm_backward_scale(x: &[f64], w: Option<&[f64]>, dy: &[f64], m: usize, n: usize, eps: f64) -> f64 {
    let (_, rstd) = rms_norm_forward(x, w, m, n, eps);
    let mut sum = 0.0;
    for r in 0..m {
        for j in 0..n {
            let t = rstd[r] * w.map_or(1.0, |w| w[j]) * dy[r * n + j];
            sum += t * t;
        }
    }
    sum.sqrt()
}

/// `‖a − b‖ / max(‖b‖, scale)`: a relative error that stays meaningful when `b` cancels to ~0.
pub fn rel_error_scaled(a: &[f64], b: &[f64], scale: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_error_scaled compares equal lengths");
    if a.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let num = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den = b.iter().map(|y| y * y).sum::<f64>().sqrt().max(scale);
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Reproducible pseudo-random values in [-2, 2) (xorshift64 from `seed`): inputs for tests,
/// examples and benchmarks. Never all zero.
pub fn random_values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
        })
        .collect()
}

/// [`random_values`] rounded to `dtype`.
pub fn random_buffer(dtype: tritonite_lang::DType, len: usize, seed: u64) -> tritonite_lang::Buffer {
    tritonite_lang::Buffer::from_f64(dtype, &random_values(len, seed))
}

/// A weight-like vector: `1 + 0.25 · u` with `u` from [`random_values`], rounded to `dtype`.
pub fn random_weight(dtype: tritonite_lang::DType, len: usize, seed: u64) -> tritonite_lang::Buffer {
    let w: Vec<f64> = random_values(len, seed).iter().map(|v| 1.0 + 0.25 * v).collect();
    tritonite_lang::Buffer::from_f64(dtype, &w)
}

/// The relative error a kernel output of `dtype` may have against the fp64 reference: 1e-5 for
/// f32, 1e-2 for the 16-bit floats (rounding the output alone costs ~2e-3 in bf16).
pub fn tolerance(dtype: tritonite_lang::DType) -> f64 {
    if dtype == tritonite_lang::DType::F32 {
        1e-5
    } else {
        1e-2
    }
}
