//! The fp64 LayerNorm reference.

/// The inputs of a LayerNorm, as f64 row-major `[m, n]` data.
#[derive(Clone, Copy, Debug)]
pub struct LayerNormRef<'a> {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// The rows.
    pub x: &'a [f64],
    /// The weight.
    pub w: Option<&'a [f64]>,
    /// The bias (forward: added; backward: only whether `dbias` is wanted).
    pub bias: Option<&'a [f64]>,
    /// Epsilon.
    pub eps: f64,
}

/// The fp64 forward.
#[derive(Clone, Debug)]
pub struct LayerNormForwardRef {
    /// The normalized rows `[m·n]`.
    pub y: Vec<f64>,
    /// The mean of each row.
    pub mean: Vec<f64>,
    /// `1 / sqrt(var + eps)` per row (biased variance).
    pub rstd: Vec<f64>,
}

/// The fp64 backward.
#[derive(Clone, Debug)]
pub struct LayerNormBackwardRef {
    /// Gradient of `x`.
    pub dx: Vec<f64>,
    /// Gradient of the weight (empty without one).
    pub dw: Vec<f64>,
    /// Gradient of the bias (empty without one).
    pub db: Vec<f64>,
    /// `‖rstd · w · dy‖`: the scale `dx` is a difference at (its error is measured against it where
    /// the difference cancels, e.g. N = 1, where `dx` is exactly zero).
    pub dx_scale: f64,
    /// `√(Σ (dy · x̂)²)` over every term `dw` sums: its error is measured against this where the
    /// sum over rows cancels (f32 rounds each term, not the sum).
    pub dw_scale: f64,
    /// `√(Σ dy²)` over every term `db` sums, likewise.
    pub db_scale: f64,
}

impl LayerNormRef<'_> {
    fn scale(&self, j: usize) -> f64 {
        self.w.map_or(1.0, |w| w[j])
    }

    /// LayerNorm forward in f64.
    pub fn forward(&self) -> LayerNormForwardRef {
        let (m, n) = (self.m, self.n);
        let mut y = vec![0.0; m * n];
        let mut mean = vec![0.0; m];
        let mut rstd = vec![0.0; m];
        for r in 0..m {
            let row = &self.x[r * n..(r + 1) * n];
            mean[r] = row.iter().sum::<f64>() / n as f64;
            let var = row.iter().map(|v| (v - mean[r]) * (v - mean[r])).sum::<f64>() / n as f64;
            rstd[r] = 1.0 / (var + self.eps).sqrt();
            for j in 0..n {
                y[r * n + j] = (row[j] - mean[r]) * rstd[r] * self.scale(j) + self.bias.map_or(0.0, |b| b[j]);
            }
        }
        LayerNormForwardRef { y, mean, rstd }
    }

    /// LayerNorm backward in f64 from the forward's `mean` and `rstd` and the gradient `dy` of `y`.
    pub fn backward(&self, mean: &[f64], rstd: &[f64], dy: &[f64]) -> LayerNormBackwardRef {
        let (m, n) = (self.m, self.n);
        let mut dx = vec![0.0; m * n];
        let mut dw = vec![0.0; if self.w.is_some() { n } else { 0 }];
        let mut db = vec![0.0; if self.bias.is_some() { n } else { 0 }];
        let (mut scale_sq, mut dw_sq, mut db_sq) = (0.0, 0.0, 0.0);
        for r in 0..m {
            let xhat: Vec<f64> = (0..n).map(|j| (self.x[r * n + j] - mean[r]) * rstd[r]).collect();
            let g: Vec<f64> = (0..n).map(|j| dy[r * n + j] * self.scale(j)).collect();
            let mean_g = g.iter().sum::<f64>() / n as f64;
            let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n as f64;
            for j in 0..n {
                dx[r * n + j] = rstd[r] * (g[j] - mean_g - xhat[j] * mean_gx);
                scale_sq += (rstd[r] * g[j]) * (rstd[r] * g[j]);
                if self.w.is_some() {
                    dw[j] += dy[r * n + j] * xhat[j];
                    dw_sq += (dy[r * n + j] * xhat[j]).powi(2);
                }
                if self.bias.is_some() {
                    db[j] += dy[r * n + j];
                    db_sq += dy[r * n + j] * dy[r * n + j];
                }
            }
        }
        LayerNormBackwardRef { dx, dw, db, dx_scale: scale_sq.sqrt(), dw_scale: dw_sq.sqrt(), db_scale: db_sq.sqrt() }
    }
}
