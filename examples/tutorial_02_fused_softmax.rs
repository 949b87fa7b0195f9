//! Tutorial 02: fused softmax (docs/tutorials/02-fused-softmax.md).
//!
//! A row softmax written from scratch (one program per row, the row in registers), checked on the
//! CPU interpreter against an f64 reference, next to the library's `tritonite::kernels::softmax`,
//! which adds tiles of several rows and an online (chunked) version for long rows. With a GPU,
//! both are timed.
//!
//! `cargo run --release --example tutorial_02_fused_softmax`

use anyhow::{ensure, Result};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference::{random_values, rel_error, tolerance};
use tritonite::kernels::softmax::{self, SoftmaxConfig, SoftmaxOptions, SoftmaxSpec};
use tritonite::kernels::tensor::Rows;
use tritonite::lang::{build_kernel, Buffer, DType, Kernel, LangError};
use tritonite::runtime::Device;

// [kernel]
/// `y[r, :] = softmax(x[r, :])` for rows of `n ≤ BLOCK_SIZE` f32 elements, `stride` elements apart:
/// program `r` loads row `r` once, keeps it in registers, and writes `y` once.
fn softmax_kernel(block_size: usize) -> Result<Kernel, LangError> {
    build_kernel("softmax_row", |k| {
        let block = k.meta("BLOCK_SIZE", block_size as i64);
        let x = k.ptr_arg("x", DType::F32);
        let y = k.mut_ptr_arg("y", DType::F32);
        let n = k.scalar_arg("n", DType::I32);
        let stride = k.scalar_arg("stride", DType::I64);
        // Row offsets in 64 bits: rows × stride may pass 2^31 elements.
        let row = k.program_id(0).cast(DType::I64) * stride;
        let cols = k.arange(0, block);
        let mask = cols.lt(n);
        // Lanes past the end of the row read -inf: they change neither the max nor the sum (exp(-inf) = 0).
        let xv = k.load_masked(x + row + cols, mask, f64::NEG_INFINITY);
        // Subtract the row max first so exp never overflows.
        let z = xv - xv.max(0);
        let num = z.exp();
        let den = num.sum(0);
        k.store_masked(y + row + cols, num / den, mask);
    })
}
// [/kernel]

// [plan]
/// Triton's rule of thumb for warps: more of them as the row (held in registers) grows.
fn num_warps(block_size: usize) -> u32 {
    match block_size {
        0..2048 => 4,
        2048..4096 => 8,
        _ => 16,
    }
}

/// One launch of `m` programs, one per row, with the smallest power-of-two block that holds a row.
fn softmax_plan(kernel: &SharedKernel, m: usize, n: usize) -> Plan {
    let block_size = n.next_power_of_two();
    let mut plan = Plan::default();
    plan.buffer("x", DType::F32, m * n, Role::Input);
    plan.buffer("y", DType::F32, m * n, Role::Output);
    plan.launches.push(Launch {
        kernel: kernel.clone(),
        grid: [m as u32, 1, 1],
        args: vec![PlanArg::Buffer("x"), PlanArg::Buffer("y"), PlanArg::I32(n as i32), PlanArg::I64(n as i64)],
        num_warps: num_warps(block_size),
    });
    plan
}

/// Our fused softmax of the contiguous `[m, n]` f32 `x`, on any backend.
fn fused_softmax<B: Backend>(backend: &B, x: &B::Buffer, m: usize, n: usize) -> Result<B::Buffer> {
    let kernel = SharedKernel::new(softmax_kernel(n.next_power_of_two())?);
    let y = backend.alloc(DType::F32, m * n)?;
    backend.run(&softmax_plan(&kernel, m, n), &[Binding::whole("x", x), Binding::whole("y", &y)])?;
    Ok(y)
}
// [/plan]

// [reference]
/// The f64 reference, step by step: each row's maximum, the sum of the exponentials, the quotients.
fn naive_softmax(x: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; m * n];
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for (j, v) in row.iter().enumerate() {
            y[r * n + j] = (v - max).exp() / sum;
        }
    }
    y
}
// [/reference]

/// Inputs in [-8, 8), with one row of large values (exp(1000) overflows f32 and f64 alike).
fn inputs(m: usize, n: usize, seed: u64) -> Vec<f64> {
    let mut x: Vec<f64> = random_values(m * n, seed).iter().map(|v| 4.0 * v).collect();
    if m > 1 {
        x[n..2 * n].iter_mut().for_each(|v| *v += 1000.0);
    }
    Buffer::from_f64(DType::F32, &x).to_f64()
}

// [check]
/// Checks our kernel and the library's on `backend` against the reference: rows that fit a block
/// and, for the library, rows walked in chunks.
fn check<B: Backend>(backend: &B, who: &str, shapes: &[(usize, usize)]) -> Result<()> {
    for &(m, n) in shapes {
        let x_host = inputs(m, n, (m * 31 + n) as u64);
        let want = naive_softmax(&x_host, m, n);
        let x = backend.upload(&Buffer::from_f64(DType::F32, &x_host))?;

        let ours = backend.download(&fused_softmax(backend, &x, m, n)?)?.to_f64();
        let err = rel_error(&ours, &want);
        ensure!(err <= tolerance(DType::F32), "{who}, ours {m}x{n}: relative error {err:.2e}");

        // The library: its default config, then chunks of 256 columns (the online max and sum).
        let chunked = SoftmaxConfig { block_size: 256, num_warps: 4, rows: 1, programs: 1 };
        let mut line = format!("{who} {m:>3}x{n:<5}  ours {err:.1e}");
        for config in [None, Some(chunked)] {
            let opts = SoftmaxOptions { config, ..SoftmaxOptions::default() };
            let out = softmax::softmax(backend, Rows::new(&x, &[m, n]), &opts)?;
            let lib = backend.download(out.y.as_ref().expect("no `out` given: y is a new buffer"))?.to_f64();
            let lib_err = rel_error(&lib, &want);
            let c = out.config;
            ensure!(lib_err <= tolerance(DType::F32), "{who}, library {m}x{n} {c:?}: relative error {lib_err:.2e}");
            let how = if c.row_in_block(n) { "held" } else { "chunked" };
            line += &format!("   library {lib_err:.1e} (tile {}x{}, {how})", c.rows, c.block_size);
        }
        println!("{line}");
    }
    Ok(())
}
// [/check]

// [bench]
/// Median microseconds of prepared launches of `plan` on buffers named `x` and `y`.
fn time_plan<B: Backend>(backend: &B, plan: &Plan, x: &B::Buffer, y: &B::Buffer) -> Result<f64> {
    let bindings = [Binding::whole("x", x), Binding::whole("y", y)];
    let prepared = backend.prepare(plan, &bindings)?;
    let mut times = backend.time_ms(5, 20, &mut || backend.launch(plan, &prepared, &bindings))?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] * 1e3)
}

/// Times ours and the library's forward on `[m, n]` f32 for each `n`; GB/s counts `x` read and
/// `y` written once.
fn bench<B: Backend>(backend: &B, m: usize, ns: &[usize]) -> Result<()> {
    println!("\n| shape | ours us | ours GB/s | library us | library GB/s | library config |");
    println!("|---|---|---|---|---|---|");
    for &n in ns {
        let x = backend.upload(&Buffer::from_f64(DType::F32, &random_values(m * n, 7)))?;
        let y = backend.alloc(DType::F32, m * n)?;
        let gbs = |us: f64| 2.0 * (m * n * 4) as f64 / (us * 1e-6) / 1e9;
        let kernel = SharedKernel::new(softmax_kernel(n.next_power_of_two())?);
        let ours = match time_plan(backend, &softmax_plan(&kernel, m, n), &x, &y) {
            Ok(us) => format!("{us:.1} | {:.0}", gbs(us)),
            Err(e) => format!("failed: {e} | -"),
        };
        let spec = SoftmaxSpec::new(DType::F32);
        let cfg = softmax::heuristic(n, DType::F32, backend.sm_count());
        let shape = softmax::ForwardShape { m, n, stride_x: n, stride_y: n };
        let lib_us = time_plan(backend, &softmax::forward_plan(&spec, &shape, &cfg)?, &x, &y)?;
        let how = if cfg.row_in_block(n) { "in registers" } else { "chunked" };
        println!(
            "| {m}x{n} | {ours} | {lib_us:.1} | {:.0} | BLOCK_SIZE={} ROWS={} warps={} ({how}) |",
            gbs(lib_us),
            cfg.block_size,
            cfg.rows,
            cfg.num_warps
        );
    }
    Ok(())
}
// [/bench]

fn main() -> Result<()> {
    let kernel = softmax_kernel(1024)?;
    println!("{kernel}");

    // Ragged shapes: n = 1, n just past a power of two, a row longer than the library's largest
    // block (32768), and in each a row of large values (the second).
    let shapes = [(1, 1), (3, 7), (5, 100), (17, 781), (4, 1024), (2, 1025), (2, 40000)];
    println!("relative error vs f64: ours, the library's default config, the library in 256-column chunks");
    check(&Cpu, "interpreter", &shapes)?;

    match Device::open(0) {
        Ok(device) => {
            println!("\nGPU: {}", device.name()?);
            let gpu = GpuExecutor::new(device)?;
            check(&gpu, "GPU", &[(64, 1000), (64, 4096), (16, 16384), (8, 32768)])?;
            bench(&gpu, 4096, &[1000, 4096, 16384, 32768])?;
        }
        Err(e) => println!("\nno GPU ({e}): the GPU check and timings were skipped"),
    }
    Ok(())
}
