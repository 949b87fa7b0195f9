//! Cross-entropy's autotuning: its config spaces ([`RowSpace`]s), heuristic defaults
//! ([`super::heuristic`], [`super::heuristic_backward`]) and cache keys; the selection and the
//! measurement of one config are [`crate::tuning`]'s.
//!
//! The forward is tuned without its reduction (a one-program launch of fixed config that every
//! candidate would pay alike), so one tuned entry serves every [`super::Reduction`].

use std::sync::OnceLock;

use tritonite_autotune::{fnv1a, DeviceId, Key};

use super::api::DEFAULT_IGNORE_INDEX;
use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::{heuristic, heuristic_backward, CrossEntropyConfig, CrossEntropySpec, GradMode, Reduction};
use crate::error::KernelError;
use crate::plan::Plan;
use crate::reference::random_values;
use crate::rowwise::{row_key, RowSpace};
use crate::tuning::Tunable;

/// Which kernel is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `cross-entropy-fwd`: the per-row loss and logsumexp.
    Forward,
    /// `cross-entropy-bwd`: the gradient of the logits.
    Backward,
}

impl Pass {
    /// The kernel's name in keys and on the command line.
    pub fn kernel(self) -> &'static str {
        match self {
            Pass::Forward => "cross-entropy-fwd",
            Pass::Backward => "cross-entropy-bwd",
        }
    }

    /// The bounds of the pass's config space.
    ///
    /// - Forward: rows of up to 32768 logits held (one value per element, as softmax's forward:
    ///   up to 64 a thread), chunks up to 8192 with at most 32 elements a thread (the online max
    ///   and sum are carried per element).
    /// - Backward: elementwise (no row is held; chunks spread over a second grid axis): chunks up
    ///   to 8192 columns, 4 to 32 elements a thread.
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
                max_held: 8192,
                max_chunk: 8192,
                held_per_thread: 32,
                chunk_per_thread: 32,
                max_warps: 16,
                programs_per_sm: &[],
            },
        }
    }
}

/// One cross-entropy problem as the tuner sees it: what is computed and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Forward or backward.
    pub pass: Pass,
    /// Dtypes of the logits and targets.
    pub spec: CrossEntropySpec,
    /// Backward only: where each row's gradient scale comes from (one kernel variant each).
    pub mode: GradMode,
    /// Backward only: the gradient overwrites the logits.
    pub in_place: bool,
    /// Rows.
    pub m: usize,
    /// Classes (logits per row).
    pub v: usize,
}

/// A hash of the kernels' source (and of softmax's, whose online logsumexp the forward uses): a
/// tuned result never outlives a change to the kernels.
fn kernel_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| {
        let source = [include_str!("kernels.rs"), include_str!("../softmax/kernels.rs")].concat();
        fnv1a(source.as_bytes())
    })
}

impl Problem {
    /// The forward over `m` rows of `v` logits.
    pub fn forward(spec: CrossEntropySpec, m: usize, v: usize) -> Problem {
        Problem { pass: Pass::Forward, spec, mode: GradMode::Mean, in_place: false, m, v }
    }

    /// The backward over `m` rows of `v` logits, its scale from `mode`, in place or not.
    pub fn backward(spec: CrossEntropySpec, mode: GradMode, in_place: bool, m: usize, v: usize) -> Problem {
        Problem { pass: Pass::Backward, spec, mode, in_place, m, v }
    }

    /// Bytes one call moves through memory at least: what GB/s figures divide by (forward: the
    /// logits, targets, loss and lse; backward: the logits read and the gradient written, targets
    /// and lse).
    pub fn bytes(&self) -> f64 {
        let (m, v) = (self.m as f64, self.v as f64);
        let (logits, target) = (self.spec.logits.size_bytes() as f64, self.spec.target.size_bytes() as f64);
        match self.pass {
            Pass::Forward => m * v * logits + m * (target + 8.0),
            Pass::Backward => 2.0 * m * v * logits + m * (target + 4.0),
        }
    }
}

impl Tunable for Problem {
    type Knobs = CrossEntropyConfig;

    fn kernel(&self) -> &'static str {
        self.pass.kernel()
    }

    fn shape(&self) -> (usize, usize) {
        (self.m, self.v)
    }

    fn heuristic(&self, sm_count: usize) -> CrossEntropyConfig {
        match self.pass {
            Pass::Forward => heuristic(self.v, self.spec.logits, sm_count),
            Pass::Backward => heuristic_backward(self.v, self.spec.logits, sm_count),
        }
    }

    /// See [`Pass::space`] and [`RowSpace::candidates`].
    fn candidates(&self, sm_count: usize) -> Vec<CrossEntropyConfig> {
        self.pass.space().candidates(self.m, self.v, self.heuristic(sm_count), sm_count)
    }

    /// Kernel, source hash, crate version, device, both dtypes, for the backward the gradient
    /// mode and whether it is in place, `V` exactly (as `N`), `M` bucketed.
    fn key(&self, device: &DeviceId) -> Key {
        let mut features = vec![("logits", self.spec.logits.name()), ("target", self.spec.target.name())];
        if self.pass == Pass::Backward {
            let mode = match self.mode {
                GradMode::PerRow => "rows",
                GradMode::Scalar => "scalar",
                GradMode::Mean => "mean",
            };
            features.extend([("grad", mode), ("in_place", if self.in_place { "1" } else { "0" })]);
        }
        row_key(self.pass.kernel(), kernel_hash(), device, &features, self.m, self.v)
    }

    fn plan(&self, cfg: &CrossEntropyConfig) -> Result<Plan, KernelError> {
        let (m, v) = (self.m, self.v);
        match self.pass {
            Pass::Forward => {
                let shape = ForwardShape { m, v, stride: v };
                forward_plan(&self.spec, &shape, DEFAULT_IGNORE_INDEX, Reduction::None, cfg)
            }
            Pass::Backward => {
                let shape = BackwardShape { m, v, stride: v, stride_dlogits: v };
                backward_plan(&self.spec, &shape, self.mode, self.in_place, DEFAULT_IGNORE_INDEX, 1.0, cfg)
            }
        }
    }

    /// `loss` and `lse` forward; the gradient backward (in `logits` when in place).
    fn checked(&self) -> &'static [&'static str] {
        match (self.pass, self.in_place) {
            (Pass::Forward, _) => &["loss", "lse"],
            (Pass::Backward, false) => &["dlogits"],
            (Pass::Backward, true) => &["logits"],
        }
    }

    /// Targets spread over `[0, V)` with every 16th row ignored; `reduced` counts every row;
    /// everything else random.
    fn input(&self, name: &'static str, len: usize, seed: u64) -> Vec<f64> {
        match name {
            "target" => (0..len)
                .map(|i| if i % 16 == 15 { DEFAULT_IGNORE_INDEX as f64 } else { ((i * 7919) % self.v.max(1)) as f64 })
                .collect(),
            "reduced" => vec![1.0, self.m.max(1) as f64],
            _ => random_values(len, seed),
        }
    }

    /// The logits, when the gradient overwrites them.
    fn rewritten(&self) -> &'static [&'static str] {
        if self.pass == Pass::Backward && self.in_place {
            &["logits"]
        } else {
            &[]
        }
    }
}
