//! The fp64 softmax reference.

/// Softmax of each row of the row-major `[m, n]` `x`, in f64 (a row of `-inf` gives NaN).
pub fn softmax(x: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; m * n];
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - mx).exp()).sum();
        for j in 0..n {
            y[r * n + j] = (row[j] - mx).exp() / sum;
        }
    }
    y
}

/// The softmax backward in f64: `dx = y · (dy − Σ y · dy)` per row, and `‖y · dy‖`, the scale
/// `dx`'s error is measured against where the difference cancels.
pub fn softmax_backward(y: &[f64], dy: &[f64], m: usize, n: usize) -> (Vec<f64>, f64) {
    let mut dx = vec![0.0; m * n];
    let mut scale = 0.0;
    for r in 0..m {
        let range = r * n..(r + 1) * n;
        let dot: f64 = y[range.clone()].iter().zip(&dy[range.clone()]).map(|(a, b)| a * b).sum();
        for j in range {
            dx[j] = y[j] * (dy[j] - dot);
            scale += (y[j] * dy[j]) * (y[j] * dy[j]);
        }
    }
    (dx, scale.sqrt())
}
