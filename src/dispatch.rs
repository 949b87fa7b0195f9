//! `tritonite dispatch`: the host time of one RMSNorm call through the public API with warm caches
//! (kernels compiled and loaded, configs looked up), for a small problem where the host, not the
//! GPU, sets the pace. Calls are issued in batches small enough never to fill the launch queue;
//! only the issuing loop is timed, and the GPU drains between batches.

use std::time::Instant;

use anyhow::{bail, Result};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::error::KernelError;
use tritonite::kernels::gpu::{GpuExecutor, Prepared};
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference;
use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite::kernels::rmsnorm::{
    forward_plan, rms_norm, rms_norm_backward, ForwardShape, RmsNormBackwardOptions, RmsNormOptions, RmsNormSpec,
};
use tritonite::kernels::tensor::Rows;
use tritonite::kernels::tuning::TuneMode;
use tritonite::lang::{Buffer, DType};
use tritonite::runtime::{Device, DeviceBuffer};

/// Calls per timed batch, batches per row and round, and rounds.
const BATCH: usize = 200;
const BATCHES: usize = 9;
const ROUNDS: usize = 5;

/// Host work of a known length between launches, for the rows that ask whether a launch costs
/// the same when the host does something else between launches.
const SPIN_US: f64 = 1.0;

/// The row that spins [`SPIN_US`] before each launch; its table entry leaves the spin out.
const SPIN_ROW: &str = "floor after 1 us of spinning (minus the 1 us)";

/// Busy-waits `us` microseconds.
fn spin(us: f64) {
    let t = Instant::now();
    while t.elapsed().as_secs_f64() * 1e6 < us {
        std::hint::spin_loop();
    }
}

/// `r` without its value.
fn done<T, E: Into<anyhow::Error>>(r: Result<T, E>) -> Result<()> {
    r.map(|_| ()).map_err(Into::into)
}

/// The GPU executor with its launches skipped: a call through it costs the host everything but
/// the driver's launch (lookups, allocations, checks), on the same host and with the same caches.
struct NoLaunch<'a>(&'a GpuExecutor);

impl Backend for NoLaunch<'_> {
    type Buffer = DeviceBuffer;
    type Prepared = Prepared;

    fn alloc(&self, dtype: DType, len: usize) -> Result<DeviceBuffer, KernelError> {
        self.0.alloc(dtype, len)
    }

    fn alloc_output(&self, dtype: DType, len: usize) -> Result<DeviceBuffer, KernelError> {
        self.0.alloc_output(dtype, len)
    }

    fn upload(&self, host: &Buffer) -> Result<DeviceBuffer, KernelError> {
        self.0.upload(host)
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<Buffer, KernelError> {
        self.0.download(buf)
    }

    fn prepare(&self, plan: &Plan, bindings: &[Binding<'_, DeviceBuffer>]) -> Result<Prepared, KernelError> {
        self.0.prepare(plan, bindings)
    }

    fn launch(&self, _: &Plan, _: &Prepared, _: &[Binding<'_, DeviceBuffer>]) -> Result<(), KernelError> {
        Ok(())
    }

    fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        work: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        self.0.time_ms(warmup, reps, work)
    }

    fn sm_count(&self) -> usize {
        self.0.sm_count()
    }

    fn autotuner(&self) -> Option<&tritonite::kernels::tuning::Autotuner> {
        self.0.autotuner()
    }
}

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
    let into = RmsNormOptions { out: Some(rows(&y)), ..RmsNormOptions::default() };
    let saved = rms_norm(&gpu, rows(&x), Some(&w), &opts)?;
    let bopts = RmsNormBackwardOptions::default();
    // The forward's steps one at a time.
    let spec = RmsNormSpec::new(dtype, Some(dtype));
    let problem = Problem { pass: Pass::Forward, spec, dresidual_out: false, m, n };
    let cfg = select(&gpu, &problem, &mut |_| {})?.config;
    let given = RmsNormOptions { config: Some(cfg), ..RmsNormOptions::default() };
    let shape = ForwardShape::contiguous(m, n);
    let plan = forward_plan(&spec, &shape, 1e-6, 0.0, &cfg)?;
    let rstd = gpu.alloc(DType::F32, m)?;
    let bindings =
        [Binding::whole("x", &x), Binding::whole("w", &w), Binding::whole("y", &y), Binding::whole("rstd", &rstd)];
    let prepared = gpu.prepare(&plan, &bindings)?;
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

    type Call<'a> = Box<dyn FnMut() -> Result<()> + 'a>;
    let mut calls: Vec<(&str, Call<'_>)> = vec![
        ("rms_norm (new y, rstd)", Box::new(|| done(rms_norm(&gpu, rows(&x), Some(&w), &opts)))),
        ("rms_norm into a caller's y (new rstd)", Box::new(|| done(rms_norm(&gpu, rows(&x), Some(&w), &into)))),
        ("rms_norm with the config given (no lookup)", Box::new(|| done(rms_norm(&gpu, rows(&x), Some(&w), &given)))),
        (
            "rms_norm_backward (new dx, dw, partials)",
            Box::new(|| done(rms_norm_backward(&gpu, &saved.spec, rows(&x), Some(&w), rows(&dy), &saved.rstd, &bopts))),
        ),
        (
            "rms_norm without its launch (the host's work alone)",
            Box::new(|| done(rms_norm(&NoLaunch(&gpu), rows(&x), Some(&w), &opts))),
        ),
        ("forward, step: config lookup (select)", Box::new(|| done(select(&gpu, &problem, &mut |_| {})))),
        (
            "forward, step: build the plan (memoized kernel; calls reuse plans)",
            Box::new(|| done(forward_plan(&spec, &shape, 1e-6, 0.0, &cfg))),
        ),
        (
            "forward, step: allocate and free y and rstd",
            Box::new(|| {
                let _y = gpu.alloc_output(dtype, m * n)?;
                let _rstd = gpu.alloc_output(DType::F32, m)?;
                Ok(())
            }),
        ),
        (
            "forward, step: prepare a built plan (binding checks, variant lookup)",
            Box::new(|| done(gpu.prepare(&plan, &bindings))),
        ),
        ("forward, step: launch a prepared plan", Box::new(|| Ok(gpu.launch(&plan, &prepared, &bindings)?))),
        (
            "floor: launch a prepared one-argument kernel that stores one element",
            Box::new(|| Ok(gpu.launch(&floor_plan, &floor_prepared, &floor_bindings)?)),
        ),
        (
            SPIN_ROW,
            Box::new(|| {
                spin(SPIN_US);
                Ok(gpu.launch(&floor_plan, &floor_prepared, &floor_bindings)?)
            }),
        ),
        (
            "floor after the host's work of rms_norm (no launch of its own)",
            Box::new(|| {
                done(rms_norm(&NoLaunch(&gpu), rows(&x), Some(&w), &opts))?;
                Ok(gpu.launch(&floor_plan, &floor_prepared, &floor_bindings)?)
            }),
        ),
    ];
    // Rounds over all rows, so no row is favoured by when it ran (the host's speed drifts).
    let mut per_round: Vec<Vec<f64>> = vec![vec![]; calls.len()];
    for _ in 0..ROUNDS {
        for ((_, call), times) in calls.iter_mut().zip(&mut per_round) {
            times.push(host_us(&device, call.as_mut())?);
        }
    }

    println!("device {name}: host time per call through the public API, {m}x{n} {dtype}, warm caches");
    println!(
        "(median over {ROUNDS} rounds of each row's median of {BATCHES} batches of {BATCH} calls; rows interleaved; \
         outputs allocated and freed per call unless given)\n"
    );
    println!("| call | host us per call |");
    println!("|---|---|");
    for ((label, _), mut times) in calls.iter().zip(per_round) {
        times.sort_by(f64::total_cmp);
        let spun = if *label == SPIN_ROW { SPIN_US } else { 0.0 };
        println!("| {label} | {:.2} |", times[times.len() / 2] - spun);
    }
    Ok(())
}
