//! `while_loop` on the GPU: programs and clusters (of 2 to 16) taking rows from a work queue
//! until it runs dry, the next row's block loaded (staged, or into registers) before the current
//! one is summed — whatever order the clusters take rows in, every row is summed once, right.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::lang::{Buffer, DType};

use super::{executor, report};
use crate::work_queue::{check_work_queue, work_queue};

#[test]
fn clusters_drain_a_work_queue() {
    let Some(gpu) = executor() else { return };
    let mut failures = vec![];
    for (cluster, width, clusters, items) in [
        (1, 256, 1, 0),
        (1, 512, 132, 1000),
        (2, 256, 66, 777),
        (4, 1024, 33, 100),
        (16, 512, 7, 1024),
        (16, 128, 14, 5),
    ] {
        for staged in [false, true] {
            let row_len = width as usize * cluster as usize;
            let mut seed = (items * 31 + cluster as usize) as u64;
            let x: Vec<f64> = (0..items * row_len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) % 17) as f64 - 8.0
                })
                .collect();
            let mut plan = Plan::default();
            plan.buffer("counter", DType::I32, 1, Role::Output);
            plan.buffer("x", DType::F32, x.len(), Role::Input);
            plan.buffer("sums", DType::F32, items, Role::Output);
            plan.buffer("owner", DType::I32, items, Role::Output);
            let args = ["counter", "x", "sums", "owner"]
                .map(PlanArg::Buffer)
                .into_iter()
                .chain([PlanArg::I32(items as i32)])
                .collect();
            let kernel = SharedKernel::new(work_queue(cluster, width, staged));
            let grid = [clusters as u32 * cluster, 1, 1];
            plan.launches.push(Launch { kernel, grid, args, num_warps: 4 });
            let bufs: Vec<_> = [
                Buffer::filled(DType::I32, 1, 0.0),
                Buffer::from_f64(DType::F32, &x),
                Buffer::filled(DType::F32, items, f64::NAN),
                Buffer::filled(DType::I32, items, 0.0),
            ]
            .iter()
            .map(|b| gpu.upload(b).expect("upload"))
            .collect();
            let bindings: Vec<_> =
                ["counter", "x", "sums", "owner"].iter().zip(&bufs).map(|(n, b)| Binding::whole(n, b)).collect();
            let case = format!("cluster {cluster}, width {width}, {clusters} clusters, {items} rows, staged {staged}");
            let why = match gpu.run(&plan, &bindings) {
                Err(e) => Some(format!("launch failed: {e}")),
                Ok(()) => {
                    let got: Vec<Vec<f64>> = bufs.iter().map(|b| gpu.download(b).expect("download").to_f64()).collect();
                    check_work_queue(clusters, &x, items, (got[0][0] as i64, &got[2], &got[3]))
                }
            };
            report(&mut failures, &case, why);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
