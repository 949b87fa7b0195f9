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
pub mod tuning;

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

/// The most slices [`MatmulConfig::split_k`] may cut `k` into.
pub const MAX_SPLIT_K: usize = 64;

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
    /// Slices `k` is cut into, each summed by its own programs (1: no split; see
    /// [`crate::split_k`]).
    pub split_k: usize,
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
        if !(1..=MAX_SPLIT_K).contains(&self.split_k) {
            return bad("split_k", "1..=64 slices of k", self.split_k.to_string());
        }
        if self.shared_bytes() > 48 * 1024 {
            return bad("block_k", "tiles within 48 KiB of shared memory", format!("{} bytes", self.shared_bytes()));
        }
        Ok(())
    }

    /// A default tiling for `[m, k] · [k, n]` on `sm_count` SMs, from the H100 sweeps
    /// (`tritonite bench-dot`, benches/RESULTS.md):
    /// - few rows (a decode step, `m ≤ 64`): [`MatmulConfig::decode`];
    /// - up to 256 rows: 64 × 64 × 64 tiles over 4 warps;
    /// - otherwise 128 × 128 × 64 tiles over 4 warps when they give the SMs ¾ of a wave at least,
    ///   else 128 × 64 × 64 tiles over 8 warps.
    pub fn heuristic(m: usize, n: usize, k: usize, sm_count: usize) -> MatmulConfig {
        let tiles = |bm: usize, bn: usize| m.div_ceil(bm) * n.div_ceil(bn);
        let base = MatmulConfig {
            block_m: 64,
            block_n: 64,
            block_k: 64,
            group_m: 8,
            num_warps: 4,
            prefetch: true,
            split_k: 1,
        };
        if m <= 64 {
            MatmulConfig::decode(m, n, k, sm_count, false)
        } else if m <= 256 || n <= 64 {
            base
        } else if 4 * tiles(128, 128) >= 3 * sm_count {
            MatmulConfig { block_m: 128, block_n: 128, prefetch: false, ..base }
        } else {
            MatmulConfig { block_m: 128, num_warps: 8, ..base }
        }
    }

    /// The tiling for a decode step (`m ≤ 64` rows): one tile of rows, `k` split so that enough
    /// programs stream the weight. The fused RMSNorm → Linear kernel (`fused`), which also holds its
    /// `x` tile in f32, takes shorter steps and narrower tiles, so more of them.
    ///
    /// What won the H100 sweep at `n = k = 4096`: the matmul 16 × 128 × 128 with `k` split in 4
    /// (m ≤ 16) and 64 × 64 × 64 split in 4 (m = 64); the fused kernel 16 × 64 × 64 split in 8
    /// (m = 1) and 64 × 64 × 64 split in 4 (m = 64).
    pub fn decode(m: usize, n: usize, k: usize, sm_count: usize, fused: bool) -> MatmulConfig {
        let block_m = m.next_power_of_two().clamp(16, 64);
        let wide = block_m <= 32 && !fused;
        let (block_n, block_k) = if wide { (128, 128) } else { (64, 64) };
        let block_n = block_n.min(n.next_power_of_two().max(16));
        // Programs wanted: a wave for the wide tiles, two for 64 rows, four for the fused kernel's
        // narrow ones (their partials cost more as rows grow).
        let waves = match (wide, block_m) {
            (true, _) => 1,
            (false, 64) => 2,
            _ => 4,
        };
        let tiles = m.div_ceil(block_m) * n.div_ceil(block_n);
        let wanted = (waves * sm_count.max(1) / tiles.max(1)).max(1);
        let most = (k / (2 * block_k)).clamp(1, 16);
        let split_k = (1usize << wanted.ilog2()).min(most);
        let num_warps = 4.min((block_m / 16) * (block_n / 8)) as u32;
        MatmulConfig { block_m, block_n, block_k, group_m: 8, num_warps, prefetch: true, split_k }
    }
}
