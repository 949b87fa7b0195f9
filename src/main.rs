//! The `tritonite` command line.

mod bench;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::{cpu, reference, registry, rmsnorm};
use tritonite::lang::{Buffer, DType};
use tritonite::lowering::{self, CompileOptions};
use tritonite::runtime::{Device, DeviceBuffer};

#[derive(Parser)]
#[command(name = "tritonite", version, about = "A Triton-style block kernel language for Rust")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run RMSNorm on a sample shape and check it against the fp64 reference (the default).
    Demo(DemoArgs),
    /// Time RMSNorm forward and backward on the GPU next to a device-to-device copy.
    Bench {
        /// Shapes as MxN:dtype, comma-separated (default: the shapes of the peer table).
        #[arg(long, default_value = bench::PEER_SHAPES)]
        shapes: String,
    },
    /// Build a kernel and print one stage of its compilation.
    #[command(after_help = kernels_help())]
    Compile(CompileArgs),
}

fn kernels_help() -> String {
    let mut s = String::from("Kernels and their meta-parameters (--set NAME=VALUE):\n");
    for k in registry::KERNELS {
        s.push_str(&format!("  {:<18} {}\n", k.name, k.about));
        for m in k.meta {
            s.push_str(&format!("      {:<12} {}\n", m.name, m.doc));
        }
    }
    s
}

#[derive(Clone, Copy, ValueEnum)]
enum Stage {
    /// The typed block IR.
    Ir,
    /// The MLIR gpu.module before the pass pipeline.
    Mlir,
    /// The PTX.
    Ptx,
}

#[derive(clap::Args)]
struct CompileArgs {
    /// Kernel name (see below).
    kernel: String,
    /// Element dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Row length N the variant is built for.
    #[arg(long, default_value_t = 4096)]
    n: usize,
    /// Meta-parameter overrides, NAME=VALUE (repeatable).
    #[arg(long = "set", value_parser = parse_setting)]
    set: Vec<(String, i64)>,
    /// What to print.
    #[arg(long, value_enum, default_value = "ptx")]
    emit: Stage,
    /// Target SM architecture.
    #[arg(long, default_value = "sm_90")]
    chip: String,
}

fn parse_setting(s: &str) -> Result<(String, i64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let v = v.trim().parse::<i64>().map_err(|e| format!("{k}: {v:?} is not an integer ({e})"))?;
    Ok((k.trim().to_string(), v))
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Rows.
    #[arg(long, default_value_t = 64)]
    m: usize,
    /// Columns.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Element dtype: f32, f16 or bf16.
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Columns per block (a power of two).
    #[arg(long, default_value_t = 1024)]
    block_size: usize,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs { m: 64, n: 1000, dtype: "bf16".into(), block_size: 1024 }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => demo(&args),
        Command::Compile(args) => compile(&args),
        Command::Bench { shapes } => bench::run(&shapes),
    }
}

fn compile(args: &CompileArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let built = registry::build(&args.kernel, dtype, args.n, &args.set)?;
    let opts = CompileOptions {
        num_warps: built.num_warps,
        target: lowering::Target { chip: args.chip.clone(), ..Default::default() },
        divisible_by_16: registry::aligned_args(&built.kernel, args.n),
    };
    match args.emit {
        Stage::Ir => print!("{}", built.kernel),
        Stage::Mlir => print!("{}", lowering::emit_mlir(&built.kernel, &opts)?),
        Stage::Ptx => print!("{}", lowering::compile(&built.kernel, &opts)?.ptx),
    }
    Ok(())
}

fn parse_dtype(name: &str) -> Result<DType> {
    match DType::parse(name) {
        Some(d) if d.is_float() => Ok(d),
        _ => bail!("--dtype {name:?}: expected f32, f16 or bf16"),
    }
}

fn demo(args: &DemoArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let (m, n, eps) = (args.m, args.n, 1e-6f32);
    let cfg = rmsnorm::RmsNormConfig::new(dtype, Some(dtype), n, args.block_size);
    let kernel = rmsnorm::forward(&cfg).context("building the RMSNorm forward kernel")?;
    println!("RMSNorm forward, {m}x{n} {dtype}, BLOCK_SIZE={}: the block IR\n", args.block_size);
    println!("{kernel}");

    let x = reference::random_buffer(dtype, m * n, 1);
    let w = reference::random_weight(dtype, n, 2);
    let dy = reference::random_buffer(dtype, m * n, 3);
    match Device::open(0) {
        Ok(device) => return demo_gpu(device, args, dtype, &x, &w, &dy),
        Err(e) => println!("No GPU here ({e}): showing the PTX and checking on the CPU interpreter instead.\n"),
    }
    let opts =
        CompileOptions { num_warps: 4, divisible_by_16: registry::aligned_args(&kernel, n), ..Default::default() };
    let ptx = lowering::compile(&kernel, &opts)?.ptx;
    let lines: Vec<&str> = ptx.lines().collect();
    println!("PTX for sm_90 ({} lines; `tritonite compile rmsnorm-fwd --emit ptx` prints it all):", lines.len());
    for l in lines.iter().take(40) {
        println!("  {l}");
    }
    println!("  ...\n");
    let start = std::time::Instant::now();
    let (y, rstd) = cpu::rms_norm_forward(&x, Some(&w), m, n, eps, args.block_size)?;
    let (dx, dw) = cpu::rms_norm_backward(&x, Some(&w), &dy, &rstd, m, n, args.block_size, 8)?;
    let elapsed = start.elapsed();
    println!("interpreter: fwd + bwd in {:.1} ms", elapsed.as_secs_f64() * 1e3);
    let dw = dw.context("backward with a weight returns dw")?;
    check_against_fp64("the interpreter", (&x, &w, &dy), (&y, &dx, &dw), m, n, eps)
}

/// Bytes RMSNorm forward moves: x read, y written, the weight once.
fn fwd_bytes(m: usize, n: usize, d: DType) -> f64 {
    ((2 * m * n + n) * d.size_bytes()) as f64
}

fn demo_gpu(device: Device, args: &DemoArgs, dtype: DType, x: &Buffer, w: &Buffer, dy: &Buffer) -> Result<()> {
    let (m, n, eps, block) = (args.m, args.n, 1e-6f32, args.block_size);
    let warps = (block / 256).clamp(1, 16) as u32;
    println!("GPU: {}", device.name()?);
    let gpu = GpuExecutor::new(device)?;
    let dev = gpu.device();
    let (xd, wd, dyd) = (DeviceBuffer::upload(dev, x)?, DeviceBuffer::upload(dev, w)?, DeviceBuffer::upload(dev, dy)?);
    let (y, rstd) = gpu.rms_norm_forward(&xd, Some(&wd), m, n, eps, block, warps)?;
    let programs = 2 * dev.sm_count()? as usize;
    let (dx, dwd) = gpu.rms_norm_backward(&xd, Some(&wd), &dyd, &rstd, m, n, block, warps, programs)?;
    let dw = dwd.context("backward with a weight returns dw")?;
    let outputs = (&y.download(dev)?, &dx.download(dev)?, &dw.download(dev)?);
    let verdict = check_against_fp64("the GPU", (x, w, dy), outputs, m, n, eps);
    // Time the forward alone: launches prepared once, outputs reused, no host-side lookups.
    let plan = rmsnorm::forward_plan(dtype, Some(dtype), m, n, eps, block, warps)?;
    let buffers = [("x", &xd), ("w", &wd), ("y", &y), ("rstd", &rstd)];
    let prepared = gpu.prepare(&plan, &buffers)?;
    let mut times = dev.time_ms(10, 50, || gpu.launch(&plan, &prepared, &buffers))?;
    times.sort_by(f32::total_cmp);
    let median = times[times.len() / 2] as f64;
    println!(
        "forward {m}x{n} {dtype}: median {:.1} us over {} runs, {:.0} GB/s (small shapes are launch-bound; `tritonite bench` for more)",
        median * 1e3,
        times.len(),
        fwd_bytes(m, n, dtype) / (median * 1e-3) / 1e9
    );
    verdict
}

/// Prints each output's relative error against the fp64 reference; an error if any is over the
/// dtype's tolerance.
fn check_against_fp64(
    who: &str,
    (x, w, dy): (&Buffer, &Buffer, &Buffer),
    (y, dx, dw): (&Buffer, &Buffer, &Buffer),
    m: usize,
    n: usize,
    eps: f32,
) -> Result<()> {
    let (xf, wf) = (x.to_f64(), w.to_f64());
    let (y_ref, _) = reference::rms_norm_forward(&xf, Some(&wf), m, n, eps as f64);
    let (dx_ref, dw_ref) = reference::rms_norm_backward(&xf, Some(&wf), &dy.to_f64(), m, n, eps as f64);
    let tol = reference::tolerance(x.dtype());
    let mut ok = true;
    for (name, got, want) in [("y", y, y_ref), ("dx", dx, dx_ref), ("dw", dw, dw_ref)] {
        let err = reference::rel_error(&got.to_f64(), &want);
        ok &= err <= tol;
        println!(
            "  {name:>2}: relative error vs fp64 {err:.2e} (tolerance {tol:.0e}) {}",
            if err <= tol { "ok" } else { "FAIL" }
        );
    }
    if !ok {
        bail!("{who} disagrees with the fp64 reference");
    }
    Ok(())
}
