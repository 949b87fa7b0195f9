//! Cross-entropy over logits `[M, V]` (f32/f16/bf16, strided rows) with integer targets (`i64` or
//! `i32`, one per row): per row, `lse = log Σ exp(logits)` and `loss = lse − logits[target]`, in
//! f32; rows whose target equals `ignore_index` give loss 0 and gradient 0. The mean (over the rows
//! that are not ignored) or the sum is taken on the device by a one-program kernel, which also
//! returns the count of rows not ignored, so the backward of a mean needs no host sync.
//!
//! The backward writes `dlogits = (softmax(logits) − onehot(target)) · dloss_row` (from the saved
//! `lse`; a single elementwise pass) into a new buffer, a caller's buffer, or the logits themselves
//! (in place). Rows of any length work (the forward's logsumexp is online over column chunks), up
//! to V = 262144 and beyond.
//!
//! A target outside `[0, V)` that is not `ignore_index` cannot be checked on the host (targets live
//! on the device): its row's loss is NaN, which carries into the mean, so it shows.
//!
//! - [`kernels`]: the kernels in the block language.
//! - [`plan`]: their launches for one problem.
//! - [`api`]: the typed entry points [`cross_entropy()`] and [`cross_entropy_backward`].
//! - [`reference`](mod@reference): the fp64 reference; [`check`]: end-to-end cases against it.

pub mod api;
pub mod check;
pub mod kernels;
pub mod plan;
pub mod reference;
pub mod tuning;

pub use api::{
    cross_entropy, cross_entropy_backward, CrossEntropyBackwardOptions, CrossEntropyGrads, CrossEntropyOptions,
    CrossEntropyOutput, GradOut, LossGrad,
};
pub use kernels::{backward, forward, reduce};
pub use plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};

use tritonite_lang::DType;

use crate::error::KernelError;
use crate::rowwise::check_float;

/// The tuning knobs of the cross-entropy kernels (`programs` is unused).
pub type CrossEntropyConfig = crate::rowwise::RowConfig;

/// The dtypes of a cross-entropy: of the logits (and their gradient) and of the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrossEntropySpec {
    /// dtype of the logits and of `dlogits`: f32, f16 or bf16.
    pub logits: DType,
    /// dtype of the targets: i64 or i32.
    pub target: DType,
}

impl CrossEntropySpec {
    /// A short name of the variant for kernel names: `bf16_i64`.
    pub fn suffix(&self) -> String {
        format!("{}_{}", self.logits.name(), self.target.name())
    }

    /// Checks the dtypes: float logits, integer targets.
    pub fn check(&self) -> Result<(), KernelError> {
        check_float("logits", self.logits)?;
        if !self.target.is_int() {
            return Err(KernelError::BadArgument {
                arg: "target",
                expected: "i64 or i32".into(),
                got: self.target.to_string(),
            });
        }
        Ok(())
    }
}

/// How the per-row losses are reduced (the per-row loss is always returned too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// Per-row losses only.
    None,
    /// The mean over the rows whose target is not `ignore_index` (NaN when there are none, as
    /// PyTorch).
    #[default]
    Mean,
    /// The sum over all rows (ignored rows add 0).
    Sum,
}

/// Where the backward's per-row scale `dloss_row` comes from: what [`LossGrad`] is at the kernel
/// level (one compiled variant each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GradMode {
    /// An f32 buffer `[M]`: the gradient of each row's loss.
    PerRow,
    /// One f32 value for every row (the gradient of a sum, or of a mean with a known count).
    Scalar,
    /// The gradient of a mean: an f32 value divided by the count of rows not ignored, read on the
    /// device from the forward's `reduced` output (element 1).
    Mean,
}

/// The forward's default for rows of `v` logits of `dtype`: up to 16384 logits in registers (32
/// a thread with 16 warps), longer rows in chunks of 4096 with 8 warps
/// (online logsumexp); 512 elements of a tile per warp.
pub fn heuristic(v: usize, _dtype: DType, sm_count: usize) -> CrossEntropyConfig {
    // Held up to 16384: holding 32000 columns (16 warps) measured 1833 GB/s on the H100 against
    // 1989 chunked (benches/RESULTS.md, session 6).
    if v > 16384 {
        return CrossEntropyConfig { block_size: 4096, num_warps: 8, rows: 1, programs: 2 * sm_count.max(1) };
    }
    CrossEntropyConfig::spread(v, sm_count, 16384, 512, 16)
}

/// The backward's default: it is elementwise, so tiles of about 4096 elements (chunks of at most
/// 4096 columns, spread over a second grid axis), 512 elements per warp.
pub fn heuristic_backward(v: usize, _dtype: DType, sm_count: usize) -> CrossEntropyConfig {
    CrossEntropyConfig::spread(v, sm_count, 4096, 512, 8)
}
