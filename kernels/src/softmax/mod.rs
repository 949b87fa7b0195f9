//! Softmax along the last dimension, forward and backward: `y = exp(x − max) / Σ exp(x − max)` per
//! row and `dx = y · (dy − Σ dy · y)`, f32/f16/bf16 rows of any length, strided rows.
//!
//! Rows that fit a block are held in registers; longer rows take an online max and sum over column
//! chunks (one read), then a second pass writes `y`. Rows of `-inf` (and masked lanes) never turn
//! into NaN: a row whose every element is `-inf` gives `y = NaN` only through `0 / 0`, as PyTorch.
//!
//! - [`kernels`]: the kernels in the block language.
//! - [`plan`]: their launches for one problem.
//! - [`api`]: the typed entry points [`softmax()`] and [`softmax_backward`].
//! - [`reference`](mod@reference): the fp64 reference; [`check`]: end-to-end cases against it.

pub mod api;
pub mod check;
pub mod kernels;
pub mod plan;
pub mod reference;
pub mod tuning;

pub use api::{softmax, softmax_backward, SoftmaxBackwardOptions, SoftmaxGrads, SoftmaxOptions, SoftmaxOutput};
pub use kernels::{backward, forward};
pub use plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};

use tritonite_lang::DType;

use crate::error::KernelError;
use crate::rowwise::check_float;

/// The tuning knobs of the softmax kernels (`programs` is unused).
pub type SoftmaxConfig = crate::rowwise::RowConfig;

/// What a softmax computes: the dtype of `x` (and `dx`) and of `y` (and `dy`). Computed in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoftmaxSpec {
    /// dtype of `x` (and of `dx`).
    pub x: DType,
    /// dtype of `y` (and of `dy`).
    pub out: DType,
}

impl SoftmaxSpec {
    /// Softmax of `x` with `y` in `x`'s dtype.
    pub fn new(x: DType) -> SoftmaxSpec {
        SoftmaxSpec { x, out: x }
    }

    /// A short name of the variant for kernel names: `bf16` or `bf16_yf32`.
    pub fn suffix(&self) -> String {
        if self.out == self.x {
            self.x.name().to_string()
        } else {
            format!("{}_y{}", self.x.name(), self.out.name())
        }
    }

    /// Checks that both dtypes are f32, f16 or bf16.
    pub fn check(&self) -> Result<(), KernelError> {
        check_float("x", self.x)?;
        check_float("out_dtype", self.out)
    }
}

/// The forward's default for rows of `n` elements of `dtype`: the whole row in registers up to
/// 32768 columns (64 elements a thread with 16 warps: one read, where chunks read the row twice;
/// the tutorial's kernel holding 32768 runs at the copy rate); longer rows in chunks of 4096
/// columns with 8 warps (the online max and sum are carried per element of the chunk); 512
/// elements of a tile per warp.
pub fn heuristic(n: usize, _dtype: DType, sm_count: usize) -> SoftmaxConfig {
    if n > 32768 {
        return SoftmaxConfig { block_size: 4096, num_warps: 8, rows: 1, programs: 2 * sm_count.max(1) };
    }
    SoftmaxConfig::spread(n, sm_count, 32768, 512, 16)
}

/// The backward's default: rows of up to 16384 columns in registers (it holds `y` and `dy`: 32
/// elements of each a thread with 16 warps, the registers the forward's 32768 take), longer rows
/// in chunks of 4096 columns; 256 elements of a tile per warp, at most 16 warps.
pub fn heuristic_backward(n: usize, _dtype: DType, sm_count: usize) -> SoftmaxConfig {
    if n > 16384 {
        return SoftmaxConfig { block_size: 4096, num_warps: 8, rows: 1, programs: 2 * sm_count.max(1) };
    }
    SoftmaxConfig::spread(n, sm_count, 16384, 256, 16)
}
