//! Cluster reductions on the GPU against the CPU interpreter: rows split over clusters of 2 to 16
//! programs, one or two rows a program, each row's sum and maximum combined across the cluster
//! (from 16 programs on, a one-row sum or maximum runs with its block reduction as one exchange).
//! Ragged rows leave programs with few or no columns.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference;
use tritonite::lang::{Buffer, DType};

use super::{executor, report};
use crate::split_rows::split_rows;

fn run<B: Backend>(b: &B, plan: &Plan, x: &Buffer, m: usize, n: usize) -> Vec<Vec<f64>> {
    let xb = b.upload(x).expect("upload");
    let outs: Vec<_> = [m * n, m * n, m]
        .into_iter()
        .map(|len| b.upload(&Buffer::filled(DType::F32, len, 0.0)).expect("upload"))
        .collect();
    let bindings = [
        Binding::whole("x", &xb),
        Binding::whole("y", &outs[0]),
        Binding::whole("z", &outs[1]),
        Binding::whole("sums", &outs[2]),
    ];
    b.run(plan, &bindings).expect("the split-rows kernel runs");
    outs.iter().map(|o| b.download(o).expect("download").to_f64()).collect()
}

#[test]
fn cluster_reductions_match_the_interpreter() {
    let Some(gpu) = executor() else { return };
    let mut failures = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for (size, rows, block, m, n) in [
            (2, 1, 1024, 7, 2000),
            (5, 1, 256, 9, 1100),
            (8, 2, 512, 5, 4096),
            (16, 1, 1024, 11, 16000),
            (16, 2, 256, 6, 3001),
        ] {
            for warps in [1, 4, 16] {
                let kernel = SharedKernel::new(split_rows(size, rows, block, dtype));
                let mut plan = Plan::default();
                plan.buffer("x", dtype, m * n, Role::Input);
                for (name, len) in [("y", m * n), ("z", m * n), ("sums", m)] {
                    plan.buffer(name, DType::F32, len, Role::Output);
                }
                let args = ["x", "y", "z", "sums"]
                    .map(PlanArg::Buffer)
                    .into_iter()
                    .chain([PlanArg::I32(m as i32), PlanArg::I32(n as i32)])
                    .collect();
                let grid = [m.div_ceil(rows as usize) as u32 * size, 1, 1];
                plan.launches.push(Launch { kernel, grid, args, num_warps: warps });
                let x = reference::random_weight(dtype, m * n, (m * n + size as usize) as u64);
                let want = run(&Cpu, &plan, &x, m, n);
                let got = run(&gpu, &plan, &x, m, n);
                let case = format!("{dtype:?} {m}x{n} cluster {size} rows {rows} block {block} warps {warps}");
                // Sums add in another order on the GPU: allow their rounding; maxima are exact.
                let bad = ["y", "z", "sums"].iter().zip(&want).zip(&got).find_map(|((name, w), g)| {
                    let tol = |w: f64| if *name == "z" { 0.0 } else { 1e-5 * w.abs().max(1e-3) };
                    w.iter()
                        .zip(g)
                        .position(|(w, g)| (w - g).abs() > tol(*w) || g.is_nan())
                        .map(|i| (name, i, w[i], g[i]))
                });
                report(&mut failures, &case, bad.map(|(name, i, w, g)| format!("{name}[{i}] = {g} against {w}")));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
