//! Tutorial 01: vector addition (docs/tutorials/01-vector-add.md).
//!
//! A kernel written with the builder, its block IR and PTX, a check on the CPU interpreter
//! against plain Rust, and, when there is a GPU, a sweep over BLOCK_SIZE.
//!
//! `cargo run --release --example tutorial_01_vector_add`

use anyhow::{ensure, Result};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::lang::{build_kernel, interp, Arg, Buffer, DType, Kernel, LangError, Lit};
use tritonite::lowering::{self, CompileOptions};
use tritonite::runtime::Device;

// [kernel]
/// `out[i] = x[i] + y[i]`: program `pid` handles elements `pid * BLOCK_SIZE ..` of the vectors.
fn add_kernel(block_size: usize) -> Result<Kernel, LangError> {
    build_kernel("add", |k| {
        // A compile-time meta-parameter: every distinct value is a distinct kernel.
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let x = k.ptr_arg("x", DType::F32);
        let y = k.ptr_arg("y", DType::F32);
        let out = k.mut_ptr_arg("out", DType::F32);
        let n = k.scalar_arg("n", DType::I32);
        // This program's block of offsets: [pid * BLOCK, pid * BLOCK + 1, ..., pid * BLOCK + BLOCK - 1].
        let offsets = k.program_id(0) * block + k.arange(0, block);
        // The last program may run past the end of the vectors: mask those lanes off.
        let mask = offsets.lt(n);
        let xv = k.load_masked(x + offsets, mask, 0.0);
        let yv = k.load_masked(y + offsets, mask, 0.0);
        k.store_masked(out + offsets, xv + yv, mask);
    })
}
// [/kernel]

// [interp]
/// Runs the kernel on the interpreter and compares it with plain Rust, element by element.
fn check_on_interpreter(kernel: &Kernel, block_size: usize, n: usize) -> Result<()> {
    let (x, y, want) = inputs(n);
    let mut out = Buffer::filled(DType::F32, n, f64::NAN);
    let grid = [n.div_ceil(block_size) as u32, 1, 1];
    interp::run(kernel, grid, &mut [Arg::In(&x), Arg::In(&y), Arg::Out(&mut out), Arg::Scalar(Lit::Int(n as i64))])?;
    for (i, &want) in want.iter().enumerate() {
        // The interpreter rounds every f32 operation to f32, so the sums agree exactly.
        ensure!(out.get(i) == want, "n = {n}: out[{i}] = {} but x + y = {want}", out.get(i));
    }
    Ok(())
}
// [/interp]

// [plan]
/// The host side as data: three buffers and one launch of `ceil(n / BLOCK_SIZE)` programs.
fn add_plan(kernel: &SharedKernel, block_size: usize, n: usize, num_warps: u32) -> Plan {
    let mut plan = Plan::default();
    plan.buffer("x", DType::F32, n, Role::Input);
    plan.buffer("y", DType::F32, n, Role::Input);
    plan.buffer("out", DType::F32, n, Role::Output);
    plan.launches.push(Launch {
        kernel: kernel.clone(),
        grid: [n.div_ceil(block_size) as u32, 1, 1],
        args: vec![PlanArg::Buffer("x"), PlanArg::Buffer("y"), PlanArg::Buffer("out"), PlanArg::I32(n as i32)],
        num_warps,
    });
    plan
}

/// `x + y` on any backend: the CPU interpreter or a GPU.
fn add<B: Backend>(backend: &B, kernel: &SharedKernel, block_size: usize, x: &Buffer, y: &Buffer) -> Result<Buffer> {
    let n = x.len();
    let (x, y) = (backend.upload(x)?, backend.upload(y)?);
    let out = backend.alloc(DType::F32, n)?;
    let plan = add_plan(kernel, block_size, n, 4);
    let bindings = [Binding::whole("x", &x), Binding::whole("y", &y), Binding::whole("out", &out)];
    backend.run(&plan, &bindings)?;
    Ok(backend.download(&out)?)
}
// [/plan]

/// Random-looking inputs and their sum computed in plain Rust, in f32.
fn inputs(n: usize) -> (Buffer, Buffer, Vec<f64>) {
    let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
    let ys: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 / 250.0).collect();
    let want = xs.iter().zip(&ys).map(|(a, b)| (a + b) as f64).collect();
    let x = Buffer::from_f64(DType::F32, &xs.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let y = Buffer::from_f64(DType::F32, &ys.iter().map(|&v| v as f64).collect::<Vec<_>>());
    (x, y, want)
}

/// Runs `add` on `backend` for a few ragged sizes and checks every element.
fn check_backend<B: Backend>(backend: &B, who: &str, block_size: usize) -> Result<()> {
    let kernel = SharedKernel::new(add_kernel(block_size)?);
    let sizes = [1, 1000, 4097, 98_432, 98_433];
    for n in sizes {
        let (x, y, want) = inputs(n);
        let out = add(backend, &kernel, block_size, &x, &y)?;
        let bad = (0..n).filter(|&i| out.get(i) != want[i]).count();
        ensure!(bad == 0, "{who}, n = {n}: {bad} elements differ from plain Rust");
    }
    println!("{who}: BLOCK_SIZE={block_size}, n in {sizes:?}: every element matches plain Rust");
    Ok(())
}

// [tune]
/// Times `add` for a few BLOCK_SIZE values on `n` elements and returns the fastest: by hand, what
/// the autotuner does for the library's kernels.
fn sweep_block_size<B: Backend>(backend: &B, n: usize) -> Result<usize> {
    let x = backend.upload(&Buffer::filled(DType::F32, n, 1.0))?;
    let y = backend.upload(&Buffer::filled(DType::F32, n, 2.0))?;
    let out = backend.alloc(DType::F32, n)?;
    let bindings = [Binding::whole("x", &x), Binding::whole("y", &y), Binding::whole("out", &out)];
    let bytes = 3.0 * n as f64 * 4.0; // x and y read, out written
    let mut best: Option<(usize, f64)> = None;
    println!("\n| BLOCK_SIZE | median us | GB/s |\n|---|---|---|");
    for block_size in [256, 512, 1024, 2048, 4096] {
        let kernel = SharedKernel::new(add_kernel(block_size)?);
        let plan = add_plan(&kernel, block_size, n, 4);
        // Compile (first use) and load once; the timed closure only launches.
        let prepared = backend.prepare(&plan, &bindings)?;
        let mut times = backend.time_ms(5, 20, &mut || backend.launch(&plan, &prepared, &bindings))?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!("| {block_size} | {:.1} | {:.0} |", median * 1e3, bytes / (median * 1e-3) / 1e9);
        if best.is_none_or(|(_, t)| median < t) {
            best = Some((block_size, median));
        }
    }
    let (block_size, _) = best.expect("at least one config was timed");
    Ok(block_size)
}
// [/tune]

fn main() -> Result<()> {
    // 1. The kernel and its block IR.
    let kernel = add_kernel(1024)?;
    println!("{kernel}");

    // 2. The CPU interpreter, straight from the IR, on sizes that are mostly not multiples of
    //    BLOCK_SIZE (the last program's mask is then partly off).
    for n in [1, 1000, 1024, 3000, 4097] {
        check_on_interpreter(&kernel, 1024, n)?;
    }
    println!("interpreter: n = 1, 1000, 1024, 3000, 4097 all match plain Rust");

    // 3. The same IR lowered through MLIR to PTX: no GPU needed. The facts below (pointers
    //    16-byte aligned, n a multiple of 16) are what the GPU executor derives from the actual
    //    arguments at launch; they let the lowering use 16-byte vector loads.
    let opts =
        CompileOptions { num_warps: 4, divisibility: vec![(0, 16), (1, 16), (2, 16), (3, 16)], ..Default::default() };
    let ptx = lowering::compile(&kernel, &opts)?.ptx;
    println!("\nPTX for {}: {} lines; its global loads and stores:", opts.target.chip, ptx.lines().count());
    for line in ptx.lines().filter(|l| l.contains("ld.global") || l.contains("st.global")) {
        println!("  {}", line.trim());
    }

    // 4. Through a launch plan on the CPU backend: the same code runs on the GPU below.
    check_backend(&Cpu, "CPU backend", 1024)?;

    // 5. On the GPU, when there is one.
    match Device::open(0) {
        Ok(device) => {
            println!("\nGPU: {}", device.name()?);
            let gpu = GpuExecutor::new(device)?;
            check_backend(&gpu, "GPU", 1024)?;
            let n = 1 << 26;
            println!("\nx + y on {n} f32 elements (num_warps = 4):");
            let best = sweep_block_size(&gpu, n)?;
            println!("\nfastest: BLOCK_SIZE={best}");
            check_backend(&gpu, "GPU", best)?;
        }
        Err(e) => println!("\nno GPU ({e}): the GPU check and the BLOCK_SIZE sweep were skipped"),
    }
    Ok(())
}
