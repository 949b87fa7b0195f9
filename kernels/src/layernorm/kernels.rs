//! The LayerNorm kernels, written in the block language.
//!
//! Both work on tiles of `ROWS` rows × `BLOCK_SIZE` columns. When a row fits the block, the tile is
//! held in registers: the forward takes the mean, then the variance of the centred tile (two exact
//! passes over registers). Longer rows are walked in column chunks: the forward sums `x − x₀` and
//! `(x − x₀)²` per lane (shifted by each row's first element `x₀`, so a large mean does not cancel
//! the variance away), then walks the row again to write `y`.
//!
//! Backward: a persistent grid of `G` programs striding over tiles. With `x̂ = (x − mean) · rstd`
//! and `g = dy · w`: `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))`; each program sums `dy · x̂` (for
//! `dw`) and `dy` (for `dbias`) over its rows into its own row of an f32 partials buffer `[G, N]`,
//! and [`crate::partials::sum_partials`] adds the `G` rows up in a fixed order (no atomics).

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::LayerNormSpec;
use crate::rowwise::{load_f32, per_row, RowArg, Tile};

fn record_meta(
    k: &KernelBuilder,
    spec: &LayerNormSpec,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) -> (i64, i64) {
    k.meta("X_BITS", spec.x.bits() as i64);
    k.meta("HAS_WEIGHT", spec.weight.is_some() as i64);
    k.meta("HAS_BIAS", spec.bias.is_some() as i64);
    k.meta("ROW_IN_BLOCK", row_in_block as i64);
    (k.meta("BLOCK_SIZE", block_size as i64), k.meta("ROWS", rows as i64))
}

/// Builds the forward kernel over tiles of `rows` rows × `block_size` columns; `row_in_block`
/// (when `N ≤ block_size`) keeps the tile in registers, otherwise each row is walked twice in
/// chunks.
///
/// Arguments, in order: `x, [w], [bias], y, mean, rstd, m: i32, n: i32, stride_x: i64,
/// stride_y: i64, eps: f32` (the bracketed ones only when the spec has them); grid
/// `[ceil(M / rows), 1, 1]`.
pub fn forward(spec: &LayerNormSpec, block_size: usize, rows: usize, row_in_block: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("layer_norm_fwd_{}", spec.suffix()), |k| {
        forward_body(k, spec, block_size, rows, row_in_block)
    })
}

fn forward_body<'k>(k: &'k KernelBuilder, spec: &LayerNormSpec, block_size: usize, rows: usize, row_in_block: bool) {
    let (block, tile_len) = record_meta(k, spec, block_size, rows, row_in_block);
    let x = k.ptr_arg("x", spec.x);
    let w = spec.weight.map(|d| k.ptr_arg("w", d));
    let bias = spec.bias.map(|d| k.ptr_arg("bias", d));
    let y = k.mut_ptr_arg("y", spec.out);
    let mean_out = k.mut_ptr_arg("mean", DType::F32);
    let rstd_out = k.mut_ptr_arg("rstd", DType::F32);
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let x = RowArg::stride_arg(k, x, "stride_x");
    let y = RowArg::stride_arg(k, y, "stride_y");
    let eps = k.scalar_arg("eps", DType::F32);

    let cols = k.arange(0, block);
    let rows = k.program_id(0) * tile_len + k.arange(0, tile_len);
    let row_ok = rows.lt(m);
    let n_f = n.cast(DType::F32);
    // y = (x − mean) · rstd (· w) (+ b), from the centred tile.
    let store_y = |t: Tile<'k>, xc: Value<'k>, rstd| {
        let mut v = xc * per_row(rstd);
        if let Some(w) = w {
            v = v * load_f32(k, w + t.cols, t.col_ok, 0.0);
        }
        if let Some(b) = bias {
            v = v + load_f32(k, b + t.cols, t.col_ok, 0.0);
        }
        k.store_masked(t.at(y), v, t.mask);
    };
    let finish = |mean: Value<'k>, var: Value<'k>| {
        let rstd = (var + eps).rsqrt();
        k.store_masked(mean_out + rows, mean, row_ok);
        k.store_masked(rstd_out + rows, rstd, row_ok);
        rstd
    };
    if row_in_block {
        let t = Tile::new(rows, row_ok, cols, n);
        let xv = load_f32(k, t.at(x), t.mask, 0.0);
        let mean = xv.sum(1) / n_f;
        let xc = k.where_(t.mask, xv - per_row(mean), 0.0);
        let rstd = finish(mean, (xc * xc).sum(1) / n_f);
        store_y(t, xc, rstd);
    } else {
        // Shifted sums: x₀ is each row's first element.
        let shift = load_f32(k, x.row_start(rows), row_ok, 0.0);
        let zero = k.zeros(&[tile_len as usize, block_size], DType::F32);
        let acc = k.for_range(0, n, block, &[zero, zero], |start, c| {
            let t = Tile::new(rows, row_ok, start + cols, n);
            let d = k.where_(t.mask, load_f32(k, t.at(x), t.mask, 0.0) - per_row(shift), 0.0);
            vec![c[0] + d, c[1] + d * d]
        });
        let dmean = acc[0].sum(1) / n_f;
        let var = (acc[1].sum(1) / n_f - dmean * dmean).maximum(0.0);
        let mean = shift + dmean;
        let rstd = finish(mean, var);
        k.for_range(0, n, block, &[], |start, _| {
            let t = Tile::new(rows, row_ok, start + cols, n);
            store_y(t, load_f32(k, t.at(x), t.mask, 0.0) - per_row(mean), rstd);
            vec![]
        });
    }
}

/// Builds the backward kernel over tiles of `rows` rows × `block_size` columns; `row_in_block`
/// (when `N ≤ block_size`) holds the tile in registers and keeps the partial sums as a tile until
/// the end, otherwise each tile of rows is walked twice in chunks and its column sums are added to
/// the program's partials row chunk by chunk.
///
/// Arguments, in order: `x, [w], dy, mean, rstd, dx, [dw_partial], [db_partial], m: i32, n: i32,
/// stride_x: i64, stride_dy: i64, stride_dx: i64`; grid `[G, 1, 1]` with any `G ≥ 1`. The partials
/// buffers are `[G, N]` f32.
pub fn backward(spec: &LayerNormSpec, block_size: usize, rows: usize, row_in_block: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("layer_norm_bwd_{}", spec.suffix()), |k| {
        backward_body(k, spec, block_size, rows, row_in_block)
    })
}

fn backward_body<'k>(k: &'k KernelBuilder, spec: &LayerNormSpec, block_size: usize, rows: usize, row_in_block: bool) {
    let (block, tile_len) = record_meta(k, spec, block_size, rows, row_in_block);
    let x = k.ptr_arg("x", spec.x);
    let w = spec.weight.map(|d| k.ptr_arg("w", d));
    let dy = k.ptr_arg("dy", spec.out);
    let mean_in = k.ptr_arg("mean", DType::F32);
    let rstd_in = k.ptr_arg("rstd", DType::F32);
    let dx = k.mut_ptr_arg("dx", spec.x);
    let dw_partial = spec.weight.map(|_| k.mut_ptr_arg("dw_partial", DType::F32));
    let db_partial = spec.bias.map(|_| k.mut_ptr_arg("db_partial", DType::F32));
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let x = RowArg::stride_arg(k, x, "stride_x");
    let dy = RowArg::stride_arg(k, dy, "stride_dy");
    let dx = RowArg::stride_arg(k, dx, "stride_dx");

    let pid = k.program_id(0);
    let programs = k.num_programs(0);
    let cols = k.arange(0, block);
    let tile_rows = k.arange(0, tile_len);
    let tiles = (m + (tile_len - 1)) / tile_len;
    let n_f = n.cast(DType::F32);
    // This program's rows of the partials.
    let partials: Vec<Value> =
        [dw_partial, db_partial].into_iter().flatten().map(|p| p + pid.cast(DType::I64) * n.cast(DType::I64)).collect();
    let g_of = |t: Tile<'k>, dyv| match w {
        Some(w) => dyv * load_f32(k, w + t.cols, t.col_ok, 0.0),
        None => dyv,
    };
    // x̂ of a tile (0 outside it), from the rows' mean and rstd.
    let xhat_of = |t: Tile<'k>, mean, rstd| {
        k.where_(t.mask, (load_f32(k, t.at(x), t.mask, 0.0) - per_row(mean)) * per_row(rstd), 0.0)
    };
    // What each element adds to the partials: dy·x̂ for dw, dy for db.
    let contributions = |dyv: Value<'k>, xhat: Value<'k>| {
        let mut c = vec![];
        if w.is_some() {
            c.push(dyv * xhat);
        }
        if db_partial.is_some() {
            c.push(dyv);
        }
        c
    };
    // dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)).
    let store_dx = |t: Tile<'k>, g: Value<'k>, xhat: Value<'k>, c_gx: Value<'k>, c_g: Value<'k>, rstd| {
        let dxv = (g - (xhat * per_row(c_gx) + per_row(c_g))) * per_row(rstd);
        k.store_masked(t.at(dx), dxv, t.mask);
    };
    let row_stats = |rows: Value<'k>, row_ok| {
        (k.load_masked(mean_in + rows, row_ok, 0.0), k.load_masked(rstd_in + rows, row_ok, 0.0))
    };

    if row_in_block {
        let zeros: Vec<Value> =
            partials.iter().map(|_| k.zeros(&[tile_len as usize, block_size], DType::F32)).collect();
        let sums = k.for_range(pid, tiles, programs, &zeros, |i, acc| {
            let rows = i * tile_len + tile_rows;
            let row_ok = rows.lt(m);
            let t = Tile::new(rows, row_ok, cols, n);
            let (mean, rstd) = row_stats(rows, row_ok);
            let xhat = xhat_of(t, mean, rstd);
            let dyv = load_f32(k, t.at(dy), t.mask, 0.0);
            let g = g_of(t, dyv);
            store_dx(t, g, xhat, (g * xhat).sum(1) / n_f, g.sum(1) / n_f, rstd);
            acc.iter().zip(contributions(dyv, xhat)).map(|(a, c)| *a + c).collect()
        });
        // The partials' sums may start as the programs finish their rows.
        k.release_next_launch();
        for (p, s) in partials.iter().zip(sums) {
            k.store_masked(*p + cols, s.sum(0), cols.lt(n));
        }
    } else {
        for p in &partials {
            k.for_range(0, n, block, &[], |start, _| {
                let offs = start + cols;
                k.store_masked(*p + offs, 0.0, offs.lt(n));
                vec![]
            });
        }
        k.for_range(pid, tiles, programs, &[], |i, _| {
            let rows = i * tile_len + tile_rows;
            let row_ok = rows.lt(m);
            let (mean, rstd) = row_stats(rows, row_ok);
            let zero = k.zeros(&[tile_len as usize, block_size], DType::F32);
            let acc = k.for_range(0, n, block, &[zero, zero], |start, c| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let g = g_of(t, load_f32(k, t.at(dy), t.mask, 0.0));
                vec![c[0] + g * xhat_of(t, mean, rstd), c[1] + g]
            });
            let (c_gx, c_g) = (acc[0].sum(1) / n_f, acc[1].sum(1) / n_f);
            k.for_range(0, n, block, &[], |start, _| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let xhat = xhat_of(t, mean, rstd);
                let dyv = load_f32(k, t.at(dy), t.mask, 0.0);
                store_dx(t, g_of(t, dyv), xhat, c_gx, c_g, rstd);
                // The tile's column sums, added to the program's partials once per chunk.
                for (p, c) in partials.iter().zip(contributions(dyv, xhat)) {
                    let prev = k.load_masked(*p + t.cols, t.col_ok, 0.0);
                    k.store_masked(*p + t.cols, prev + c.sum(0), t.col_ok);
                }
                vec![]
            });
            vec![]
        });
        k.release_next_launch();
    }
}
