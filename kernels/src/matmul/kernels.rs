//! The matmul kernel, written in the block language: `c = a · b` (or `a · bᵀ`) over tiles of
//! `BLOCK_M × BLOCK_N`, walking `k` in steps of `BLOCK_K`, each step one `dot` on the tensor cores.
//!
//! Programs are numbered in groups of `GROUP_M` rows of tiles (Triton's grouped ordering), so the
//! programs running together share rows of `a` and columns of `b` in L2. With `PREFETCH`, the tiles
//! of the next step are loaded before this step's `dot` (carried through the loop), so the global
//! loads overlap the tensor-core work.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::{MatmulConfig, MatmulSpec};
use crate::split_k;

/// The pointers and mask of one `BLOCK_K` step of an operand.
struct Operand<'k> {
    /// Pointers at `k = 0`.
    ptrs: Value<'k>,
    /// `[rows | cols]` in range along the non-`k` dimension, broadcast to the tile.
    in_range: Value<'k>,
    /// The offsets along `k` of the tile (`[1, BK]` or `[BK, 1]`).
    offs_k: Value<'k>,
    /// Elements between consecutive `k` (`None`: 1, `k` runs along the rows of the operand).
    k_stride: Option<Value<'k>>,
}

impl<'k> Operand<'k> {
    /// The tile at `k0` (zero where out of range).
    fn load(&self, k: &'k KernelBuilder, k0: Value<'k>, kk: Value<'k>) -> Value<'k> {
        let ok = self.in_range & (self.offs_k + k0).lt(kk);
        let ptrs = match self.k_stride {
            Some(s) => self.ptrs + k0.cast(DType::I64) * s,
            None => self.ptrs + k0,
        };
        k.load_masked(ptrs, ok, 0.0)
    }
}

/// Builds the matmul kernel.
///
/// Arguments, in order: `a, b, c, m: i32, n: i32, k: i32, stride_a: i64, stride_b: i64,
/// stride_c: i64` (row strides in elements; rows are contiguous); `b` is `[K, N]`, or `[N, K]` when
/// `spec.b_transposed`; grid `[ceil(M / BLOCK_M) · ceil(N / BLOCK_N), 1, 1]`.
///
/// With `cfg.split_k > 1`, `c` is instead the f32 partials `[split_k, M, N]` (`stride_c = N`), a
/// last argument `k_per_split: i32` follows, and the grid is `[tiles, split_k, 1]`: program
/// `(t, s)` sums `k ∈ [s · k_per_split, (s + 1) · k_per_split)` of tile `t` into slice `s`.
pub fn matmul(spec: &MatmulSpec, cfg: &MatmulConfig) -> Result<Kernel, LangError> {
    build_kernel(&format!("matmul_{}", spec.suffix()), |k| trace(k, spec, cfg))
}

fn trace<'k>(k: &'k KernelBuilder, spec: &MatmulSpec, cfg: &MatmulConfig) {
    let bm = k.meta("BLOCK_M", cfg.block_m as i64);
    let bn = k.meta("BLOCK_N", cfg.block_n as i64);
    let bk = k.meta("BLOCK_K", cfg.block_k as i64);
    let group_m = k.meta("GROUP_M", cfg.group_m as i64);
    let prefetch = k.meta("PREFETCH", cfg.prefetch as i64) != 0;
    k.meta("SPLIT_K", cfg.split_k as i64);
    let a = k.ptr_arg("a", spec.dtype);
    let b = k.ptr_arg("b", spec.dtype);
    // Split along k, each program writes its slice's f32 partial sums.
    let c = k.mut_ptr_arg("c", if cfg.split_k > 1 { DType::F32 } else { spec.out });
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let kk = k.scalar_arg("k", DType::I32);
    let stride_a = k.scalar_arg("stride_a", DType::I64);
    let stride_b = k.scalar_arg("stride_b", DType::I64);
    let stride_c = k.scalar_arg("stride_c", DType::I64);
    let slice = split_k::slice(k, cfg.split_k, kk);

    let (pid_m, pid_n) = grouped(k, m, n, bm, bn, group_m);
    let rows = pid_m * bm + k.arange(0, bm);
    let cols = pid_n * bn + k.arange(0, bn);
    // k offsets along a tile's columns, and (for b stored [K, N]) along its rows: two aranges,
    // since a 1-D block lives either along rows or along columns of the 2-D blocks.
    let ks = k.arange(0, bk);
    let ks_rows = k.arange(0, bk);
    let row_ok = rows.lt(m).expand_dims(1);
    let col_ok = cols.lt(n).expand_dims(0);
    let a_op = Operand {
        ptrs: a + (rows.cast(DType::I64) * stride_a).expand_dims(1) + ks.expand_dims(0),
        in_range: row_ok,
        offs_k: ks.expand_dims(0),
        k_stride: None,
    };
    let b_op = if spec.b_transposed {
        // b's rows are c's columns: a second arange, laid out along rows.
        let b_rows = pid_n * bn + k.arange(0, bn);
        Operand {
            ptrs: b + (b_rows.cast(DType::I64) * stride_b).expand_dims(1) + ks.expand_dims(0),
            in_range: b_rows.lt(n).expand_dims(1),
            offs_k: ks.expand_dims(0),
            k_stride: None,
        }
    } else {
        Operand {
            ptrs: b + (ks_rows.cast(DType::I64) * stride_b).expand_dims(1) + cols.expand_dims(0),
            in_range: col_ok,
            offs_k: ks_rows.expand_dims(1),
            k_stride: Some(stride_b),
        }
    };
    let load_b = |k0: Value<'k>| b_op.load(k, k0, kk);
    // b's tile as a [BK, BN] operand (a transpose feeding a dot costs nothing).
    let as_kn = |t: Value<'k>| if spec.b_transposed { t.trans() } else { t };
    let acc = k.zeros(&[cfg.block_m, cfg.block_n], DType::F32);
    let acc = if prefetch {
        let first = [a_op.load(k, slice.lo, kk), load_b(slice.lo)];
        let out = k.for_range(slice.lo, slice.hi, bk, &[acc, first[0], first[1]], |k0, carried| {
            let next = k0 + bk;
            let (an, bn) = (a_op.load(k, next, kk), load_b(next));
            vec![k.dot(carried[1], as_kn(carried[2]), carried[0]), an, bn]
        });
        out[0]
    } else {
        k.for_range(slice.lo, slice.hi, bk, &[acc], |k0, carried| {
            vec![k.dot(a_op.load(k, k0, kk), as_kn(load_b(k0)), carried[0])]
        })[0]
    };
    let c = match slice.index {
        Some(s) => c + s.cast(DType::I64) * (m.cast(DType::I64) * n.cast(DType::I64)),
        None => c,
    };
    let c_ptrs = c + (rows.cast(DType::I64) * stride_c).expand_dims(1) + cols.expand_dims(0);
    k.store_masked(c_ptrs, acc, row_ok & col_ok);
}

/// This program's tile `(row, column)` in grouped order: groups of `group_m` rows of tiles, each
/// walked column by column.
fn grouped<'k>(
    k: &'k KernelBuilder,
    m: Value<'k>,
    n: Value<'k>,
    bm: i64,
    bn: i64,
    group_m: i64,
) -> (Value<'k>, Value<'k>) {
    let pid = k.program_id(0);
    let tiles_m = (m + (bm - 1)) / bm;
    let tiles_n = (n + (bn - 1)) / bn;
    let per_group = tiles_n * group_m;
    let first_m = (pid / per_group) * group_m;
    let size = (tiles_m - first_m).minimum(group_m);
    (first_m + (pid % per_group) % size, (pid % per_group) / size)
}
