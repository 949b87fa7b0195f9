//! fp64 references the kernels are checked against.

/// The inputs of an RMSNorm, as f64 row-major `[m, n]` data.
#[derive(Clone, Copy, Debug)]
pub struct RmsNormRef<'a> {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// `x`, or for the backward the saved `h`.
    pub x: &'a [f64],
    /// The residual added to `x` (forward only).
    pub residual: Option<&'a [f64]>,
    /// The weight.
    pub w: Option<&'a [f64]>,
    /// The bias (forward: added; backward: only whether `dbias` is wanted).
    pub bias: Option<&'a [f64]>,
    /// Gemma offset added to the weight.
    pub offset: f64,
    /// Epsilon.
    pub eps: f64,
}

/// The fp64 forward: `y [m·n]`, `rstd [m]`, and `h = x + residual [m·n]`.
#[derive(Clone, Debug)]
pub struct ForwardRef {
    /// The normalized rows.
    pub y: Vec<f64>,
    /// `1 / sqrt(mean(h²) + eps)` per row.
    pub rstd: Vec<f64>,
    /// The rows that were normalized.
    pub h: Vec<f64>,
}

/// The fp64 backward.
#[derive(Clone, Debug)]
pub struct BackwardRef {
    /// Gradient of `h` (`x` and, with a residual, the residual), including `dresidual_out`.
    pub dx: Vec<f64>,
    /// Gradient of the weight (empty without one).
    pub dw: Vec<f64>,
    /// Gradient of the bias (empty without one).
    pub db: Vec<f64>,
    /// `‖rstd · (w + offset) · dy‖`: the scale `dx` is a difference at, against which its error is
    /// measured where the difference cancels (e.g. N = 1, where `dx` is nearly zero).
    pub dx_scale: f64,
    /// `√(Σ (dy · x · rstd)²)` over every term `dw` sums: its error is measured against this where
    /// the sum over rows cancels (f32 rounds each term, not the sum).
    pub dw_scale: f64,
    /// `√(Σ dy²)` over every term `db` sums, likewise.
    pub db_scale: f64,
}

impl RmsNormRef<'_> {
    fn scale(&self, j: usize) -> f64 {
        self.w.map_or(1.0, |w| w[j] + self.offset)
    }

    /// RMSNorm forward in f64.
    pub fn forward(&self) -> ForwardRef {
        let (m, n) = (self.m, self.n);
        let h: Vec<f64> = match self.residual {
            Some(r) => self.x.iter().zip(r).map(|(a, b)| a + b).collect(),
            None => self.x[..m * n].to_vec(),
        };
        let mut y = vec![0.0; m * n];
        let mut rstd = vec![0.0; m];
        for r in 0..m {
            let row = &h[r * n..(r + 1) * n];
            let ms = row.iter().map(|v| v * v).sum::<f64>() / n as f64;
            rstd[r] = 1.0 / (ms + self.eps).sqrt();
            for j in 0..n {
                y[r * n + j] = row[j] * rstd[r] * self.scale(j) + self.bias.map_or(0.0, |b| b[j]);
            }
        }
        ForwardRef { y, rstd, h }
    }

    /// RMSNorm backward in f64 with `self.x` the saved `h` (the residual is ignored), `rstd` the
    /// forward's and `dy` the gradient of `y`; `dresidual_out` is added to `dx`.
    pub fn backward(&self, rstd: &[f64], dy: &[f64], dresidual_out: Option<&[f64]>) -> BackwardRef {
        let (m, n) = (self.m, self.n);
        let mut dx = vec![0.0; m * n];
        let mut dw = vec![0.0; if self.w.is_some() { n } else { 0 }];
        let mut db = vec![0.0; if self.bias.is_some() { n } else { 0 }];
        let (mut scale_sq, mut dw_sq, mut db_sq) = (0.0, 0.0, 0.0);
        for r in 0..m {
            let rs = rstd[r];
            let xr = &self.x[r * n..(r + 1) * n];
            let dyr = &dy[r * n..(r + 1) * n];
            let dot: f64 = (0..n).map(|j| dyr[j] * self.scale(j) * xr[j]).sum();
            let c = dot * rs * rs / n as f64;
            for j in 0..n {
                let g = dyr[j] * self.scale(j);
                scale_sq += (rs * g) * (rs * g);
                dx[r * n + j] = rs * (g - xr[j] * c) + dresidual_out.map_or(0.0, |d| d[r * n + j]);
                if self.w.is_some() {
                    dw[j] += dyr[j] * xr[j] * rs;
                    dw_sq += (dyr[j] * xr[j] * rs).powi(2);
                }
                if self.bias.is_some() {
                    db[j] += dyr[j];
                    db_sq += dyr[j] * dyr[j];
                }
            }
        }
        BackwardRef { dx, dw, db, dx_scale: scale_sq.sqrt(), dw_scale: dw_sq.sqrt(), db_scale: db_sq.sqrt() }
    }
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
