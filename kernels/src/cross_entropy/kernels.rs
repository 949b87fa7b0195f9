//! The cross-entropy kernels, written in the block language.
//!
//! Forward: one program per tile of `ROWS` rows. The logsumexp of a row held in registers is
//! `max + log Σ exp(x − max)`; longer rows take the online max and sum of
//! [`crate::softmax::kernels`] over column chunks (one read of the logits). The target logit is
//! gathered by a masked load at `row + target` per row.
//!
//! Backward: elementwise, on a 2-D grid (tiles of rows × chunks of columns):
//! `dlogits = (exp(x − lse) − [col = target]) · scale_row`, with `scale_row = 0` for ignored rows.
//!
//! Reduce: one program sums the per-row losses and counts the rows not ignored, in a fixed order.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::{CrossEntropySpec, GradMode};
use crate::rowwise::{load_f32, per_row, RowArg, Tile};
use crate::softmax::kernels::{combine_lanes, online_step, safe_max};

const NEG_INF: f64 = f64::NEG_INFINITY;

/// The targets of a tile's rows and what they say: `(target, ignored, in range)`, each `[ROWS]`.
fn targets<'k>(
    k: &'k KernelBuilder,
    target: Value<'k>,
    rows: Value<'k>,
    row_ok: Value<'k>,
    v: Value<'k>,
    ignore: Value<'k>,
) -> (Value<'k>, Value<'k>, Value<'k>) {
    let t = k.load_masked(target + rows, row_ok, ignore);
    let ignored = t.equal(ignore);
    let in_range = t.ge(0) & t.lt(v);
    (t, ignored, in_range)
}

/// Builds the forward kernel over tiles of `rows` rows × `block_size` columns; `row_in_block`
/// (when `V ≤ block_size`) keeps the tile in registers, otherwise rows are walked once in chunks.
///
/// Arguments, in order: `logits, target, loss (f32), lse (f32), m: i32, v: i32, stride: i64,
/// ignore_index: i64`; grid `[ceil(M / rows), 1, 1]`.
pub fn forward(
    spec: &CrossEntropySpec,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) -> Result<Kernel, LangError> {
    build_kernel(&format!("cross_entropy_fwd_{}", spec.suffix()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let tile_len = k.meta("ROWS", rows as i64);
        k.meta("ROW_IN_BLOCK", row_in_block as i64);
        let x = k.ptr_arg("logits", spec.logits);
        let target = k.ptr_arg("target", spec.target);
        let loss = k.mut_ptr_arg("loss", DType::F32);
        let lse_out = k.mut_ptr_arg("lse", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let v = k.scalar_arg("v", DType::I32);
        let x = RowArg::stride_arg(k, x, "stride");
        let ignore = k.scalar_arg("ignore_index", DType::I64);

        let cols = k.arange(0, block);
        let rows = k.program_id(0) * tile_len + k.arange(0, tile_len);
        let row_ok = rows.lt(m);
        let lse = if row_in_block {
            let t = Tile::new(rows, row_ok, cols, v);
            let xv = load_f32(k, t.at(x), t.mask, NEG_INF);
            let mx = safe_max(k, xv.max(1));
            mx + (xv - per_row(mx)).exp().sum(1).log()
        } else {
            let shape = [tile_len as usize, block_size];
            let init = [k.full(&shape, NEG_INF, DType::F32), k.zeros(&shape, DType::F32)];
            let ms = k.for_range(0, v, block, &init, |start, c| {
                let t = Tile::new(rows, row_ok, start + cols, v);
                let (m, s) = online_step(k, c[0], c[1], load_f32(k, t.at(x), t.mask, NEG_INF));
                vec![m, s]
            });
            let (mx, sum) = combine_lanes(k, ms[0], ms[1]);
            mx + sum.log()
        };
        let (t, ignored, in_range) = targets(k, target, rows, row_ok, v, ignore);
        let valid = row_ok & !ignored & in_range;
        let picked = load_f32(k, x.row_start(rows) + t, valid, 0.0);
        let row_loss = k.where_(ignored, 0.0, k.where_(in_range, lse - picked, f64::NAN));
        k.store_masked(loss + rows, row_loss, row_ok);
        k.store_masked(lse_out + rows, lse, row_ok);
    })
}

/// Builds the backward kernel over tiles of `rows` rows × `block_size` columns. `in_place` writes
/// the gradient over the logits (one writable `logits` argument); otherwise into `dlogits`.
///
/// Arguments, in order: `logits, target, lse (f32), [dloss (f32, [M]) | reduced (f32, [2])],
/// [dlogits], m: i32, v: i32, stride: i64, [stride_dlogits: i64], ignore_index: i64,
/// [grad: f32]` — `dloss` with [`GradMode::PerRow`], `reduced` and `grad` with [`GradMode::Mean`],
/// `grad` alone with [`GradMode::Scalar`]; `dlogits` and its stride when not in place. Grid
/// `[ceil(M / rows), G, 1]` for any `G ≥ 1`: program `(i, j)` handles the chunks `j, j + G, …` of
/// its rows.
pub fn backward(
    spec: &CrossEntropySpec,
    mode: GradMode,
    in_place: bool,
    block_size: usize,
    rows: usize,
) -> Result<Kernel, LangError> {
    let tag = match mode {
        GradMode::PerRow => "rows",
        GradMode::Scalar => "scalar",
        GradMode::Mean => "mean",
    };
    let place = if in_place { "_inplace" } else { "" };
    build_kernel(&format!("cross_entropy_bwd_{}_{tag}{place}", spec.suffix()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let tile_len = k.meta("ROWS", rows as i64);
        let x = if in_place { k.mut_ptr_arg("logits", spec.logits) } else { k.ptr_arg("logits", spec.logits) };
        let target = k.ptr_arg("target", spec.target);
        let lse_in = k.ptr_arg("lse", DType::F32);
        let dloss = (mode == GradMode::PerRow).then(|| k.ptr_arg("dloss", DType::F32));
        let reduced = (mode == GradMode::Mean).then(|| k.ptr_arg("reduced", DType::F32));
        let out = (!in_place).then(|| k.mut_ptr_arg("dlogits", spec.logits));
        let m = k.scalar_arg("m", DType::I32);
        let v = k.scalar_arg("v", DType::I32);
        let x = RowArg::stride_arg(k, x, "stride");
        let out = match out {
            Some(p) => RowArg::stride_arg(k, p, "stride_dlogits"),
            None => x,
        };
        let ignore = k.scalar_arg("ignore_index", DType::I64);
        let grad = (mode != GradMode::PerRow).then(|| k.scalar_arg("grad", DType::F32));

        let cols = k.arange(0, block);
        let rows = k.program_id(0) * tile_len + k.arange(0, tile_len);
        let row_ok = rows.lt(m);
        let (t, ignored, in_range) = targets(k, target, rows, row_ok, v, ignore);
        let hot_col = k.where_(in_range & !ignored, t, -1).cast(DType::I32);
        let lse = k.load_masked(lse_in + rows, row_ok, 0.0);
        let scale = match (dloss, reduced, grad) {
            (Some(d), _, _) => k.load_masked(d + rows, row_ok, 0.0),
            (_, Some(r), Some(g)) => {
                let count_at = r + k.full(&[tile_len as usize], 1, DType::I32);
                g / k.load_masked(count_at, row_ok, 1.0)
            }
            (_, _, Some(g)) => g,
            _ => unreachable!("every mode has a scale"),
        };
        let scale = k.where_(ignored, 0.0, scale);
        let step = k.num_programs(1) * block;
        k.for_range(k.program_id(1) * block, v, step, &[], |start, _| {
            let tile = Tile::new(rows, row_ok, start + cols, v);
            let p = (load_f32(k, tile.at(x), tile.mask, 0.0) - per_row(lse)).exp();
            let hot = tile.cols.expand_dims(0).equal(per_row(hot_col));
            let g = (p - k.where_(hot, 1.0, 0.0)) * per_row(scale);
            k.store_masked(tile.at(out), g, tile.mask);
            vec![]
        });
    })
}

/// Builds the reduction: one program sums the per-row `loss` (`[M]`, f32) in chunks of
/// `block_size`, counts the rows whose target is not `ignore_index`, and writes
/// `reduced = [sum or sum / count, count]` (f32). `mean` picks the first element.
///
/// Arguments: `loss, target, reduced, m: i32, ignore_index: i64`; grid `[1, 1, 1]`.
pub fn reduce(target_dtype: DType, mean: bool, block_size: usize) -> Result<Kernel, LangError> {
    let what = if mean { "mean" } else { "sum" };
    build_kernel(&format!("cross_entropy_{what}_{}", target_dtype.name()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let loss = k.ptr_arg("loss", DType::F32);
        let target = k.ptr_arg("target", target_dtype);
        let reduced = k.mut_ptr_arg("reduced", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let ignore = k.scalar_arg("ignore_index", DType::I64);
        let lanes = k.arange(0, block);
        let init = [k.zeros(&[block_size], DType::F32), k.zeros(&[block_size], DType::I32)];
        let acc = k.for_range(0, m, block, &init, |start, c| {
            let offs = start + lanes;
            let ok = offs.lt(m);
            let l = k.load_masked(loss + offs, ok, 0.0);
            let counted = k.load_masked(target + offs, ok, ignore).not_equal(ignore);
            vec![c[0] + l, c[1] + k.where_(counted, 1, 0).cast(DType::I32)]
        });
        let sum = acc[0].sum(0);
        let count = acc[1].sum(0).cast(DType::F32);
        let first = if mean { sum / count } else { sum };
        let idx = k.arange(0, 2);
        k.store(reduced + idx, k.where_(idx.equal(0), first, count));
    })
}
