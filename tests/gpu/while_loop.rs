//! `while_loop` on the GPU: programs and clusters (of 2 to 16) taking rows from a work queue
//! until it runs dry, the next row's block loaded (staged, or into registers) before the current
//! one is summed — whatever order the clusters take rows in, every row is summed once, right.

use tritonite::kernels::plan::{PlanArg, Role};
use tritonite::lang::{Buffer, DType};

use super::{executor, launch_once, report};
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
            let buffers = [
                ("counter", Role::Output, Buffer::filled(DType::I32, 1, 0.0)),
                ("x", Role::Input, Buffer::from_f64(DType::F32, &x)),
                ("sums", Role::Output, Buffer::filled(DType::F32, items, f64::NAN)),
                ("owner", Role::Output, Buffer::filled(DType::I32, items, 0.0)),
            ];
            let kernel = work_queue(cluster, width, staged);
            let case = format!("cluster {cluster}, width {width}, {clusters} clusters, {items} rows, staged {staged}");
            let why = match launch_once(
                &gpu,
                kernel,
                clusters as u32 * cluster,
                4,
                &buffers,
                &[PlanArg::I32(items as i32)],
            ) {
                Err(why) => Some(why),
                Ok(got) => check_work_queue(clusters, &x, items, (got[0][0] as i64, &got[2], &got[3])),
            };
            report(&mut failures, &case, why);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
