//! `tritonite autotune` (tune RMSNorm configs per shape on the GPU, cached) and `tritonite cache`
//! (inspect, clear, export and import the tuned results).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite::kernels::rmsnorm::RmsNormSpec;
use tritonite::kernels::tuning::{Cache, Phase, Progress, Source, TuneMode};
use tritonite::lang::DType;
use tritonite::runtime::Device;

use crate::bench::parse_shapes;

/// Options of `tritonite autotune`.
pub struct AutotuneArgs<'a> {
    /// `rmsnorm-fwd`, `rmsnorm-bwd` or `all`.
    pub kernel: &'a str,
    /// `MxN[:dtype],...` or `peers`.
    pub shapes: &'a str,
    /// dtype of shapes without one.
    pub dtype: Option<DType>,
    /// Feature names (see [`spec_for`]).
    pub features: &'a [String],
    /// Re-measure even when cached.
    pub force: bool,
}

/// The features `--features` accepts.
pub const FEATURES: &str = "no-weight, f32-weight, bias, residual, f32-residual, dresidual-out";

/// The spec for `dtype` with the named features on.
fn spec_for(dtype: DType, features: &[String]) -> Result<(RmsNormSpec, bool)> {
    let mut spec = RmsNormSpec::new(dtype, Some(dtype));
    let mut dro = false;
    for f in features {
        match f.trim() {
            "no-weight" => spec.weight = None,
            "f32-weight" => spec.weight = Some(DType::F32),
            "bias" => spec.bias = Some(dtype),
            "residual" => (spec.residual, spec.residual_out) = (Some(dtype), Some(dtype)),
            "f32-residual" => (spec.residual, spec.residual_out) = (Some(DType::F32), Some(DType::F32)),
            "dresidual-out" => dro = true,
            "" => {}
            other => bail!("--features: unknown feature {other:?} (known: {FEATURES})"),
        }
    }
    if dro && spec.residual_out.is_none() {
        bail!("--features: dresidual-out needs residual or f32-residual");
    }
    Ok((spec, dro))
}

fn passes(kernel: &str) -> Result<Vec<Pass>> {
    Ok(match kernel {
        "rmsnorm-fwd" => vec![Pass::Forward],
        "rmsnorm-bwd" => vec![Pass::Backward],
        "all" => vec![Pass::Forward, Pass::Backward],
        other => bail!("--kernel {other:?}: expected rmsnorm-fwd, rmsnorm-bwd or all"),
    })
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

/// Runs `tritonite autotune`: tunes every (kernel, shape) not yet cached and prints a table.
pub fn autotune(args: &AutotuneArgs<'_>) -> Result<()> {
    let shapes = parse_shapes(args.shapes, args.dtype)?;
    let passes = passes(args.kernel)?;
    spec_for(DType::F32, args.features)?;
    let device = Device::open(0).context("autotune needs a GPU")?;
    let gpu = GpuExecutor::new(device)?;
    let tuner = gpu.autotuner().expect("the GPU executor tunes");
    tuner.set_mode(if args.force { TuneMode::Force } else { TuneMode::OnMiss });
    println!("device {} ({}), cache {}", tuner.device(), gpu.sm_count(), {
        let c = tuner.cache();
        c.dir().map_or("in memory only".to_string(), |d| d.display().to_string())
    });
    println!();
    println!("| kernel | shape | dtype | features | source | winner | us | GB/s | heuristic us | speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let features = if args.features.is_empty() { "-".to_string() } else { args.features.join(",") };
    let (mut tuned, mut cached) = (0, 0);
    for &(m, n, dtype) in &shapes {
        let (spec, dro) = spec_for(dtype, args.features)?;
        for &pass in &passes {
            let problem = Problem { pass, spec, dresidual_out: dro && pass == Pass::Backward, m, n };
            let label = format!("{} {m}x{n} {dtype}", pass.kernel());
            let selected = select(&gpu, &problem, &mut |p| progress_line(&label, &p))?;
            eprint!("\r\x1b[2K");
            let key = problem.key(tuner.device());
            let entry = tuner.cache().entry(&key).cloned();
            let (winner_ms, default_ms) = match &entry {
                Some(e) => (e.winner_ms(), e.result(&e.default).and_then(|o| o.median_ms())),
                None => (None, None),
            };
            match selected.source {
                Source::Tuned => tuned += 1,
                Source::Cache => cached += 1,
                Source::Default => {}
            }
            let us = |ms: Option<f64>| ms.map_or("-".into(), |ms| format!("{:.1}", ms * 1e3));
            let gbs = winner_ms.map_or("-".into(), |ms| format!("{:.0}", problem.bytes() / (ms * 1e-3) / 1e9));
            let speedup = match (winner_ms, default_ms) {
                (Some(w), Some(d)) => format!("{:.2}x", d / w),
                _ => "-".into(),
            };
            let source = match selected.source {
                Source::Tuned => "tuned",
                Source::Cache => "cached",
                Source::Default => "heuristic",
            };
            println!(
                "| {} | {m}x{n} | {dtype} | {features} | {source} | {} | {} | {gbs} | {} | {speedup} |",
                pass.kernel(),
                selected.config.to_config(),
                us(winner_ms),
                us(default_ms)
            );
        }
    }
    println!();
    println!("{tuned} tuned now, {cached} found in the cache");
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
