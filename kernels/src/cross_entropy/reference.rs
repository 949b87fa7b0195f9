//! The fp64 cross-entropy reference.

/// The fp64 forward: per-row `loss` and `lse`, and the mean over rows not ignored, the sum, and
/// the count of rows not ignored.
#[derive(Clone, Debug)]
pub struct CrossEntropyRef {
    /// `lse − logits[target]` per row; 0 for ignored rows, NaN for a target out of range.
    pub loss: Vec<f64>,
    /// `log Σ exp(logits)` per row.
    pub lse: Vec<f64>,
    /// Σ loss / count (NaN when every row is ignored).
    pub mean: f64,
    /// Σ loss.
    pub sum: f64,
    /// Rows whose target is not `ignore_index`.
    pub count: usize,
}

/// Cross-entropy of the row-major `[m, v]` `logits` against `target` in f64.
pub fn cross_entropy(logits: &[f64], target: &[i64], m: usize, v: usize, ignore_index: i64) -> CrossEntropyRef {
    let mut loss = vec![0.0; m];
    let mut lse = vec![0.0; m];
    let mut count = 0;
    for r in 0..m {
        let row = &logits[r * v..(r + 1) * v];
        let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lse[r] = mx + row.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
        let t = target[r];
        loss[r] = if t == ignore_index {
            0.0
        } else if t < 0 || t >= v as i64 {
            f64::NAN
        } else {
            lse[r] - row[t as usize]
        };
        count += (t != ignore_index) as usize;
    }
    let sum: f64 = loss.iter().sum();
    CrossEntropyRef { loss, lse, mean: sum / count as f64, sum, count }
}

/// The backward in f64: `dlogits = (softmax − onehot(target)) · scale[row]`, 0 for ignored rows.
pub fn cross_entropy_backward(
    logits: &[f64],
    target: &[i64],
    m: usize,
    v: usize,
    ignore_index: i64,
    scale: &[f64],
) -> Vec<f64> {
    let reference = cross_entropy(logits, target, m, v, ignore_index);
    let mut d = vec![0.0; m * v];
    for r in 0..m {
        if target[r] == ignore_index {
            continue;
        }
        for j in 0..v {
            let p = (logits[r * v + j] - reference.lse[r]).exp();
            let hot = if target[r] == j as i64 { 1.0 } else { 0.0 };
            d[r * v + j] = (p - hot) * scale[r];
        }
    }
    d
}
