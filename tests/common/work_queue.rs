//! The kernel the while-loop tests share (interpreter and GPU): clusters taking rows from a work
//! queue until it runs dry.

use tritonite::lang::{build_kernel, DType, Kernel, KernelBuilder, Value};

/// Each cluster of `cluster` programs (a program of its own with `cluster` 1) takes rows of `x`
/// (`[items, cluster · width]` f32) from `counter` one at a time in a `while_loop` until the
/// counter passes `items`: rank 0 adds 1 and the cluster shares what that returned through
/// `cluster_sum`. The next row is taken, and its block loaded (staged through shared memory
/// when `staged`, carried to the next trip), before the current row is summed; rank 0 stores
/// the row's sum at `sums[row]` and `cluster_id + 1` at `owner[row]`. Arguments: `counter: i32,
/// x: f32, sums: f32, owner: i32, items: i32`; any grid of whole clusters.
pub fn work_queue(cluster: u32, width: i64, staged: bool) -> Kernel {
    build_kernel(&format!("work_queue_{cluster}_{width}_{}", staged as u8), |k| queue_body(k, cluster, width, staged))
        .expect("the work-queue kernel builds")
}

fn queue_body<'k>(k: &'k KernelBuilder, cluster: u32, width: i64, staged: bool) {
    k.cluster(cluster);
    let counter = k.mut_ptr_arg("counter", DType::I32);
    let x = k.ptr_arg("x", DType::F32);
    let sums = k.mut_ptr_arg("sums", DType::F32);
    let owner = k.mut_ptr_arg("owner", DType::I32);
    let items = k.scalar_arg("items", DType::I32);
    let (rank, me) =
        if cluster > 1 { (k.cluster_rank(), k.cluster_id()) } else { (k.full(&[], 0, DType::I32), k.program_id(0)) };
    let lead = rank.equal(0);
    let shared = |v: Value<'k>| if cluster > 1 { v.cluster_sum() } else { v };
    let take = || shared(k.atomic_add_masked(counter, 1, lead));
    let cols = rank * width + k.arange(0, width);
    let row_len = width * cluster as i64;
    let load = |row: Value<'k>| {
        let ptrs = x + (row * row_len + cols);
        let mask = k.full(&[width as usize], row.lt(items), DType::Bool);
        if staged {
            k.load_staged(ptrs, mask)
        } else {
            k.load_masked(ptrs, mask, 0.0)
        }
    };
    let first = take();
    let _ = k.while_loop(
        &[first, load(first)],
        |c| c[0].lt(items),
        |c| {
            let next = take();
            let block = load(next);
            k.store_masked(sums + c[0], shared(c[1].sum(0)), lead);
            k.store_masked(owner + c[0], me + 1, lead);
            vec![next, block]
        },
    );
}

/// What [`work_queue`] must leave after a launch of `clusters` clusters from a zero counter:
/// `None` if it did, else why not. `x` is the input, `got` is `(counter, sums, owner)`.
pub fn check_work_queue(clusters: usize, x: &[f64], items: usize, got: (i64, &[f64], &[f64])) -> Option<String> {
    let (counter, sums, owner) = got;
    // Every cluster's last take finds the queue dry.
    let want = (items + clusters) as i64;
    if counter != want {
        return Some(format!("counter {counter}, want {want}"));
    }
    let row_len = x.len() / items.max(1);
    for r in 0..items {
        let want: f64 = x[r * row_len..(r + 1) * row_len].iter().sum();
        if sums[r] != want {
            return Some(format!("row {r}: sum {}, want {want}", sums[r]));
        }
        if !(1.0..=clusters as f64).contains(&owner[r]) {
            return Some(format!("row {r}: owner {} is not a cluster", owner[r]));
        }
    }
    None
}
