//! LayerNorm's autotuning: its config spaces ([`RowSpace`]s), heuristic defaults
//! ([`super::heuristic`], [`super::heuristic_backward`]) and cache keys; the selection and the
//! measurement of one config are [`crate::tuning`]'s.

use std::sync::OnceLock;

use tritonite_autotune::{fnv1a, DeviceId, Key};
use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::{heuristic, heuristic_backward, LayerNormConfig, LayerNormSpec};
use crate::error::KernelError;
use crate::plan::Plan;
use crate::rowwise::{dtype_name, row_key, RowSpace};
use crate::tuning::Tunable;

/// Which kernel is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `layernorm-fwd`.
    Forward,
    /// `layernorm-bwd` (with its partials reduction).
    Backward,
}

impl Pass {
    /// The kernel's name in keys and on the command line.
    pub fn kernel(self) -> &'static str {
        match self {
            Pass::Forward => "layernorm-fwd",
            Pass::Backward => "layernorm-bwd",
        }
    }

    /// The bounds of the pass's config space.
    ///
    /// - Forward: rows of up to 16384 columns held (it keeps `x` and `x − mean` per element, as
    ///   RMSNorm's forward keeps `x`), 32 elements a thread, chunks up to 16384 columns.
    /// - Backward: up to 8192 columns held or per chunk (it keeps `x`, `dy` and the `dw`, `dbias`
    ///   sums per element, as RMSNorm's backward), 32 elements a thread, 1, 2 or 4 persistent
    ///   programs per SM.
    pub fn space(self) -> RowSpace {
        match self {
            Pass::Forward => RowSpace {
                max_held: 16384,
                max_chunk: 16384,
                held_per_thread: 32,
                chunk_per_thread: 32,
                max_warps: 16,
                programs_per_sm: &[],
            },
            Pass::Backward => RowSpace {
                max_held: 8192,
                max_chunk: 8192,
                held_per_thread: 32,
                chunk_per_thread: 32,
                max_warps: 16,
                programs_per_sm: &[1, 2, 4],
            },
        }
    }
}

/// One LayerNorm problem as the tuner sees it: what is computed and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Forward or backward.
    pub pass: Pass,
    /// Dtypes and options.
    pub spec: LayerNormSpec,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
}

/// A hash of the kernels' source: a tuned result never outlives a change to the kernels.
fn kernel_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| fnv1a(include_str!("kernels.rs").as_bytes()))
}

impl Problem {
    /// Bytes one call moves through memory at least: what GB/s figures divide by.
    pub fn bytes(&self) -> f64 {
        let s = &self.spec;
        let (m, n) = (self.m as f64, self.n as f64);
        let size = |d: DType| d.size_bytes() as f64;
        let vec = |d: Option<DType>| d.map_or(0.0, |d| n * size(d));
        match self.pass {
            Pass::Forward => m * n * (size(s.x) + size(s.out)) + vec(s.weight) + vec(s.bias) + 8.0 * m,
            Pass::Backward => m * n * (2.0 * size(s.x) + size(s.out)) + 2.0 * vec(s.weight) + vec(s.bias) + 8.0 * m,
        }
    }
}

impl Tunable for Problem {
    type Knobs = LayerNormConfig;

    fn kernel(&self) -> &'static str {
        self.pass.kernel()
    }

    fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    fn heuristic(&self, sm_count: usize) -> LayerNormConfig {
        match self.pass {
            Pass::Forward => heuristic(self.n, self.spec.x, sm_count),
            Pass::Backward => heuristic_backward(self.n, self.spec.x, sm_count),
        }
    }

    /// See [`Pass::space`] and [`RowSpace::candidates`].
    fn candidates(&self, sm_count: usize) -> Vec<LayerNormConfig> {
        self.pass.space().candidates(self.m, self.n, self.heuristic(sm_count), sm_count)
    }

    /// Kernel, source hash, crate version, device, every dtype, `N` exactly, `M` bucketed.
    fn key(&self, device: &DeviceId) -> Key {
        let s = &self.spec;
        let features =
            [("x", s.x.name()), ("weight", dtype_name(s.weight)), ("bias", dtype_name(s.bias)), ("out", s.out.name())];
        row_key(self.pass.kernel(), kernel_hash(), device, &features, self.m, self.n)
    }

    fn plan(&self, cfg: &LayerNormConfig) -> Result<Plan, KernelError> {
        match self.pass {
            Pass::Forward => forward_plan(&self.spec, &ForwardShape::contiguous(self.m, self.n), 1e-5, cfg),
            Pass::Backward => backward_plan(&self.spec, &BackwardShape::contiguous(self.m, self.n), cfg),
        }
    }

    /// `y`, `mean` and `rstd` forward; `dx`, `dw` and `dbias` backward.
    fn checked(&self) -> &'static [&'static str] {
        match self.pass {
            Pass::Forward => &["y", "mean", "rstd"],
            Pass::Backward => &["dx", "dw", "dbias"],
        }
    }
}
