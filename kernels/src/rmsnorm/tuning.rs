//! RMSNorm's autotuning: its config space with pruning, its heuristic default and its cache key;
//! the selection and the measurement of one config are [`crate::tuning`]'s.

use std::sync::OnceLock;

use tritonite_autotune::{bucket_pow2, fnv1a, Config, DeviceId, Key, Progress};
use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::{flag_from_meta, resident_clusters, RmsNormConfig, RmsNormSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::plan::Plan;
use crate::tuning::Tunable;

/// Which kernel is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `rmsnorm-fwd`.
    Forward,
    /// `rmsnorm-bwd` (with its partials reduction).
    Backward,
}

impl Pass {
    /// The kernel's name in keys and on the command line.
    pub fn kernel(self) -> &'static str {
        match self {
            Pass::Forward => "rmsnorm-fwd",
            Pass::Backward => "rmsnorm-bwd",
        }
    }
}

/// One RMSNorm problem as the tuner sees it: what is computed and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Forward or backward.
    pub pass: Pass,
    /// Dtypes and options.
    pub spec: RmsNormSpec,
    /// Backward only: a gradient of `residual_out` is added.
    pub dresidual_out: bool,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
}

/// A hash of the kernels' source: a tuned result never outlives a change to the kernels.
fn kernel_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| fnv1a(include_str!("kernels.rs").as_bytes()))
}

impl RmsNormConfig {
    /// As autotune meta-parameters: `BLOCK_SIZE`, `ROWS`, `num_warps`, `PROGRAMS`, `CLUSTER`, and
    /// `PREFETCH=1` and `STAGED=1` when on.
    pub fn to_config(&self) -> Config {
        let mut c = Config::new()
            .with("BLOCK_SIZE", self.block_size as i64)
            .with("ROWS", self.rows as i64)
            .with("num_warps", self.num_warps as i64)
            .with("PROGRAMS", self.programs as i64)
            .with("CLUSTER", self.cluster as i64);
        for (name, on) in [("PREFETCH", self.prefetch), ("STAGED", self.staged)] {
            if on {
                c = c.with(name, 1);
            }
        }
        c
    }

    /// From autotune meta-parameters (every one present and valid but `PREFETCH` and `STAGED`,
    /// 0 or 1, off when absent).
    pub fn from_config(c: &Config) -> Result<RmsNormConfig, KernelError> {
        let get = |arg: &'static str| {
            c.get(arg).filter(|v| *v > 0).ok_or_else(|| KernelError::BadArgument {
                arg,
                expected: "a positive value in the tuned config".into(),
                got: c.to_string(),
            })
        };
        let cfg = RmsNormConfig {
            block_size: get("BLOCK_SIZE")? as usize,
            num_warps: get("num_warps")? as u32,
            programs: get("PROGRAMS")? as usize,
            rows: get("ROWS")? as usize,
            cluster: get("CLUSTER")? as usize,
            prefetch: flag_from_meta("PREFETCH", c.get("PREFETCH").unwrap_or(0))?,
            staged: flag_from_meta("STAGED", c.get("STAGED").unwrap_or(0))?,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

impl Problem {
    /// The config used when nothing is tuned.
    pub fn heuristic(&self, sm_count: usize) -> RmsNormConfig {
        match self.pass {
            Pass::Forward => RmsNormConfig::heuristic(&self.spec, self.n, sm_count),
            Pass::Backward => RmsNormConfig::heuristic_backward(&self.spec, self.dresidual_out, self.n, sm_count),
        }
    }

    /// The candidates, pruned: blocks from the row's size (up to 32768 forward, 8192 backward)
    /// down to a quarter of it (only the row's size when that is ≤ 4096); tiles of 1 to 32 rows
    /// (8 for rows walked in chunks) up to 16384 elements (8192 backward); 4 to 32 elements of a tile
    /// per thread (1 to 32 warps). Programs: for the backward 1, 2 or 4 per SM; for the forward 1, 2
    /// or 4 per SM when rows are walked in chunks (held rows take one program per tile). Rows of
    /// 4096 columns and more also try clusters (the forward's also with the tile staged in shared
    /// memory), and prefetching clusters of any size (see the code). The heuristic is always among them.
    pub fn candidates(&self, sm_count: usize) -> Vec<RmsNormConfig> {
        let max_block = match self.pass {
            Pass::Forward => 32768,
            Pass::Backward => 8192,
        };
        let top = self.n.next_power_of_two().clamp(16, max_block);
        let sms = sm_count.max(1);
        // Held rows of the forward take one program per tile whatever `programs` says; chunked
        // ones may also try nearly a program per tile (64 per SM), which walks the rows in order
        // with the block scheduler, not a loop, handing out the next tile.
        let programs = |c: RmsNormConfig| -> Vec<usize> {
            match self.pass {
                Pass::Forward if c.block_size >= self.n => vec![self.heuristic(sm_count).programs],
                Pass::Forward => vec![sms, 2 * sms, 4 * sms, 64 * sms],
                Pass::Backward => vec![sms, 2 * sms, 4 * sms],
            }
        };
        let mut out = vec![self.heuristic(sm_count)];
        let mut block = if top <= 4096 { top } else { top / 4 };
        while block <= top {
            let max_rows = (max_block.min(16384) / block).clamp(1, if block >= self.n { 32 } else { 8 });
            let mut rows = 1;
            while rows <= max_rows {
                for num_warps in [1u32, 2, 4, 8, 16, 32] {
                    let per_thread = rows * block / (32 * num_warps as usize);
                    if !(4..=32).contains(&per_thread) {
                        continue;
                    }
                    let shape = RmsNormConfig {
                        block_size: block,
                        num_warps,
                        programs: 1,
                        rows,
                        cluster: 1,
                        ..RmsNormConfig::PLAIN
                    };
                    for p in programs(shape) {
                        let c = RmsNormConfig { programs: p, ..shape };
                        if !out.contains(&c) {
                            out.push(c);
                        }
                    }
                }
                rows *= 2;
            }
            block *= 2;
        }
        // Rows of 4096 columns and more may also be split over clusters of 2 to 16 programs, each
        // holding 1024 to 32768 columns of a row (16384 backward), 8 to 32 elements a thread. The
        // backward's clusters share its 1, 2 or 4 programs per SM.
        if self.n >= 4096 {
            for cluster in [2usize, 4, 8, 16] {
                let block = self.n.div_ceil(cluster).next_power_of_two();
                if !(1024..=max_block.max(16384)).contains(&block) {
                    continue;
                }
                for num_warps in [4u32, 8, 16, 32] {
                    if !(8..=32).contains(&(block / (32 * num_warps as usize))) {
                        continue;
                    }
                    let shape = RmsNormConfig {
                        block_size: block,
                        num_warps,
                        programs: 1,
                        rows: 1,
                        cluster,
                        ..RmsNormConfig::PLAIN
                    };
                    let programs = match self.pass {
                        Pass::Forward => vec![1],
                        Pass::Backward => [1, 2, 4].iter().map(|p| (p * sms / cluster).max(1)).collect(),
                    };
                    for programs in programs {
                        let c = RmsNormConfig { programs, ..shape };
                        if !out.contains(&c) {
                            out.push(c);
                        }
                    }
                    // The backward's clusters of 16 whose tiles are too large to hold twice:
                    // the next tile in shared memory, as many clusters as fit.
                    if self.pass == Pass::Backward && cluster == 16 && block >= 16384 {
                        let programs = resident_clusters(cluster, 1, sms);
                        out.push(RmsNormConfig { programs, prefetch: true, staged: true, ..shape });
                    }
                }
                // The forward's clusters may also stage their tile in shared memory, 32 to 64
                // elements a thread: no registers held for it, so more programs an SM.
                if self.pass == Pass::Forward {
                    for num_warps in [2u32, 4, 8, 16] {
                        if (32..=64).contains(&(block / (32 * num_warps as usize))) {
                            let staged = RmsNormConfig {
                                block_size: block,
                                num_warps,
                                cluster,
                                staged: true,
                                ..RmsNormConfig::PLAIN
                            };
                            out.push(staged);
                        }
                    }
                }
            }
            // Prefetched, over clusters of any size holding blocks of 1024 to 4096 columns (8 to
            // 16 elements a thread; forward, 16-bit: blocks of 16384 at 16 or 32 a thread), as
            // many clusters as fit with 1 to 7 programs an SM.
            let blocks: &[(usize, u32)] = match self.pass {
                Pass::Forward if self.spec.x.bits() == 16 => &[(16384, 16), (16384, 32)],
                Pass::Forward => &[],
                Pass::Backward => &[(1024, 4), (2048, 8), (4096, 8)],
            };
            for &(block, num_warps) in blocks {
                let cluster = self.n.div_ceil(block);
                if !(2..=16).contains(&cluster) {
                    continue;
                }
                for per_sm in [1, 2, 4, 6, 7] {
                    let programs = resident_clusters(cluster, per_sm, sms);
                    let c = RmsNormConfig {
                        block_size: block,
                        num_warps,
                        programs,
                        rows: 1,
                        cluster,
                        prefetch: true,
                        staged: false,
                    };
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// The cache key: kernel, source hash, crate version, device, every dtype and option, `N`
    /// exactly (vector widths depend on it) and `M` in power-of-two buckets.
    pub fn key(&self, device: &DeviceId) -> Key {
        let s = &self.spec;
        let name = |d: Option<DType>| d.map_or("-", DType::name);
        Key::new(self.pass.kernel(), kernel_hash(), env!("CARGO_PKG_VERSION"), device.clone())
            .with_feature("x", s.x.name())
            .with_feature("weight", name(s.weight))
            .with_feature("bias", name(s.bias))
            .with_feature("residual", name(s.residual))
            .with_feature("residual_out", name(s.residual_out))
            .with_feature("out", s.out.name())
            .with_feature("dresidual_out", if self.dresidual_out { "1" } else { "0" })
            .with_shape("N", self.n as u64)
            .with_shape("M", bucket_pow2(self.m as u64))
    }

    /// Bytes one call moves through memory at least: what GB/s figures divide by.
    pub fn bytes(&self) -> f64 {
        let s = &self.spec;
        let (m, n) = (self.m as f64, self.n as f64);
        let size = |d: DType| d.size_bytes() as f64;
        let rows = |d: Option<DType>| d.map_or(0.0, |d| m * n * size(d));
        let vec = |d: Option<DType>| d.map_or(0.0, |d| n * size(d));
        match self.pass {
            Pass::Forward => {
                m * n * (size(s.x) + size(s.out))
                    + rows(s.residual)
                    + rows(s.residual_out)
                    + vec(s.weight)
                    + vec(s.bias)
                    + 4.0 * m
            }
            Pass::Backward => {
                m * n * (size(s.saved()) + size(s.out) + size(s.x))
                    + rows(s.residual)
                    + if self.dresidual_out { m * n * size(s.saved()) } else { 0.0 }
                    + 2.0 * vec(s.weight)
                    + vec(s.bias)
                    + 4.0 * m
            }
        }
    }

    fn plan(&self, cfg: &RmsNormConfig) -> Result<Plan, KernelError> {
        match self.pass {
            Pass::Forward => forward_plan(&self.spec, &ForwardShape::contiguous(self.m, self.n), 1e-6, 0.0, cfg),
            Pass::Backward => {
                backward_plan(&self.spec, self.dresidual_out, &BackwardShape::contiguous(self.m, self.n), 0.0, cfg)
            }
        }
    }
}

impl crate::tuning::Knobs for RmsNormConfig {
    fn to_config(&self) -> Config {
        RmsNormConfig::to_config(self)
    }

    fn from_config(c: &Config) -> Result<RmsNormConfig, KernelError> {
        RmsNormConfig::from_config(c)
    }
}

impl Tunable for Problem {
    type Knobs = RmsNormConfig;

    fn kernel(&self) -> &'static str {
        self.pass.kernel()
    }

    fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    fn heuristic(&self, sm_count: usize) -> RmsNormConfig {
        Problem::heuristic(self, sm_count)
    }

    fn candidates(&self, sm_count: usize) -> Vec<RmsNormConfig> {
        Problem::candidates(self, sm_count)
    }

    fn key(&self, device: &DeviceId) -> Key {
        Problem::key(self, device)
    }

    fn plan(&self, cfg: &RmsNormConfig) -> Result<Plan, KernelError> {
        Problem::plan(self, cfg)
    }

    /// `y` and `rstd` forward; `dx` and `dw` backward.
    fn checked(&self) -> &'static [&'static str] {
        match self.pass {
            Pass::Forward => &["y", "rstd"],
            Pass::Backward => &["dx", "dw"],
        }
    }
}

/// The config [`select`] picked, and where it came from.
pub type Selected = crate::tuning::Selected<RmsNormConfig>;

/// The config to run `problem` with on `backend`: the cached winner; on a miss, the heuristic,
/// or — when the backend's tuning mode says so — the winner of a tuning run now (recorded in the
/// cache). Backends without an autotuner always get the heuristic. (See [`crate::tuning::select`].)
pub fn select<B: Backend>(
    backend: &B,
    problem: &Problem,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Selected, KernelError> {
    crate::tuning::select(backend, problem, progress)
}
