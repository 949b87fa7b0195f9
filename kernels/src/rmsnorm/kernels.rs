//! The RMSNorm kernels, written in the block language.
//!
//! Both work on tiles of `ROWS` rows × `BLOCK_SIZE` columns. When a row fits the block, the tile
//! holds whole rows in registers between the reduction and its use. A row that fits a cluster of
//! `CLUSTER` programs' blocks is held too, split over the cluster: each program holds its
//! `BLOCK_SIZE` columns and the row's sums are combined across the cluster (`cluster_sum`), so
//! x is read once however long the row. Longer rows are walked twice in column chunks of the
//! tile, the second walk from the last chunk back, so the chunks read last in the first walk are
//! read first again while they are still in L2. Forward: one program per tile of held rows, or
//! with `PREFETCH` a persistent grid of `G` programs (clusters) that load their next tile before
//! reducing the current one; chunked rows go to a persistent grid of `G` programs striding over
//! the tiles (few enough rows in flight for L2 to hold them). Backward: a persistent grid of `G`
//! programs (clusters, prefetching or not); with `g = dy · (w + offset)`, `dx = rstd · (g − h · rstd² · mean(g·h))
//! (+ dresidual_out)`; each program sums `dy · h · rstd` (and `dy` for the bias) over its rows
//! into its own row of an f32 partials buffer `[G, N]`, and [`crate::partials::sum_partials`] adds
//! the `G` rows up. No atomics: results are the same run to run.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::RmsNormSpec;
use crate::rowwise::{load_f32, per_row, RowArg, Tile};

/// The compile-time choices of an RMSNorm kernel variant: what a config fixes for rows of a given
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiling {
    /// Columns per step (`BLOCK_SIZE`).
    pub block_size: usize,
    /// Rows per tile (`ROWS`).
    pub rows: usize,
    /// Whether rows are held in registers (`N ≤ cluster × block_size`); else they are walked in
    /// chunks.
    pub row_in_block: bool,
    /// Programs a held row is split over (1 for rows walked in chunks).
    pub cluster: usize,
    /// Held rows only: the programs are persistent and load their next tile before reducing the
    /// current one, so the next tile's loads are in flight through the reduction (and the
    /// cluster's exchange) and the stores.
    pub prefetch: bool,
    /// Held rows only: the tile is staged in shared memory and read there at each use, rather
    /// than held in registers (its copy in flight holds none).
    pub staged: bool,
}

impl Tiling {
    /// Rows held in registers: `block_size` columns × `rows` rows a program, split over `cluster`
    /// programs, no prefetch.
    pub fn held(block_size: usize, rows: usize, cluster: usize) -> Tiling {
        Tiling { block_size, rows, row_in_block: true, cluster, prefetch: false, staged: false }
    }

    /// Rows walked in chunks of `block_size` columns, `rows` rows at a time.
    pub fn chunked(block_size: usize, rows: usize) -> Tiling {
        Tiling { block_size, rows, row_in_block: false, cluster: 1, prefetch: false, staged: false }
    }
}

fn record_meta(k: &KernelBuilder, spec: &RmsNormSpec, tiling: &Tiling) -> (i64, i64) {
    let Tiling { block_size, rows, row_in_block, cluster, prefetch, staged } = *tiling;
    k.cluster(cluster as u32);
    k.meta("CLUSTER", cluster as i64);
    k.meta("PREFETCH", prefetch as i64);
    k.meta("STAGED", staged as i64);
    k.meta("X_BITS", spec.x.bits() as i64);
    k.meta("HAS_WEIGHT", spec.weight.is_some() as i64);
    k.meta("HAS_BIAS", spec.bias.is_some() as i64);
    k.meta("HAS_RESIDUAL", spec.residual.is_some() as i64);
    k.meta("ROW_IN_BLOCK", row_in_block as i64);
    (k.meta("BLOCK_SIZE", block_size as i64), k.meta("ROWS", rows as i64))
}

/// A program's share of a grid whose clusters split each row into `block`-column pieces: its
/// cluster's index (the tile, or the first tile, it handles), the number of clusters, its
/// columns, and whether it stores the per-row values (rank 0). Without clusters: the program, the
/// grid, `cols` and always.
struct Share<'k> {
    cluster: Value<'k>,
    clusters: Value<'k>,
    cols: Value<'k>,
    writes_rows: Option<Value<'k>>,
}

impl<'k> Share<'k> {
    fn new(k: &'k KernelBuilder, cluster: usize, block: i64, cols: Value<'k>) -> Share<'k> {
        if cluster == 1 {
            return Share { cluster: k.program_id(0), clusters: k.num_programs(0), cols, writes_rows: None };
        }
        let rank = k.cluster_rank();
        Share {
            cluster: k.cluster_id(),
            clusters: k.num_clusters(),
            cols: rank * block + cols,
            writes_rows: Some(rank.equal(0)),
        }
    }

    /// The tile of rows `rows` at this program's columns, and which of the rows exist (`< m`).
    fn tile(&self, rows: Value<'k>, m: Value<'k>, n: Value<'k>) -> (Tile<'k>, Value<'k>) {
        let row_ok = rows.lt(m);
        (Tile::new(rows, row_ok, self.cols, n), row_ok)
    }

    /// A row sum of this program's columns, summed over the cluster.
    fn row_sum(&self, v: Value<'k>) -> Value<'k> {
        let s = v.sum(1);
        if self.writes_rows.is_some() {
            s.cluster_sum()
        } else {
            s
        }
    }

    /// `row_ok`, and only in the cluster's first program.
    fn row_store_mask(&self, row_ok: Value<'k>) -> Value<'k> {
        match self.writes_rows {
            Some(first) => row_ok & first,
            None => row_ok,
        }
    }
}

/// Builds the forward kernel over tiles of `rows` rows × `block_size` columns (see [`Tiling`]):
/// held rows (`row_in_block`, when `N ≤ cluster × block_size`) stay in registers between the
/// reduction and their use, split over clusters of `cluster` programs; otherwise each row is
/// walked twice in chunks (`cluster` is then 1). `weight_early` (held rows only) loads
/// `w + offset` and the bias next to x, before the reduction, so their latency hides behind x's;
/// it costs a register per element held, so it pays only while threads hold few elements (else
/// they load after the sum).
///
/// Arguments, in order: `x, [residual], [w], [bias], y, [residual_out], rstd, m: i32, n: i32,
/// stride_x: i64, [stride_residual], stride_y, [stride_residual_out], eps: f32, [offset: f32]`
/// (the bracketed ones only when the spec has them; `offset` comes with a weight); grid
/// `[cluster · ceil(M / rows), 1, 1]` for held rows without prefetch, else `[cluster · G, 1, 1]`
/// with any `G ≥ 1` (persistent programs, or clusters, striding over the tiles).
pub fn forward(spec: &RmsNormSpec, tiling: &Tiling, weight_early: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("rms_norm_fwd_{}", spec.suffix()), |k| forward_body(k, spec, tiling, weight_early))
}

fn forward_body<'k>(k: &'k KernelBuilder, spec: &RmsNormSpec, tiling: &Tiling, weight_early: bool) {
    let (block, tile_len) = record_meta(k, spec, tiling);
    k.meta("WEIGHT_EARLY", weight_early as i64);
    let x = k.ptr_arg("x", spec.x);
    let residual = spec.residual.map(|d| k.ptr_arg("residual", d));
    let w = spec.weight.map(|d| k.ptr_arg("w", d));
    let bias = spec.bias.map(|d| k.ptr_arg("bias", d));
    let y = k.mut_ptr_arg("y", spec.out);
    let residual_out = spec.residual_out.map(|d| k.mut_ptr_arg("residual_out", d));
    let rstd_out = k.mut_ptr_arg("rstd", DType::F32);
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let x = RowArg::stride_arg(k, x, "stride_x");
    let residual = residual.map(|ptr| RowArg::stride_arg(k, ptr, "stride_residual"));
    let y = RowArg::stride_arg(k, y, "stride_y");
    let residual_out = residual_out.map(|ptr| RowArg::stride_arg(k, ptr, "stride_residual_out"));
    let eps = k.scalar_arg("eps", DType::F32);
    let offset = w.map(|_| k.scalar_arg("offset", DType::F32));

    let cols = k.arange(0, block);
    let tile_rows = k.arange(0, tile_len);
    // x (and the residual) at a tile, as stored; h = x (+ residual) from them, in f32.
    // A tile staged in shared memory is read there again after the reduction rather than held
    // in registers through it.
    let staged = tiling.staged;
    let load_inputs = |t: Tile<'k>| -> Vec<Value<'k>> {
        [Some(x), residual].into_iter().flatten().map(|a| load_tile(k, t.at(a), t.mask, staged)).collect()
    };
    let h_of = |inputs: &[Value<'k>]| inputs.iter().map(|v| v.cast(DType::F32)).reduce(|a, b| a + b).unwrap();
    let load_h = |t: Tile<'k>| h_of(&load_inputs(t));
    // `w + offset` and the bias at a tile's columns; `w` read from `w_staged` when staged.
    let load_affine = |t: Tile<'k>, w_staged: Option<Value<'k>>| {
        let scale = w.zip(offset).map(|(w, offset)| {
            w_staged.map_or_else(|| load_f32(k, w + t.cols, t.col_ok, 0.0), |s| s.cast(DType::F32)) + offset
        });
        (scale, bias.map(|b| load_f32(k, b + t.cols, t.col_ok, 0.0)))
    };
    let store_y = |t: Tile<'k>, h: Value<'k>, rstd, (scale, shift): (Option<Value<'k>>, Option<Value<'k>>)| {
        let mut v = h * per_row(rstd);
        if let Some(scale) = scale {
            v = v * scale;
        }
        if let Some(shift) = shift {
            v = v + shift;
        }
        k.store_masked(t.at(y), v, t.mask);
    };
    let store_residual_out = |t: Tile<'k>, h| {
        if let Some(r) = residual_out {
            k.store_masked(t.at(r), h, t.mask);
        }
    };
    let finish_rstd = |rows: Value<'k>, store_ok, sum_sq: Value<'k>| {
        let rstd = (sum_sq / n.cast(DType::F32) + eps).rsqrt();
        k.store_masked(rstd_out + rows, rstd, store_ok);
        rstd
    };
    let tiles = (m + (tile_len - 1)) / tile_len;
    if tiling.row_in_block {
        let share = Share::new(k, tiling.cluster, block, cols);
        let tile = |i: Value<'k>| share.tile(i * tile_len + tile_rows, m, n);
        // Persistent programs of a row split over a cluster, a row a tile: the program's columns
        // are the same in every tile, so its weight (up to 64 KiB) is staged in shared memory
        // once and read there after each row's exchange, rather than loaded from L2 there (its
        // latency then adds to every row's) or held in registers through the exchange (which
        // would spill).
        let w_staged = staged_weight(k, w.zip(spec.weight), tiling, share.cols, n, tiling.prefetch && !weight_early);
        // `affine`: `w + offset` and the bias when loaded already (else loaded here, before the
        // reduction when `weight_early`).
        let normalize = |(t, row_ok): (Tile<'k>, Value<'k>), inputs: &[Value<'k>], affine: Option<_>| {
            let early = affine.or_else(|| weight_early.then(|| load_affine(t, w_staged)));
            let h = h_of(inputs);
            store_residual_out(t, h);
            let rstd = finish_rstd(t.rows, share.row_store_mask(row_ok), share.row_sum(h * h));
            let h = if staged { h_of(inputs) } else { h };
            store_y(t, h, rstd, early.unwrap_or_else(|| load_affine(t, w_staged)));
        };
        if !tiling.prefetch {
            let at = tile(share.cluster);
            normalize(at, &load_inputs(at.0), None);
            return;
        }
        // Persistent: each iteration loads the next tile's inputs (masked off past the last
        // tile) before it reduces the current one, and hands them on. The program's columns are
        // the same in every tile: with `weight_early` the weight and bias are loaded once.
        let first = tile(share.cluster).0;
        let affine = weight_early.then(|| load_affine(first, None));
        k.for_range(share.cluster, tiles, share.clusters, &load_inputs(first), |i, current| {
            let next = load_inputs(tile(i + share.clusters).0);
            normalize(tile(i), current, affine);
            next
        });
        return;
    }
    k.for_range(k.program_id(0), tiles, k.num_programs(0), &[], |i, _| {
        let rows = i * tile_len + tile_rows;
        let row_ok = rows.lt(m);
        let acc = k.zeros(&[tile_len as usize, tiling.block_size], DType::F32);
        let acc = k.for_range(0, n, block, &[acc], |start, c| {
            let t = Tile::new(rows, row_ok, start + cols, n);
            let h = load_h(t);
            store_residual_out(t, h);
            vec![c[0] + h * h]
        });
        let rstd = finish_rstd(rows, row_ok, acc[0].sum(1));
        walk_back(k, n, block, |start| {
            let t = Tile::new(rows, row_ok, start + cols, n);
            store_y(t, load_h(t), rstd, load_affine(t, None));
        });
        vec![]
    });
}

/// The values at block pointer `ptrs` where `mask` holds (zeros elsewhere): staged through shared
/// memory (read there at each use, [`Tiling::staged`]) or loaded into registers.
fn load_tile<'k>(k: &'k KernelBuilder, ptrs: Value<'k>, mask: Value<'k>, staged: bool) -> Value<'k> {
    if staged {
        k.load_staged(ptrs, mask)
    } else {
        k.load_masked(ptrs, mask, 0.0)
    }
}

/// The weight `w` (of dtype `d`) at a program's `cols`, staged in shared memory once and read
/// there at each use, when `wanted` and rows are split over a cluster a row a tile (a program's
/// columns are the same in every tile) and its slice is at most 64 KiB; else `None`.
fn staged_weight<'k>(
    k: &'k KernelBuilder,
    w: Option<(Value<'k>, DType)>,
    tiling: &Tiling,
    cols: Value<'k>,
    n: Value<'k>,
    wanted: bool,
) -> Option<Value<'k>> {
    let (w, d) = w?;
    let split = tiling.row_in_block && tiling.cluster > 1 && tiling.rows == 1;
    (wanted && split && tiling.block_size * d.size_bytes() <= 64 << 10).then(|| k.load_staged(w + cols, cols.lt(n)))
}

/// Runs `body` on the starts of the `block`-column chunks of a row of `n` columns, last chunk
/// first: the second walk of a chunked row, which finds the chunks the first walk read last still
/// in L2.
fn walk_back<'k>(k: &'k KernelBuilder, n: Value<'k>, block: i64, body: impl FnOnce(Value<'k>)) {
    let last = (n - 1) / block * block;
    k.for_range(0, n, block, &[], |i, _| {
        body(last - i);
        vec![]
    });
}

/// Builds the backward kernel over tiles of `rows` rows × `block_size` columns (see [`Tiling`]):
/// held rows (`row_in_block`, when `N ≤ cluster × block_size`) stay in registers, split over
/// clusters of `cluster` programs, and the partial sums stay a tile until the end; otherwise each
/// tile of rows is walked twice in chunks and its column sums are added to the program's
/// partials row chunk by chunk. `has_dresidual_out` adds the incoming gradient of `residual_out`
/// to `dx` (the residual stream's gradient).
///
/// Arguments, in order: `x (h, in spec.saved()), [w], dy, rstd, [dresidual_out], dx, [dresidual],
/// [dw_partial], [db_partial], m: i32, n: i32, stride_x: i64, stride_dy, [stride_dresidual_out],
/// stride_dx, [stride_dresidual], [offset: f32]`; grid `[cluster · G, 1, 1]` with any `G ≥ 1`.
/// The partials buffers are `[G, N]` f32 (a row per cluster).
pub fn backward(spec: &RmsNormSpec, has_dresidual_out: bool, tiling: &Tiling) -> Result<Kernel, LangError> {
    let dro_tag = if has_dresidual_out { "_dro" } else { "" };
    build_kernel(&format!("rms_norm_bwd_{}{dro_tag}", spec.suffix()), |k| {
        backward_body(k, spec, has_dresidual_out, tiling)
    })
}

fn backward_body<'k>(k: &'k KernelBuilder, spec: &RmsNormSpec, has_dresidual_out: bool, tiling: &Tiling) {
    let (block, tile_len) = record_meta(k, spec, tiling);
    let (block_size, cluster) = (tiling.block_size, tiling.cluster);
    k.meta("HAS_DRESIDUAL_OUT", has_dresidual_out as i64);
    let x = k.ptr_arg("x", spec.saved());
    let w = spec.weight.map(|d| k.ptr_arg("w", d));
    let dy = k.ptr_arg("dy", spec.out);
    let rstd_in = k.ptr_arg("rstd", DType::F32);
    let dro = if has_dresidual_out { Some(k.ptr_arg("dresidual_out", spec.saved())) } else { None };
    let dx = k.mut_ptr_arg("dx", spec.x);
    let dres = spec.residual.map(|d| k.mut_ptr_arg("dresidual", d));
    let dw_partial = spec.weight.map(|_| k.mut_ptr_arg("dw_partial", DType::F32));
    let db_partial = spec.bias.map(|_| k.mut_ptr_arg("db_partial", DType::F32));
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let x = RowArg::stride_arg(k, x, "stride_x");
    let dy = RowArg::stride_arg(k, dy, "stride_dy");
    let dro = dro.map(|ptr| RowArg::stride_arg(k, ptr, "stride_dresidual_out"));
    let dx = RowArg::stride_arg(k, dx, "stride_dx");
    let dres = dres.map(|ptr| RowArg::stride_arg(k, ptr, "stride_dresidual"));
    let offset = w.map(|_| k.scalar_arg("offset", DType::F32));

    let share = Share::new(k, cluster, block, k.arange(0, block));
    let (pid, programs, cols) = (share.cluster, share.clusters, share.cols);
    let tile_rows = k.arange(0, tile_len);
    let tiles = (m + (tile_len - 1)) / tile_len;
    let n_f = n.cast(DType::F32);
    // This program's rows of the partials.
    let partials: Vec<Value> = [dw_partial, db_partial]
        .into_iter()
        .flatten()
        .map(|ptr| RowArg { ptr, stride: n.cast(DType::I64) }.row_start(pid))
        .collect();
    // Rows split over a cluster, a row a tile: a program's columns are the same in every tile, so
    // up to 64 KiB of its weight is staged in shared memory once, read there at each use rather
    // than held in registers or loaded again each tile (H100, bf16: 1024 × 262144 770 → 720 µs,
    // 4096 × 65536 589 → 568, 16384 × 32768 1129 → 1097). Not for whole rows in one program:
    // there LLVM hoists the reads out of the loop, so the weight stays in registers all along
    // (32768 × 4096 f32, tiles of 2 rows: 182 registers, 543 → 634 µs; 32768 × 256 bf16 29.0 →
    // 33.3 µs).
    let w_staged = staged_weight(k, w.zip(spec.weight), tiling, cols, n, true);
    let g_of = |t: Tile<'k>, dyv| match (w, offset) {
        (Some(w), Some(offset)) => {
            let wv = match w_staged {
                Some(s) => s.cast(DType::F32),
                None => load_f32(k, w + t.cols, t.col_ok, 0.0),
            };
            dyv * (wv + offset)
        }
        _ => dyv,
    };
    // What each element adds to the partials: dy·h·rstd for dw, dy for db.
    let contributions = |dyv: Value<'k>, xv, rstd| {
        let mut c = vec![];
        if w.is_some() {
            c.push(dyv * xv * per_row(rstd));
        }
        if db_partial.is_some() {
            c.push(dyv);
        }
        c
    };
    let store_dx = |t: Tile<'k>, g: Value<'k>, xv, c_row, rstd| {
        let mut dxv = (g - xv * per_row(c_row)) * per_row(rstd);
        if let Some(dro) = dro {
            dxv = dxv + load_f32(k, t.at(dro), t.mask, 0.0);
        }
        k.store_masked(t.at(dx), dxv, t.mask);
        if let Some(dres) = dres {
            k.store_masked(t.at(dres), dxv, t.mask);
        }
    };
    // A tile's rstd, loaded at the tile's start so that its latency hides behind the row loads'.
    let load_rstd = |rows: Value<'k>, row_ok| k.load_masked(rstd_in + rows, row_ok, 0.0);
    // mean(g·h)·rstd² of a tile's rows, from Σ g·h.
    let mean_gh = |rstd: Value<'k>, sum_gh: Value<'k>| sum_gh * rstd * rstd / n_f;

    if tiling.row_in_block {
        let weight_again = block_size >= 16384 && (2..=4).contains(&cluster);
        let tile = |i: Value<'k>| share.tile(i * tile_len + tile_rows, m, n);
        // A tile staged in shared memory is read there again after the reduction rather than
        // held in registers through it.
        let staged = tiling.staged;
        // A tile's x and dy as stored, and its rstd.
        let load_inputs = |(t, row_ok): (Tile<'k>, Value<'k>)| {
            vec![
                load_tile(k, t.at(x), t.mask, staged),
                load_tile(k, t.at(dy), t.mask, staged),
                load_rstd(t.rows, row_ok),
            ]
        };
        let mut init: Vec<Value> =
            partials.iter().map(|_| k.zeros(&[tile_len as usize, block_size], DType::F32)).collect();
        if tiling.prefetch {
            init.extend(load_inputs(tile(pid)));
        }
        let carried = k.for_range(pid, tiles, programs, &init, |i, carried| {
            let (acc, current) = carried.split_at(partials.len());
            let at = tile(i);
            let t = at.0;
            // With prefetch, the next tile's loads (masked off past the last tile) go out before
            // this tile's reduction.
            let (inputs, next) = if tiling.prefetch {
                (current.to_vec(), load_inputs(tile(i + programs)))
            } else {
                (load_inputs(at), vec![])
            };
            let (xv, dyv, rstd) = (inputs[0].cast(DType::F32), inputs[1].cast(DType::F32), inputs[2]);
            let g = g_of(t, dyv);
            let c_row = mean_gh(rstd, share.row_sum(g * xv));
            // A staged tile is read again after the reduction. Blocks of 16384 columns split over
            // 2 or 4 programs compute g again too, reading w again (from shared memory, or L1),
            // rather than hold it through the exchange: a register less per element (ptxas spills
            // 20 bytes instead of 88; on the H100, 16384 × 32768 bf16 1237 → 1123 µs, 4096 ×
            // 65536 680 → 653; over 16 programs it measured slower, 740 → 836 µs at 1024 ×
            // 262144, as did smaller blocks).
            let (g, xv, dyv) = if staged {
                let (xv, dyv) = (inputs[0].cast(DType::F32), inputs[1].cast(DType::F32));
                (g_of(t, dyv), xv, dyv)
            } else if weight_again {
                (g_of(t, dyv), xv, dyv)
            } else {
                (g, xv, dyv)
            };
            store_dx(t, g, xv, c_row, rstd);
            let mut out: Vec<Value> = acc.iter().zip(contributions(dyv, xv, rstd)).map(|(a, c)| *a + c).collect();
            out.extend(next);
            out
        });
        // The partials' sums may start as the programs finish their rows.
        k.release_next_launch();
        let sums = &carried[..partials.len()];
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
            let rstd = load_rstd(rows, row_ok);
            let acc = k.zeros(&[tile_len as usize, block_size], DType::F32);
            let acc = k.for_range(0, n, block, &[acc], |start, c| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                vec![c[0] + g_of(t, load_f32(k, t.at(dy), t.mask, 0.0)) * load_f32(k, t.at(x), t.mask, 0.0)]
            });
            let c_row = mean_gh(rstd, acc[0].sum(1));
            walk_back(k, n, block, |start| {
                let t = Tile::new(rows, row_ok, start + cols, n);
                let xv = load_f32(k, t.at(x), t.mask, 0.0);
                let dyv = load_f32(k, t.at(dy), t.mask, 0.0);
                store_dx(t, g_of(t, dyv), xv, c_row, rstd);
                // The tile's column sums, added to the program's partials once per chunk.
                for (p, c) in partials.iter().zip(contributions(dyv, xv, rstd)) {
                    let prev = k.load_masked(*p + t.cols, t.col_ok, 0.0);
                    k.store_masked(*p + t.cols, prev + c.sum(0), t.col_ok);
                }
            });
            vec![]
        });
        k.release_next_launch();
    }
}
