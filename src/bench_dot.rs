//! `tritonite bench-dot`: the tensor-core kernels on GPU 0 — the matmul over large square shapes
//! (a small sweep of tilings, the heuristic's named), and the fused RMSNorm → Linear at
//! `M ∈ {1, 16, 64, 256, 4096}`, `K = N = 4096` against our two-kernel path (our RMSNorm, then our
//! matmul). Writes `dot.json` and `dot.md` under `--out`; `benches/peers_dot.py` times cuBLAS
//! (torch.matmul) and torch / torch.compile's two ops on the same machine for the merged table.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tritonite::kernels::backend::Backend;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::matmul::plan::{matmul_plan, MatmulShape};
use tritonite::kernels::matmul::{MatmulConfig, MatmulSpec};
use tritonite::kernels::plan::Plan;
use tritonite::kernels::rmsnorm::{self, ForwardShape, RmsNormConfig, RmsNormSpec};
use tritonite::kernels::rmsnorm_linear::api::{rms_norm_linear_plan, RmsNormLinearShape};
use tritonite::kernels::rmsnorm_linear::{heuristic, RmsNormLinearSpec};
use tritonite::lang::DType;
use tritonite::runtime::Device;

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

/// Tilings tried beside the heuristic: large tiles for many rows; for few, narrow tiles over long
/// steps of `k`, each with `k` whole and split.
fn sweep(m: usize) -> Vec<MatmulConfig> {
    let mut out = vec![];
    let base =
        MatmulConfig { block_m: 16, block_n: 16, block_k: 16, group_m: 8, num_warps: 4, prefetch: true, split_k: 1 };
    if m >= 256 {
        for (block_m, block_n) in [(128, 128), (128, 64), (64, 128), (64, 64)] {
            for block_k in [32, 64] {
                for num_warps in [4, 8] {
                    for prefetch in [true, false] {
                        out.push(MatmulConfig { block_m, block_n, block_k, num_warps, prefetch, ..base });
                    }
                }
            }
        }
    } else {
        let block_m = m.next_power_of_two().clamp(16, 64);
        for block_n in [32, 64, 128] {
            for block_k in [64, 128] {
                for split_k in [1, 2, 4, 8, 16] {
                    out.push(MatmulConfig { block_m, block_n, block_k, split_k, ..base });
                }
            }
        }
    }
    out.retain(|c| c.check().is_ok());
    out
}

/// Median µs of `plan(cfg)` for the heuristic and for each swept config; returns the row.
fn best_of(
    gpu: &GpuExecutor,
    what: &str,
    (m, n, k): (usize, usize, usize),
    heuristic: MatmulConfig,
    candidates: Vec<MatmulConfig>,
    plan: &dyn Fn(&MatmulConfig) -> Result<Plan>,
) -> Result<DotRow> {
    let first = plan(&heuristic)?;
    let sets = fresh_buffers(gpu, &first, 1)?;
    let heuristic_us = time_on(gpu, &first, &sets)?;
    let (mut best, mut best_us) = (heuristic, heuristic_us);
    for c in candidates {
        // A tiling the lowering refuses (or that fails to launch) is skipped, not fatal.
        match plan(&c).and_then(|p| time_on(gpu, &p, &sets)) {
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
    let sweep = |m: usize| if args.no_sweep { vec![] } else { sweep(m) };
    let mut rows = vec![];
    for s in list(&args.sizes)? {
        let spec = MatmulSpec { dtype: d, out: d, b_transposed: false };
        let shape = MatmulShape::contiguous(s, s, s, false);
        let plan = |c: &MatmulConfig| Ok(matmul_plan(&spec, &shape, c)?);
        rows.push(best_of(
            &gpu,
            "matmul",
            (s, s, s),
            MatmulConfig::heuristic(s, s, s, gpu.sm_count()),
            sweep(s),
            &plan,
        )?);
    }
    let (n, k) = (4096, 4096);
    for m in list(&args.rows)? {
        let spec = RmsNormLinearSpec { dtype: d, out: d };
        let shape = RmsNormLinearShape { m, n, k, stride_x: k, stride_w: k, eps: 1e-6 };
        let plan = |c: &MatmulConfig| Ok(rms_norm_linear_plan(&spec, &shape, c)?);
        let fused = best_of(&gpu, "rmsnorm_linear", (m, n, k), heuristic(m, n, k, gpu.sm_count()), sweep(m), &plan)?;
        // Ours in two launches: RMSNorm (its heuristic config), then x·Wᵀ (best of the sweep).
        let norm_spec = RmsNormSpec::new(d, Some(d));
        let norm_cfg = RmsNormConfig::heuristic(&norm_spec, k, gpu.sm_count());
        let norm = rmsnorm::forward_plan(&norm_spec, &ForwardShape::contiguous(m, k), 1e-6, 0.0, &norm_cfg)?;
        let norm_us = time_on(&gpu, &norm, &fresh_buffers(&gpu, &norm, 1)?)?;
        let mm_spec = MatmulSpec { dtype: d, out: d, b_transposed: true };
        let mm_shape = MatmulShape::contiguous(m, n, k, true);
        let mm_plan = |c: &MatmulConfig| Ok(matmul_plan(&mm_spec, &mm_shape, c)?);
        let mm_heuristic = MatmulConfig::heuristic(m, n, k, gpu.sm_count());
        let mut two = best_of(&gpu, "matmul a·bᵀ", (m, n, k), mm_heuristic, sweep(m), &mm_plan)?;
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
