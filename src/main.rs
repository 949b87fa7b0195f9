//! The `tritonite` command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tritonite::kernels::{cpu, reference, rmsnorm};
use tritonite::lang::{Buffer, DType};

#[derive(Parser)]
#[command(
    name = "tritonite",
    version,
    about = "A Triton-style block kernel language for Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run RMSNorm on a sample shape and check it against the fp64 reference (the default).
    Demo(DemoArgs),
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
        DemoArgs {
            m: 64,
            n: 1000,
            dtype: "bf16".into(),
            block_size: 1024,
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => demo(&args),
    }
}

fn parse_dtype(name: &str) -> Result<DType> {
    match DType::parse(name) {
        Some(d) if d.is_float() => Ok(d),
        _ => bail!("--dtype {name:?}: expected f32, f16 or bf16"),
    }
}

/// Pseudo-random values in [-2, 2), never all zero.
fn sample(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn demo(args: &DemoArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let (m, n, eps) = (args.m, args.n, 1e-6f32);
    let cfg = rmsnorm::RmsNormFwdConfig::new(dtype, Some(dtype), n, args.block_size);
    let kernel = rmsnorm::forward(&cfg).context("building the RMSNorm forward kernel")?;
    println!(
        "RMSNorm forward, {m}x{n} {dtype}, BLOCK_SIZE={}: the block IR\n",
        args.block_size
    );
    println!("{kernel}");

    println!("No GPU backend in this build: running on the CPU interpreter.");
    let x = Buffer::from_f64(dtype, &sample(m * n, 1));
    let w = Buffer::from_f64(
        dtype,
        &sample(n, 2)
            .iter()
            .map(|v| 1.0 + 0.25 * v)
            .collect::<Vec<_>>(),
    );
    let dy = Buffer::from_f64(dtype, &sample(m * n, 3));
    let start = std::time::Instant::now();
    let (y, rstd) = cpu::rms_norm_forward(&x, Some(&w), m, n, eps, args.block_size)?;
    let (dx, dw) = cpu::rms_norm_backward(&x, Some(&w), &dy, &rstd, m, n, args.block_size, 8)?;
    let elapsed = start.elapsed();
    let (xf, wf) = (x.to_f64(), w.to_f64());
    let (y_ref, _) = reference::rms_norm_forward(&xf, Some(&wf), m, n, eps as f64);
    let (dx_ref, dw_ref) =
        reference::rms_norm_backward(&xf, Some(&wf), &dy.to_f64(), m, n, eps as f64);
    let dw = dw.context("backward with a weight returns dw")?;
    let tol = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
    let mut ok = true;
    println!(
        "interpreter: fwd + bwd in {:.1} ms",
        elapsed.as_secs_f64() * 1e3
    );
    for (name, got, want) in [
        ("y", y.to_f64(), y_ref),
        ("dx", dx.to_f64(), dx_ref),
        ("dw", dw.to_f64(), dw_ref),
    ] {
        let err = reference::rel_error(&got, &want);
        let pass = err <= tol;
        ok &= pass;
        println!(
            "  {name:>2}: relative error vs fp64 {err:.2e} (tolerance {tol:.0e}) {}",
            if pass { "ok" } else { "FAIL" }
        );
    }
    if !ok {
        bail!("the interpreter disagrees with the fp64 reference");
    }
    Ok(())
}
