//! Split-K: a product whose `k` is cut into `S` slices, each slice summed by its own programs into
//! an f32 partial `[S, M, N]`, and the second launch here, [`sum_splits`], that adds the slices up
//! in a fixed order (the same result run to run, no atomics). When few rows of output leave too
//! few tiles to keep the GPU's memory busy (a decode step's `x · Wᵀ`), slicing `k` multiplies the
//! programs streaming the weight.
//!
//! The fused RMSNorm → Linear kernel also splits `Σ x²` by slice (`[S, M]`); its second launch
//! adds those up too and scales each row by `rstd = 1/√(Σx²/K + ε)`.

use std::sync::OnceLock;

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use crate::error::KernelError;
use crate::plan::{KernelMemo, Launch, Plan, PlanArg};

/// Columns per program of [`sum_splits`].
pub const SUM_SPLITS_BLOCK: usize = 128;

/// The `k` each slice sums when `k` is cut into `splits` slices of whole `block_k` steps (the last
/// slices may be short or empty).
pub fn k_per_split(k: usize, splits: usize, block_k: usize) -> usize {
    k.div_ceil(splits.max(1)).div_ceil(block_k) * block_k
}

/// Builds `out[r, j] = Σ_s partial[s, r, j]` (times `rstd[r]` when `scaled`), stored as
/// `out_dtype`.
///
/// Arguments: `partial` (f32 `[S, M, N]`), then when `scaled` `sumsq_partial` (f32 `[S, M]`),
/// then `out, splits: i32, m: i32, n: i32, stride_out: i64`, then when `scaled` `k: i32,
/// eps: f32`. Grid `[M · ceil(N / BLOCK), 1, 1]`, row-major over (row, column block); `splits`
/// must not exceed the kernel's `max_splits`.
pub fn sum_splits(out_dtype: DType, max_splits: usize, scaled: bool) -> Result<Kernel, LangError> {
    let name = format!("sum_splits{}_{}", if scaled { "_rstd" } else { "" }, out_dtype.name());
    build_kernel(&name, |k| {
        let block = k.meta("BLOCK_N", SUM_SPLITS_BLOCK as i64);
        let tile = k.meta("MAX_SPLITS", max_splits.next_power_of_two() as i64);
        let partial = k.ptr_arg("partial", DType::F32);
        let sumsq = scaled.then(|| k.ptr_arg("sumsq_partial", DType::F32));
        let out = k.mut_ptr_arg("out", out_dtype);
        let splits = k.scalar_arg("splits", DType::I32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let stride_out = k.scalar_arg("stride_out", DType::I64);
        let pid = k.program_id(0);
        let col_blocks = (n + (block - 1)) / block;
        let row = (pid / col_blocks).cast(DType::I64);
        let cols = (pid % col_blocks) * block + k.arange(0, block);
        let col_ok = cols.lt(n);
        let s = k.arange(0, tile);
        let (m64, n64) = (m.cast(DType::I64), n.cast(DType::I64));
        let offsets =
            (s.cast(DType::I64) * (m64 * n64)).expand_dims(1) + (row * n64 + cols.cast(DType::I64)).expand_dims(0);
        let slices = k.load_masked(partial + offsets, s.lt(splits).expand_dims(1) & col_ok.expand_dims(0), 0.0);
        let mut y = slices.sum(0);
        if let Some(sumsq) = sumsq {
            let kk = k.scalar_arg("k", DType::I32);
            let eps = k.scalar_arg("eps", DType::F32);
            // A second arange: a 1-D block lives either along rows or on its own.
            let s1 = k.arange(0, tile);
            let ss = k.load_masked(sumsq + s1.cast(DType::I64) * m64 + row, s1.lt(splits), 0.0).sum(0);
            y = y * (ss / kk.cast(DType::F32) + eps).rsqrt();
        }
        k.store_masked(out + row * stride_out + cols, y, col_ok);
    })
}

/// The part of `k` one program of a split product sums: `[lo, hi)` (the loop also masks at `k`),
/// and which slice of the partials it writes.
pub struct Slice<'k> {
    /// First `k` of the slice.
    pub lo: Value<'k>,
    /// One past the last `k` of the slice (may pass `k`: loads mask there).
    pub hi: Value<'k>,
    /// The slice's index (`program_id(1)`), when `k` is split.
    pub index: Option<Value<'k>>,
}

/// The slice of `k` this program sums: all of it when `splits` is 1; otherwise the slice
/// `program_id(1)` of the scalar argument `k_per_split` (declared here: call after the other
/// arguments).
pub fn slice<'k>(k: &'k KernelBuilder, splits: usize, kk: Value<'k>) -> Slice<'k> {
    if splits > 1 {
        let per_split = k.scalar_arg("k_per_split", DType::I32);
        let index = k.program_id(1);
        let lo = index * per_split;
        Slice { lo, hi: lo + per_split, index: Some(index) }
    } else {
        Slice { lo: k.constant(0, DType::I32), hi: kk, index: None }
    }
}

/// What the second launch of a split product reads besides the partials and writes: the output
/// `[m, n]` (row stride `stride_out`) and, for the fused RMSNorm, `Σx²` slices and `(k, ε)`.
pub struct SumSplits {
    /// The plan's f32 `[splits, m, n]` partials buffer.
    pub partial: &'static str,
    /// The plan's f32 `[splits, m]` `Σx²` buffer and `(k, ε)`: scale rows by `rstd`.
    pub rstd: Option<(&'static str, usize, f32)>,
    /// The plan's output buffer and its dtype.
    pub out: (&'static str, DType),
    /// Slices.
    pub splits: usize,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Row stride of the output.
    pub stride_out: usize,
}

impl SumSplits {
    /// Appends the launch of [`sum_splits`] that adds the slices up into the output.
    pub fn push(&self, plan: &mut Plan) -> Result<(), KernelError> {
        static MEMO: OnceLock<KernelMemo<(DType, usize, bool)>> = OnceLock::new();
        let tile = self.splits.next_power_of_two();
        let scaled = self.rstd.is_some();
        let kernel = MEMO
            .get_or_init(KernelMemo::new)
            .get(&(self.out.1, tile, scaled), || sum_splits(self.out.1, tile, scaled))?;
        let mut args = vec![PlanArg::Buffer(self.partial)];
        args.extend(self.rstd.map(|(sumsq, ..)| PlanArg::Buffer(sumsq)));
        args.extend([
            PlanArg::Buffer(self.out.0),
            PlanArg::I32(self.splits as i32),
            PlanArg::I32(self.m as i32),
            PlanArg::I32(self.n as i32),
            PlanArg::I64(self.stride_out as i64),
        ]);
        if let Some((_, k, eps)) = self.rstd {
            args.extend([PlanArg::I32(k as i32), PlanArg::F32(eps)]);
        }
        let programs = self.m * self.n.div_ceil(SUM_SPLITS_BLOCK);
        plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: 4 });
        Ok(())
    }
}
