//! `atomic_add` on the CPU interpreter (programs and clusters taking tickets from a counter, in
//! loops, masked), the verifier's errors, and the lowering to PTX (one atomic per program,
//! assembled for sm_90 where ptxas is installed).

use tritonite::lang::interp::{run, Arg, Buffer};
use tritonite::lang::{build_kernel, DType, Lit};
use tritonite::lowering::{compile, ptxas, CompileOptions};

#[path = "common/tickets.rs"]
mod tickets;

use tickets::{check_tickets, tickets};

/// Runs [`tickets`] on the interpreter from zeros: `(counter, tickets, sum)`.
fn run_tickets(cluster: u32, programs: usize, rounds: usize, every: usize) -> (i64, Vec<f64>, f64) {
    let k = tickets(cluster);
    let (mut counter, mut out, mut sum) = (
        Buffer::filled(DType::I32, 1, 0.0),
        Buffer::filled(DType::I32, programs * rounds, -1.0),
        Buffer::filled(DType::F32, 1, 0.0),
    );
    let mut args = [
        Arg::Out(&mut counter),
        Arg::Out(&mut out),
        Arg::Out(&mut sum),
        Arg::Scalar(Lit::Int(rounds as i64)),
        Arg::Scalar(Lit::Int(every as i64)),
    ];
    run(&k, [programs as u32, 1, 1], &mut args).unwrap_or_else(|e| panic!("{e}\n{k}"));
    (counter.to_f64()[0] as i64, out.to_f64(), sum.to_f64()[0])
}

#[test]
fn programs_and_clusters_take_distinct_tickets() {
    for (cluster, programs, rounds, every) in
        [(1, 1, 1, 1), (1, 37, 3, 1), (1, 40, 2, 3), (4, 32, 5, 1), (16, 48, 2, 2), (3, 9, 1, 4)]
    {
        let (counter, out, sum) = run_tickets(cluster, programs, rounds, every);
        let why = check_tickets(cluster as usize, programs, rounds, every, (counter, &out, sum));
        assert!(why.is_none(), "cluster {cluster}, {programs} programs, {rounds} rounds, every {every}: {why:?}");
    }
}

/// A check that can fail: tickets handed out twice are caught.
#[test]
fn check_tickets_catches_a_repeated_ticket() {
    let (counter, mut out, sum) = run_tickets(1, 4, 1, 1);
    out[1] = out[0];
    assert!(check_tickets(1, 4, 1, 1, (counter, &out, sum)).is_some());
}

#[test]
fn atomic_add_takes_one_writable_i32_or_f32_element() {
    let block = build_kernel("block_atomic", |k| {
        let c = k.mut_ptr_arg("c", DType::I32);
        let _ = k.atomic_add(c + k.arange(0, 4), 1);
    });
    let e = block.expect_err("a block of pointers is refused");
    assert!(e.to_string().contains("single i32 or f32 pointer"), "{e}");

    let wide = build_kernel("i64_atomic", |k| {
        let c = k.mut_ptr_arg("c", DType::I64);
        let _ = k.atomic_add(c, 1);
    });
    assert!(wide.expect_err("i64 is refused").to_string().contains("single i32 or f32 pointer"));

    let read_only = build_kernel("ro_atomic", |k| {
        let c = k.ptr_arg("c", DType::I32);
        let _ = k.atomic_add(c, 1);
    });
    let e = read_only.expect_err("a read-only argument is refused");
    assert!(e.to_string().contains("read-only") && e.to_string().contains("`c`"), "{e}");

    let block_value = build_kernel("block_value_atomic", |k| {
        let c = k.mut_ptr_arg("c", DType::F32);
        let _ = k.atomic_add(c, k.arange(0, 4).cast(DType::F32));
    });
    assert!(block_value.expect_err("a block value is refused").to_string().contains("not a scalar number"));
}

/// A plain store to an element other programs add to atomically is a race the interpreter reports.
#[test]
fn plain_access_to_an_atomic_counter_is_a_race() {
    let k = build_kernel("racy_counter", |k| {
        let c = k.mut_ptr_arg("c", DType::I32);
        let _ = k.atomic_add(c, 1);
        k.store(c, 7);
    })
    .expect("builds");
    let mut c = Buffer::filled(DType::I32, 1, 0.0);
    let e = run(&k, [2, 1, 1], &mut [Arg::Out(&mut c)]).expect_err("program 1 adds to what program 0 stored");
    assert!(e.to_string().contains("race") || e.to_string().contains("Race"), "{e}");
}

#[test]
fn atomic_add_lowers_to_one_atomic_a_program() {
    for cluster in [1, 4] {
        let k = tickets(cluster);
        let ptx = compile(&k, &CompileOptions { num_warps: 4, ..CompileOptions::default() })
            .unwrap_or_else(|e| panic!("{e}"))
            .ptx;
        // One add of the counter and one of the sum, each in one thread of the program.
        assert_eq!(ptx.matches("atom.global.add.u32").count(), 1, "{ptx}");
        assert_eq!(ptx.matches("atom.global.add.f32").count(), 1, "{ptx}");
        if ptxas::find_ptxas().is_some() {
            ptxas::assemble(&ptx, "sm_90").unwrap_or_else(|e| panic!("ptxas: {e}"));
        }
    }
}
