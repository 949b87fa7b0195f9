//! RMSNorm's autotuning: its config space with pruning, its heuristic default, its cache key, and
//! the measurement of one config (run on random inputs, checked against the default config's
//! output, timed with the backend's clock over rotated inputs).

use std::sync::OnceLock;

use tritonite_autotune::{bucket_pow2, fnv1a, Config, DeviceId, Failure, Key, Progress, Source, Tuner};
use tritonite_lang::{Buffer, DType};

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::{RmsNormConfig, RmsNormSpec};
use crate::backend::{Backend, Binding};
use crate::error::KernelError;
use crate::plan::Plan;
use crate::reference::{random_values, rel_error, tolerance};

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
    /// As autotune meta-parameters: `BLOCK_SIZE`, `ROWS`, `num_warps`, `PROGRAMS`.
    pub fn to_config(&self) -> Config {
        Config::new()
            .with("BLOCK_SIZE", self.block_size as i64)
            .with("ROWS", self.rows as i64)
            .with("num_warps", self.num_warps as i64)
            .with("PROGRAMS", self.programs as i64)
    }

    /// From autotune meta-parameters (every one present and valid).
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

    /// The candidates, pruned: blocks from the row's size (up to 16384 forward, 8192 backward)
    /// down to a quarter of it (only the row's size when that is ≤ 4096); tiles of 1 to 32 rows
    /// (8 for rows walked in chunks) up to that many elements; 4 to 32 elements of a tile
    /// per thread; for the backward 1, 2 or 4 programs per SM. The heuristic is always among them.
    pub fn candidates(&self, sm_count: usize) -> Vec<RmsNormConfig> {
        let max_block = match self.pass {
            Pass::Forward => 16384,
            Pass::Backward => 8192,
        };
        let top = self.n.next_power_of_two().clamp(16, max_block);
        let programs: Vec<usize> = match self.pass {
            Pass::Forward => vec![self.heuristic(sm_count).programs],
            Pass::Backward => [1, 2, 4].iter().map(|k| k * sm_count.max(1)).collect(),
        };
        let mut out = vec![self.heuristic(sm_count)];
        let mut block = if top <= 4096 { top } else { top / 4 };
        while block <= top {
            let max_rows = (max_block / block).min(if block >= self.n { 32 } else { 8 });
            let mut rows = 1;
            while rows <= max_rows {
                for num_warps in [1u32, 2, 4, 8, 16] {
                    let per_thread = rows * block / (32 * num_warps as usize);
                    if !(4..=32).contains(&per_thread) {
                        continue;
                    }
                    for &p in &programs {
                        let c = RmsNormConfig { block_size: block, num_warps, programs: p, rows };
                        if !out.contains(&c) {
                            out.push(c);
                        }
                    }
                }
                rows *= 2;
            }
            block *= 2;
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

/// The config [`select`] picked, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The config to run.
    pub config: RmsNormConfig,
    /// Cached, tuned now, or the heuristic default.
    pub source: Source,
}

/// The config to run `problem` with on `backend`: the cached winner; on a miss, the heuristic,
/// or — when the backend's tuning mode says so — the winner of a tuning run now (recorded in the
/// cache). Backends without an autotuner always get the heuristic.
pub fn select<B: Backend>(
    backend: &B,
    problem: &Problem,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Selected, KernelError> {
    let sms = backend.sm_count();
    let heuristic = problem.heuristic(sms);
    let Some(tuner) = backend.autotuner() else {
        return Ok(Selected { config: heuristic, source: Source::Default });
    };
    let mode = tuner.mode();
    if mode == tritonite_autotune::TuneMode::Off {
        // The hot path of every call: remembered per problem, so no key is built twice.
        let id = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            problem.hash(&mut h);
            h.finish()
        };
        if let Some((config, source)) = tuner.remembered(id) {
            return Ok(Selected { config: RmsNormConfig::from_config(&config)?, source });
        }
        let selected = match tuner.cache().lookup(&problem.key(tuner.device())).map(RmsNormConfig::from_config) {
            Some(Ok(config)) => Selected { config, source: Source::Cache },
            _ => Selected { config: heuristic, source: Source::Default },
        };
        tuner.remember(id, (selected.config.to_config(), selected.source));
        return Ok(selected);
    }
    let key = problem.key(tuner.device());
    let mut cache = tuner.cache();
    let candidates: Vec<Config> = problem.candidates(sms).iter().map(RmsNormConfig::to_config).collect();
    let mut bench: Option<Bench<'_, B>> = None;
    let measure = |c: &Config| {
        let cfg = RmsNormConfig::from_config(c).map_err(|e| Failure::new("config", e.to_string()))?;
        if bench.is_none() {
            bench = Some(Bench::new(backend, problem).map_err(|e| Failure::new("setup", e.to_string()))?);
        }
        bench.as_mut().expect("created above").measure(&cfg)
    };
    let chosen =
        Tuner::default().select(&mut cache, mode, &key, &heuristic.to_config(), &candidates, measure, progress);
    Ok(Selected { config: RmsNormConfig::from_config(&chosen.config)?, source: chosen.source })
}

/// Inputs and outputs for timing one problem, rotated among enough copies to exceed the L2
/// cache (about 100 MB in all), and the default config's output to check candidates against.
struct Bench<'b, B: Backend> {
    backend: &'b B,
    problem: Problem,
    /// Buffers per copy, by plan name (the partials are added per config).
    sets: Vec<Vec<(&'static str, B::Buffer)>>,
    /// The default config's checked outputs (name, host copy).
    expected: Option<Vec<(&'static str, Buffer)>>,
}

impl<'b, B: Backend> Bench<'b, B> {
    fn new(backend: &'b B, problem: &Problem) -> Result<Self, KernelError> {
        let plan = problem.plan(&problem.heuristic(backend.sm_count()))?;
        let per_copy: usize = plan.buffers.iter().map(|d| d.len * d.dtype.size_bytes()).sum();
        let copies = 100_000_000usize.div_ceil(per_copy.max(1)).clamp(1, 8);
        let mut sets = vec![];
        for c in 0..copies {
            let mut set = vec![];
            for (i, d) in plan.buffers.iter().filter(|d| !d.name.ends_with("_partial")).enumerate() {
                let seed = (c * 16 + i) as u64 + 1;
                // rstd as the backward reads it: positive, around 1.
                let values: Vec<f64> = if d.name == "rstd" {
                    random_values(d.len, seed).iter().map(|v| 1.0 + 0.25 * v).collect()
                } else {
                    random_values(d.len, seed)
                };
                set.push((d.name, backend.upload(&Buffer::from_f64(d.dtype, &values))?));
            }
            sets.push(set);
        }
        Ok(Bench { backend, problem: *problem, sets, expected: None })
    }

    /// The outputs a candidate must reproduce: `y` forward; `dx` (and `dw`) backward.
    fn checked(&self) -> &'static [&'static str] {
        match self.problem.pass {
            Pass::Forward => &["y", "rstd"],
            Pass::Backward => &["dx", "dw"],
        }
    }

    fn run_once(
        &self,
        plan: &Plan,
        prepared: &B::Prepared,
        scratch: &[(&'static str, B::Buffer)],
        copy: usize,
    ) -> Result<(), KernelError> {
        let mut bindings: Vec<Binding<'_, B::Buffer>> =
            self.sets[copy].iter().map(|(n, b)| Binding::whole(n, b)).collect();
        bindings.extend(scratch.iter().map(|(n, b)| Binding::whole(n, b)));
        self.backend.launch(plan, prepared, &bindings)
    }

    fn measure(&mut self, cfg: &RmsNormConfig) -> Result<Vec<f64>, Failure> {
        let fail = |stage: &'static str| move |e: KernelError| Failure::new(stage, e.to_string());
        let plan = self.problem.plan(cfg).map_err(fail("build"))?;
        let scratch: Vec<(&'static str, B::Buffer)> = plan
            .buffers
            .iter()
            .filter(|d| d.name.ends_with("_partial"))
            .map(|d| Ok((d.name, self.backend.alloc(d.dtype, d.len)?)))
            .collect::<Result<_, KernelError>>()
            .map_err(fail("setup"))?;
        let prepared = {
            let mut bindings: Vec<Binding<'_, B::Buffer>> =
                self.sets[0].iter().map(|(n, b)| Binding::whole(n, b)).collect();
            bindings.extend(scratch.iter().map(|(n, b)| Binding::whole(n, b)));
            self.backend.prepare(&plan, &bindings).map_err(fail("compile"))?
        };
        self.run_once(&plan, &prepared, &scratch, 0).map_err(fail("launch"))?;
        // The first 2^20 elements of each checked output are compared (enough to catch a wrong
        // config, cheap for rows of any size).
        let outputs: Vec<(&'static str, Buffer)> = self.sets[0]
            .iter()
            .filter(|(n, _)| self.checked().contains(n))
            .map(|(n, b)| {
                let host = self.backend.download(b)?;
                Ok((*n, host.slice(0, host.len().min(1 << 20))))
            })
            .collect::<Result<_, KernelError>>()
            .map_err(fail("launch"))?;
        match &self.expected {
            // The first config measured is the default (the heuristic comes first): its output is
            // what the others must match.
            None => self.expected = Some(outputs),
            Some(expected) => {
                for ((name, want), (_, got)) in expected.iter().zip(&outputs) {
                    let err = rel_error(&got.to_f64(), &want.to_f64());
                    if err.is_nan() || err > 2.0 * tolerance(want.dtype()) {
                        return Err(Failure::new("check", format!("{name} differs from the default's by {err:.1e}")));
                    }
                }
            }
        }
        let copies = self.sets.len();
        let mut i = 0;
        self.backend
            .time_ms(3, 20, &mut || {
                i += 1;
                self.run_once(&plan, &prepared, &scratch, i % copies)
            })
            .map_err(fail("time"))
    }
}
