//! `tritonite autotune` (tune kernel configs per shape on the GPU, cached: RMSNorm, LayerNorm,
//! softmax and cross-entropy, forward and backward) and `tritonite cache` (inspect, clear, export
//! and import the tuned results).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::cross_entropy::{self, CrossEntropySpec, GradMode};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::layernorm::{self, LayerNormSpec};
use tritonite::kernels::matmul::tuning::{DotKernel, Problem as DotProblem};
use tritonite::kernels::rmsnorm::{self, RmsNormSpec};
use tritonite::kernels::softmax::{self, SoftmaxSpec};
use tritonite::kernels::tuning::{select_among, Cache, Config, Knobs, Phase, Progress, Source, Tunable, TuneMode};
use tritonite::lang::DType;
use tritonite::runtime::Device;

use crate::bench::parse_shapes;
use crate::bench_ops::parse_op_shapes;

/// Options of `tritonite autotune`.
pub struct AutotuneArgs<'a> {
    /// Kernels, comma-separated (see [`KERNELS`]).
    pub kernel: &'a str,
    /// `MxN[:dtype],...` or `peers`.
    pub shapes: &'a str,
    /// dtype of shapes without one.
    pub dtype: Option<DType>,
    /// Feature names (see [`FEATURES`]).
    pub features: &'a [String],
    /// Re-measure even when cached.
    pub force: bool,
    /// Configs to tune among instead of the kernel's own candidates: `NAME=VALUE ...` each,
    /// separated by `;`.
    pub configs: Option<&'a str>,
}

/// The kernels `--kernel` accepts: each pass by name, a family for both passes, `all` for
/// RMSNorm's two (what `scripts/device-tune.sh` tunes).
pub const KERNELS: &str = "rmsnorm-fwd, rmsnorm-bwd, rmsnorm, layernorm-fwd, layernorm-bwd, layernorm, softmax-fwd, \
softmax-bwd, softmax, cross-entropy-fwd, cross-entropy-bwd, cross-entropy, all (= rmsnorm); with MxNxK shapes: \
matmul (a·b), matmul-nt (a·bᵀ), rmsnorm-linear";

/// The features `--features` accepts, per kernel family.
pub const FEATURES: &str = "rmsnorm: no-weight, f32-weight, bias, residual, f32-residual, dresidual-out; \
layernorm: no-weight, no-bias, f32-weight, f32-bias; softmax: f32-out; \
cross-entropy: i32-target, per-row, scalar, out-of-place";

/// A kernel family: its passes share a spec and its features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    RmsNorm,
    LayerNorm,
    Softmax,
    CrossEntropy,
}

impl Family {
    /// The features this family's spec reads.
    fn features(self) -> &'static [&'static str] {
        match self {
            Family::RmsNorm => &["no-weight", "f32-weight", "bias", "residual", "f32-residual", "dresidual-out"],
            Family::LayerNorm => &["no-weight", "no-bias", "f32-weight", "f32-bias"],
            Family::Softmax => &["f32-out"],
            Family::CrossEntropy => &["i32-target", "per-row", "scalar", "out-of-place"],
        }
    }

    /// `--shapes peers`: RMSNorm's peer table, or `bench --ops`'s shapes of this op.
    fn peer_op(self) -> Option<&'static str> {
        match self {
            Family::RmsNorm => None,
            Family::LayerNorm => Some("layernorm"),
            Family::Softmax => Some("softmax"),
            Family::CrossEntropy => Some("cross_entropy"),
        }
    }
}

/// One kernel and pass to tune: (family, backward).
type Target = (Family, bool);

/// One shape to tune: rows, columns, dtype.
type Shape = (usize, usize, DType);

/// The kernels named by `--kernel` (comma-separated), in order, each once.
fn targets(kernel: &str) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = vec![];
    for name in kernel.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (family, pass) = match name.rsplit_once('-') {
            Some((f, p @ ("fwd" | "bwd"))) => (f, Some(p == "bwd")),
            _ => (name, None),
        };
        let family = match (family, pass) {
            ("rmsnorm", _) | ("all", None) => Family::RmsNorm,
            ("layernorm", _) => Family::LayerNorm,
            ("softmax", _) => Family::Softmax,
            ("cross-entropy", _) => Family::CrossEntropy,
            _ => bail!("--kernel {name:?}: expected one of {KERNELS}"),
        };
        for backward in pass.map_or(vec![false, true], |b| vec![b]) {
            if !out.contains(&(family, backward)) {
                out.push((family, backward));
            }
        }
    }
    if out.is_empty() {
        bail!("--kernel: expected one of {KERNELS}");
    }
    Ok(out)
}

/// Checks that every feature applies to one of the kernels tuned.
fn check_features(targets: &[Target], features: &[String]) -> Result<()> {
    for f in features.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        if !targets.iter().any(|(family, _)| family.features().contains(&f)) {
            bail!("--features: {f:?} applies to none of the kernels tuned (known: {FEATURES})");
        }
    }
    Ok(())
}

/// Whether `name` is among `features`.
fn has(features: &[String], name: &str) -> bool {
    features.iter().any(|f| f.trim() == name)
}

/// RMSNorm's spec for `dtype` with the named features on (weight in `dtype` unless told).
fn rmsnorm_spec(dtype: DType, features: &[String]) -> Result<(RmsNormSpec, bool)> {
    let mut spec = RmsNormSpec::new(dtype, Some(dtype));
    if has(features, "no-weight") {
        spec.weight = None;
    }
    if has(features, "f32-weight") {
        spec.weight = Some(DType::F32);
    }
    if has(features, "bias") {
        spec.bias = Some(dtype);
    }
    if has(features, "residual") {
        (spec.residual, spec.residual_out) = (Some(dtype), Some(dtype));
    }
    if has(features, "f32-residual") {
        (spec.residual, spec.residual_out) = (Some(DType::F32), Some(DType::F32));
    }
    let dro = has(features, "dresidual-out");
    if dro && spec.residual_out.is_none() {
        bail!("--features: dresidual-out needs residual or f32-residual");
    }
    Ok((spec, dro))
}

/// LayerNorm's spec: weight and bias in `dtype` (as `bench --ops`) unless told.
fn layernorm_spec(dtype: DType, features: &[String]) -> LayerNormSpec {
    let param = |off: &str, f32: &str| match (has(features, off), has(features, f32)) {
        (true, _) => None,
        (false, true) => Some(DType::F32),
        (false, false) => Some(dtype),
    };
    LayerNormSpec::new(dtype, param("no-weight", "f32-weight"), param("no-bias", "f32-bias"))
}

/// A one-line progress bar on stderr.
fn progress_line(label: &str, p: &Progress<'_>) {
    let width = 24;
    let done = (p.index + 1).min(p.total);
    let filled = done * width / p.total.max(1);
    let phase = match p.phase {
        Phase::Sweep => "sweep",
        Phase::HeadToHead => "final",
    };
    let result = match p.outcome.median_ms() {
        Some(ms) => format!("{:.1} us", ms * 1e3),
        None => "failed".into(),
    };
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r\x1b[2K{label} [{}{}] {done}/{} {phase} {} -> {result}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        p.total,
        p.config
    );
    let _ = err.flush();
}

/// What the table counts: tuned now, found in the cache.
#[derive(Default)]
struct Tally {
    tuned: usize,
    cached: usize,
}

/// The dtype and features columns of a row, and `--configs`.
struct Row<'a> {
    dtype: DType,
    features: &'a str,
    configs: Option<&'a str>,
}

/// `--configs`: `NAME=VALUE ...` configs separated by `;`.
fn config_list(text: &str) -> Result<Vec<Config>> {
    let configs: Vec<Config> = text
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().with_context(|| format!("--configs: {c:?}")))
        .collect::<Result<_>>()?;
    if configs.is_empty() {
        bail!("--configs: expected configs as NAME=VALUE ..., separated by ';'");
    }
    Ok(configs)
}

/// `--configs` as the knobs of one kernel.
fn parse_configs<K: Knobs>(text: &str) -> Result<Vec<K>> {
    config_list(text)?.iter().map(|c| K::from_config(c).with_context(|| format!("--configs: \"{c}\""))).collect()
}

/// Tunes (or finds cached) the config of `problem` moving `bytes` and prints its table row.
fn tune_row<P: Tunable>(gpu: &GpuExecutor, problem: &P, bytes: f64, what: &Row<'_>, tally: &mut Tally) -> Result<()> {
    let tuner = gpu.autotuner().expect("the GPU executor tunes");
    let (m, n) = problem.shape();
    let label = format!("{} {m}x{n} {}", problem.kernel(), what.dtype);
    let only = what.configs.map(parse_configs::<P::Knobs>).transpose()?;
    let selected = select_among(gpu, problem, only.as_deref(), &mut |p| progress_line(&label, &p))?;
    eprint!("\r\x1b[2K");
    let entry = tuner.cache().entry(&problem.key(tuner.device())).cloned();
    let (winner_ms, default_ms) = match &entry {
        Some(e) => (e.winner_ms(), e.result(&e.default).and_then(|o| o.median_ms())),
        None => (None, None),
    };
    let source = match selected.source {
        Source::Tuned => {
            tally.tuned += 1;
            "tuned"
        }
        Source::Cache => {
            tally.cached += 1;
            "cached"
        }
        Source::Default => "heuristic",
    };
    let us = |ms: Option<f64>| ms.map_or("-".into(), |ms| format!("{:.1}", ms * 1e3));
    let gbs = winner_ms.map_or("-".into(), |ms| format!("{:.0}", bytes / (ms * 1e-3) / 1e9));
    let speedup = match (winner_ms, default_ms) {
        (Some(w), Some(d)) => format!("{:.2}x", d / w),
        _ => "-".into(),
    };
    println!(
        "| {} | {m}x{n} | {} | {} | {source} | {} | {} | {gbs} | {} | {speedup} |",
        problem.kernel(),
        what.dtype,
        what.features,
        selected.config.to_config(),
        us(winner_ms),
        us(default_ms)
    );
    Ok(())
}

/// The shapes to tune `family` on: `--shapes`, where `peers` is RMSNorm's peer table or
/// `bench --ops`'s shapes of the op.
fn shapes_for(family: Family, args: &AutotuneArgs<'_>) -> Result<Vec<Shape>> {
    match (args.shapes, family.peer_op()) {
        ("peers", Some(op)) => {
            Ok(parse_op_shapes("peers")?.into_iter().filter(|(o, ..)| o == op).map(|(_, m, n, d)| (m, n, d)).collect())
        }
        (shapes, _) => parse_shapes(shapes, args.dtype),
    }
}

/// The tensor-core kernel named `name`, if it is one (`matmul`: `a · b`; `matmul-nt`: `a · bᵀ`;
/// `rmsnorm-linear`).
fn dot_kernel(name: &str) -> Option<DotKernel> {
    match name {
        "matmul" => Some(DotKernel::Matmul { b_transposed: false }),
        "matmul-nt" => Some(DotKernel::Matmul { b_transposed: true }),
        "rmsnorm-linear" => Some(DotKernel::RmsNormLinear),
        _ => None,
    }
}

/// `MxNxK[:dtype],...` (dtype f16 or bf16, default `default` else bf16).
fn parse_dot_shapes(spec: &str, default: Option<DType>) -> Result<Vec<(usize, usize, usize, DType)>> {
    spec.split(',')
        .map(|s| {
            let s = s.trim();
            let (dims, d) = match s.split_once(':') {
                Some((dims, d)) => (dims, DType::parse(d)),
                None => (s, Some(default.unwrap_or(DType::BF16))),
            };
            let dtype = d
                .filter(|d| matches!(d, DType::F16 | DType::BF16))
                .with_context(|| format!("shape {s:?}: expected MxNxK:dtype with dtype f16 or bf16"))?;
            let dims: Vec<usize> = dims
                .split('x')
                .map(|v| v.parse::<usize>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("shape {s:?}: expected MxNxK, three numbers"))?;
            match dims[..] {
                [m, n, k] => Ok((m, n, k, dtype)),
                _ => bail!("shape {s:?}: expected MxNxK, three numbers"),
            }
        })
        .collect()
}

/// Tunes the tensor-core kernels `kernels` over `MxNxK` shapes (output in the input dtype).
fn autotune_dot(kernels: &[DotKernel], args: &AutotuneArgs<'_>) -> Result<()> {
    if args.features.iter().any(|f| !f.trim().is_empty()) {
        bail!("--features: the tensor-core kernels take none");
    }
    let shapes = parse_dot_shapes(args.shapes, args.dtype)?;
    args.configs.map(config_list).transpose()?;
    let gpu = open_tuner(args.force)?;
    let mut tally = Tally::default();
    for &kernel in kernels {
        for &(m, n, k, dtype) in &shapes {
            let p = DotProblem { kernel, dtype, out: dtype, m, n, k };
            // Bytes at least moved: both operands and the output (what bounds a decode step).
            let bytes = ((m * k + k * n + m * n) * dtype.size_bytes()) as f64;
            let features = format!("K={k}");
            tune_row(&gpu, &p, bytes, &Row { dtype, features: &features, configs: args.configs }, &mut tally)?;
        }
    }
    println!();
    println!("{} tuned now, {} found in the cache", tally.tuned, tally.cached);
    Ok(())
}

/// GPU 0's executor with its tuner in the mode `--force` asks for, and the table's header printed.
fn open_tuner(force: bool) -> Result<GpuExecutor> {
    let device = Device::open(0).context("autotune needs a GPU")?;
    let gpu = GpuExecutor::new(device)?;
    let tuner = gpu.autotuner().expect("the GPU executor tunes");
    tuner.set_mode(if force { TuneMode::Force } else { TuneMode::OnMiss });
    println!("device {} ({}), cache {}", tuner.device(), gpu.sm_count(), {
        let c = tuner.cache();
        c.dir().map_or("in memory only".to_string(), |d| d.display().to_string())
    });
    println!();
    println!("| kernel | shape | dtype | features | source | winner | us | GB/s | heuristic us | speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    Ok(gpu)
}

/// Runs `tritonite autotune`: tunes every (kernel, shape) not yet cached and prints a table.
pub fn autotune(args: &AutotuneArgs<'_>) -> Result<()> {
    let names: Vec<&str> = args.kernel.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
    let dots: Vec<DotKernel> = names.iter().filter_map(|n| dot_kernel(n)).collect();
    if !dots.is_empty() {
        if dots.len() != names.len() {
            bail!("--kernel: tune the tensor-core kernels (MxNxK shapes) in a call of their own");
        }
        return autotune_dot(&dots, args);
    }
    let targets = targets(args.kernel)?;
    check_features(&targets, args.features)?;
    args.configs.map(config_list).transpose()?;
    // Per family (in the order named): its shapes, and for each shape its passes (RMSNorm's table
    // keeps its order: forward, then backward, shape by shape).
    let mut work: Vec<(Family, Vec<bool>, Vec<Shape>)> = vec![];
    for &(family, backward) in &targets {
        match work.iter_mut().find(|(f, ..)| *f == family) {
            Some((_, passes, _)) => passes.push(backward),
            None => {
                if family == Family::RmsNorm {
                    rmsnorm_spec(DType::F32, args.features)?;
                }
                work.push((family, vec![backward], shapes_for(family, args)?));
            }
        }
    }
    let gpu = open_tuner(args.force)?;
    let features: Vec<String> = args.features.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    let mut tally = Tally::default();
    for (family, passes, shapes) in work {
        let own: Vec<&str> = features.iter().map(String::as_str).filter(|f| family.features().contains(f)).collect();
        let own = if own.is_empty() { "-".to_string() } else { own.join(",") };
        for ((m, n, dtype), &backward) in shapes.into_iter().flat_map(|s| passes.iter().map(move |b| (s, b))) {
            let what = Row { dtype, features: &own, configs: args.configs };
            match family {
                Family::RmsNorm => {
                    use rmsnorm::tuning::{Pass, Problem};
                    let (spec, dro) = rmsnorm_spec(dtype, &features)?;
                    let pass = if backward { Pass::Backward } else { Pass::Forward };
                    let p = Problem { pass, spec, dresidual_out: dro && backward, m, n };
                    tune_row(&gpu, &p, p.bytes(), &what, &mut tally)?;
                }
                Family::LayerNorm => {
                    use layernorm::tuning::{Pass, Problem};
                    let pass = if backward { Pass::Backward } else { Pass::Forward };
                    let p = Problem { pass, spec: layernorm_spec(dtype, &features), m, n };
                    tune_row(&gpu, &p, p.bytes(), &what, &mut tally)?;
                }
                Family::Softmax => {
                    use softmax::tuning::{Pass, Problem};
                    let pass = if backward { Pass::Backward } else { Pass::Forward };
                    let out = if has(&features, "f32-out") { DType::F32 } else { dtype };
                    let p = Problem { pass, spec: SoftmaxSpec { x: dtype, out }, m, n };
                    tune_row(&gpu, &p, p.bytes(), &what, &mut tally)?;
                }
                Family::CrossEntropy => {
                    use cross_entropy::tuning::Problem;
                    let target = if has(&features, "i32-target") { DType::I32 } else { DType::I64 };
                    let spec = CrossEntropySpec { logits: dtype, target };
                    let p = if backward {
                        let mode = match (has(&features, "per-row"), has(&features, "scalar")) {
                            (true, _) => GradMode::PerRow,
                            (false, true) => GradMode::Scalar,
                            (false, false) => GradMode::Mean,
                        };
                        Problem::backward(spec, mode, !has(&features, "out-of-place"), m, n)
                    } else {
                        Problem::forward(spec, m, n)
                    };
                    tune_row(&gpu, &p, p.bytes(), &what, &mut tally)?;
                }
            }
        }
    }
    println!();
    println!("{} tuned now, {} found in the cache", tally.tuned, tally.cached);
    Ok(())
}

/// `tritonite cache` actions.
pub enum CacheAction<'a> {
    /// Every entry, one line each.
    List,
    /// One entry in full, by id or id prefix.
    Show(&'a str),
    /// Removes every entry.
    Clear,
    /// Writes every entry to one file.
    Export(&'a Path),
    /// Merges the entries of a file.
    Import(&'a Path),
}

/// Runs `tritonite cache …` on the cache under the user cache dir (`TRITONITE_CACHE_DIR`
/// overrides). Works without a GPU.
pub fn cache(action: CacheAction<'_>) -> Result<()> {
    let mut cache = Cache::open_default();
    let dir = cache.dir().map(|d| d.display().to_string()).unwrap_or_else(|| "(memory)".into());
    match action {
        CacheAction::List => {
            let entries = cache.list();
            println!("{} tuned entries in {dir}", entries.len());
            for e in entries {
                let ms = e.winner_ms().map_or("-".into(), |ms| format!("{:.1} us", ms * 1e3));
                println!("{}  {}  winner {} ({ms}, {} configs measured)", e.key.id(), e.key, e.winner, e.results.len());
            }
        }
        CacheAction::Show(id) => {
            let e = cache.show(id)?;
            println!("{}\n  key: {}\n  device: {}", e.key.id(), e.key, e.key.device());
            println!("  default: {}\n  winner: {}", e.default, e.winner);
            for (c, o) in &e.results {
                let what = match o.median_ms() {
                    Some(ms) => format!("{:.2} us", ms * 1e3),
                    None => format!("{o:?}"),
                };
                println!("  {c}: {what}");
            }
        }
        CacheAction::Clear => println!("removed {} entries from {dir}", cache.clear()?),
        CacheAction::Export(path) => println!("exported {} entries to {}", cache.export(path)?, path.display()),
        CacheAction::Import(path) => println!("imported {} entries from {}", cache.import(path)?, path.display()),
    }
    Ok(())
}
