//! LayerNorm, forward and backward: `y = (x − mean) · rstd · w + b` per row, with an optional
//! weight and bias (each `x`'s dtype or f32), f32/f16/bf16 rows of any length, strided rows, and
//! `mean` and `rstd` (f32 per row) saved for the backward.
//!
//! - [`kernels`]: the kernels in the block language.
//! - [`plan`]: their launches for one problem (shapes, strides, config).
//! - [`api`]: the typed entry points [`layer_norm`] and [`layer_norm_backward`], which validate
//!   every argument before anything runs.
//! - [`reference`](mod@reference): the fp64 reference; [`check`]: end-to-end cases against it.

pub mod api;
pub mod check;
pub mod kernels;
pub mod plan;
pub mod reference;
pub mod tuning;

pub use api::{
    layer_norm, layer_norm_backward, LayerNormBackwardOptions, LayerNormGrads, LayerNormOptions, LayerNormOutput,
};
pub use kernels::{backward, forward};
pub use plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};

use tritonite_lang::DType;

use crate::error::KernelError;
use crate::rowwise::{check_float, check_param};

/// The tuning knobs of the LayerNorm kernels (`programs` sizes the backward's persistent grid).
pub type LayerNormConfig = crate::rowwise::RowConfig;

/// What a LayerNorm computes: the dtypes of its tensors and which options are on (one compiled
/// variant per spec). `eps` is a runtime argument.
///
/// Per row, in f32: `mean = Σx / n`, `rstd = 1 / sqrt(Σ(x − mean)² / n + eps)`,
/// `y = (x − mean) · rstd (· w) (+ b)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerNormSpec {
    /// dtype of `x` (and of `dx`).
    pub x: DType,
    /// dtype of the weight (and of `dw`), or `None` for no weight.
    pub weight: Option<DType>,
    /// dtype of the bias (and of `dbias`), or `None` for no bias.
    pub bias: Option<DType>,
    /// dtype of `y` (and of `dy`).
    pub out: DType,
}

impl LayerNormSpec {
    /// LayerNorm of `x` with an optional weight and bias; `y` in `x`'s dtype.
    pub fn new(x: DType, weight: Option<DType>, bias: Option<DType>) -> LayerNormSpec {
        LayerNormSpec { x, weight, bias, out: x }
    }

    /// A short name of the variant for kernel names: `bf16_wf32_bbf16`.
    pub fn suffix(&self) -> String {
        let mut s = self.x.name().to_string();
        for (tag, d) in [("w", self.weight), ("b", self.bias)] {
            if let Some(d) = d {
                s += &format!("_{tag}{}", d.name());
            }
        }
        if self.out != self.x {
            s += &format!("_y{}", self.out.name());
        }
        s
    }

    /// Checks the dtype rules: `x` and `y` are f32, f16 or bf16; the weight and bias have `x`'s
    /// dtype or f32.
    pub fn check(&self) -> Result<(), KernelError> {
        check_float("x", self.x)?;
        check_float("out_dtype", self.out)?;
        check_param("weight", self.x, self.weight)?;
        check_param("bias", self.x, self.bias)
    }
}

/// The forward's default for rows of `n` elements of `dtype`: the whole row in one block up to
/// 16384 columns whatever the dtype (registers hold f32 either way: 32 elements a thread with 16
/// warps); longer rows in chunks of 8192 columns (f32) or 16384 (16-bit); 512 elements of a tile
/// per warp (1 to 16 warps).
pub fn heuristic(n: usize, dtype: DType, sm_count: usize) -> LayerNormConfig {
    let max_chunk = if dtype == DType::F32 { 8192 } else { 16384 };
    let max_block = if n <= 16384 { 16384 } else { max_chunk };
    LayerNormConfig::spread(n, sm_count, max_block, 512, 16)
}

/// The backward's default: it holds `x`, `dy` and the weight's and bias's partial sums per thread,
/// so rows of up to 4096 columns get 256 elements per warp (at most 8 warps), rows of up to 8192
/// one tile of 16 warps (16 elements of each a thread, as RMSNorm's tuned backward holds 8192);
/// two persistent programs per SM; longer rows in tiles of 4 rows × 1024 columns.
pub fn heuristic_backward(n: usize, _dtype: DType, sm_count: usize) -> LayerNormConfig {
    let programs = 2 * sm_count.max(1);
    if n > 8192 {
        return LayerNormConfig { block_size: 1024, num_warps: 8, rows: 4, programs };
    }
    if n > 4096 {
        return LayerNormConfig { block_size: 8192, num_warps: 16, rows: 1, programs };
    }
    LayerNormConfig::spread(n, sm_count, 4096, 256, 8)
}
