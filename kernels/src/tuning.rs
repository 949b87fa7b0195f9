//! What a backend's autotuning needs: its results cache, its tuning mode and the identity of the
//! device the results belong to ([`Autotuner`]); and what every tuned kernel shares: the selection
//! of a config ([`select`], [`config_for`]) and the measurement of one candidate (run on random
//! inputs, checked against the default config's output, timed over rotated inputs), written once
//! against [`Tunable`]. Each kernel declares its own config space, heuristic and key:
//! [`crate::rmsnorm::tuning`], [`crate::layernorm::tuning`], [`crate::softmax::tuning`],
//! [`crate::cross_entropy::tuning`] (the last three over [`crate::rowwise::RowSpace`]).

use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use tritonite_lang::Buffer;

use crate::backend::{Backend, Binding};
use crate::error::KernelError;
use crate::plan::{BufferDecl, FastHash, FastMap, Plan, Role};
use crate::reference::{random_values, rel_error, tolerance};

pub use tritonite_autotune::{
    Cache, Config, DeviceId, Entry, Failure, Key, Outcome, Phase, Progress, Selection, Source, TuneMode, Tuner,
};

/// A results cache and a tuning mode, shared by every call on one backend.
#[derive(Debug)]
pub struct Autotuner {
    cache: Mutex<Cache>,
    mode: Mutex<TuneMode>,
    device: DeviceId,
    /// What lookups found, by a hash of the problem: the problem itself (compared on a hit) and
    /// its typed config, so a call's config costs neither a key nor a parse.
    remembered: Mutex<FastMap<u64, Remembered>>,
}

impl Autotuner {
    /// An autotuner for `device` with `cache` (its results for other devices are ignored), tuning
    /// per `mode`.
    pub fn new(cache: Cache, mode: TuneMode, device: DeviceId) -> Autotuner {
        Autotuner {
            cache: Mutex::new(cache.with_device(device.clone())),
            mode: Mutex::new(mode),
            device,
            remembered: Mutex::new(FastMap::default()),
        }
    }

    /// The persistent cache under the user cache dir (`TRITONITE_CACHE_DIR` overrides) and the
    /// mode from `TRITONITE_AUTOTUNE` (off unless set: no surprise tuning).
    pub fn from_env(device: DeviceId) -> Autotuner {
        Autotuner::new(Cache::open_default(), TuneMode::from_env(), device)
    }

    /// The device results are kept for.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Whether a call without a cached config measures candidates.
    pub fn mode(&self) -> TuneMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the tuning mode (and forgets remembered lookups).
    pub fn set_mode(&self, mode: TuneMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The config a lookup found for `problem`, when one was remembered.
    fn remembered<P: Tunable>(&self, hash: u64, problem: &P) -> Option<Selected<P::Knobs>> {
        let map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let r = map.get(&hash)?;
        if r.problem.downcast_ref::<P>() != Some(problem) {
            return None;
        }
        Some(Selected { config: *r.config.downcast_ref::<P::Knobs>()?, source: r.source })
    }

    /// Remembers what a lookup found for `problem` (only lookups that cannot change: with tuning
    /// off).
    fn remember<P: Tunable>(&self, hash: u64, problem: &P, found: Selected<P::Knobs>) {
        let r = Remembered { problem: Box::new(problem.clone()), config: Box::new(found.config), source: found.source };
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, r);
    }

    /// The cache, locked.
    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A remembered lookup: the problem and its config, typed (a `Tunable` and its `Knobs`).
#[derive(Debug)]
struct Remembered {
    problem: Box<dyn std::any::Any + Send + Sync>,
    config: Box<dyn std::any::Any + Send + Sync>,
    source: Source,
}

/// A kernel's tuning knobs as autotune meta-parameters, and back.
pub trait Knobs: Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// As autotune meta-parameters.
    fn to_config(&self) -> Config;

    /// From autotune meta-parameters (every one present and valid).
    fn from_config(c: &Config) -> Result<Self, KernelError>;
}

/// One problem of a tuned kernel as the tuner sees it: its config space, heuristic default, cache
/// key and launch plan, and what a candidate's output is checked on. [`select`] and the measurement
/// of one config are written once against it.
pub trait Tunable: Hash + PartialEq + Clone + Send + Sync + 'static {
    /// The kernel's tuning knobs.
    type Knobs: Knobs;

    /// The kernel's name in keys and on the command line (`rmsnorm-fwd`).
    fn kernel(&self) -> &'static str;

    /// Rows and columns, for messages.
    fn shape(&self) -> (usize, usize);

    /// The config used when nothing is tuned.
    fn heuristic(&self, sm_count: usize) -> Self::Knobs;

    /// The pruned candidates, the heuristic first.
    fn candidates(&self, sm_count: usize) -> Vec<Self::Knobs>;

    /// The cache key: everything that changes which config wins.
    fn key(&self, device: &DeviceId) -> Key;

    /// The launches of this problem with `cfg` on contiguous operands.
    fn plan(&self, cfg: &Self::Knobs) -> Result<Plan, KernelError>;

    /// The outputs a candidate must reproduce (the default config's values), by plan name.
    fn checked(&self) -> &'static [&'static str];

    /// The values an input buffer of the timing runs holds: random in [-2, 2), except `rstd`
    /// (positive, around 1, as a backward reads it).
    fn input(&self, name: &'static str, len: usize, seed: u64) -> Vec<f64> {
        let values = random_values(len, seed);
        if name == "rstd" {
            values.iter().map(|v| 1.0 + 0.25 * v).collect()
        } else {
            values
        }
    }

    /// Buffers a run overwrites that later runs read (an in-place gradient): restored before a
    /// candidate's output is checked.
    fn rewritten(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The config [`select`] picked, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected<K> {
    /// The config to run.
    pub config: K,
    /// Cached, tuned now, or the heuristic default.
    pub source: Source,
}

/// The config to run `problem` with on `backend`: the cached winner; on a miss, the heuristic,
/// or — when the backend's tuning mode says so — the winner of a tuning run now (recorded in the
/// cache). Backends without an autotuner always get the heuristic.
pub fn select<B: Backend, P: Tunable>(
    backend: &B,
    problem: &P,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Selected<P::Knobs>, KernelError> {
    select_among(backend, problem, None, progress)
}

/// [`select`], tuning among `only` (after the heuristic, whose output the others are checked
/// against) instead of the kernel's own candidates when given: a kernel author's list of configs
/// to try, as Triton's `@autotune(configs=[...])`. Results merge into the cached entry.
pub fn select_among<B: Backend, P: Tunable>(
    backend: &B,
    problem: &P,
    only: Option<&[P::Knobs]>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Selected<P::Knobs>, KernelError> {
    let sms = backend.sm_count();
    let Some(tuner) = backend.autotuner() else {
        return Ok(Selected { config: problem.heuristic(sms), source: Source::Default });
    };
    let mode = tuner.mode();
    if mode == TuneMode::Off {
        // The hot path of every call: remembered per problem (and kernel, as problems of different
        // kernels share the map), so no key is built twice.
        let id = {
            use std::hash::Hasher;
            let mut h = FastHash::default();
            (problem.kernel(), problem).hash(&mut h);
            h.finish()
        };
        if let Some(selected) = tuner.remembered(id, problem) {
            return Ok(selected);
        }
        let heuristic = problem.heuristic(sms);
        let selected = match tuner.cache().lookup(&problem.key(tuner.device())).map(P::Knobs::from_config) {
            Some(Ok(config)) => Selected { config, source: Source::Cache },
            _ => Selected { config: heuristic, source: Source::Default },
        };
        tuner.remember(id, problem, selected);
        return Ok(selected);
    }
    let heuristic = problem.heuristic(sms);
    let key = problem.key(tuner.device());
    let mut cache = tuner.cache();
    let candidates: Vec<Config> = match only {
        Some(only) => std::iter::once(&heuristic).chain(only).map(Knobs::to_config).collect(),
        None => problem.candidates(sms).iter().map(Knobs::to_config).collect(),
    };
    let mut bench: Option<Bench<'_, B, P>> = None;
    let measure = |c: &Config| {
        let cfg = P::Knobs::from_config(c).map_err(|e| Failure::new("config", e.to_string()))?;
        if bench.is_none() {
            bench = Some(Bench::new(backend, problem).map_err(|e| Failure::new("setup", e.to_string()))?);
        }
        bench.as_mut().expect("created above").measure(&cfg)
    };
    let chosen =
        Tuner::default().select(&mut cache, mode, &key, &heuristic.to_config(), &candidates, measure, progress);
    Ok(Selected { config: P::Knobs::from_config(&chosen.config)?, source: chosen.source })
}

/// What a typed entry point runs: the caller's config, else the backend's cached or tuned one, else
/// the heuristic. Tuning (only when the backend's mode asks for it) says so on stderr: it takes
/// seconds.
pub fn config_for<B: Backend, P: Tunable>(
    backend: &B,
    given: Option<P::Knobs>,
    problem: &P,
) -> Result<P::Knobs, KernelError> {
    if let Some(c) = given {
        return Ok(c);
    }
    let mut announce = |p: Progress<'_>| {
        if p.index == 0 {
            let (m, n) = problem.shape();
            eprintln!(
                "tritonite: tuning {} for {m}x{n} ({} runs; TRITONITE_AUTOTUNE=off to skip)",
                problem.kernel(),
                p.total
            );
        }
    };
    Ok(select(backend, problem, &mut announce)?.config)
}

/// Inputs and outputs for timing one problem, rotated among enough copies to exceed the L2
/// cache (about 100 MB in all), and the default config's output to check candidates against.
struct Bench<'b, B: Backend, P: Tunable> {
    backend: &'b B,
    problem: &'b P,
    /// Buffers per copy, by plan name (the partials are added per config).
    sets: Vec<Vec<(&'static str, B::Buffer)>>,
    /// Host copies of the first copy's [`Tunable::rewritten`] buffers.
    originals: Vec<(usize, Buffer)>,
    /// The default config's checked outputs (name, host copy).
    expected: Option<Vec<(&'static str, Buffer)>>,
}

/// Per-config scratch buffers (the per-program partials, sized by the config): what the plan
/// declares as [`Role::Scratch`].
fn is_scratch(d: &BufferDecl) -> bool {
    d.role == Role::Scratch
}

impl<'b, B: Backend, P: Tunable> Bench<'b, B, P> {
    fn new(backend: &'b B, problem: &'b P) -> Result<Self, KernelError> {
        let plan = problem.plan(&problem.heuristic(backend.sm_count()))?;
        let per_copy: usize = plan.buffers.iter().map(|d| d.len * d.dtype.size_bytes()).sum();
        let copies = 100_000_000usize.div_ceil(per_copy.max(1)).clamp(1, 8);
        let mut sets = vec![];
        let mut originals = vec![];
        for c in 0..copies {
            let mut set = vec![];
            for (i, d) in plan.buffers.iter().filter(|d| !is_scratch(d)).enumerate() {
                let seed = (c * 16 + i) as u64 + 1;
                let host = Buffer::from_f64(d.dtype, &problem.input(d.name, d.len, seed));
                set.push((d.name, backend.upload(&host)?));
                if c == 0 && problem.rewritten().contains(&d.name) {
                    originals.push((set.len() - 1, host));
                }
            }
            sets.push(set);
        }
        Ok(Bench { backend, problem, sets, originals, expected: None })
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

    fn measure(&mut self, cfg: &P::Knobs) -> Result<Vec<f64>, Failure> {
        let fail = |stage: &'static str| move |e: KernelError| Failure::new(stage, e.to_string());
        let plan = self.problem.plan(cfg).map_err(fail("build"))?;
        let scratch: Vec<(&'static str, B::Buffer)> = plan
            .buffers
            .iter()
            .filter(|d| is_scratch(d))
            .map(|d| Ok((d.name, self.backend.alloc(d.dtype, d.len)?)))
            .collect::<Result<_, KernelError>>()
            .map_err(fail("setup"))?;
        for (i, host) in &self.originals {
            self.sets[0][*i].1 = self.backend.upload(host).map_err(fail("setup"))?;
        }
        let prepared = {
            let mut bindings: Vec<Binding<'_, B::Buffer>> =
                self.sets[0].iter().map(|(n, b)| Binding::whole(n, b)).collect();
            bindings.extend(scratch.iter().map(|(n, b)| Binding::whole(n, b)));
            self.backend.prepare(&plan, &bindings).map_err(fail("compile"))?
        };
        self.run_once(&plan, &prepared, &scratch, 0).map_err(fail("launch"))?;
        // The first 2^20 elements of each checked output are compared (enough to catch a wrong
        // config, cheap for rows of any size).
        let checked = self.problem.checked();
        let outputs: Vec<(&'static str, Buffer)> = self.sets[0]
            .iter()
            .filter(|(n, _)| checked.contains(n))
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
