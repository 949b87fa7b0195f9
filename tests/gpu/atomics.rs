//! `atomic_add` on the GPU: programs and clusters (of 2 to 16) taking tickets from one counter,
//! several a program in a loop, some clusters masked off, and every program adding to one f32
//! sum — whatever order the programs run in, every ticket is handed out once.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::lang::{Buffer, DType};

use super::{executor, report};
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
            let mut plan = Plan::default();
            plan.buffer("counter", DType::I32, 1, Role::Output);
            plan.buffer("tickets", DType::I32, programs * rounds, Role::Output);
            plan.buffer("sum", DType::F32, 1, Role::Output);
            let args = ["counter", "tickets", "sum"]
                .map(PlanArg::Buffer)
                .into_iter()
                .chain([PlanArg::I32(rounds as i32), PlanArg::I32(every as i32)])
                .collect();
            let kernel = SharedKernel::new(tickets(cluster));
            plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: warps });
            let bufs: Vec<_> = [(DType::I32, 1), (DType::I32, programs * rounds), (DType::F32, 1)]
                .into_iter()
                .map(|(d, len)| gpu.upload(&Buffer::filled(d, len, 0.0)).expect("upload"))
                .collect();
            let bindings = [
                Binding::whole("counter", &bufs[0]),
                Binding::whole("tickets", &bufs[1]),
                Binding::whole("sum", &bufs[2]),
            ];
            let case = format!("cluster {cluster}, {programs} programs, {rounds} rounds, every {every}, {warps} warps");
            let why = match gpu.run(&plan, &bindings) {
                Err(e) => Some(format!("launch failed: {e}")),
                Ok(()) => {
                    let got: Vec<Vec<f64>> = bufs.iter().map(|b| gpu.download(b).expect("download").to_f64()).collect();
                    check_tickets(cluster as usize, programs, rounds, every, (got[0][0] as i64, &got[1], got[2][0]))
                }
            };
            report(&mut failures, &case, why);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
