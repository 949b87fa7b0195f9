//! The fp64 reference of matmul.

/// `a · b` (or `a · bᵀ` when `b_transposed`, `b` then `[n, k]`) in fp64, row-major `[m, n]`.
pub fn matmul(a: &[f64], b: &[f64], m: usize, n: usize, k: usize, b_transposed: bool) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * if b_transposed { b[j * k + p] } else { b[p * n + j] }).sum();
        }
    }
    c
}
