//! RMSNorm forward and backward on the CPU interpreter against the fp64 reference: random shapes ×
//! dtypes × every option (weight, offset, bias, residual, output dtypes, strided views, caller
//! `out`, residual-stream gradient) × configs, through the typed API.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::rmsnorm::check::{run_case, Case};
use tritonite_kernels::rmsnorm::{
    rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormConfig, RmsNormOptions, RmsNormSpec,
};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::{reference, KernelError};
use tritonite_lang::{Buffer, DType, InterpError};

fn assert_case(case: &Case) {
    let result = run_case(&Cpu, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let failures = result.failures();
    assert!(failures.is_empty(), "{case}: {failures:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every option combination is reachable from the seed; shapes up to 40 × 3000.
    #[test]
    fn every_option_matches_fp64(seed in any::<u64>()) {
        let case = Case::random(seed, 40, 3000, 4);
        let result = run_case(&Cpu, &case).map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
        let failures = result.failures();
        prop_assert!(failures.is_empty(), "{}: {:?}", case, failures);
    }
}

#[test]
fn case_generator_reaches_every_option() {
    let cases: Vec<Case> = (0..400).map(|s| Case::random(s, 40, 3000, 4)).collect();
    let any = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.m == 0) && any(&|c| c.m == 1) && any(&|c| c.n == 1));
    assert!(any(&|c| c.n > c.config.block_size) && any(&|c| c.n <= c.config.block_size));
    assert!(any(&|c| c.spec.weight == Some(DType::F32) && c.spec.x != DType::F32));
    assert!(any(&|c| c.spec.weight.is_none()) && any(&|c| c.offset != 0.0));
    assert!(any(&|c| c.spec.bias.is_some()) && any(&|c| c.spec.residual.is_some()));
    assert!(any(&|c| c.spec.residual.is_none() && c.spec.residual_out.is_some()));
    assert!(any(&|c| c.spec.residual_out.is_some() && c.spec.residual_out != c.spec.residual));
    assert!(any(&|c| c.spec.out != c.spec.x) && any(&|c| c.pad > 0 && c.view_offset > 0));
    assert!(any(&|c| c.caller_out) && any(&|c| c.dresidual_out));
    // Tiles of several rows, with a ragged last tile.
    assert!(any(&|c| c.config.rows >= 8 && c.m % c.config.rows != 0 && c.m > c.config.rows));
    // Clusters of a size that is not a power of two; prefetched tiles, alone and over clusters,
    // with fewer programs than tiles (so that programs loop, and prefetch past the last tile);
    // tiles staged in shared memory, prefetched and not.
    assert!(any(&|c| c.config.cluster == 3) && any(&|c| c.config.cluster == 5));
    let loops = |c: &Case| c.config.prefetch && c.config.programs < c.m.div_ceil(c.config.rows);
    assert!(any(&|c| loops(c) && c.config.cluster == 1) && any(&|c| loops(c) && c.config.cluster > 1));
    assert!(any(&|c| loops(c) && c.config.staged) && any(&|c| !c.config.prefetch && c.config.staged));
}

#[test]
fn long_rows_walk_in_chunks() {
    // N = 20000 with 4096-column chunks: a residual, a weight, a bias, a strided caller `out`.
    let spec = RmsNormSpec {
        x: DType::BF16,
        weight: Some(DType::F32),
        bias: Some(DType::BF16),
        residual: Some(DType::F32),
        residual_out: Some(DType::F32),
        out: DType::BF16,
    };
    let config =
        RmsNormConfig { block_size: 4096, num_warps: 4, programs: 2, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN };
    let case = Case {
        offset: 1.0,
        pad: 8,
        view_offset: 1,
        caller_out: true,
        dresidual_out: true,
        ..Case::new(2, 20000, spec, config)
    };
    assert_case(&case);
}

#[test]
fn forward_and_backward_are_deterministic() {
    let spec = RmsNormSpec { bias: Some(DType::BF16), ..RmsNormSpec::new(DType::BF16, Some(DType::BF16)) };
    let case = Case::new(
        37,
        300,
        spec,
        RmsNormConfig { block_size: 128, num_warps: 2, programs: 5, rows: 4, cluster: 1, ..RmsNormConfig::PLAIN },
    );
    let a = run_case(&Cpu, &case).unwrap();
    let b = run_case(&Cpu, &case).unwrap();
    assert!(a.failures().is_empty(), "{:?}", a.failures());
    assert_eq!(a.outputs, b.outputs);
}

#[test]
fn zero_rows_launch_nothing_and_give_zero_parameter_grads() {
    let x = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let w = HostBuffer::new(reference::random_weight(DType::F32, 8, 1));
    let out = rms_norm(&Cpu, Rows::new(&x, &[0, 8]), Some(&w), &RmsNormOptions::default()).unwrap();
    assert!(out.y.unwrap().into_inner().is_empty() && out.rstd.into_inner().is_empty());
    let dy = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let rstd = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let spec = RmsNormSpec::new(DType::F32, Some(DType::F32));
    let grads = rms_norm_backward(
        &Cpu,
        &spec,
        Rows::new(&x, &[0, 8]),
        Some(&w),
        Rows::new(&dy, &[0, 8]),
        &rstd,
        &RmsNormBackwardOptions::default(),
    )
    .unwrap();
    assert_eq!(grads.dweight.unwrap().to_f64(), vec![0.0; 8]);
}

#[test]
fn leading_dims_flatten_into_rows() {
    let x = HostBuffer::new(reference::random_buffer(DType::F32, 2 * 3 * 16, 5));
    let a = rms_norm(&Cpu, Rows::new(&x, &[2, 3, 16]), None, &RmsNormOptions::default()).unwrap();
    let b = rms_norm(&Cpu, Rows::new(&x, &[6, 16]), None, &RmsNormOptions::default()).unwrap();
    assert_eq!(a.y.unwrap().into_inner(), b.y.unwrap().into_inner());
}

#[test]
fn interpreter_reports_races() {
    // The interpreter's own race detection, through a hand-made kernel.
    use tritonite_lang::{interp, Arg, KernelBuilder};
    let k = KernelBuilder::new("racy");
    let out = k.mut_ptr_arg("out", DType::F32);
    let v = k.program_id(0).cast(DType::F32);
    k.store(out + 0, v);
    let kernel = k.finish().unwrap();
    let mut buf = Buffer::filled(DType::F32, 1, -1.0);
    let err = interp::run(&kernel, [2, 1, 1], &mut [Arg::Out(&mut buf)]).unwrap_err();
    assert!(matches!(err, InterpError::Race { .. }), "{err}");
    assert_eq!(buf.get(0), -1.0, "a failed run leaves buffers untouched");
    let _: Option<KernelError> = None;
}
