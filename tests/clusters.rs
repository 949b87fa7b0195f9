//! Clusters of programs: `cluster_sum`/`cluster_max` on the CPU interpreter against `f64` (rows
//! split across the programs of a cluster, as the long-row RMSNorm splits them), the errors of a
//! bad grid and of diverging programs, and the lowering to PTX (distributed shared memory, cluster
//! barriers), assembled for sm_90 where ptxas is installed.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tritonite::lang::interp::{run, Arg, Buffer};
use tritonite::lang::{build_kernel, DType, InterpError, Lit};
use tritonite::lowering::{compile, ptxas, CompileOptions};

#[path = "common/split_rows.rs"]
mod split_rows;

use split_rows::split_rows;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// Each row's sum and maximum span the whole cluster: every program normalizes its columns by
    /// them, and the results match `f64` on ragged shapes.
    #[test]
    fn cluster_reductions_span_the_row(
        size_log in 1u32..=4,
        rows_log in 0u32..=2,
        block_log in 2u32..=4,
        m in 1usize..9,
        fill in 0.05f64..1.0,
        seed in any::<u64>(),
        half in any::<bool>(),
    ) {
        let (size, rows, block) = (1u32 << size_log, 1i64 << rows_log, 1i64 << block_log);
        let dtype = if half { DType::BF16 } else { DType::F32 };
        // Rows of up to `size · block` columns, at least one column in the last program's share.
        let full = size as usize * block as usize;
        let n = ((full as f64 * fill) as usize).clamp(1, full);
        let k = split_rows(size, rows, block, dtype);
        let mut state = seed | 1;
        let x: Vec<f64> = (0..m * n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                0.5 + (state % 1000) as f64 / 1000.0
            })
            .collect();
        let xb = Buffer::from_f64(dtype, &x);
        let xs = xb.to_f64();
        let (mut y, mut z, mut sums) =
            (Buffer::filled(DType::F32, m * n, 0.0), Buffer::filled(DType::F32, m * n, 0.0), Buffer::filled(DType::F32, m, 0.0));
        let clusters = m.div_ceil(rows as usize) as u32;
        let mut args = [
            Arg::In(&xb),
            Arg::Out(&mut y),
            Arg::Out(&mut z),
            Arg::Out(&mut sums),
            Arg::Scalar(Lit::Int(m as i64)),
            Arg::Scalar(Lit::Int(n as i64)),
        ];
        run(&k, [clusters * size, 1, 1], &mut args).map_err(|e| TestCaseError::fail(format!("{e}\n{k}")))?;
        let (y, z, sums) = (y.to_f64(), z.to_f64(), sums.to_f64());
        for i in 0..m {
            let row = &xs[i * n..(i + 1) * n];
            let total: f64 = row.iter().sum();
            let top = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!((sums[i] - total).abs() <= 1e-5 * total, "row {i}: sum {} vs {total}", sums[i]);
            for j in 0..n {
                let (got_y, want_y) = (y[i * n + j], row[j] / total);
                prop_assert!((got_y - want_y).abs() <= 1e-5 * want_y, "y[{i}, {j}] = {got_y}, want {want_y}");
                prop_assert_eq!(z[i * n + j], row[j] - top, "z[{}, {}]", i, j);
            }
        }
    }
}

#[test]
fn a_grid_that_is_no_multiple_of_the_cluster_is_refused() {
    let k = split_rows(4, 1, 4, DType::F32);
    let xb = Buffer::filled(DType::F32, 16, 1.0);
    let (mut y, mut z, mut sums) =
        (Buffer::filled(DType::F32, 16, 0.0), Buffer::filled(DType::F32, 16, 0.0), Buffer::filled(DType::F32, 1, 0.0));
    let mut args = [
        Arg::In(&xb),
        Arg::Out(&mut y),
        Arg::Out(&mut z),
        Arg::Out(&mut sums),
        Arg::Scalar(Lit::Int(1)),
        Arg::Scalar(Lit::Int(16)),
    ];
    let err = run(&k, [6, 1, 1], &mut args).unwrap_err();
    assert!(matches!(err, InterpError::Grid { .. }), "{err}");
    assert!(err.to_string().contains("multiple of the kernel's cluster size 4"), "{err}");
}

#[test]
fn programs_of_a_cluster_that_diverge_are_reported() {
    // Each program loops `rank + 1` times around a cluster sum: programs 0 and 1 disagree.
    let k = build_kernel("diverge", |k| {
        k.cluster(2);
        let out = k.mut_ptr_arg("out", DType::F32);
        let trips = k.cluster_rank() + 1;
        let acc = k.for_range(0, trips, 1, &[k.constant(0.0, DType::F32)], |_, c| {
            vec![c[0] + k.constant(1.0, DType::F32).cluster_sum()]
        });
        k.store(out + k.program_id(0), acc[0]);
    })
    .unwrap();
    let mut out = Buffer::filled(DType::F32, 2, 0.0);
    let err = run(&k, [2, 1, 1], &mut [Arg::Out(&mut out)]).unwrap_err();
    match err {
        InterpError::ClusterDiverged { first_trips, second_trips, .. } => {
            assert_eq!((first_trips, second_trips), (1, 2))
        }
        other => panic!("expected ClusterDiverged, got {other}"),
    }
    assert_eq!(out.to_f64(), vec![0.0, 0.0], "a failed launch leaves its outputs unchanged");
}

#[test]
fn cluster_sizes_beyond_1_to_16_are_refused() {
    for size in [0, 17, 32] {
        let err = build_kernel("bad_cluster", |k| k.cluster(size)).unwrap_err();
        assert!(err.to_string().contains("use 1 to 16"), "{err}");
    }
    assert!(build_kernel("cluster_of_5", |k| k.cluster(5)).is_ok());
}

#[test]
fn cluster_reductions_lower_to_distributed_shared_memory() {
    for dtype in [DType::F32, DType::BF16] {
        for (size, rows, block) in [(2, 1, 1024), (16, 4, 64), (8, 1, 4096)] {
            let k = split_rows(size, rows, block, dtype);
            let compiled = compile(&k, &CompileOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", k.name));
            for needle in [
                "mbarrier.init.shared::cta.b64",
                "fence.mbarrier_init.release.cluster",
                "barrier.cluster.arrive.relaxed",
                "barrier.cluster.wait.acquire",
                "mbarrier.arrive.expect_tx",
                "mapa.shared::cluster",
                "st.async.shared::cluster.mbarrier::complete_tx::bytes",
                "mbarrier.try_wait.parity",
            ] {
                assert!(compiled.ptx.contains(needle), "{}: no {needle} in the PTX", k.name);
            }
            // No cluster barrier per exchange: one arrival and one wait in all, and the use
            // counter lives in registers.
            assert_eq!(compiled.ptx.matches("barrier.cluster.").count(), 2, "{}", k.name);
            assert!(!compiled.ptx.contains(".local"), "{}: the use counter went to local memory", k.name);
            if ptxas::find_ptxas().is_some() {
                ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", k.name));
            }
        }
    }
}

#[test]
fn one_row_reductions_in_clusters_of_16_run_as_one_exchange() {
    // A one-row tile's sum and maximum (4096 columns: the 16 warps all along the row): in
    // clusters of 16, each warp sends its partial to every program (no block barrier, a send per
    // lane); smaller clusters combine the warps first.
    for (size, barriers) in [(16, false), (8, true)] {
        let k = split_rows(size, 1, 4096, DType::BF16);
        let opts = CompileOptions { num_warps: 16, ..CompileOptions::default() };
        let compiled = compile(&k, &opts).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        assert_eq!(compiled.ptx.contains("bar.sync"), barriers, "{}", k.name);
        assert_eq!(
            compiled.ptx.matches("st.async.shared::cluster").count(),
            if barriers { 2 * size as usize } else { 2 }
        );
        if ptxas::find_ptxas().is_some() {
            ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", k.name));
        }
    }
}
