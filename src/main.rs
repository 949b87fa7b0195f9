//! The `tritonite` command line.

mod bench;
mod bench_dot;
mod bench_ops;
mod dispatch;
mod tune;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::rmsnorm::check::{run_case, Case, CaseResult};
use tritonite::kernels::rmsnorm::{self, ForwardShape, RmsNormConfig, RmsNormSpec};
use tritonite::kernels::{reference, registry};
use tritonite::lang::DType;
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
    /// Time RMSNorm forward and backward on the GPU next to a device-to-device copy; merge the
    /// peers' numbers (peers.py) and write JSON, Markdown and a plot (`bench report` needs no GPU).
    Bench(bench::BenchArgs),
    /// Time the tensor-core kernels on the GPU: matmul (a sweep of tilings) and the fused RMSNorm →
    /// Linear against our RMSNorm + matmul in two launches.
    BenchDot(bench_dot::BenchDotArgs),
    /// Measure the host time of one small RMSNorm call through the public API (warm caches).
    Dispatch {
        /// Rows.
        #[arg(long, default_value_t = 1)]
        m: usize,
        /// Columns.
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// f32, f16 or bf16.
        #[arg(long, default_value = "bf16")]
        dtype: String,
    },
    /// Tune kernel configs (RMSNorm, LayerNorm, softmax, cross-entropy, matmul, the fused RMSNorm →
    /// Linear) per shape on the GPU; results are cached and reused.
    Autotune {
        /// Kernels, comma-separated: rmsnorm-fwd, rmsnorm-bwd, layernorm-fwd, layernorm-bwd, softmax-fwd,
        /// softmax-bwd, cross-entropy-fwd, cross-entropy-bwd; a family name (rmsnorm, layernorm, softmax,
        /// cross-entropy) for both passes; all for RMSNorm's two. The tensor-core kernels, in a call of
        /// their own with MxNxK shapes: matmul (a·b), matmul-nt (a·bᵀ), rmsnorm-linear.
        #[arg(long, default_value = "all")]
        kernel: String,
        /// Shapes as MxN or MxN:dtype, comma-separated, or `peers` for the peer tables' shapes (RMSNorm's,
        /// or `bench --ops`'s of the op); MxNxK[:dtype] for the tensor-core kernels.
        #[arg(long, default_value = "peers")]
        shapes: String,
        /// dtype of shapes given without one: f32, f16 or bf16.
        #[arg(long)]
        dtype: Option<String>,
        /// Options, comma-separated. RMSNorm: no-weight, f32-weight, bias, residual, f32-residual,
        /// dresidual-out. LayerNorm (weight and bias in x's dtype by default): no-weight, no-bias,
        /// f32-weight, f32-bias. Softmax: f32-out. Cross-entropy (i64 targets; backward: gradient of
        /// a mean, in place, by default): i32-target, per-row, scalar, out-of-place.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Measure again even when cached.
        #[arg(long)]
        force: bool,
        /// Tune among these configs (after the heuristic, which the others' outputs are checked
        /// against) instead of the kernel's own candidates: NAME=VALUE pairs separated by spaces,
        /// configs by ';', e.g. "BLOCK_SIZE=4096 CLUSTER=1 PROGRAMS=1 ROWS=1 num_warps=8".
        #[arg(long)]
        configs: Option<String>,
    },
    /// Inspect or manage tuned results: list, show KEY, clear, export FILE, import FILE.
    Cache {
        #[command(subcommand)]
        action: CacheCommand,
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

#[derive(Subcommand)]
enum CacheCommand {
    /// Every tuned entry, one line each.
    List,
    /// One entry with every config's time (by id or id prefix).
    Show {
        /// The entry's id (or a unique prefix).
        key: String,
    },
    /// Remove every tuned entry.
    Clear,
    /// Write every entry to FILE (to ship tuned configs with an application).
    Export {
        /// Destination JSON file.
        file: std::path::PathBuf,
    },
    /// Merge the entries of FILE into the cache.
    Import {
        /// A file written by `cache export`.
        file: std::path::PathBuf,
    },
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
        Command::Bench(args) => bench::main(&args),
        Command::BenchDot(args) => bench_dot::main(&args),
        Command::Dispatch { m, n, dtype } => dispatch::run(m, n, parse_dtype(&dtype)?),
        Command::Autotune { kernel, shapes, dtype, features, force, configs } => {
            let dtype = dtype.as_deref().map(parse_dtype).transpose()?;
            tune::autotune(&tune::AutotuneArgs {
                kernel: &kernel,
                shapes: &shapes,
                dtype,
                features: &features,
                force,
                configs: configs.as_deref(),
            })
        }
        Command::Cache { action } => tune::cache(match &action {
            CacheCommand::List => tune::CacheAction::List,
            CacheCommand::Show { key } => tune::CacheAction::Show(key),
            CacheCommand::Clear => tune::CacheAction::Clear,
            CacheCommand::Export { file } => tune::CacheAction::Export(file),
            CacheCommand::Import { file } => tune::CacheAction::Import(file),
        }),
    }
}

fn compile(args: &CompileArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let built = registry::build(&args.kernel, dtype, args.n, &args.set)?;
    let opts = CompileOptions {
        num_warps: built.num_warps,
        target: lowering::Target { chip: args.chip.clone(), ..Default::default() },
        divisibility: registry::arg_divisibility(&built.kernel, args.n),
    };
    match args.emit {
        Stage::Ir => print!("{}", built.kernel),
        Stage::Mlir => print!("{}", lowering::emit_mlir(&built.kernel, &opts)?),
        Stage::Ptx => {
            let ptx = lowering::compile(&built.kernel, &opts)?.ptx;
            print!("{ptx}");
            // What a kernel author looks at next: registers (occupancy) and spills.
            if lowering::ptxas::find_ptxas().is_some() {
                let r = lowering::ptxas::assemble(&ptx, &opts.target.chip)?;
                eprintln!(
                    "ptxas ({}): {} registers a thread, {} bytes spill stores, {} bytes spill loads, {} bytes stack",
                    opts.target.chip, r.registers, r.spill_stores, r.spill_loads, r.stack_frame
                );
            }
        }
    }
    Ok(())
}

fn parse_dtype(name: &str) -> Result<DType> {
    match DType::parse(name) {
        Some(d) if d.is_float() => Ok(d),
        _ => bail!("--dtype {name:?}: expected f32, f16 or bf16"),
    }
}

/// The demo's problem: a fused residual add + RMSNorm with a weight, as in a transformer block.
fn demo_case(args: &DemoArgs, dtype: DType, sm_count: usize) -> Case {
    let spec = RmsNormSpec { residual: Some(dtype), residual_out: Some(dtype), ..RmsNormSpec::new(dtype, Some(dtype)) };
    let heuristic = RmsNormConfig::heuristic(&spec, args.n, sm_count);
    let rows = if args.block_size == heuristic.block_size { heuristic.rows } else { 1 };
    let config = RmsNormConfig { block_size: args.block_size, rows, cluster: 1, ..heuristic };
    Case { dresidual_out: true, seed: 1, ..Case::new(args.m, args.n, spec, config) }
}

fn demo(args: &DemoArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let case = demo_case(args, dtype, 1);
    let kernel = rmsnorm::forward(&case.spec, &rmsnorm::plan::tiling(&case.config, args.n)?, true)
        .context("building the RMSNorm forward kernel")?;
    println!(
        "RMSNorm forward with a fused residual add, {}x{} {dtype}, BLOCK_SIZE={}: the block IR\n",
        args.m, args.n, args.block_size
    );
    println!("{kernel}");
    match Device::open(0) {
        Ok(device) => return demo_gpu(device, args, dtype),
        Err(e) => println!("No GPU here ({e}): showing the PTX and checking on the CPU interpreter instead.\n"),
    }
    let opts = CompileOptions {
        num_warps: 4,
        divisibility: registry::arg_divisibility(&kernel, args.n),
        ..Default::default()
    };
    let ptx = lowering::compile(&kernel, &opts)?.ptx;
    let lines: Vec<&str> = ptx.lines().collect();
    println!("PTX for sm_90 ({} lines; `tritonite compile rmsnorm-fwd --emit ptx` prints it all):", lines.len());
    for l in lines.iter().take(40) {
        println!("  {l}");
    }
    println!("  ...\n");
    let start = std::time::Instant::now();
    let result = run_case(&Cpu, &case)?;
    println!("interpreter: fwd + bwd in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    report("the interpreter", &result)
}

fn demo_gpu(device: Device, args: &DemoArgs, dtype: DType) -> Result<()> {
    println!("GPU: {}", device.name()?);
    let gpu = GpuExecutor::new(device)?;
    let case = demo_case(args, dtype, gpu.sm_count());
    let verdict = report("the GPU", &run_case(&gpu, &case)?);
    // Time the forward alone: launches prepared once, outputs reused, no host-side lookups.
    let (m, n) = (args.m, args.n);
    let plan = rmsnorm::forward_plan(&case.spec, &ForwardShape::contiguous(m, n), case.eps, 0.0, &case.config)?;
    let dev = gpu.device();
    let buffers: Vec<(&'static str, DeviceBuffer)> = plan
        .buffers
        .iter()
        .map(|d| Ok((d.name, DeviceBuffer::upload(dev, &reference::random_buffer(d.dtype, d.len, 7))?)))
        .collect::<Result<_>>()?;
    let bindings: Vec<Binding<'_, DeviceBuffer>> = buffers.iter().map(|(n, b)| Binding::whole(n, b)).collect();
    let prepared = gpu.prepare(&plan, &bindings)?;
    let mut times = dev.time_ms(10, 50, || gpu.launch(&plan, &prepared, &bindings))?;
    times.sort_by(f32::total_cmp);
    let median = times[times.len() / 2] as f64;
    // Bytes moved: x and residual read, y and residual_out written, the weight once.
    let bytes = ((4 * m * n + n) * dtype.size_bytes()) as f64;
    println!(
        "forward {m}x{n} {dtype}: median {:.1} us over {} runs, {:.0} GB/s (GPU time, L2 flushed before each run; `tritonite bench` for more)",
        median * 1e3,
        times.len(),
        bytes / (median * 1e-3) / 1e9
    );
    verdict
}

/// Prints each output's relative error against the fp64 reference; an error if any is over its
/// tolerance.
fn report(who: &str, result: &CaseResult) -> Result<()> {
    for c in &result.checks {
        println!(
            "  {:>12}: relative error vs fp64 {:.2e} (tolerance {:.0e}) {}",
            c.name,
            c.error,
            c.tolerance,
            if c.passed() { "ok" } else { "FAIL" }
        );
    }
    if !result.failures().is_empty() {
        bail!("{who} disagrees with the fp64 reference");
    }
    Ok(())
}
