//! `tritonite dispatch`: the host time of one RMSNorm call through the public API with warm caches
//! (kernels compiled and loaded, configs looked up), for a small problem where the host, not the
//! GPU, sets the pace. Calls are issued in batches small enough never to fill the launch queue;
//! only the issuing loop is timed, and the GPU drains between batches.

use std::time::Instant;

use anyhow::{bail, Result};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference;
use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite::kernels::rmsnorm::{
    forward_plan, rms_norm, rms_norm_backward, ForwardShape, RmsNormBackwardOptions, RmsNormOptions, RmsNormSpec,
};
use tritonite::kernels::tensor::Rows;
use tritonite::kernels::tuning::TuneMode;
use tritonite::lang::DType;
use tritonite::runtime::Device;

/// Calls per timed batch, and batches.
const BATCH: usize = 200;
const BATCHES: usize = 25;

/// Median host microseconds per call of `call` over the batches.
fn host_us(device: &Device, call: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..BATCH {
        call()?;
    }
    device.synchronize()?;
    let mut per_call = vec![];
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..BATCH {
            call()?;
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        device.synchronize()?;
    }
    per_call.sort_by(f64::total_cmp);
    Ok(per_call[per_call.len() / 2])
}

/// Measures and prints the host cost per call of forward and backward on `m × n` of `dtype`.
pub fn run(m: usize, n: usize, dtype: DType) -> Result<()> {
    let device = match Device::open(0) {
        Ok(d) => d,
        Err(e) => bail!("dispatch needs a GPU: {e}"),
    };
    let name = device.name()?;
    let gpu = GpuExecutor::new(device.clone())?;
    gpu.autotuner().expect("the GPU executor tunes").set_mode(TuneMode::Off);
    let x = gpu.upload(&reference::random_buffer(dtype, m * n, 1))?;
    let w = gpu.upload(&reference::random_weight(dtype, n, 2))?;
    let dy = gpu.upload(&reference::random_buffer(dtype, m * n, 3))?;
    let y = gpu.alloc(dtype, m * n)?;
    let rows = |b| Rows::new(b, &[m, n]);
    let opts = RmsNormOptions::default();
    let fwd = host_us(&device, &mut || {
        rms_norm(&gpu, rows(&x), Some(&w), &opts)?;
        Ok(())
    })?;
    let into = RmsNormOptions { out: Some(rows(&y)), ..RmsNormOptions::default() };
    let fwd_into = host_us(&device, &mut || {
        rms_norm(&gpu, rows(&x), Some(&w), &into)?;
        Ok(())
    })?;
    let saved = rms_norm(&gpu, rows(&x), Some(&w), &opts)?;
    let bopts = RmsNormBackwardOptions::default();
    let bwd = host_us(&device, &mut || {
        rms_norm_backward(&gpu, &saved.spec, rows(&x), Some(&w), rows(&dy), &saved.rstd, &bopts)?;
        Ok(())
    })?;
    // Where the forward's time goes: its steps one at a time.
    let spec = RmsNormSpec::new(dtype, Some(dtype));
    let problem = Problem { pass: Pass::Forward, spec, dresidual_out: false, m, n };
    let lookup = host_us(&device, &mut || {
        select(&gpu, &problem, &mut |_| {})?;
        Ok(())
    })?;
    let cfg = select(&gpu, &problem, &mut |_| {})?.config;
    let shape = ForwardShape::contiguous(m, n);
    let planning = host_us(&device, &mut || {
        forward_plan(&spec, &shape, 1e-6, 0.0, &cfg)?;
        Ok(())
    })?;
    let allocs = host_us(&device, &mut || {
        let _y = gpu.alloc_output(dtype, m * n)?;
        let _rstd = gpu.alloc_output(DType::F32, m)?;
        Ok(())
    })?;
    let plan = forward_plan(&spec, &shape, 1e-6, 0.0, &cfg)?;
    let rstd = gpu.alloc(DType::F32, m)?;
    let bindings =
        [Binding::whole("x", &x), Binding::whole("w", &w), Binding::whole("y", &y), Binding::whole("rstd", &rstd)];
    let running = host_us(&device, &mut || Ok(gpu.run(&plan, &bindings)?))?;
    let preparing = host_us(&device, &mut || {
        gpu.prepare(&plan, &bindings)?;
        Ok(())
    })?;
    let prepared = gpu.prepare(&plan, &bindings)?;
    let launching = host_us(&device, &mut || Ok(gpu.launch(&plan, &prepared, &bindings)?))?;
    // The floor: a prepared launch of a kernel that stores one element (one argument).
    let tiny = tritonite::lang::build_kernel("dispatch_floor", |k| {
        let out = k.mut_ptr_arg("out", DType::F32);
        k.store(out, 1.0);
    })?;
    let mut floor_plan = Plan::default();
    floor_plan.buffer("out", DType::F32, 1, Role::Output);
    floor_plan.launches.push(Launch {
        kernel: SharedKernel::new(tiny),
        grid: [1, 1, 1],
        args: vec![PlanArg::Buffer("out")],
        num_warps: 1,
    });
    let floor_bindings = [Binding::whole("out", &rstd)];
    let floor_prepared = gpu.prepare(&floor_plan, &floor_bindings)?;
    let floor = host_us(&device, &mut || Ok(gpu.launch(&floor_plan, &floor_prepared, &floor_bindings)?))?;
    let given = RmsNormOptions { config: Some(cfg), ..RmsNormOptions::default() };
    let fwd_given = host_us(&device, &mut || {
        rms_norm(&gpu, rows(&x), Some(&w), &given)?;
        Ok(())
    })?;

    println!("device {name}: host time per call through the public API, {m}x{n} {dtype}, warm caches");
    println!("(median of {BATCHES} batches of {BATCH} calls; outputs allocated and freed per call unless given)\n");
    println!("| call | host us per call |");
    println!("|---|---|");
    println!("| rms_norm (new y, rstd) | {fwd:.2} |");
    println!("| rms_norm into a caller's y (new rstd) | {fwd_into:.2} |");
    println!("| rms_norm with the config given (no lookup) | {fwd_given:.2} |");
    println!("| rms_norm_backward (new dx, dw, partials) | {bwd:.2} |");
    println!("| forward, step: config lookup (select) | {lookup:.2} |");
    println!("| forward, step: build the plan (memoized kernel; calls reuse plans) | {planning:.2} |");
    println!("| forward, step: allocate and free y and rstd | {allocs:.2} |");
    println!("| forward, step: run a built plan (binding checks, variant lookup, launch) | {running:.2} |");
    println!("| forward, step: prepare a built plan (binding checks, variant lookup) | {preparing:.2} |");
    println!("| forward, step: launch a prepared plan | {launching:.2} |");
    println!("| floor: launch a prepared one-argument kernel that stores one element | {floor:.2} |");
    Ok(())
}
