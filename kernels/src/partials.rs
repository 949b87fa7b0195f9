//! Column sums of per-program partials: the second stage of every backward that reduces a
//! parameter gradient over rows (RMSNorm's and LayerNorm's `dw`, `db`). Each program of the first
//! stage writes its own row of an f32 `[G, N]` buffer; [`sum_partials`] adds the `G` rows up in a
//! fixed order, so results are the same run to run (no atomics).

use std::sync::OnceLock;

use tritonite_lang::{build_kernel, DType, Kernel, LangError};

use crate::error::KernelError;
use crate::plan::{KernelMemo, Launch, Plan, PlanArg, Role};

/// The default columns per program of [`sum_partials`] (`tritonite compile`); a plan picks them
/// by its number of partial rows ([`sum_partials_block`]).
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
        // Its programs take SMs as the first stage's programs finish, and wait there for its end.
        k.wait_for_previous_launch();
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

/// A parameter gradient reduced over rows: the f32 partials `[G, N]` the first stage writes (one row
/// per program) and the `[N]` output of `dtype` the sum goes to.
#[derive(Clone, Copy, Debug)]
pub struct ParamGrad {
    /// The partials buffer's name in the plan.
    pub partial: &'static str,
    /// The output's name in the plan.
    pub out: &'static str,
    /// The output's dtype (the parameter's).
    pub dtype: DType,
}

/// The gradients of a weight (`dw`, from `dw_partial`) and a bias (`dbias`, from `db_partial`),
/// those of the two that exist, in that order (the order the backward kernels take the partials).
pub fn weight_and_bias(weight: Option<DType>, bias: Option<DType>) -> Vec<ParamGrad> {
    let w = weight.map(|dtype| ParamGrad { partial: "dw_partial", out: "dw", dtype });
    let b = bias.map(|dtype| ParamGrad { partial: "db_partial", out: "dbias", dtype });
    w.into_iter().chain(b).collect()
}

/// Declares each gradient's buffers in `plan` (its partials as scratch for `programs` rows of `n`,
/// its output) and returns the first stage's arguments for the partials, in order.
pub fn declare(plan: &mut Plan, grads: &[ParamGrad], programs: usize, n: usize) -> Vec<PlanArg> {
    grads
        .iter()
        .map(|g| {
            plan.buffer(g.partial, DType::F32, programs * n, Role::Scratch);
            plan.buffer(g.out, g.dtype, n, Role::Output);
            PlanArg::Buffer(g.partial)
        })
        .collect()
}

/// The columns a [`sum_partials`] program owns for `programs` partial rows: its tile of 2048
/// elements is as tall as the rows, up to 256 (8 columns, a 32-byte sector a row), so that each
/// program loads all its rows at once, and few rows do not leave most of the tile masked off. On
/// the H100, at a fixed 32 columns (tiles of 64 rows): `[7, 262144]` partials (the backward of
/// 1024 × 262144 over 7 clusters) took 10.9 µs, 8192 programs each loading 7 of its 64 tile rows
/// (256 columns: 6.0 µs); `[132, 256]` took 5.2 µs, 8 programs walking 3 tiles one after another.
pub fn sum_partials_block(programs: usize) -> usize {
    TILE_ELEMENTS / programs.next_power_of_two().clamp(1, 256)
}

/// Appends the second stage: one [`sum_partials`] launch per gradient, adding its `programs` rows
/// of `n` partials into its output.
pub fn push_sums(plan: &mut Plan, grads: &[ParamGrad], programs: usize, n: usize) -> Result<(), KernelError> {
    static MEMO: OnceLock<KernelMemo<(DType, usize)>> = OnceLock::new();
    let block = sum_partials_block(programs);
    for g in grads {
        let kernel = MEMO.get_or_init(KernelMemo::new).get(&(g.dtype, block), || sum_partials(g.dtype, block))?;
        plan.launches.push(Launch {
            kernel,
            grid: [n.div_ceil(block) as u32, 1, 1],
            args: vec![
                PlanArg::Buffer(g.partial),
                PlanArg::Buffer(g.out),
                PlanArg::I32(programs as i32),
                PlanArg::I32(n as i32),
            ],
            num_warps: 4,
        });
    }
    Ok(())
}
