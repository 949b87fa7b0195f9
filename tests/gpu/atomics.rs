//! `atomic_add` on the GPU: programs and clusters (of 2 to 16) taking tickets from one counter,
//! several a program in a loop, some clusters masked off, and every program adding to one f32
//! sum — whatever order the programs run in, every ticket is handed out once.

use tritonite::kernels::plan::{PlanArg, Role};
use tritonite::lang::{Buffer, DType};

use super::{executor, launch_once, report};
use crate::tickets::{check_tickets, tickets};

#[test]
fn programs_and_clusters_take_distinct_tickets() {
    let Some(gpu) = executor() else { return };
    let mut failures = vec![];
    for (cluster, programs, rounds, every) in [
        (1, 1, 1, 1),
        (1, 2000, 4, 1),
        (1, 999, 3, 5),
        (2, 264, 8, 1),
        (4, 528, 2, 3),
        (16, 112, 16, 1),
        (16, 224, 3, 2),
    ] {
        for warps in [1, 4, 16] {
            let buffers = [
                ("counter", Role::Output, Buffer::filled(DType::I32, 1, 0.0)),
                ("tickets", Role::Output, Buffer::filled(DType::I32, programs * rounds, 0.0)),
                ("sum", Role::Output, Buffer::filled(DType::F32, 1, 0.0)),
            ];
            let scalars = [PlanArg::I32(rounds as i32), PlanArg::I32(every as i32)];
            let case = format!("cluster {cluster}, {programs} programs, {rounds} rounds, every {every}, {warps} warps");
            let why = match launch_once(&gpu, tickets(cluster), programs as u32, warps, &buffers, &scalars) {
                Err(why) => Some(why),
                Ok(got) => {
                    check_tickets(cluster as usize, programs, rounds, every, (got[0][0] as i64, &got[1], got[2][0]))
                }
            };
            report(&mut failures, &case, why);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
