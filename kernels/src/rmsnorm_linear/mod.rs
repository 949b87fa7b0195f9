//! RMSNorm fused into the Linear layer after it: `y = rmsnorm(x; g) · Wᵀ` in one kernel.
//!
//! Because `rmsnorm(x)·Wᵀ = diag(rstd) · ((x ⊙ g) · Wᵀ)`, each program loads its rows of `x` once
//! per step of `k`, accumulates `Σ x²` on the side while the tensor cores compute
//! `(x ⊙ g) · Wᵀ`, and scales each output row by `rstd = 1/√(Σx²/K + ε)` at the end (after
//! Mirage's RMSNorm + Linear fusion). `x ⊙ g` is rounded to the input dtype before the `dot`, as
//! the unfused path rounds RMSNorm's output.
//!
//! - [`kernels`]: the kernel in the block language;
//! - [`api`]: its plan and the typed entry point [`rms_norm_linear`];
//! - [`check`]: cases checked against the fp64 reference on any backend.

pub mod api;
pub mod check;
pub mod kernels;

pub use api::{rms_norm_linear, RmsNormLinearArgs};

use tritonite_lang::DType;

use crate::error::KernelError;
use crate::matmul::MatmulConfig;

/// What is computed: the dtype of `x`, `g` and `W`, and of `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RmsNormLinearSpec {
    /// Dtype of `x`, `g` and `W` (f16 or bf16).
    pub dtype: DType,
    /// Dtype of `y`.
    pub out: DType,
}

impl RmsNormLinearSpec {
    /// Checks the dtypes.
    pub fn check(&self) -> Result<(), KernelError> {
        crate::matmul::MatmulSpec { dtype: self.dtype, out: self.out, b_transposed: true }.check()
    }
}

/// A default tiling for `m` rows of `k` features into `n` outputs on `sm_count` SMs (the H100
/// sweeps' winners): for a decode step (`m ≤ 64`) [`MatmulConfig::decode`] with `k` split so that
/// enough programs stream `W`; up to 512 rows 64 × 64 × 64 tiles; otherwise 128 × 64 × 64 (the
/// matmul's 128 × 128 tiles spill here: `x` is also held in f32 for Σx²).
pub fn heuristic(m: usize, n: usize, k: usize, sm_count: usize) -> MatmulConfig {
    if m <= 64 {
        return MatmulConfig::decode(m, n, k, sm_count, true);
    }
    let block_m = if m <= 512 { 64 } else { 128 };
    MatmulConfig { block_m, block_n: 64, block_k: 64, group_m: 8, num_warps: 4, prefetch: true, split_k: 1 }
}

/// The fp64 reference: `rmsnorm(x; g) · Wᵀ`, with `x ⊙ g` rounded to the input dtype `input` as
/// the kernel (and the unfused path) rounds it, everything else exact.
#[allow(clippy::too_many_arguments)]
pub fn reference(x: &[f64], g: &[f64], w: &[f64], m: usize, n: usize, k: usize, eps: f64, input: DType) -> Vec<f64> {
    let xg: Vec<f64> = x.iter().enumerate().map(|(i, v)| v * g[i % k.max(1)]).collect();
    let xg = tritonite_lang::Buffer::from_f64(input, &xg).to_f64();
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        let row = &x[i * k..(i + 1) * k];
        let rstd = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / k as f64 + eps).sqrt();
        for j in 0..n {
            y[i * n + j] = rstd * (0..k).map(|p| xg[i * k + p] * w[j * k + p]).sum::<f64>();
        }
    }
    y
}
