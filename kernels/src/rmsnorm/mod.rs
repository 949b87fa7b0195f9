//! RMSNorm, forward and backward, with the options users of LLM stacks expect: an optional weight
//! (same dtype as `x`, or f32 with a 16-bit `x`), a Gemma-style offset (`w + offset`), a bias, a
//! fused residual add that also returns the sum, a selectable output dtype, strided rows, and `rstd`
//! saved for the backward.
//!
//! - [`kernels`]: the kernels in the block language.
//! - [`plan`]: their launches for one problem (shapes, strides, config).
//! - [`api`]: the typed entry points [`rms_norm`] and [`rms_norm_backward`], which validate every
//!   argument before anything runs.

pub mod api;
pub mod check;
pub mod kernels;
pub mod plan;
pub mod tuning;

pub use api::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormGrads, RmsNormOptions, RmsNormOutput};
pub use kernels::{backward, forward, Tiling};
pub use plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};

use tritonite_lang::DType;

use crate::error::KernelError;

/// What an RMSNorm computes: the dtypes of its tensors and which options are on. Everything here
/// is fixed when the kernel is built (one compiled variant per spec); `eps` and `offset` are
/// runtime arguments.
///
/// The forward computes, per row, in f32:
/// `h = x (+ residual)`, `rstd = 1/sqrt(mean(h²) + eps)`, `y = h · rstd (· (w + offset)) (+ bias)`,
/// and stores `residual_out = h` when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RmsNormSpec {
    /// dtype of `x` (and of `dx`).
    pub x: DType,
    /// dtype of the weight (and of `dw`), or `None` for no weight.
    pub weight: Option<DType>,
    /// dtype of the bias (and of `dbias`), or `None` for no bias.
    pub bias: Option<DType>,
    /// dtype of the residual added to `x` (and of `dresidual`), or `None` for no residual.
    pub residual: Option<DType>,
    /// dtype `h = x + residual` is returned in as `residual_out`, or `None` to not return it. Set
    /// whenever `residual` is: the backward reads `h` from it.
    pub residual_out: Option<DType>,
    /// dtype of `y` (and of `dy`).
    pub out: DType,
}

impl RmsNormSpec {
    /// Plain RMSNorm of `x` with an optional weight; `y` in `x`'s dtype.
    pub fn new(x: DType, weight: Option<DType>) -> RmsNormSpec {
        RmsNormSpec { x, weight, bias: None, residual: None, residual_out: None, out: x }
    }

    /// The dtype of what the backward reads as `x`: the normalized input `h`, which is `x` itself
    /// or, with a residual, `residual_out`.
    pub fn saved(&self) -> DType {
        self.residual_out.unwrap_or(self.x)
    }

    /// A short name of the variant for kernel names: `bf16_wf32_bbf16_rf32_of32_ybf16`.
    pub fn suffix(&self) -> String {
        let mut s = self.x.name().to_string();
        for (tag, d) in [("w", self.weight), ("b", self.bias), ("r", self.residual), ("o", self.residual_out)] {
            if let Some(d) = d {
                s += &format!("_{tag}{}", d.name());
            }
        }
        if self.out != self.x {
            s += &format!("_y{}", self.out.name());
        }
        s
    }

    /// Checks the dtype rules: every tensor is f32, f16 or bf16; the weight and bias have `x`'s
    /// dtype or f32; a residual comes with a `residual_out`.
    pub fn check(&self) -> Result<(), KernelError> {
        let float = |arg: &'static str, d: DType| {
            if d.is_float() {
                Ok(())
            } else {
                Err(KernelError::BadArgument { arg, expected: "f32, f16 or bf16".into(), got: d.to_string() })
            }
        };
        float("x", self.x)?;
        float("out_dtype", self.out)?;
        for (arg, d) in [("weight", self.weight), ("bias", self.bias)] {
            if let Some(d) = d {
                if d != self.x && d != DType::F32 {
                    return Err(KernelError::BadArgument {
                        arg,
                        expected: format!("{} (x's dtype) or f32", self.x),
                        got: d.to_string(),
                    });
                }
            }
        }
        if let Some(d) = self.residual {
            float("residual", d)?;
        }
        if let Some(d) = self.residual_out {
            float("residual_out_dtype", d)?;
        }
        if self.residual.is_some() && self.residual_out.is_none() {
            return Err(KernelError::BadArgument {
                arg: "residual_out_dtype",
                expected: "a dtype whenever a residual is added (the backward reads h from residual_out)".into(),
                got: "none".into(),
            });
        }
        Ok(())
    }
}

/// How many clusters of `cluster` programs run at once when each SM runs `per_sm` programs: a
/// cluster's programs share one GPC, so clusters of 16 at 1 or 2 programs an SM fit in only 7
/// of the H100's GPCs (7 or 14 at once: 8 or 16 leave one or two to run after the others, 1.4×
/// the time measured at 1024 × 262144). Prefetching programs loop over their tiles, so a grid
/// of exactly what fits matters: measured on the H100, bf16 backward, 32768 × 8192 in clusters
/// of 8 at 6 an SM: 99 clusters 572 µs, 115 (7 an SM) 719 µs.
pub fn resident_clusters(cluster: usize, per_sm: usize, sm_count: usize) -> usize {
    let sms = sm_count.max(1);
    let fit = if cluster >= 16 && per_sm <= 2 { per_sm * sms * 7 / 132 } else { per_sm * sms / cluster.max(1) };
    fit.max(1)
}

/// The tuning knobs of the RMSNorm kernels: what the autotuner searches over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RmsNormConfig {
    /// Columns handled per step, a power of two. When `N ≤ block_size` the row is loaded once and
    /// held in registers between the reduction and its use; otherwise rows are walked in chunks.
    pub block_size: usize,
    /// Warps per program, a power of two ≤ 32.
    pub num_warps: u32,
    /// Persistent programs (clusters, when rows are split over clusters) of the backward (each
    /// strides over rows and owns one row of the `dw` partials), and of the forward when rows
    /// are walked in chunks or prefetched (else unused: one program per tile).
    pub programs: usize,
    /// Rows per tile, a power of two: each program step handles `[rows, block_size]` elements
    /// (several short rows held at once, or several long rows walked together in chunks).
    pub rows: usize,
    /// Programs a row is split over (a cluster of 1 to 16): rows of up to
    /// `cluster × block_size` columns are held in registers, each program holding `block_size`
    /// of them, and read once. 1: one program a row (rows longer than the block are walked in
    /// chunks).
    pub cluster: usize,
    /// Held rows only (`PREFETCH=1`): persistent programs (`programs` clusters of them) that load
    /// their next tile before reducing the current one, so loads stay in flight through the
    /// reduction, the cluster's exchange and the stores. Off: the forward runs one program
    /// (cluster) per tile.
    pub prefetch: bool,
    /// Held rows only (`STAGED=1`): the tile is copied into shared memory asynchronously and read
    /// there at each use (see [`load_staged`](tritonite_lang::KernelBuilder::load_staged)),
    /// rather than loaded into registers. It holds no registers while in flight, so a program
    /// keeps more bytes in flight for its registers: with `prefetch`, the next tile of a tile too
    /// large to hold twice (the backward of 1024 × 262144 bf16 on the H100: 676 µs, against 717
    /// without prefetch); without, more programs an SM (the forward of 4096 × 65536 bf16 in
    /// clusters of 8 programs of 4 warps: 360 µs, against 364 for the best held in registers).
    pub staged: bool,
}

/// An on/off meta-parameter (`PREFETCH`, `STAGED`) as a flag: 0 or 1, else an error naming `arg`.
pub fn flag_from_meta(arg: &'static str, v: i64) -> Result<bool, KernelError> {
    match v {
        0 | 1 => Ok(v == 1),
        _ => Err(KernelError::BadArgument { arg, expected: "0 (off) or 1 (on)".into(), got: v.to_string() }),
    }
}

impl RmsNormConfig {
    /// The plainest config, to fill in the knobs a struct literal leaves out
    /// (`RmsNormConfig { block_size, num_warps, ..RmsNormConfig::PLAIN }`): one program of 4 warps
    /// a tile of one row of up to 1024 columns, no cluster, prefetch or staging. A shape's
    /// default is [`heuristic`](Self::heuristic)'s.
    pub const PLAIN: RmsNormConfig = RmsNormConfig {
        block_size: 1024,
        num_warps: 4,
        programs: 1,
        rows: 1,
        cluster: 1,
        prefetch: false,
        staged: false,
    };

    /// The forward's default when nothing is tuned: the whole row in one block up to 16384
    /// columns (8192 with a residual or bias, whose loads add to the registers held), 512 columns
    /// per warp (1 to 16 warps); plain 16-bit rows up to 32768 columns in one block of 32 warps
    /// (measured on the H100, 16384 × 32768 bf16: 3022 GB/s, against 2618 in chunks). Longer rows
    /// are split over a cluster of up to 16 programs of that block, 32 columns a thread
    /// (4096 × 65536 bf16, clusters of 4: 366 µs against 459 in chunks; 1024 × 262144, clusters
    /// of 16: 401 against 550); 16-bit clusters of 16 prefetch, as many as fit at once (7 on the
    /// H100, one program an SM: 1024 × 262144 383 µs). Rows longer than 16 blocks go in chunks
    /// of 8192 to 2 programs of 32 warps per SM, so that the rows walked at once mostly stay in
    /// L2 for the second walk.
    pub fn heuristic(spec: &RmsNormSpec, n: usize, sm_count: usize) -> RmsNormConfig {
        let heavy = spec.residual.is_some() || spec.bias.is_some();
        let cfg = Self::spread(n, sm_count, if heavy { 8192 } else { 16384 }, 512, 16);
        let sms = sm_count.max(1);
        let narrow = spec.x.bits() == 16 && spec.weight.is_none_or(|w| w.bits() == 16) && !heavy;
        let block = cfg.block_size;
        match n {
            n if n <= block => cfg,
            n if n <= 32768 && narrow => RmsNormConfig { block_size: 32768, num_warps: 32, rows: 1, ..cfg },
            n if n <= 16 * block => {
                let cluster = n.div_ceil(block).next_power_of_two();
                // 16-bit clusters of 16 (rows beyond 8 blocks): prefetched, 32 warps (16 elements
                // a thread), as many as fit at once (1024 × 262144 bf16: 376 µs against 383 at 16
                // warps and 399 without prefetch).
                let on = cluster == 16 && narrow;
                let programs = if on { resident_clusters(cluster, 1, sms) } else { cfg.programs };
                let num_warps = if on { 32 } else { (block / 1024) as u32 };
                RmsNormConfig { num_warps, rows: 1, cluster, prefetch: on, programs, ..cfg }
            }
            _ => RmsNormConfig {
                block_size: 8192,
                num_warps: 32,
                programs: 2 * sms,
                rows: 1,
                cluster: 1,
                ..RmsNormConfig::PLAIN
            },
        }
    }

    /// The backward's default: it holds `x`, `dy` and, per option, the weight, the `dw` and
    /// `dbias` sums and `dresidual_out` per thread. Rows up to 4096 columns in one block, 256
    /// columns per warp (at most 8 warps: ptxas gives 16 warps only 64 registers a thread, too
    /// few for the fused variants), two programs per SM. Up to 16384 columns: split over a
    /// cluster of `ceil(N / 1024)` programs of 1024 columns (4 warps, 8 elements a thread, no
    /// masked-off lanes at N = 5120), prefetching, 6 programs an SM (H100, bf16: 32768 × 5120
    /// 367 µs against 467 in clusters of 2 × 4096; 32768 × 8192 560 against 608 in 4 × 2048).
    /// Longer rows in blocks of 32 KB of x (16384 16-bit columns or 8192 f32 ones, 16 warps;
    /// 4096 columns and 8 warps when a thread holds more than four values per element), as many
    /// clusters as fit at one program an SM (a program takes the SM's registers; 16384 × 32768:
    /// 1119 µs against 1532 in clusters of 8 programs of 4096 columns; 1024 × 262144: 737 µs with
    /// 7 clusters, 780 with 33, 1333 in chunks), except plain
    /// 16-bit rows of 32768 to 65536 columns: 16 prefetching programs of 4096 columns, as many
    /// clusters as fit at 2 programs an SM (4096 × 65536: 587 µs against 651 in 4 × 16384).
    /// Rows longer than 16 blocks go in tiles of 4 rows × 1024 columns, so each chunk's column
    /// sums reach the partials once per 4 rows. Clusters of 16 programs of 16384 columns prefetch
    /// their next tile into shared memory (1024 × 262144: 676 µs against 717).
    pub fn heuristic_backward(spec: &RmsNormSpec, has_dresidual_out: bool, n: usize, sm_count: usize) -> RmsNormConfig {
        let held = 2 + 2 * spec.weight.is_some() as usize + spec.bias.is_some() as usize + has_dresidual_out as usize;
        let (big, big_warps) = match (held > 4, spec.x.bits()) {
            (true, _) => (4096, 8),
            (false, 16) => (16384, 16),
            (false, _) => (8192, 16),
        };
        let sms = sm_count.max(1);
        let split = |block: usize, num_warps: u32| {
            let cluster = n.div_ceil(block).next_power_of_two();
            // Clusters of 16 of 16384 columns prefetch into shared memory (their tiles do not fit
            // twice in registers).
            let staged = cluster == 16 && block >= 16384;
            RmsNormConfig {
                block_size: block,
                num_warps,
                programs: resident_clusters(cluster, 1, sms),
                rows: 1,
                cluster,
                prefetch: staged,
                staged,
            }
        };
        // Split over a cluster of any size and prefetched: `per_sm` programs an SM at once.
        let prefetched = |block: usize, num_warps: u32, per_sm: usize| {
            let cluster = n.div_ceil(block);
            let programs = resident_clusters(cluster, per_sm, sms);
            RmsNormConfig { block_size: block, num_warps, programs, rows: 1, cluster, prefetch: true, staged: false }
        };
        match n {
            n if n <= 4096 => Self::spread(n, sm_count, 4096, 256, 8),
            n if n <= 16384 => prefetched(1024, 4, 6),
            n if n > 32768 && n <= 65536 && big == 16384 => prefetched(4096, 8, 2),
            n if n <= 16 * big => split(big, big_warps),
            _ => RmsNormConfig {
                block_size: 1024,
                num_warps: 8,
                programs: 2 * sms,
                rows: 4,
                cluster: 1,
                ..RmsNormConfig::PLAIN
            },
        }
    }

    fn spread(n: usize, sm_count: usize, max_block: usize, per_warp: usize, max_warps: usize) -> RmsNormConfig {
        let block_size = n.next_power_of_two().clamp(16, max_block);
        // Short rows share a program: tiles of about 4096 elements (at least 2 rows per warp's
        // worth of columns), so each thread has several independent loads in flight.
        let rows = (4096 / block_size).clamp(1, 32);
        let num_warps = (rows * block_size / per_warp).clamp(1, max_warps) as u32;
        RmsNormConfig { block_size, num_warps, programs: 2 * sm_count.max(1), rows, cluster: 1, ..RmsNormConfig::PLAIN }
    }

    /// Checks the knobs: `block_size` a power of two ≤ 65536, `num_warps` a power of two ≤ 32,
    /// `programs ≥ 1`, `rows` a power of two ≤ 64, `cluster` 1 to 16.
    pub fn check(&self) -> Result<(), KernelError> {
        if !self.block_size.is_power_of_two() || self.block_size > 1 << 16 {
            return Err(KernelError::BadArgument {
                arg: "block_size",
                expected: "a power of two ≤ 65536".into(),
                got: self.block_size.to_string(),
            });
        }
        if !self.num_warps.is_power_of_two() || self.num_warps > 32 {
            return Err(KernelError::BadArgument {
                arg: "num_warps",
                expected: "a power of two ≤ 32".into(),
                got: self.num_warps.to_string(),
            });
        }
        if self.programs == 0 {
            return Err(KernelError::BadArgument { arg: "programs", expected: "at least 1".into(), got: "0".into() });
        }
        if !self.rows.is_power_of_two() || self.rows > 64 {
            return Err(KernelError::BadArgument {
                arg: "rows",
                expected: "a power of two ≤ 64".into(),
                got: self.rows.to_string(),
            });
        }
        if !(1..=16).contains(&self.cluster) {
            return Err(KernelError::BadArgument {
                arg: "cluster",
                expected: "1 to 16".into(),
                got: self.cluster.to_string(),
            });
        }
        Ok(())
    }
}
