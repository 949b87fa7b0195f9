//! Matmul cases checked end to end against the fp64 reference on any [`Backend`]: what the CPU
//! property tests and the GPU suite run. A case draws the shape (ragged: no dimension need be a
//! multiple of a block), the dtypes, `b`'s storage, padded rows and the tiling.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{matmul, MatmulArgs};
use super::reference;
use super::{MatmulConfig, MatmulSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::reference::random_values;
pub use crate::rmsnorm::check::{CaseResult, Check};
use crate::rowwise::Draw;
use crate::tensor::{Rows, Storage};

/// One matmul problem with all its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows of `a` and `c`.
    pub m: usize,
    /// Columns of `c`.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Dtypes and `b`'s storage.
    pub spec: MatmulSpec,
    /// Extra elements after each row of `a` and `b`.
    pub pad: usize,
    /// Tiling.
    pub config: MatmulConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

impl Case {
    /// `[m, k] · [k, n]` of `spec` with `config`, contiguous.
    pub fn new(m: usize, n: usize, k: usize, spec: MatmulSpec, config: MatmulConfig) -> Case {
        Case { m, n, k, spec, pad: 0, config, seed: (m * 31 + n * 7 + k) as u64 }
    }

    /// A random case: dimensions up to `max_mn`/`max_k` (often ragged), every dtype pair, both
    /// storages of `b`, padded rows, and a random valid tiling.
    pub fn random(seed: u64, max_mn: usize, max_k: usize) -> Case {
        let mut d = Draw::new(seed);
        let dim = |d: &mut Draw, max: usize| match d.below(6) {
            0 => 1 + d.below(16) as usize,
            1 => 16 * (1 + d.below((max / 16).max(1) as u64) as usize),
            _ => 1 + d.below(max as u64) as usize,
        };
        let (m, n, k) = (dim(&mut d, max_mn), dim(&mut d, max_mn), dim(&mut d, max_k));
        let dtype = d.pick(&[DType::BF16, DType::F16]);
        let out = d.pick(&[DType::F32, dtype, DType::BF16]);
        let spec = MatmulSpec { dtype, out, b_transposed: d.chance(50) };
        let config = random_config(
            &mut d,
            &[16, 32, 64, 128],
            &[16, 32, 64, 128],
            &[16, 32, 64],
            &[1, 2, 4, 8],
            &[1, 4, 8],
            &SPLITS,
        );
        let pad = if d.chance(30) { d.below(9) as usize } else { 0 };
        Case { m, n, k, spec, pad, config, seed }
    }

    fn a_dims(&self) -> (usize, usize) {
        (self.m, self.k)
    }

    fn b_dims(&self) -> (usize, usize) {
        if self.spec.b_transposed {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        }
    }

    /// A padded `[rows, cols]` input of random values, and its unpadded values.
    fn input(&self, (rows, cols): (usize, usize), seed: u64) -> (Buffer, Vec<f64>) {
        let stride = cols + self.pad;
        let v = random_values(rows * stride, seed);
        let buf = Buffer::from_f64(self.spec.dtype, &v);
        let stored = buf.to_f64();
        let dense = (0..rows * cols).map(|i| stored[(i / cols) * stride + i % cols]).collect();
        (buf, dense)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        write!(
            f,
            "{}x{}x{} {}→{} {} pad {} [{}x{}x{} g{} w{}{}{}]",
            self.m,
            self.n,
            self.k,
            self.spec.dtype.name(),
            self.spec.out.name(),
            if self.spec.b_transposed { "a·bᵀ" } else { "a·b" },
            self.pad,
            c.block_m,
            c.block_n,
            c.block_k,
            c.group_m,
            c.num_warps,
            if c.prefetch { " prefetch" } else { "" },
            if c.split_k > 1 { format!(" split {}", c.split_k) } else { String::new() }
        )
    }
}

/// The `split_k` random cases draw from: mostly whole `k`, and ragged slice counts.
pub(crate) const SPLITS: [usize; 6] = [1, 1, 1, 2, 3, 8];

/// A random valid tiling drawn from the given choices (`group_ms` with one choice draws nothing).
pub(crate) fn random_config(
    d: &mut Draw,
    blocks_m: &[usize],
    blocks_n: &[usize],
    blocks_k: &[usize],
    warps: &[u32],
    group_ms: &[usize],
    splits: &[usize],
) -> MatmulConfig {
    loop {
        let c = MatmulConfig {
            block_m: d.pick(blocks_m),
            block_n: d.pick(blocks_n),
            block_k: d.pick(blocks_k),
            group_m: if group_ms.len() == 1 { group_ms[0] } else { d.pick(group_ms) },
            num_warps: d.pick(warps),
            prefetch: d.chance(50),
            split_k: d.pick(splits),
        };
        if c.check().is_ok() {
            return c;
        }
    }
}

/// The largest error of `c` against the fp64 product, each element's relative to its `magnitude`
/// (for a matmul `Σ_k |a·b|`, the size of what was summed: f32 accumulation stays near `k · 2⁻²⁴`
/// of it, and the output's rounding adds at most its own epsilon). Below the smallest normal of
/// `out` the rounding is absolute, so magnitudes are floored there. NaN if any element is NaN.
pub fn scaled_error(c: &[f64], expect: &[f64], magnitude: &[f64], out: DType) -> f64 {
    let floor = smallest_normal(out);
    c.iter().zip(expect).zip(magnitude).fold(0.0, |worst: f64, ((c, e), s)| {
        let err = (c - e).abs() / s.max(floor);
        // `f64::max` drops NaN: keep it once seen (an unwritten, NaN-poisoned element).
        if worst.is_nan() || err.is_nan() {
            f64::NAN
        } else {
            worst.max(err)
        }
    })
}

/// The smallest normal number of a floating-point `dtype`.
fn smallest_normal(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-14),
        _ => f32::MIN_POSITIVE as f64,
    }
}

/// The tolerance of [`scaled_error`] for an output of `dtype`.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 => 1e-3,
        _ => 8e-3,
    }
}

/// Runs `case` on `backend` and compares `c` with the fp64 product of the stored inputs.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let (m, n, k) = (case.m, case.n, case.k);
    let (a_host, a) = case.input(case.a_dims(), case.seed ^ 1);
    let (b_host, b) = case.input(case.b_dims(), case.seed ^ 2);
    let (a_buf, b_buf) = (backend.upload(&a_host)?, backend.upload(&b_host)?);
    let rows = |buf, (r, c): (usize, usize)| Rows::strided(buf, 0, r, c, c + case.pad);
    let args = MatmulArgs {
        a: rows(&a_buf, case.a_dims()),
        b: rows(&b_buf, case.b_dims()),
        b_transposed: case.spec.b_transposed,
        out_dtype: Some(case.spec.out),
        config: Some(case.config),
    };
    let out = matmul(backend, &args)?;
    debug_assert_eq!(out.c.dtype(), case.spec.out);
    let c = backend.download(&out.c)?;
    let expect = reference::matmul(&a, &b, m, n, k, case.spec.b_transposed);
    let abs_a: Vec<f64> = a.iter().map(|x| x.abs()).collect();
    let abs_b: Vec<f64> = b.iter().map(|x| x.abs()).collect();
    let magnitude = reference::matmul(&abs_a, &abs_b, m, n, k, case.spec.b_transposed);
    let error = scaled_error(&c.to_f64(), &expect, &magnitude, case.spec.out);
    Ok(CaseResult { checks: vec![Check { name: "c", error, tolerance: tolerance(case.spec.out) }], outputs: vec![c] })
}
