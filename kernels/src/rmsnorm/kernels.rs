//! The RMSNorm kernels, written in the block language.
//!
//! Forward: when the row fits the block, each program normalizes a tile of `ROWS` rows held in
//! registers (`[ROWS, BLOCK_SIZE]`, one reduction per row); longer rows take one program each and
//! are walked twice in chunks. Backward: a persistent grid of `G` programs striding over tiles of
//! rows (or over rows, walked in chunks): with `g = dy · (w + offset)`,
//! `dx = rstd · (g − h · rstd² · mean(g·h)) (+ dresidual_out)`; each program sums `dy · h · rstd`
//! (and `dy` for the bias) over its rows into its own row of an f32 partials buffer `[G, N]`, and
//! [`sum_partials`] adds the `G` rows up. No atomics: results are the same run to run.

use tritonite_lang::{build_kernel, DType, Kernel, KernelBuilder, LangError, Value};

use super::RmsNormSpec;

fn record_meta(
    k: &KernelBuilder,
    spec: &RmsNormSpec,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) -> (i64, i64) {
    k.meta("X_BITS", spec.x.bits() as i64);
    k.meta("HAS_WEIGHT", spec.weight.is_some() as i64);
    k.meta("HAS_BIAS", spec.bias.is_some() as i64);
    k.meta("HAS_RESIDUAL", spec.residual.is_some() as i64);
    k.meta("ROW_IN_BLOCK", row_in_block as i64);
    (k.meta("BLOCK_SIZE", block_size as i64), k.meta("ROWS", if row_in_block { rows as i64 } else { 1 }))
}

/// The pointer to the first element of row `row`: `base + row * stride`, in 64-bit offsets.
fn row_ptr<'k>(base: Value<'k>, row: Value<'k>, stride: Value<'k>) -> Value<'k> {
    base + row.cast(DType::I64) * stride
}

/// `p` where `mask`, else 0, in f32.
fn load_f32<'k>(k: &'k KernelBuilder, p: Value<'k>, mask: Value<'k>) -> Value<'k> {
    k.load_masked(p, mask, 0.0).cast(DType::F32)
}

/// `v · s`, or `v` without a factor.
fn times<'k>(v: Value<'k>, s: Option<Value<'k>>) -> Value<'k> {
    match s {
        Some(s) => v * s,
        None => v,
    }
}

/// A row-major operand: its base pointer and row stride.
#[derive(Clone, Copy)]
struct RowArg<'k> {
    ptr: Value<'k>,
    stride: Value<'k>,
}

impl<'k> RowArg<'k> {
    fn row(self, row: Value<'k>) -> Value<'k> {
        row_ptr(self.ptr, row, self.stride)
    }
}

/// The elements one step touches: a `[ROWS, BLOCK]` tile of whole rows, or a chunk of one row.
#[derive(Clone, Copy)]
enum Step<'k> {
    /// Rows `rows` (a `[ROWS]` block), columns `cols`.
    Tile { rows: Value<'k>, cols: Value<'k> },
    /// Row `row` (a scalar), columns `cols`.
    Chunk { row: Value<'k>, cols: Value<'k> },
}

impl<'k> Step<'k> {
    /// The pointers to this step's elements of `a`.
    fn at(self, a: RowArg<'k>) -> Value<'k> {
        match self {
            Step::Tile { rows, cols } => {
                a.ptr + ((rows.cast(DType::I64) * a.stride).expand_dims(1) + cols.expand_dims(0))
            }
            Step::Chunk { row, cols } => a.row(row) + cols,
        }
    }

    /// A per-row value (`[ROWS]` or a scalar) against this step's elements.
    fn per_row(self, v: Value<'k>) -> Value<'k> {
        match self {
            Step::Tile { .. } => v.expand_dims(1),
            Step::Chunk { .. } => v,
        }
    }
}

/// Builds the forward kernel. `row_in_block` (when `N ≤ block_size`) keeps tiles of `rows` rows
/// in registers between the reduction and its use; otherwise each row is walked twice in chunks
/// (and `rows` is ignored).
///
/// Arguments, in order: `x, [residual], [w], [bias], y, [residual_out], rstd, m: i32, n: i32,
/// stride_x: i64, [stride_residual], stride_y, [stride_residual_out], eps: f32, [offset: f32]`
/// (the bracketed ones only when the spec has them; `offset` comes with a weight); grid
/// `[ceil(M / rows), 1, 1]` (`[M, 1, 1]` for chunked rows).
pub fn forward(spec: &RmsNormSpec, block_size: usize, rows: usize, row_in_block: bool) -> Result<Kernel, LangError> {
    build_kernel(&format!("rms_norm_fwd_{}", spec.suffix()), |k| forward_body(k, spec, block_size, rows, row_in_block))
}

fn forward_body<'k>(k: &'k KernelBuilder, spec: &RmsNormSpec, block_size: usize, rows: usize, row_in_block: bool) {
    {
        let (block, rows) = record_meta(k, spec, block_size, rows, row_in_block);
        let x = k.ptr_arg("x", spec.x);
        let residual = spec.residual.map(|d| k.ptr_arg("residual", d));
        let w = spec.weight.map(|d| k.ptr_arg("w", d));
        let bias = spec.bias.map(|d| k.ptr_arg("bias", d));
        let y = k.mut_ptr_arg("y", spec.out);
        let residual_out = spec.residual_out.map(|d| k.mut_ptr_arg("residual_out", d));
        let rstd_out = k.mut_ptr_arg("rstd", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let x = RowArg { ptr: x, stride: k.scalar_arg("stride_x", DType::I64) };
        let residual = residual.map(|ptr| RowArg { ptr, stride: k.scalar_arg("stride_residual", DType::I64) });
        let y = RowArg { ptr: y, stride: k.scalar_arg("stride_y", DType::I64) };
        let residual_out =
            residual_out.map(|ptr| RowArg { ptr, stride: k.scalar_arg("stride_residual_out", DType::I64) });
        let eps = k.scalar_arg("eps", DType::F32);
        let offset = w.map(|_| k.scalar_arg("offset", DType::F32));

        let cols = k.arange(0, block);
        // h = x (+ residual), in f32.
        let load_h = |at: Step<'k>, mask| {
            let h = load_f32(k, at.at(x), mask);
            match residual {
                Some(r) => h + load_f32(k, at.at(r), mask),
                None => h,
            }
        };
        let store_y = |at: Step<'k>, h, offs, col_ok, mask, rstd| {
            let mut v = h * at.per_row(rstd);
            if let (Some(w), Some(offset)) = (w, offset) {
                v = v * (load_f32(k, w + offs, col_ok) + offset);
            }
            if let Some(b) = bias {
                v = v + load_f32(k, b + offs, col_ok);
            }
            k.store_masked(at.at(y), v, mask);
        };
        let store_residual_out = |at: Step<'k>, h, mask| {
            if let Some(r) = residual_out {
                k.store_masked(at.at(r), h, mask);
            }
        };
        let rstd_of = |sum_sq: Value<'k>| (sum_sq / n.cast(DType::F32) + eps).rsqrt();
        if row_in_block {
            let rows = k.program_id(0) * rows + k.arange(0, rows);
            let (row_ok, col_ok) = (rows.lt(m), cols.lt(n));
            let mask = row_ok.expand_dims(1) & col_ok.expand_dims(0);
            let at = Step::Tile { rows, cols };
            let h = load_h(at, mask);
            store_residual_out(at, h, mask);
            let rstd = rstd_of((h * h).sum(1));
            k.store_masked(rstd_out + rows, rstd, row_ok);
            store_y(at, h, cols, col_ok, mask, rstd);
        } else {
            let row = k.program_id(0);
            let acc = k.zeros(&[block_size], DType::F32);
            let acc = k.for_range(0, n, block, &[acc], |start, c| {
                let offs = start + cols;
                let mask = offs.lt(n);
                let h = load_h(Step::Chunk { row, cols: offs }, mask);
                store_residual_out(Step::Chunk { row, cols: offs }, h, mask);
                vec![c[0] + h * h]
            });
            let rstd = rstd_of(acc[0].sum(0));
            k.store(rstd_out + row, rstd);
            k.for_range(0, n, block, &[], |start, _| {
                let offs = start + cols;
                let mask = offs.lt(n);
                let at = Step::Chunk { row, cols: offs };
                store_y(at, load_h(at, mask), offs, mask, mask, rstd);
                vec![]
            });
        }
    }
}

/// Builds the backward kernel. `row_in_block` (when `N ≤ block_size`) takes tiles of `rows` rows
/// held in registers, with the partial sums kept as a `[rows, block]` tile until the end;
/// otherwise each row is walked in chunks. `has_dresidual_out` adds the incoming gradient of
/// `residual_out` to `dx` (the residual stream's gradient).
///
/// Arguments, in order: `x (h, in spec.saved()), [w], dy, rstd, [dresidual_out], dx, [dresidual],
/// [dw_partial], [db_partial], m: i32, n: i32, stride_x: i64, stride_dy, [stride_dresidual_out],
/// stride_dx, [stride_dresidual], [offset: f32]`; grid `[G, 1, 1]` with any `G ≥ 1`. The partials
/// buffers are `[G, N]` f32.
pub fn backward(
    spec: &RmsNormSpec,
    has_dresidual_out: bool,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) -> Result<Kernel, LangError> {
    let dro_tag = if has_dresidual_out { "_dro" } else { "" };
    build_kernel(&format!("rms_norm_bwd_{}{dro_tag}", spec.suffix()), |k| {
        backward_body(k, spec, has_dresidual_out, block_size, rows, row_in_block)
    })
}

fn backward_body<'k>(
    k: &'k KernelBuilder,
    spec: &RmsNormSpec,
    has_dresidual_out: bool,
    block_size: usize,
    rows: usize,
    row_in_block: bool,
) {
    {
        let (block, rows) = record_meta(k, spec, block_size, rows, row_in_block);
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
        let x = RowArg { ptr: x, stride: k.scalar_arg("stride_x", DType::I64) };
        let dy = RowArg { ptr: dy, stride: k.scalar_arg("stride_dy", DType::I64) };
        let dro = dro.map(|ptr| RowArg { ptr, stride: k.scalar_arg("stride_dresidual_out", DType::I64) });
        let dx = RowArg { ptr: dx, stride: k.scalar_arg("stride_dx", DType::I64) };
        let dres = dres.map(|ptr| RowArg { ptr, stride: k.scalar_arg("stride_dresidual", DType::I64) });
        let offset = w.map(|_| k.scalar_arg("offset", DType::F32));

        let pid = k.program_id(0);
        let programs = k.num_programs(0);
        let cols = k.arange(0, block);
        let n_f = n.cast(DType::F32);
        // This program's rows of the partials.
        let partials: Vec<Value> =
            [dw_partial, db_partial].into_iter().flatten().map(|p| row_ptr(p, pid, n.cast(DType::I64))).collect();
        let scale = |offs, mask| match (w, offset) {
            (Some(w), Some(offset)) => Some(load_f32(k, w + offs, mask) + offset),
            _ => None,
        };
        // What each row adds to the partials: dy·h·rstd for dw, dy for db.
        let contributions = |dyv, xv, rstd| {
            let mut c = vec![];
            if w.is_some() {
                c.push(dyv * xv * rstd);
            }
            if db_partial.is_some() {
                c.push(dyv);
            }
            c
        };
        let store_dx = |at: Step<'k>, mask, g: Value<'k>, xv, c_row, rstd| {
            let mut dxv = (g - xv * at.per_row(c_row)) * at.per_row(rstd);
            if let Some(dro) = dro {
                dxv = dxv + load_f32(k, at.at(dro), mask);
            }
            k.store_masked(at.at(dx), dxv, mask);
            if let Some(dres) = dres {
                k.store_masked(at.at(dres), dxv, mask);
            }
        };

        if row_in_block {
            let col_ok = cols.lt(n);
            let tiles = (m + (rows - 1)) / rows;
            let tile_rows = k.arange(0, rows);
            let zeros: Vec<Value> =
                partials.iter().map(|_| k.zeros(&[rows as usize, block_size], DType::F32)).collect();
            let s = scale(cols, col_ok);
            let sums = k.for_range(pid, tiles, programs, &zeros, |t, acc| {
                let rows = t * rows + tile_rows;
                let row_ok = rows.lt(m);
                let mask = row_ok.expand_dims(1) & col_ok.expand_dims(0);
                let at = Step::Tile { rows, cols };
                let xv = load_f32(k, at.at(x), mask);
                let dyv = load_f32(k, at.at(dy), mask);
                let rstd = k.load_masked(rstd_in + rows, row_ok, 0.0);
                let g = times(dyv, s);
                let c_row = (g * xv).sum(1) * rstd * rstd / n_f;
                store_dx(at, mask, g, xv, c_row, rstd);
                let cs = contributions(dyv, xv, at.per_row(rstd));
                acc.iter().zip(cs).map(|(a, c)| *a + c).collect()
            });
            for (p, s) in partials.iter().zip(sums) {
                k.store_masked(*p + cols, s.sum(0), col_ok);
            }
        } else {
            for p in &partials {
                k.for_range(0, n, block, &[], |start, _| {
                    let offs = start + cols;
                    k.store_masked(*p + offs, 0.0, offs.lt(n));
                    vec![]
                });
            }
            k.for_range(pid, m, programs, &[], |row, _| {
                let rstd = k.load(rstd_in + row);
                let acc = k.zeros(&[block_size], DType::F32);
                let acc = k.for_range(0, n, block, &[acc], |start, c| {
                    let offs = start + cols;
                    let mask = offs.lt(n);
                    let at = Step::Chunk { row, cols: offs };
                    let g = times(load_f32(k, at.at(dy), mask), scale(offs, mask));
                    vec![c[0] + g * load_f32(k, at.at(x), mask)]
                });
                let c_row = acc[0].sum(0) * rstd * rstd / n_f;
                k.for_range(0, n, block, &[], |start, _| {
                    let offs = start + cols;
                    let mask = offs.lt(n);
                    let at = Step::Chunk { row, cols: offs };
                    let xv = load_f32(k, at.at(x), mask);
                    let dyv = load_f32(k, at.at(dy), mask);
                    store_dx(at, mask, times(dyv, scale(offs, mask)), xv, c_row, rstd);
                    for (p, c) in partials.iter().zip(contributions(dyv, xv, rstd)) {
                        let prev = k.load_masked(*p + offs, mask, 0.0);
                        k.store_masked(*p + offs, prev + c, mask);
                    }
                    vec![]
                });
                vec![]
            });
        }
    }
}

/// Builds the second backward stage: `out[j] = Σ_p partial[p, j]`, summed in f32 in a fixed order,
/// stored as `out_dtype`.
///
/// Arguments: `partial, out, programs: i32, n: i32`; grid `[ceil(N / block_size), 1, 1]`.
pub fn sum_partials(out_dtype: DType, block_size: usize) -> Result<Kernel, LangError> {
    build_kernel(&format!("rms_norm_sum_partials_{}", out_dtype.name()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let partial = k.ptr_arg("partial", DType::F32);
        let out = k.mut_ptr_arg("out", out_dtype);
        let programs = k.scalar_arg("programs", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let cols = k.program_id(0) * block + k.arange(0, block);
        let mask = cols.lt(n);
        let acc = k.zeros(&[block_size], DType::F32);
        let acc = k.for_range(0, programs, 1, &[acc], |p, c| {
            let row = row_ptr(partial, p, n.cast(DType::I64));
            vec![c[0] + k.load_masked(row + cols, mask, 0.0)]
        });
        k.store_masked(out + cols, acc[0], mask);
    })
}
