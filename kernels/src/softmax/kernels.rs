//! The softmax kernels, written in the block language, over tiles of `ROWS` rows × `BLOCK_SIZE`
//! columns, one program per tile.
//!
//! Forward, row in registers: `max`, then `Σ exp(x − max)`, then `y`. Longer rows: one pass keeps,
//! per element of the chunk, a running max `m` and a running sum `s` of `exp(x − m)`; a new element
//! `x` rescales: `s ← s · exp(m − x) + 1` when `x > m`, else `s ← s + exp(x − m)` (one `exp` per
//! element). The lanes are then combined per row: `M = max m`, `S = Σ s · exp(m − M)`, and a second
//! pass writes `y = exp(x − M) / S`. Masked lanes read `-inf` and add nothing; `exp(-inf − -inf)` is
//! never taken (a row maximum of `-inf` is replaced by 0 before it is subtracted).
//!
//! Backward: `dx = y · (dy − Σ y · dy)`, the dot product from registers or from a first pass over
//! chunks.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::SoftmaxSpec;
use crate::rowwise::{load_f32, per_row, RowArg, Tile};

const NEG_INF: f64 = f64::NEG_INFINITY;

fn record_meta(
    k: &KernelBuilder,
    spec: &SoftmaxSpec,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) -> (i64, i64) {
    k.meta("X_BITS", spec.x.bits() as i64);
    k.meta("ROW_IN_BLOCK", row_in_block as i64);
    (k.meta("BLOCK_SIZE", block_size as i64), k.meta("ROWS", rows as i64))
}

/// A row maximum safe to subtract: 0 where it is `-inf` (a row of `-inf`, or a masked row), so
/// `x − max` is `-inf` rather than NaN there.
pub(crate) fn safe_max<'k>(k: &'k KernelBuilder, mx: Value<'k>) -> Value<'k> {
    k.where_(mx.equal(NEG_INF), 0.0, mx)
}

/// One step of the online max and sum of `exp`, per element: returns the new `(m, s)` after
/// seeing `x` (`-inf` for masked lanes, which change nothing).
pub(crate) fn online_step<'k>(
    k: &'k KernelBuilder,
    m: Value<'k>,
    s: Value<'k>,
    x: Value<'k>,
) -> (Value<'k>, Value<'k>) {
    // exp(−|x − m|): the factor of whichever of x and m is smaller; x = m = -inf gives NaN,
    // replaced by 0 (nothing seen on this lane yet, nothing to add).
    let e = k.where_(x.equal(NEG_INF), 0.0, (-(x - m).abs()).exp());
    let s = k.where_(x.gt(m), s * e + 1.0, s + e);
    (m.maximum(x), s)
}

/// Combines per-lane `(m, s)` of `[ROWS, BLOCK]` into per-row `(safe max, Σ exp(x − max))`.
pub(crate) fn combine_lanes<'k>(k: &'k KernelBuilder, m: Value<'k>, s: Value<'k>) -> (Value<'k>, Value<'k>) {
    let mx = safe_max(k, m.max(1));
    // m = -inf lanes hold s = 0: exp(-inf − finite) = 0, and mx is finite.
    (mx, (s * (m - per_row(mx)).exp()).sum(1))
}

/// Builds the forward kernel over tiles of `rows` rows × `block_size` columns; `row_in_block`
/// (when `N ≤ block_size`) keeps the tile in registers, otherwise each row is read twice in chunks
/// (online max and sum, then `y`).
///
/// Arguments, in order: `x, y, m: i32, n: i32, stride_x: i64, stride_y: i64`; grid
/// `[ceil(M / rows), 1, 1]`.
pub fn forward(spec: &SoftmaxSpec, block_size: usize, rows: usize, row_in_block: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("softmax_fwd_{}", spec.suffix()), |k| {
        let (block, tile_len) = record_meta(k, spec, block_size, rows, row_in_block);
        let x = k.ptr_arg("x", spec.x);
        let y = k.mut_ptr_arg("y", spec.out);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let x = RowArg::stride_arg(k, x, "stride_x");
        let y = RowArg::stride_arg(k, y, "stride_y");
        let cols = k.arange(0, block);
        let rows = k.program_id(0) * tile_len + k.arange(0, tile_len);
        let row_ok = rows.lt(m);
        if row_in_block {
            let t = Tile::new(rows, row_ok, cols, n);
            let xv = load_f32(k, t.at(x), t.mask, NEG_INF);
            let mx = safe_max(k, xv.max(1));
            let e = (xv - per_row(mx)).exp();
            k.store_masked(t.at(y), e / per_row(e.sum(1)), t.mask);
        } else {
            let shape = [tile_len as usize, block_size];
            let init = [k.full(&shape, NEG_INF, DType::F32), k.zeros(&shape, DType::F32)];
            let ms = k.for_range(0, n, block, &init, |start, c| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let (m, s) = online_step(k, c[0], c[1], load_f32(k, t.at(x), t.mask, NEG_INF));
                vec![m, s]
            });
            let (mx, sum) = combine_lanes(k, ms[0], ms[1]);
            let inv = 1.0 / sum;
            k.for_range(0, n, block, &[], |start, _| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let xv = load_f32(k, t.at(x), t.mask, NEG_INF);
                k.store_masked(t.at(y), (xv - per_row(mx)).exp() * per_row(inv), t.mask);
                vec![]
            });
        }
    })
}

/// Builds the backward kernel over tiles of `rows` rows × `block_size` columns: `dx = y · (dy −
/// Σ y · dy)`; `row_in_block` keeps the tile in registers, otherwise each row is read twice.
///
/// Arguments, in order: `y, dy, dx, m: i32, n: i32, stride_y: i64, stride_dy: i64, stride_dx:
/// i64`; grid `[ceil(M / rows), 1, 1]`.
pub fn backward(spec: &SoftmaxSpec, block_size: usize, rows: usize, row_in_block: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("softmax_bwd_{}", spec.suffix()), |k| backward_body(k, spec, block_size, rows, row_in_block))
}

fn backward_body<'k>(k: &'k KernelBuilder, spec: &SoftmaxSpec, block_size: usize, rows: usize, row_in_block: bool) {
    {
        let (block, tile_len) = record_meta(k, spec, block_size, rows, row_in_block);
        let y = k.ptr_arg("y", spec.out);
        let dy = k.ptr_arg("dy", spec.out);
        let dx = k.mut_ptr_arg("dx", spec.x);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let y = RowArg::stride_arg(k, y, "stride_y");
        let dy = RowArg::stride_arg(k, dy, "stride_dy");
        let dx = RowArg::stride_arg(k, dx, "stride_dx");
        let cols = k.arange(0, block);
        let rows = k.program_id(0) * tile_len + k.arange(0, tile_len);
        let row_ok = rows.lt(m);
        let load = |t: Tile<'k>, a: RowArg<'k>| load_f32(k, t.at(a), t.mask, 0.0);
        if row_in_block {
            let t = Tile::new(rows, row_ok, cols, n);
            let (yv, dyv) = (load(t, y), load(t, dy));
            let dot = (yv * dyv).sum(1);
            k.store_masked(t.at(dx), yv * (dyv - per_row(dot)), t.mask);
        } else {
            let acc = k.zeros(&[tile_len as usize, block_size], DType::F32);
            let acc = k.for_range(0, n, block, &[acc], |start, c| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                vec![c[0] + load(t, y) * load(t, dy)]
            });
            let dot = acc[0].sum(1);
            k.for_range(0, n, block, &[], |start, _| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let yv = load(t, y);
                k.store_masked(t.at(dx), yv * (load(t, dy) - per_row(dot)), t.mask);
                vec![]
            });
        }
    }
}
