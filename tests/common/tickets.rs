//! The kernel the atomics tests share (interpreter and GPU): programs taking tickets from a counter.

use tritonite::lang::{build_kernel, DType, Kernel};

/// Each cluster of `cluster` programs takes `rounds` tickets from `counter`, one a loop
/// iteration, where `cluster_id % every == 0`: its rank 0 adds 1 and the cluster shares what
/// that returned through `cluster_sum` (with `cluster` 1, each program takes its own). Every
/// program stores its tickets at `tickets[pid · rounds + i]` (0 where it took none) and adds its
/// `pid` to the f32 `sum`. Arguments: `counter: i32, tickets: i32, sum: f32, rounds: i32, every:
/// i32`; any grid of whole clusters.
pub fn tickets(cluster: u32) -> Kernel {
    build_kernel(&format!("tickets_{cluster}"), |k| {
        k.cluster(cluster);
        let counter = k.mut_ptr_arg("counter", DType::I32);
        let tickets = k.mut_ptr_arg("tickets", DType::I32);
        let sum = k.mut_ptr_arg("sum", DType::F32);
        let rounds = k.scalar_arg("rounds", DType::I32);
        let every = k.scalar_arg("every", DType::I32);
        let pid = k.program_id(0);
        // Whether this program adds to the counter: rank 0 of a taking cluster (a taking program
        // without clusters).
        let takes = if cluster > 1 {
            (k.cluster_id() % every).equal(0) & k.cluster_rank().equal(0)
        } else {
            (pid % every).equal(0)
        };
        k.for_range(0, rounds, 1, &[], |i, _| {
            let t = k.atomic_add_masked(counter, 1, takes);
            let t = if cluster > 1 { t.cluster_sum() } else { t };
            k.store(tickets + (pid * rounds + i), t);
            vec![]
        });
        let _ = k.atomic_add(sum, pid.cast(DType::F32));
    })
    .expect("the tickets kernel builds")
}

/// What [`tickets`] must leave, whatever order the programs ran in: `None` if it did, else why
/// not. `got` is `(counter, tickets, sum)` after a launch of `programs` programs from zeros.
pub fn check_tickets(
    cluster: usize,
    programs: usize,
    rounds: usize,
    every: usize,
    got: (i64, &[f64], f64),
) -> Option<String> {
    let (counter, tickets, sum) = got;
    let clusters = programs / cluster;
    let taking = (0..clusters).filter(|c| c % every == 0).count();
    let want_count = (taking * rounds) as i64;
    if counter != want_count {
        return Some(format!("counter {counter}, want {want_count}"));
    }
    let want_sum = (programs * (programs - 1) / 2) as f64;
    if sum != want_sum {
        return Some(format!("sum {sum}, want {want_sum}"));
    }
    let mut seen = vec![false; want_count as usize];
    for c in 0..clusters {
        for r in 0..rounds {
            let at = |p: usize| tickets[p * rounds + r];
            let t = at(c * cluster);
            if let Some(p) = (c * cluster..(c + 1) * cluster).find(|&p| at(p) != t) {
                return Some(format!("program {p} got ticket {} in round {r}, its cluster's rank 0 {t}", at(p)));
            }
            if c % every != 0 {
                if t != 0.0 {
                    return Some(format!("cluster {c} took ticket {t} in round {r}, but not every {every}th"));
                }
                continue;
            }
            let i = t as usize;
            if t < 0.0 || i >= seen.len() || seen[i] {
                return Some(format!("cluster {c} got ticket {t} in round {r}: out of range or given twice"));
            }
            seen[i] = true;
        }
    }
    None
}
