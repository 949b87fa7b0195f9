//! Matrix multiplication on the tensor cores: `c = a · b` or `c = a · bᵀ` (a Linear layer's
//! `x · Wᵀ`), f16 or bf16 inputs, `f32` accumulation, any output float dtype.
//!
//! - [`kernels`]: the kernel in the block language (one `dot` per `BLOCK_K` step);
//! - [`plan`]: its launch plan;
//! - [`api`]: the typed entry point [`matmul`];
//! - [`reference`]: the fp64 reference;
//! - [`check`]: cases checked against it on any backend (CPU and GPU suites).

pub mod api;
pub mod check;
pub mod kernels;
pub mod plan;
pub mod reference;

pub use api::{matmul, MatmulArgs, MatmulOutput};

use tritonite_lang::DType;

use crate::error::KernelError;

/// What is computed: dtypes and the storage of `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulSpec {
    /// Dtype of `a` and `b` (f16 or bf16).
    pub dtype: DType,
    /// Dtype of `c` (any float).
    pub out: DType,
    /// `b` is stored `[N, K]` (`c = a · bᵀ`) rather than `[K, N]`.
    pub b_transposed: bool,
}

impl MatmulSpec {
    /// The kernel-name suffix: dtypes and `b`'s storage.
    pub fn suffix(&self) -> String {
        format!("{}_{}_{}", self.dtype.name(), self.out.name(), if self.b_transposed { "nt" } else { "nn" })
    }

    /// Checks the dtypes.
    pub fn check(&self) -> Result<(), KernelError> {
        if !matches!(self.dtype, DType::F16 | DType::BF16) {
            return Err(KernelError::BadArgument {
                arg: "a",
                expected: "f16 or bf16 (the tensor cores multiply 16-bit floats)".into(),
                got: self.dtype.name().into(),
            });
        }
        if !self.out.is_float() {
            return Err(KernelError::BadArgument {
                arg: "c",
                expected: "a float dtype".into(),
                got: self.out.name().into(),
            });
        }
        Ok(())
    }
}

/// The tiling of one matmul launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulConfig {
    /// Rows of `c` per program (a power of two ≥ 16).
    pub block_m: usize,
    /// Columns of `c` per program (a power of two ≥ 16).
    pub block_n: usize,
    /// Step along `k` (a power of two ≥ 16).
    pub block_k: usize,
    /// Rows of tiles per group of programs (L2 reuse), ≥ 1.
    pub group_m: usize,
    /// Warps per program.
    pub num_warps: u32,
    /// Load the next step's tiles before this step's `dot`.
    pub prefetch: bool,
}

impl MatmulConfig {
    /// Bytes of shared memory one program uses (both operands of a step, rows padded by 16 bytes).
    pub fn shared_bytes(&self) -> usize {
        2 * (self.block_m * (self.block_k + 8) + self.block_k * (self.block_n + 8))
    }

    /// Checks the tiling: powers of two, 16 ≤ blocks ≤ 256, the warps fit the tile, and at most
    /// 48 KiB of shared memory.
    pub fn check(&self) -> Result<(), KernelError> {
        let bad = |arg: &'static str, expected: &str, got: String| {
            Err(KernelError::BadArgument { arg, expected: expected.into(), got })
        };
        for (arg, v) in [("block_m", self.block_m), ("block_n", self.block_n), ("block_k", self.block_k)] {
            if !v.is_power_of_two() || !(16..=256).contains(&v) {
                return bad(arg, "a power of two in 16..=256", v.to_string());
            }
        }
        if !self.num_warps.is_power_of_two() || self.num_warps > 16 {
            return bad("num_warps", "a power of two ≤ 16", self.num_warps.to_string());
        }
        if (self.block_m / 16) * (self.block_n / 8) < self.num_warps as usize {
            return bad(
                "num_warps",
                "at most one warp per 16 × 8 tile of the block",
                format!("{} warps for {} × {}", self.num_warps, self.block_m, self.block_n),
            );
        }
        if self.group_m == 0 {
            return bad("group_m", "at least 1", "0".into());
        }
        if self.shared_bytes() > 48 * 1024 {
            return bad("block_k", "tiles within 48 KiB of shared memory", format!("{} bytes", self.shared_bytes()));
        }
        Ok(())
    }

    /// A default tiling for `[m, k] · [k, n]`: 128 × 128 × 32 tiles over 8 warps for large
    /// problems, narrower ones when `m` or `n` is small.
    pub fn heuristic(m: usize, n: usize, _k: usize) -> MatmulConfig {
        let block_m = m.next_power_of_two().clamp(16, 128);
        let block_n = n.next_power_of_two().clamp(16, 128);
        let num_warps = if block_m * block_n >= 128 * 128 { 8 } else { 4 }.min(((block_m / 16) * (block_n / 8)) as u32);
        MatmulConfig { block_m, block_n, block_k: 32, group_m: 8, num_warps, prefetch: true }
    }
}
