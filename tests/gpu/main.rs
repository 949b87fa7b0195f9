//! The kernels' GPU suites in one test binary (one payload for the GPU machine): RMSNorm,
//! LayerNorm, softmax, cross-entropy and matmul against their fp64 references through the typed APIs, with
//! random inputs, ragged shapes and outputs poisoned with NaN; cluster reductions and staged loads
//! against the CPU interpreter; atomics handing out tickets; while loops draining a work queue. Every test skips, saying so, where there is no GPU.
//!
//! `TRITONITE_GPU_QUICK=1` runs a small subset of each (for compute-sanitizer, which is slow).

mod atomics;
mod clusters;
mod cross_entropy;
mod eviction;
mod layernorm;
mod matmul;
mod rmsnorm;
mod softmax;
#[path = "../common/split_rows.rs"]
mod split_rows;
mod staged;
#[path = "../common/tickets.rs"]
mod tickets;
mod while_loop;
#[path = "../common/work_queue.rs"]
mod work_queue;

use std::fmt::Display;

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::rmsnorm::check::CaseResult;
use tritonite::kernels::KernelError;
use tritonite::lang::{Buffer, Kernel};
use tritonite::runtime::Device;

/// The GPU, with new outputs poisoned (NaN) so an element a kernel fails to write is caught; `None`
/// (and a line on stderr) without one.
fn executor() -> Option<GpuExecutor> {
    match Device::open(0) {
        Ok(d) => Some(GpuExecutor::new(d).expect("a GPU that opens can be queried").poison_outputs(true)),
        Err(e) => {
            // Straight to the stderr handle, past the test harness's capture, so CI logs show it.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: GPU tests need a GPU ({e})");
            None
        }
    }
}

/// Whether to run the quick subset.
fn quick() -> bool {
    std::env::var_os("TRITONITE_GPU_QUICK").is_some_and(|v| v != "0")
}

/// Most elements a random case may have (the fp64 reference runs on the host).
const MAX_ELEMENTS: usize = 1 << 22;

/// Prints `ok   case`, or `FAIL case: why` and records that line in `failures`.
fn report(failures: &mut Vec<String>, case: &str, why: Option<String>) {
    match why {
        None => println!("ok   {case}"),
        Some(why) => {
            let line = format!("FAIL {case}: {why}");
            println!("{line}");
            failures.push(line);
        }
    }
}

/// Launches `kernel` once, `grid` programs of `num_warps` warps, with `buffers` (name, role,
/// contents before the launch) as its first arguments in order and `scalars` after them;
/// returns every buffer's contents after the launch, or why it failed.
fn launch_once(
    gpu: &GpuExecutor,
    kernel: Kernel,
    grid: u32,
    num_warps: u32,
    buffers: &[(&'static str, Role, Buffer)],
    scalars: &[PlanArg],
) -> Result<Vec<Vec<f64>>, String> {
    let mut plan = Plan::default();
    for (name, role, b) in buffers {
        plan.buffer(name, b.dtype(), b.len(), *role);
    }
    let args = buffers.iter().map(|(name, ..)| PlanArg::Buffer(name)).chain(scalars.iter().copied()).collect();
    plan.launches.push(Launch { kernel: SharedKernel::new(kernel), grid: [grid, 1, 1], args, num_warps });
    let bufs: Vec<_> = buffers.iter().map(|(.., b)| gpu.upload(b).expect("upload")).collect();
    let bindings: Vec<_> = buffers.iter().zip(&bufs).map(|((name, ..), b)| Binding::whole(name, b)).collect();
    gpu.run(&plan, &bindings).map_err(|e| format!("launch failed: {e}"))?;
    Ok(bufs.iter().map(|b| gpu.download(b).expect("download").to_f64()).collect())
}

/// Runs every case, printing one line each; returns the failing lines.
fn run_all<C: Display>(
    gpu: &GpuExecutor,
    run: fn(&GpuExecutor, &C) -> Result<CaseResult, KernelError>,
    cases: &[C],
) -> Vec<String> {
    let mut failures = vec![];
    for case in cases {
        let line = match run(gpu, case) {
            Ok(r) if r.failures().is_empty() => format!("ok   {case}: {}", r.summary()),
            Ok(r) => format!("FAIL {case}: {}", r.summary()),
            Err(e) => format!("FAIL {case}: error {e}"),
        };
        println!("{line}");
        if line.starts_with("FAIL") {
            failures.push(line);
        }
    }
    failures
}
