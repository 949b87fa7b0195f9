//! `while_loop` on the CPU interpreter (a loop whose trip count depends on data, and clusters
//! taking rows from a work queue until it runs dry, with a staged block carried from trip to
//! trip), the builder's and the interpreter's errors, and the lowering to PTX (assembled for sm_90
//! where ptxas is installed).

use tritonite::lang::interp::{run, Arg, Buffer};
use tritonite::lang::{build_kernel, DType, Lit};
use tritonite::lowering::{compile, ptxas, CompileOptions};

#[path = "common/work_queue.rs"]
mod work_queue;

use work_queue::{check_work_queue, work_queue};

/// Collatz steps of each program's number: a trip count that differs from program to program.
#[test]
fn trip_counts_follow_the_data() {
    let k = build_kernel("collatz", |k| {
        let start = k.ptr_arg("start", DType::I32);
        let steps = k.mut_ptr_arg("steps", DType::I32);
        let pid = k.program_id(0);
        let n0 = k.load(start + pid);
        let end = k.while_loop(
            &[n0, k.full(&[], 0, DType::I32)],
            |c| c[0].gt(1),
            |c| {
                let n = c[0];
                let even = (n % 2).equal(0);
                vec![k.where_(even, n / 2, n * 3 + 1), c[1] + 1]
            },
        );
        k.store(steps + pid, end[1]);
    })
    .expect("builds");
    let starts: Vec<i64> = vec![1, 2, 3, 6, 7, 27, 97, 871];
    let want: Vec<f64> = starts
        .iter()
        .map(|&s| {
            let (mut n, mut c) = (s, 0);
            while n > 1 {
                n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
                c += 1;
            }
            c as f64
        })
        .collect();
    let start = Buffer::from_f64(DType::I32, &starts.iter().map(|&s| s as f64).collect::<Vec<_>>());
    let mut steps = Buffer::filled(DType::I32, starts.len(), -1.0);
    run(&k, [starts.len() as u32, 1, 1], &mut [Arg::In(&start), Arg::Out(&mut steps)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(steps.to_f64(), want);
    assert_eq!(want[5], 111.0, "27 takes 111 steps");
}

/// Random integers (exact in f32 sums) for an `[items, row_len]` input.
fn input(items: usize, row_len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..items * row_len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 17) as f64 - 8.0
        })
        .collect()
}

/// Runs [`work_queue`] on the interpreter from a zero counter: `(counter, sums, owner)`.
fn run_queue(
    cluster: u32,
    width: i64,
    staged: bool,
    clusters: usize,
    x: &[f64],
    items: usize,
) -> (i64, Vec<f64>, Vec<f64>) {
    let k = work_queue(cluster, width, staged);
    let mut counter = Buffer::filled(DType::I32, 1, 0.0);
    let xb = Buffer::from_f64(DType::F32, x);
    let mut sums = Buffer::filled(DType::F32, items, f64::NAN);
    let mut owner = Buffer::filled(DType::I32, items, 0.0);
    let mut args = [
        Arg::Out(&mut counter),
        Arg::In(&xb),
        Arg::Out(&mut sums),
        Arg::Out(&mut owner),
        Arg::Scalar(Lit::Int(items as i64)),
    ];
    run(&k, [clusters as u32 * cluster, 1, 1], &mut args).unwrap_or_else(|e| panic!("{e}\n{k}"));
    (counter.to_f64()[0] as i64, sums.to_f64(), owner.to_f64())
}

#[test]
fn clusters_drain_a_work_queue() {
    for (cluster, width, staged, clusters, items) in
        [(1, 32, false, 1, 0), (1, 64, true, 5, 23), (4, 16, true, 3, 10), (16, 8, false, 2, 7), (2, 128, true, 4, 1)]
    {
        let x = input(items, width as usize * cluster as usize, items as u64 + 1);
        let (counter, sums, owner) = run_queue(cluster, width, staged, clusters, &x, items);
        let why = check_work_queue(clusters, &x, items, (counter, &sums, &owner));
        assert!(
            why.is_none(),
            "cluster {cluster}, width {width}, staged {staged}, {clusters} clusters, {items} items: {why:?}"
        );
    }
}

/// A check that can fail: a row summed wrong is caught.
#[test]
fn check_work_queue_catches_a_wrong_sum() {
    let x = input(6, 32, 3);
    let (counter, mut sums, owner) = run_queue(1, 32, false, 2, &x, 6);
    assert!(check_work_queue(2, &x, 6, (counter, &sums, &owner)).is_none());
    sums[4] += 1.0;
    assert!(check_work_queue(2, &x, 6, (counter, &sums, &owner)).is_some());
}

#[test]
fn while_loop_errors_name_what_is_wrong() {
    let not_bool = build_kernel("int_test", |k| {
        let n = k.scalar_arg("n", DType::I32);
        let _ = k.while_loop(&[n], |c| c[0] + 1, |c| vec![c[0] - 1]);
    });
    let e = not_bool.expect_err("an i32 test is refused");
    assert!(e.to_string().contains("while_loop") && e.to_string().contains("not a scalar bool"), "{e}");

    let count = build_kernel("two_for_one", |k| {
        let n = k.scalar_arg("n", DType::I32);
        let _ = k.while_loop(&[n], |c| c[0].gt(0), |c| vec![c[0] - 1, c[0]]);
    });
    let e = count.expect_err("two next values for one carried value are refused");
    assert!(e.to_string().contains("2 values for 1 loop-carried"), "{e}");

    let shape = build_kernel("grows", |k| {
        let b = k.zeros(&[4], DType::F32);
        let _ = k.while_loop(&[b], |c| c[0].sum(0).lt(1.0), |_| vec![k.zeros(&[8], DType::F32)]);
    });
    assert!(shape.expect_err("a carried block changing shape is refused").to_string().contains("starts as"));
}

/// Programs of a cluster whose tests disagree around a cluster reduction are reported, not run
/// into a hang.
#[test]
fn a_cluster_whose_programs_disagree_is_reported() {
    let k = build_kernel("diverging", |k| {
        k.cluster(2);
        let out = k.mut_ptr_arg("out", DType::F32);
        let limit = k.cluster_rank() + 1;
        let end = k.while_loop(
            &[k.full(&[], 0, DType::I32)],
            |c| c[0].lt(limit),
            |c| {
                let _ = k.full(&[], 1.0, DType::F32).cluster_sum();
                vec![c[0] + 1]
            },
        );
        k.store(out + k.program_id(0), end[0].cast(DType::F32));
    })
    .expect("builds");
    let mut out = Buffer::filled(DType::F32, 2, 0.0);
    let e = run(&k, [2, 1, 1], &mut [Arg::Out(&mut out)]).expect_err("rank 1 goes on after rank 0 stops");
    assert!(e.to_string().contains("trip"), "{e}");
}

#[test]
fn while_loop_lowers_to_a_loop_that_assembles() {
    for (cluster, staged) in [(1, false), (1, true), (4, true), (16, false)] {
        let k = work_queue(cluster, 128, staged);
        let ptx = compile(&k, &CompileOptions { num_warps: 4, ..CompileOptions::default() })
            .unwrap_or_else(|e| panic!("{e}\n{k}"))
            .ptx;
        // One take before the loop and one in it, each in one thread of the program.
        assert_eq!(ptx.matches("atom.global.add.u32").count(), 2, "{ptx}");
        // Each take's result, and each scalar a cluster sums, comes from lane 0 so that ptxas
        // can tell the loop's test is the same in every lane (no divergent-loop handling).
        let uniform = if cluster > 1 { 2 + 3 } else { 2 };
        assert_eq!(ptx.matches("shfl.sync.idx.b32").count(), uniform, "{ptx}");
        assert_eq!(ptx.matches("cp.async.commit_group").count(), if staged { 2 } else { 0 }, "{ptx}");
        if ptxas::find_ptxas().is_some() {
            ptxas::assemble(&ptx, "sm_90").unwrap_or_else(|e| panic!("ptxas: {e}"));
        }
    }
}
