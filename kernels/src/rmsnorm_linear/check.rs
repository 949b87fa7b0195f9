//! Fused RMSNorm → Linear cases checked end to end against the fp64 reference on any [`Backend`]:
//! what the CPU property tests and the GPU suite run.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{rms_norm_linear, RmsNormLinearArgs};
use super::{reference, RmsNormLinearSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::matmul::check::{random_config, scaled_error, tolerance, SPLITS};
use crate::matmul::MatmulConfig;
use crate::reference::{random_values, random_weight};
pub use crate::rmsnorm::check::{CaseResult, Check};
use crate::rowwise::Draw;
use crate::tensor::Rows;

/// One fused problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows of `x`.
    pub m: usize,
    /// Outputs (rows of `w`).
    pub n: usize,
    /// Features.
    pub k: usize,
    /// Dtypes.
    pub spec: RmsNormLinearSpec,
    /// Tiling.
    pub config: MatmulConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

impl Case {
    /// `rmsnorm(x[m, k]) · w[n, k]ᵀ` with `config`.
    pub fn new(m: usize, n: usize, k: usize, spec: RmsNormLinearSpec, config: MatmulConfig) -> Case {
        Case { m, n, k, spec, config, seed: (m * 131 + n * 17 + k) as u64 }
    }

    /// A random case: ragged dimensions up to `max_mn`/`max_k`, both dtypes, a random tiling.
    pub fn random(seed: u64, max_mn: usize, max_k: usize) -> Case {
        let mut d = Draw::new(seed);
        let m = 1 + d.below(max_mn as u64) as usize;
        let n = 1 + d.below(max_mn as u64) as usize;
        let k = 1 + d.below(max_k as u64) as usize;
        let dtype = d.pick(&[DType::BF16, DType::F16]);
        let spec = RmsNormLinearSpec { dtype, out: d.pick(&[dtype, DType::F32]) };
        let config = random_config(&mut d, &[16, 32, 64], &[16, 32, 64], &[16, 32, 64, 128], &[1, 2, 4], &[1], &SPLITS);
        Case { m, n, k, spec, config, seed }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        write!(
            f,
            "rmsnorm·linear {}x{}x{} {}→{} [{}x{}x{} w{}{}{}]",
            self.m,
            self.n,
            self.k,
            self.spec.dtype.name(),
            self.spec.out.name(),
            c.block_m,
            c.block_n,
            c.block_k,
            c.num_warps,
            if c.prefetch { " prefetch" } else { "" },
            if c.split_k > 1 { format!(" split {}", c.split_k) } else { String::new() }
        )
    }
}

/// Runs `case` on `backend` and compares `y` with the fp64 reference of the stored inputs.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let (m, n, k, d) = (case.m, case.n, case.k, case.spec.dtype);
    let x_host = Buffer::from_f64(d, &random_values(m * k, case.seed ^ 1));
    let g_host = random_weight(d, k, case.seed ^ 2);
    let w_host = Buffer::from_f64(d, &random_values(n * k, case.seed ^ 3).iter().map(|v| v / 8.0).collect::<Vec<_>>());
    let (x, g, w) = (backend.upload(&x_host)?, backend.upload(&g_host)?, backend.upload(&w_host)?);
    let eps = 1e-6;
    let args = RmsNormLinearArgs {
        x: Rows::new(&x, &[m, k]),
        g: &g,
        w: Rows::new(&w, &[n, k]),
        eps,
        out_dtype: Some(case.spec.out),
        config: Some(case.config),
    };
    let (y, _) = rms_norm_linear(backend, &args)?;
    let y = backend.download(&y)?;
    let (x, g, w) = (x_host.to_f64(), g_host.to_f64(), w_host.to_f64());
    let expect = reference(&x, &g, &w, m, n, k, eps as f64, d);
    // Each element against the size of what it sums (as the matmul's check): the reference rounds
    // `x ⊙ g` as the kernel does, so what is left is f32 accumulation and the output's rounding.
    let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let magnitude = reference(&abs(&x), &abs(&g), &abs(&w), m, n, k, eps as f64, d);
    let error = scaled_error(&y.to_f64(), &expect, &magnitude, case.spec.out);
    Ok(CaseResult { checks: vec![Check { name: "y", error, tolerance: tolerance(case.spec.out) }], outputs: vec![y] })
}
