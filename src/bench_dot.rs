//! `tritonite bench-dot`: the tensor-core kernels on GPU 0 — the matmul over large square shapes
//! (a sweep of the autotune space's tilings, the heuristic's named), and the fused RMSNorm → Linear at
//! `M ∈ {1, 16, 64, 256, 4096}`, `K = N = 4096` against our two-kernel path (our RMSNorm, then our
//! matmul). Writes `dot.json` and `dot.md` under `--out`; `benches/peers_dot.py` times cuBLAS
//! (torch.matmul) and torch / torch.compile's two ops on the same machine for the merged table.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tritonite::kernels::backend::{alloc_scratch, Backend, Binding};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::matmul::tuning::{DotKernel, Problem as DotProblem};
use tritonite::kernels::matmul::MatmulConfig;
use tritonite::kernels::plan::{Plan, Role};
use tritonite::kernels::rmsnorm::{self, ForwardShape, RmsNormConfig, RmsNormSpec};
use tritonite::kernels::tuning::Tunable;
use tritonite::lang::DType;
use tritonite::runtime::Device;
use tritonite::runtime::DeviceBuffer;

use crate::bench::time_plan;
use crate::bench_ops::{fresh_buffers, time_on};

/// Options of `bench-dot`.
#[derive(Args, Debug)]
pub struct BenchDotArgs {
    /// Write dot.json and dot.md here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Square matmul sizes, comma-separated.
    #[arg(long, default_value = "1024,2048,4096,8192")]
    pub sizes: String,
    /// Rows of the fused RMSNorm → Linear, comma-separated (K = N = 4096).
    #[arg(long, default_value = "1,16,64,256,4096")]
    pub rows: String,
    /// Time the default tilings only (no sweep): minutes faster.
    #[arg(long)]
    pub no_sweep: bool,
}

/// One timed kernel (or path) on one shape.
#[derive(Serialize, Debug)]
pub struct DotRow {
    /// `matmul`, `rmsnorm_linear` (fused) or `rmsnorm+matmul` (ours, two launches).
    pub what: String,
    /// Shape `m, n, k`.
    pub m: usize,
    /// Outputs per row.
    pub n: usize,
    /// Summed dimension.
    pub k: usize,
    /// Input dtype.
    pub dtype: String,
    /// The best tiling found by the sweep.
    pub best_config: String,
    /// Median µs of the best tiling.
    pub best_us: f64,
    /// Median µs of the default (heuristic) tiling.
    pub heuristic_us: f64,
    /// TFLOP/s of the best (2·m·n·k flops).
    pub tflops: f64,
}

fn describe(c: &MatmulConfig) -> String {
    format!(
        "{}x{}x{} w{} g{}{}{}",
        c.block_m,
        c.block_n,
        c.block_k,
        c.num_warps,
        c.group_m,
        if c.prefetch { " prefetch" } else { "" },
        if c.split_k > 1 { format!(" split {}", c.split_k) } else { String::new() }
    )
}

/// Median µs of `problem`'s default tiling and, with `sweep`, of each other candidate of its
/// autotune space (`matmul::tuning`); returns the row.
fn best_of(gpu: &GpuExecutor, what: &str, problem: &DotProblem, sweep: bool) -> Result<DotRow> {
    let (m, n, k) = (problem.m, problem.n, problem.k);
    let heuristic = problem.heuristic(gpu.sm_count());
    // The candidates start with the default, timed first.
    let candidates = if sweep { problem.candidates(gpu.sm_count()).split_off(1) } else { vec![] };
    let plan = |c: &MatmulConfig| -> Result<Plan> { Ok(problem.plan(c)?) };
    let first = plan(&heuristic)?;
    let sets = fresh_buffers(gpu, &first, 1)?;
    let heuristic_us = time_on(gpu, &first, &sets)?;
    // Every tiling reads the same operands; its scratch (split-K partials) is sized by the tiling.
    let time = |p: &Plan| -> Result<f64> {
        let scratch = alloc_scratch(gpu, p)?;
        let sets: Vec<Vec<Binding<'_, DeviceBuffer>>> = sets
            .iter()
            .map(|set| {
                let operands = first.buffers.iter().zip(set).filter(|(d, _)| d.role != Role::Scratch);
                let operands = operands.map(|(d, b)| Binding::whole(d.name, b));
                operands.chain(scratch.iter().map(|(name, b)| Binding::whole(name, b))).collect()
            })
            .collect();
        time_plan(gpu, p, &sets)
    };
    let (mut best, mut best_us) = (heuristic, heuristic_us);
    for c in candidates {
        // A tiling the lowering refuses (or that fails to launch) is skipped, not fatal.
        match plan(&c).and_then(|p| time(&p)) {
            Ok(us) if us < best_us => (best, best_us) = (c, us),
            Ok(_) => {}
            Err(e) => eprintln!("  {what} {m}x{n}x{k} {}: skipped: {e:#}", describe(&c)),
        }
    }
    let tflops = 2.0 * (m * n * k) as f64 / (best_us * 1e-6) / 1e12;
    eprintln!(
        "{what} {m}x{n}x{k}: best {} {best_us:.1} us ({tflops:.1} TFLOP/s), heuristic {heuristic_us:.1} us",
        describe(&best)
    );
    Ok(DotRow {
        what: what.into(),
        m,
        n,
        k,
        dtype: "bf16".into(),
        best_config: describe(&best),
        best_us,
        heuristic_us,
        tflops,
    })
}

fn list(s: &str) -> Result<Vec<usize>> {
    s.split(',').map(|v| Ok(v.trim().parse::<usize>()?)).collect()
}

/// Runs the benchmark.
pub fn main(args: &BenchDotArgs) -> Result<()> {
    let device = match Device::open(0) {
        Ok(d) => d,
        Err(e) => bail!("bench-dot needs a GPU: {e}"),
    };
    let name = device.name()?;
    let gpu = GpuExecutor::new(device)?;
    eprintln!("device {name}");
    let d = DType::BF16;
    let sweep = !args.no_sweep;
    let problem = |kernel, m, n, k| DotProblem { kernel, dtype: d, out: d, m, n, k };
    let mut rows = vec![];
    for s in list(&args.sizes)? {
        let p = problem(DotKernel::Matmul { b_transposed: false }, s, s, s);
        rows.push(best_of(&gpu, "matmul", &p, sweep)?);
    }
    let (n, k) = (4096, 4096);
    for m in list(&args.rows)? {
        let fused = best_of(&gpu, "rmsnorm_linear", &problem(DotKernel::RmsNormLinear, m, n, k), sweep)?;
        // Ours in two launches: RMSNorm (its heuristic config), then x·Wᵀ (best of the sweep).
        let norm_spec = RmsNormSpec::new(d, Some(d));
        let norm_cfg = RmsNormConfig::heuristic(&norm_spec, k, gpu.sm_count());
        let norm = rmsnorm::forward_plan(&norm_spec, &ForwardShape::contiguous(m, k), 1e-6, 0.0, &norm_cfg)?;
        let norm_us = time_on(&gpu, &norm, &fresh_buffers(&gpu, &norm, 1)?)?;
        let linear = problem(DotKernel::Matmul { b_transposed: true }, m, n, k);
        let mut two = best_of(&gpu, "matmul a·bᵀ", &linear, sweep)?;
        eprintln!("  rmsnorm {m}x{k}: {norm_us:.1} us; two launches {:.1} us", norm_us + two.best_us);
        two.what = "rmsnorm+matmul".into();
        two.best_us += norm_us;
        two.heuristic_us += norm_us;
        two.tflops = 2.0 * (m * n * k) as f64 / (two.best_us * 1e-6) / 1e12;
        rows.push(fused);
        rows.push(two);
    }
    let md = markdown(&name, &rows);
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        std::fs::write(
            out.join("dot.json"),
            serde_json::to_string_pretty(&serde_json::json!({"device": name, "rows": rows}))?,
        )?;
        std::fs::write(out.join("dot.md"), &md)?;
    }
    Ok(())
}

fn markdown(device: &str, rows: &[DotRow]) -> String {
    let mut s = format!("Device: {device}, bf16, CUDA-event medians over inputs rotated past the L2.\n\n");
    s.push_str("| kernel | M×N×K | best tiling | best µs | TFLOP/s | heuristic µs |\n|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {}×{}×{} | {} | {:.1} | {:.1} | {:.1} |\n",
            r.what, r.m, r.n, r.k, r.best_config, r.best_us, r.tflops, r.heuristic_us
        ));
    }
    s
}
