//! Column sums of per-program partials: the second stage of every backward that reduces a
//! parameter gradient over rows (RMSNorm's and LayerNorm's `dw`, `db`). Each program of the first
//! stage writes its own row of an f32 `[G, N]` buffer; [`sum_partials`] adds the `G` rows up in a
//! fixed order, so results are the same run to run (no atomics).

use tritonite_lang::{build_kernel, DType, Kernel, LangError};

/// Columns per program of [`sum_partials`].
pub const SUM_PARTIALS_BLOCK: usize = 32;

/// Elements of the tile one step of [`sum_partials`] loads (rows × columns).
const TILE_ELEMENTS: usize = 2048;

/// Builds `out[j] = Σ_p partial[p, j]`, summed in f32 in a fixed order, stored as `out_dtype`.
///
/// Each program owns `block_size` columns and walks the `G` rows in tiles of
/// `2048 / block_size` rows (one full 128-byte line per row at the default 32 columns), so the
/// reduction has `N / block_size` programs each with many loads in flight, rather than a few
/// programs each walking `G` rows one at a time.
///
/// Arguments: `partial, out, programs: i32, n: i32`; grid `[ceil(N / block_size), 1, 1]`.
pub fn sum_partials(out_dtype: DType, block_size: usize) -> Result<Kernel, LangError> {
    build_kernel(&format!("sum_partials_{}", out_dtype.name()), |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let tile_rows = k.meta("ROWS", (TILE_ELEMENTS / block_size.max(1)).max(1) as i64);
        let partial = k.ptr_arg("partial", DType::F32);
        let out = k.mut_ptr_arg("out", out_dtype);
        let programs = k.scalar_arg("programs", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let cols = k.program_id(0) * block + k.arange(0, block);
        let col_ok = cols.lt(n).expand_dims(0);
        let rows = k.arange(0, tile_rows);
        let acc = k.zeros(&[tile_rows as usize, block_size], DType::F32);
        let acc = k.for_range(0, programs, tile_rows, &[acc], |start, c| {
            let r = start + rows;
            let offsets = (r.cast(DType::I64) * n.cast(DType::I64)).expand_dims(1) + cols.expand_dims(0);
            let mask = r.lt(programs).expand_dims(1) & col_ok;
            vec![c[0] + k.load_masked(partial + offsets, mask, 0.0)]
        });
        k.store_masked(out + cols, acc[0].sum(0), cols.lt(n));
    })
}
