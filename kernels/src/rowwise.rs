//! What the row-wise kernels ([`crate::rmsnorm`], [`crate::layernorm`], [`crate::softmax`],
//! [`crate::cross_entropy`]) share: the tile helpers their kernels are traced with and the argument
//! checks of their entry points; and, for all but RMSNorm (which has its own tuning space), their
//! config ([`RowConfig`]), the bounds of its tuning space ([`RowSpace`]) and their cache keys
//! ([`row_key`]).
//!
//! Every one of them works on tiles of `ROWS` rows × `BLOCK_SIZE` columns: when a row fits the
//! block the tile is held in registers, otherwise rows are walked in column chunks.

use tritonite_autotune::{Config, DeviceId, Key};
use tritonite_lang::{DType, KernelBuilder, Value};

use crate::error::KernelError;
use crate::tuning::Knobs;

/// The tuning knobs of a row-wise kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowConfig {
    /// Columns handled per step, a power of two ≤ 65536. When `N ≤ block_size` a row is loaded
    /// once and held in registers; otherwise rows are walked in chunks of this many columns.
    pub block_size: usize,
    /// Warps per program, a power of two ≤ 32.
    pub num_warps: u32,
    /// Rows per tile, a power of two ≤ 64.
    pub rows: usize,
    /// Persistent programs of a kernel that owns per-program partials (LayerNorm's backward);
    /// ignored by the others. At least 1.
    pub programs: usize,
}

impl RowConfig {
    /// A block of `n` columns rounded up to a power of two (between 16 and `max_block`; longer rows
    /// are walked in chunks of `max_block`), short rows several to a tile (about 4096 elements a
    /// tile), `per_warp` elements of a tile per warp (1 to `max_warps` warps), and two persistent
    /// programs per SM.
    pub fn spread(n: usize, sm_count: usize, max_block: usize, per_warp: usize, max_warps: usize) -> RowConfig {
        let block_size = n.next_power_of_two().clamp(16, max_block);
        let rows = (4096 / block_size).clamp(1, 32);
        let num_warps = (rows * block_size / per_warp).clamp(1, max_warps) as u32;
        RowConfig { block_size, num_warps, rows, programs: 2 * sm_count.max(1) }
    }

    /// True when rows of `n` columns are held in registers (one chunk per row).
    pub fn row_in_block(&self, n: usize) -> bool {
        n <= self.block_size
    }

    /// Checks the knobs: `block_size` a power of two ≤ 65536, `num_warps` a power of two ≤ 32,
    /// `rows` a power of two ≤ 64, `programs ≥ 1`, and at most 65536 elements in a tile.
    pub fn check(&self) -> Result<(), KernelError> {
        let bad = |arg: &'static str, expected: &str, got: String| {
            Err(KernelError::BadArgument { arg, expected: expected.into(), got })
        };
        if !self.block_size.is_power_of_two() || self.block_size > 1 << 16 {
            return bad("block_size", "a power of two ≤ 65536", self.block_size.to_string());
        }
        if !self.num_warps.is_power_of_two() || self.num_warps > 32 {
            return bad("num_warps", "a power of two ≤ 32", self.num_warps.to_string());
        }
        if !self.rows.is_power_of_two() || self.rows > 64 {
            return bad("rows", "a power of two ≤ 64", self.rows.to_string());
        }
        if self.rows * self.block_size > 1 << 16 {
            return bad("rows", "rows × block_size ≤ 65536", format!("{} × {}", self.rows, self.block_size));
        }
        if self.programs == 0 {
            return bad("programs", "at least 1", "0".into());
        }
        Ok(())
    }
}

impl Knobs for RowConfig {
    /// `BLOCK_SIZE`, `ROWS`, `num_warps` and `PROGRAMS` (the names RMSNorm's configs use).
    fn to_config(&self) -> Config {
        Config::new()
            .with("BLOCK_SIZE", self.block_size as i64)
            .with("ROWS", self.rows as i64)
            .with("num_warps", self.num_warps as i64)
            .with("PROGRAMS", self.programs as i64)
    }

    /// Every one of the four present, positive and passing [`RowConfig::check`].
    fn from_config(c: &Config) -> Result<RowConfig, KernelError> {
        let get = |arg: &'static str| {
            c.get(arg).filter(|v| *v > 0).ok_or_else(|| KernelError::BadArgument {
                arg,
                expected: "a positive value in the tuned config".into(),
                got: c.to_string(),
            })
        };
        let cfg = RowConfig {
            block_size: get("BLOCK_SIZE")? as usize,
            num_warps: u32::try_from(get("num_warps")?).unwrap_or(u32::MAX),
            rows: get("ROWS")? as usize,
            programs: get("PROGRAMS")? as usize,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// The bounds of a row-wise kernel's config space, per kernel and pass: how long a row may be held
/// in registers, how large a chunk a longer row is walked in, how many elements of a tile a thread
/// may hold, and which persistent grid sizes are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSpace {
    /// The largest block a row is held in (a power of two): rows of up to this many columns are
    /// tried in registers; it also bounds a held tile (`rows × block_size`).
    pub max_held: usize,
    /// The largest chunk (a power of two) a row is walked in; it also bounds a chunked tile.
    pub max_chunk: usize,
    /// Most elements of a tile one thread holds when the row is held.
    pub held_per_thread: usize,
    /// Most elements of a tile one thread holds per chunk (what the walk carries lives as long).
    pub chunk_per_thread: usize,
    /// Most warps per program (a power of two ≤ 32).
    pub max_warps: u32,
    /// Persistent programs per SM tried; empty for kernels that ignore `programs` (the
    /// heuristic's value is kept).
    pub programs_per_sm: &'static [usize],
}

impl RowSpace {
    /// The candidates for rows of `n` columns and `m` rows, pruned, `heuristic` first:
    ///
    /// 1. Blocks: the row rounded up to a power of two (at least 16) when that is ≤ `max_held`
    ///    (held in registers; never more than the row needs), and, for rows over 4096 columns,
    ///    chunks of a half and a quarter of it (≤ `max_chunk`); longer rows: chunks of
    ///    `max_chunk / 4` to `max_chunk`.
    /// 2. Rows per tile: powers of two up to 32 (8 when chunked), never more than `m`'s
    ///    power-of-two bucket (a tile past the last row is wasted), the tile ≤ `max_held`
    ///    (`max_chunk` when chunked).
    /// 3. Warps: 1 to `max_warps`, leaving each thread 4 to `held_per_thread` (`chunk_per_thread`)
    ///    elements of the tile: fewer starve the loads, more spill.
    /// 4. Programs: `programs_per_sm` × `sm_count`.
    ///
    /// Every candidate passes [`RowConfig::check`]; each depends only on `n`, `m`'s bucket and the
    /// SM count, so it is a function of the cache key.
    pub fn candidates(&self, m: usize, n: usize, heuristic: RowConfig, sm_count: usize) -> Vec<RowConfig> {
        let mut out = vec![heuristic];
        let whole = n.next_power_of_two().max(16);
        let chunks = |top: usize| [top / 4, top / 2, top].into_iter().filter(|&b| b >= 16 && b < n);
        let blocks: Vec<usize> = if whole <= self.max_held {
            let mut b = vec![whole];
            if whole > 4096 {
                b.extend(chunks(whole).filter(|&c| c < whole && c <= self.max_chunk));
            }
            b
        } else {
            chunks(self.max_chunk).collect()
        };
        let row_bucket = tritonite_autotune::bucket_pow2(m as u64).clamp(1, 64) as usize;
        let programs: Vec<usize> = if self.programs_per_sm.is_empty() {
            vec![heuristic.programs]
        } else {
            self.programs_per_sm.iter().map(|k| k * sm_count.max(1)).collect()
        };
        for block in blocks {
            let held = block >= n;
            let (tile_max, per_thread_max, rows_max) = if held {
                (self.max_held, self.held_per_thread, 32)
            } else {
                (self.max_chunk, self.chunk_per_thread, 8)
            };
            let mut rows = 1;
            while rows <= rows_max.min(row_bucket) && rows * block <= tile_max.max(block) {
                let mut num_warps = 1u32;
                while num_warps <= self.max_warps {
                    let per_thread = rows * block / (32 * num_warps as usize);
                    if (4..=per_thread_max).contains(&per_thread) {
                        for &programs in &programs {
                            let c = RowConfig { block_size: block, num_warps, rows, programs };
                            if !out.contains(&c) && c.check().is_ok() {
                                out.push(c);
                            }
                        }
                    }
                    num_warps *= 2;
                }
                rows *= 2;
            }
        }
        out
    }
}

/// The cache key of a row-wise kernel's problem: kernel, `source_hash` (of the kernels' source
/// files), crate version, device, the dtypes and options in `features`, `N` exactly (vector widths
/// depend on it) and `M` in power-of-two buckets.
pub fn row_key(
    kernel: &str,
    source_hash: u64,
    device: &DeviceId,
    features: &[(&str, &str)],
    m: usize,
    n: usize,
) -> Key {
    features
        .iter()
        .fold(Key::new(kernel, source_hash, env!("CARGO_PKG_VERSION"), device.clone()), |k, (name, value)| {
            k.with_feature(*name, *value)
        })
        .with_shape("N", n as u64)
        .with_shape("M", tritonite_autotune::bucket_pow2(m as u64))
}

/// An optional dtype's name in keys: `-` for none.
pub(crate) fn dtype_name(d: Option<DType>) -> &'static str {
    d.map_or("-", DType::name)
}

/// Checks that `d` is f32, f16 or bf16.
pub(crate) fn check_float(arg: &'static str, d: DType) -> Result<(), KernelError> {
    if d.is_float() {
        Ok(())
    } else {
        Err(KernelError::BadArgument { arg, expected: "f32, f16 or bf16".into(), got: d.to_string() })
    }
}

/// Checks an optional parameter dtype: `x`'s dtype or f32.
pub(crate) fn check_param(arg: &'static str, x: DType, d: Option<DType>) -> Result<(), KernelError> {
    match d {
        Some(d) if d != x && d != DType::F32 => {
            Err(KernelError::BadArgument { arg, expected: format!("{x} (x's dtype) or f32"), got: d.to_string() })
        }
        _ => Ok(()),
    }
}

/// Checks a scalar argument: finite and, when `positive`, > 0.
pub(crate) fn check_scalar(arg: &'static str, v: f32, positive: bool) -> Result<(), KernelError> {
    if v.is_finite() && (!positive || v > 0.0) {
        return Ok(());
    }
    let expected = if positive { "a finite value > 0" } else { "a finite value" };
    Err(KernelError::BadArgument { arg, expected: expected.into(), got: v.to_string() })
}

/// Checks that an optional buffer is there exactly when the spec says so.
pub(crate) fn check_presence(
    arg: &'static str,
    expected: Option<DType>,
    got: Option<DType>,
) -> Result<(), KernelError> {
    match (expected, got) {
        (Some(e), None) => {
            Err(KernelError::BadArgument { arg, expected: format!("a buffer of {e}"), got: "nothing".into() })
        }
        (None, Some(g)) => Err(KernelError::BadArgument {
            arg,
            expected: "nothing (the forward had none)".into(),
            got: format!("a buffer of {g}"),
        }),
        _ => Ok(()),
    }
}

/// A row-major operand of a kernel: its base pointer and row stride (elements, i64).
#[derive(Clone, Copy)]
pub(crate) struct RowArg<'k> {
    pub ptr: Value<'k>,
    pub stride: Value<'k>,
}

impl<'k> RowArg<'k> {
    /// Pairs `ptr` with a new `i64` scalar argument `name`: its row stride in elements.
    pub fn stride_arg(k: &'k KernelBuilder, ptr: Value<'k>, name: &str) -> RowArg<'k> {
        RowArg { ptr, stride: k.scalar_arg(name, DType::I64) }
    }

    /// The pointers to the first element of each row of `rows` (`[ROWS]`).
    pub fn row_start(self, rows: Value<'k>) -> Value<'k> {
        self.ptr + rows.cast(DType::I64) * self.stride
    }
}

/// The elements of one step: rows `rows` (`[ROWS]`) × columns `cols` (`[BLOCK_SIZE]`), and which of
/// them exist.
#[derive(Clone, Copy)]
pub(crate) struct Tile<'k> {
    pub rows: Value<'k>,
    pub cols: Value<'k>,
    pub col_ok: Value<'k>,
    pub mask: Value<'k>,
}

impl<'k> Tile<'k> {
    pub fn new(rows: Value<'k>, row_ok: Value<'k>, cols: Value<'k>, n: Value<'k>) -> Tile<'k> {
        let col_ok = cols.lt(n);
        Tile { rows, cols, col_ok, mask: row_ok.expand_dims(1) & col_ok.expand_dims(0) }
    }

    /// The pointers to this tile's elements of `a`.
    pub fn at(self, a: RowArg<'k>) -> Value<'k> {
        a.ptr + ((self.rows.cast(DType::I64) * a.stride).expand_dims(1) + self.cols.expand_dims(0))
    }
}

/// `p` where `mask`, else `other`, in f32.
pub(crate) fn load_f32<'k>(k: &'k KernelBuilder, p: Value<'k>, mask: Value<'k>, other: f64) -> Value<'k> {
    k.load_masked(p, mask, other).cast(DType::F32)
}

/// A per-row value (`[ROWS]`) against a tile's elements (`[ROWS, 1]`).
pub(crate) fn per_row(v: Value<'_>) -> Value<'_> {
    v.expand_dims(1)
}

/// A tiny deterministic generator for drawing test cases (xorshift64).
pub(crate) struct Draw(pub u64);

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A row count: often ragged, sometimes 0, 1 or `max`.
    pub fn rows(&mut self, max: usize) -> usize {
        match self.below(10) {
            0 => 0,
            1 => 1,
            2 => max,
            _ => 1 + self.below(max.max(1) as u64) as usize,
        }
        .min(max)
    }

    /// A row length in `1..=max`: often ragged, sometimes 1, `max` or a power of two.
    pub fn cols(&mut self, max: usize) -> usize {
        match self.below(10) {
            0 => 1,
            1 => max,
            2 => (1usize << self.below((usize::BITS - max.leading_zeros()) as u64)).min(max),
            _ => 1 + self.below(max as u64) as usize,
        }
    }

    /// A config for rows of `n`: the heuristic's block half the time, otherwise anything from 16
    /// to 4× the row (chunked walks included); tiles of up to `max_tile` elements.
    pub fn config(&mut self, n: usize, heuristic: RowConfig, sm_count: usize, max_tile: usize) -> RowConfig {
        let block_size = if self.chance(50) {
            heuristic.block_size
        } else {
            1 << (4 + self.below(((n.next_power_of_two() * 4).trailing_zeros() as u64).saturating_sub(3).max(1)))
        }
        .min(max_tile);
        let rows = self.pick(&[1, 1, 2, 4, 8, 16]).min((max_tile / block_size).max(1));
        let tile = rows * block_size;
        let num_warps = self.pick(&[1, 2, 4, 8, 16]).clamp(tile / 2048, (tile / 32).max(1)) as u32;
        let programs = 1 + self.below(2 * sm_count.max(1) as u64) as usize;
        RowConfig { block_size, num_warps, rows, programs }
    }
}

/// A buffer for a strided view `[m, n]` with row stride `stride` starting at element `offset`.
pub(crate) fn view_len(m: usize, n: usize, stride: usize, offset: usize) -> usize {
    offset + crate::plan::span(m, n, stride)
}

/// The rows of a strided view of `b`, as f64 row-major `[m, n]`.
pub(crate) fn rows_of(b: &tritonite_lang::Buffer, m: usize, n: usize, stride: usize, offset: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(m * n);
    for r in 0..m {
        let start = offset + r * stride;
        v.extend((start..start + n).map(|i| b.get(i)));
    }
    v
}

/// Counts the elements of a strided view's buffer outside the view that changed from NaN (the
/// padding of a caller-provided output must come back untouched).
pub(crate) fn padding_written(b: &tritonite_lang::Buffer, m: usize, n: usize, stride: usize, offset: usize) -> usize {
    let mut inside = vec![false; b.len()];
    for r in 0..m {
        let start = offset + r * stride;
        inside[start..start + n].iter_mut().for_each(|x| *x = true);
    }
    (0..b.len()).filter(|&i| !inside[i] && !b.get(i).is_nan()).count()
}
