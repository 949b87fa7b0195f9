//! Staged loads (`load_staged`) on the GPU against the CPU interpreter: a persistent kernel that
//! prefetches each program's next row through shared memory (the loop carries the staged block)
//! and reads the current one twice, on either side of a reduction; plus a staged block used
//! without a loop. Ragged row lengths take the narrow copies (and, for 16-bit elements, the
//! copies through registers); rows past the end exercise the zero fill.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference;
use tritonite::lang::{build_kernel, Buffer, DType, Kernel, KernelBuilder, Value};

use super::{executor, report};

/// `y[r, c] = x[r, c] · 2 + Σ_c x[r, c]` (in f32), each program striding over the rows with its
/// next row staged a loop ahead (`prefetch`), or one program per row with a staged load.
fn kernel(dtype: DType, block: i64, prefetch: bool) -> Kernel {
    build_kernel(&format!("staged_{}_{block}_{prefetch}", dtype.name()), |k| body(k, dtype, block, prefetch))
        .expect("the staged kernel builds")
}

fn body<'k>(k: &'k KernelBuilder, dtype: DType, block: i64, prefetch: bool) {
    let x = k.ptr_arg("x", dtype);
    let y = k.mut_ptr_arg("y", dtype);
    let m = k.scalar_arg("m", DType::I32);
    let n = k.scalar_arg("n", DType::I32);
    let cols = k.arange(0, block);
    let row = |r: Value<'k>| (x + r * n + cols, cols.lt(n) & r.lt(m));
    let finish = |r: Value<'k>, v: Value<'k>| {
        let s = v.cast(DType::F32).sum(0);
        // Read again after the reduction: a second read of the staged block.
        let out = v.cast(DType::F32) * 2.0 + s;
        let (_, mask) = row(r);
        k.store_masked(y + r * n + cols, out, mask);
    };
    if prefetch {
        let first = row(k.program_id(0));
        let init = k.load_staged(first.0, first.1);
        k.for_range(k.program_id(0), m, k.num_programs(0), &[init], |r, cur| {
            let next = row(r + k.num_programs(0));
            let staged = k.load_staged(next.0, next.1);
            finish(r, cur[0]);
            vec![staged]
        });
    } else {
        let r = k.program_id(0);
        let (p, mask) = row(r);
        finish(r, k.load_staged(p, mask));
    }
}

fn run<B: Backend>(b: &B, plan: &Plan, x: &Buffer, len: usize, dtype: DType) -> Buffer {
    let xb = b.upload(x).expect("upload");
    let yb = b.upload(&Buffer::filled(dtype, len, 0.0)).expect("upload");
    b.run(plan, &[Binding::whole("x", &xb), Binding::whole("y", &yb)]).expect("the staged kernel runs");
    b.download(&yb).expect("download")
}

#[test]
fn staged_loads_match_the_interpreter() {
    let Some(gpu) = executor() else { return };
    let mut failures = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for (m, n, block) in [(37, 1024, 1024), (9, 1000, 1024), (64, 4096, 4096), (5, 77, 128), (130, 2048, 2048)] {
            for prefetch in [true, false] {
                for warps in [1, 4, 8] {
                    let kernel = SharedKernel::new(kernel(dtype, block, prefetch));
                    let programs = if prefetch { (m / 3).max(1) } else { m };
                    let mut plan = Plan::default();
                    plan.buffer("x", dtype, m * n, Role::Input);
                    plan.buffer("y", dtype, m * n, Role::Output);
                    let args = vec![
                        PlanArg::Buffer("x"),
                        PlanArg::Buffer("y"),
                        PlanArg::I32(m as i32),
                        PlanArg::I32(n as i32),
                    ];
                    plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: warps });
                    let x = reference::random_buffer(dtype, m * n, (m * n) as u64);
                    let want = run(&Cpu, &plan, &x, m * n, dtype).to_f64();
                    let got = run(&gpu, &plan, &x, m * n, dtype).to_f64();
                    // The row sums add in another order on the GPU: allow their rounding.
                    let tol =
                        |w: f64| 1e-5 * (n as f64) * 4.0 + w.abs() * if dtype == DType::BF16 { 8e-3 } else { 1e-6 };
                    let bad = want.iter().zip(&got).position(|(w, g)| (w - g).abs() > tol(*w) || g.is_nan());
                    let case = format!("{dtype:?} {m}x{n} block {block} prefetch {prefetch} warps {warps}");
                    report(&mut failures, &case, bad.map(|i| format!("element {i}: {} against {}", got[i], want[i])));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
