//! Softmax's autotuning: its config spaces ([`RowSpace`]s), heuristic defaults
//! ([`super::heuristic`], [`super::heuristic_backward`]) and cache keys; the selection and the
//! measurement of one config are [`crate::tuning`]'s.

use std::sync::OnceLock;

use tritonite_autotune::{fnv1a, DeviceId, Key};

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::{heuristic, heuristic_backward, SoftmaxConfig, SoftmaxSpec};
use crate::error::KernelError;
use crate::plan::Plan;
use crate::rowwise::{row_key, RowSpace};
use crate::tuning::Tunable;

/// Which kernel is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `softmax-fwd`.
    Forward,
    /// `softmax-bwd`.
    Backward,
}

impl Pass {
    /// The kernel's name in keys and on the command line.
    pub fn kernel(self) -> &'static str {
        match self {
            Pass::Forward => "softmax-fwd",
            Pass::Backward => "softmax-bwd",
        }
    }

    /// The bounds of the pass's config space.
    ///
    /// - Forward: rows of up to 32768 columns held (it keeps one value per element: 64 a thread
    ///   with 16 warps, 32 with 32 warps); chunks up to 8192 columns with at most 32 elements a
    ///   thread (the online max and sum are carried per element).
    /// - Backward: rows of up to 16384 columns held (it keeps `y` and `dy`: 32 elements a thread),
    ///   chunks up to 8192 columns.
    pub fn space(self) -> RowSpace {
        match self {
            Pass::Forward => RowSpace {
                max_held: 32768,
                max_chunk: 8192,
                held_per_thread: 64,
                chunk_per_thread: 32,
                max_warps: 32,
                programs_per_sm: &[],
            },
            Pass::Backward => RowSpace {
                max_held: 16384,
                max_chunk: 8192,
                held_per_thread: 32,
                chunk_per_thread: 32,
                max_warps: 16,
                programs_per_sm: &[],
            },
        }
    }
}

/// One softmax problem as the tuner sees it: what is computed and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Forward or backward.
    pub pass: Pass,
    /// Dtypes.
    pub spec: SoftmaxSpec,
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
    /// Bytes one call moves through memory at least: what GB/s figures divide by (forward `x`
    /// and `y`; backward `y`, `dy` and `dx`).
    pub fn bytes(&self) -> f64 {
        let elems = (self.m * self.n) as f64;
        let (x, out) = (self.spec.x.size_bytes() as f64, self.spec.out.size_bytes() as f64);
        match self.pass {
            Pass::Forward => elems * (x + out),
            Pass::Backward => elems * (2.0 * out + x),
        }
    }
}

impl Tunable for Problem {
    type Knobs = SoftmaxConfig;

    fn kernel(&self) -> &'static str {
        self.pass.kernel()
    }

    fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    fn heuristic(&self, sm_count: usize) -> SoftmaxConfig {
        match self.pass {
            Pass::Forward => heuristic(self.n, self.spec.x, sm_count),
            Pass::Backward => heuristic_backward(self.n, self.spec.x, sm_count),
        }
    }

    /// See [`Pass::space`] and [`RowSpace::candidates`].
    fn candidates(&self, sm_count: usize) -> Vec<SoftmaxConfig> {
        self.pass.space().candidates(self.m, self.n, self.heuristic(sm_count), sm_count)
    }

    /// Kernel, source hash, crate version, device, both dtypes, `N` exactly, `M` bucketed.
    fn key(&self, device: &DeviceId) -> Key {
        let features = [("x", self.spec.x.name()), ("out", self.spec.out.name())];
        row_key(self.pass.kernel(), kernel_hash(), device, &features, self.m, self.n)
    }

    fn plan(&self, cfg: &SoftmaxConfig) -> Result<Plan, KernelError> {
        match self.pass {
            Pass::Forward => forward_plan(&self.spec, &ForwardShape::contiguous(self.m, self.n), cfg),
            Pass::Backward => backward_plan(&self.spec, &BackwardShape::contiguous(self.m, self.n), cfg),
        }
    }

    /// `y` forward, `dx` backward.
    fn checked(&self) -> &'static [&'static str] {
        match self.pass {
            Pass::Forward => &["y"],
            Pass::Backward => &["dx"],
        }
    }
}
