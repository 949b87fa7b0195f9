//! Softmax forward and backward on the CPU interpreter against the fp64 reference: random shapes ×
//! dtypes × logit scales × `-inf` entries × strided views × caller outputs × configs (rows in
//! registers and the online chunked path), plus typed errors of bad calls.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::reference::random_buffer;
use tritonite_kernels::softmax::check::{run_case, Case};
use tritonite_kernels::softmax::{
    softmax, softmax_backward, SoftmaxBackwardOptions, SoftmaxConfig, SoftmaxOptions, SoftmaxSpec,
};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

fn assert_case(case: &Case) {
    let result = run_case(&Cpu, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let failures = result.failures();
    assert!(failures.is_empty(), "{case}: {failures:?}");
}

fn cfg(block_size: usize, rows: usize, num_warps: u32) -> SoftmaxConfig {
    SoftmaxConfig { block_size, num_warps, rows, programs: 1 }
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// Every option combination is reachable from the seed; shapes up to 40 × 3000.
    #[test]
    fn random_cases_match_fp64(seed in any::<u64>()) {
        let case = Case::random(seed, 40, 3000, 4, 4096);
        let result = run_case(&Cpu, &case).map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
        let failures = result.failures();
        prop_assert!(failures.is_empty(), "{}: {:?}", case, failures);
    }
}

#[test]
fn ragged_shapes_in_registers_and_online_chunks() {
    for (i, n) in [1usize, 7, 33, 100, 1000, 3000].into_iter().enumerate() {
        let spec = SoftmaxSpec::new(FLOATS[i % 3]);
        let m = [3, 5, 2, 9, 4, 2][i];
        let fits = n.next_power_of_two().max(16);
        assert_case(&Case::new(m, n, spec, cfg(fits, 4, 2)));
        assert_case(&Case {
            scale: 20.0,
            pad: 3,
            view_offset: 1,
            caller_out: true,
            ..Case::new(m, n, spec, cfg(16, 2, 1))
        });
        // -inf entries, read as lanes of the online max (never a whole row).
        assert_case(&Case { neg_inf_percent: 50, ..Case::new(m, n, spec, cfg(16, 4, 1)) });
        assert_case(&Case { neg_inf_percent: 50, ..Case::new(m, n, spec, cfg(fits, 1, 1)) });
    }
}

#[test]
fn case_generator_reaches_both_paths_and_every_option() {
    let cases: Vec<Case> = (0..300).map(|s| Case::random(s, 40, 3000, 4, 4096)).collect();
    let any = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.m == 0) && any(&|c| c.n == 1));
    assert!(any(&|c| c.n > c.config.block_size) && any(&|c| c.n <= c.config.block_size));
    assert!(any(&|c| c.neg_inf_percent > 0 && c.n > c.config.block_size));
    assert!(any(&|c| c.spec.out != c.spec.x) && any(&|c| c.caller_out) && any(&|c| c.pad > 0 && c.view_offset > 0));
}

#[test]
fn rows_of_neg_inf_do_not_poison_other_rows_or_masked_lanes() {
    // Row 0 is all -inf (0/0: NaN, as PyTorch); row 1 has one finite element (y = one-hot).
    let n = 40;
    let mut v = vec![f64::NEG_INFINITY; 3 * n];
    v[n + 17] = 3.0;
    v[2 * n..].iter_mut().enumerate().for_each(|(j, x)| *x = j as f64 * 0.1);
    for config in [cfg(64, 4, 1), cfg(16, 2, 1)] {
        let x = HostBuffer::new(Buffer::from_f64(DType::F32, &v));
        let y = softmax(&Cpu, Rows::new(&x, &[3, n]), &SoftmaxOptions { config: Some(config), ..Default::default() })
            .unwrap()
            .y
            .unwrap()
            .to_f64();
        assert!(y[..n].iter().all(|v| v.is_nan()), "{config:?}: {:?}", &y[..n]);
        let one_hot: Vec<f64> = (0..n).map(|j| if j == 17 { 1.0 } else { 0.0 }).collect();
        assert_eq!(&y[n..2 * n], &one_hot[..], "{config:?}");
        let sum: f64 = y[2 * n..].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6 && y[2 * n..].iter().all(|v| v.is_finite()), "{config:?}");
    }
}

#[track_caller]
fn expect_arg<T: std::fmt::Debug>(r: Result<T, KernelError>, arg: &str) {
    match r {
        Err(KernelError::BadArgument { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}

#[test]
fn bad_calls_give_typed_errors_and_write_nothing() {
    let (m, n) = (3, 16);
    let host = |d, len, seed| HostBuffer::new(random_buffer(d, len, seed));
    let x = host(DType::F16, m * n, 1);
    let d = SoftmaxOptions::default;
    let fwd = |x: Rows<'_, HostBuffer>, o: &SoftmaxOptions<'_, HostBuffer>| softmax(&Cpu, x, o).map(|_| ());
    expect_arg(fwd(Rows::new(&host(DType::I64, m * n, 1), &[m, n]), &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m + 1, n]), &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, 0]), &d()), "shape");
    expect_arg(fwd(Rows::strided(&x, 0, m, n, n - 1), &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, n]), &SoftmaxOptions { out_dtype: Some(DType::I32), ..d() }), "out_dtype");
    expect_arg(fwd(Rows::new(&x, &[m, n]), &SoftmaxOptions { config: Some(cfg(16, 1, 3)), ..d() }), "num_warps");
    let out = host(DType::F16, m * n, 2);
    let before = out.to_buffer();
    expect_arg(fwd(Rows::new(&x, &[m, n]), &SoftmaxOptions { out: Some(Rows::new(&x, &[m, n])), ..d() }), "out");
    expect_arg(fwd(Rows::new(&x, &[m, n]), &SoftmaxOptions { out: Some(Rows::new(&out, &[m, n - 1])), ..d() }), "out");
    assert_eq!(out.to_buffer(), before);

    let spec = SoftmaxSpec::new(DType::F16);
    let dy = host(DType::F16, m * n, 3);
    let bwd = |y: Rows<'_, HostBuffer>, dy: Rows<'_, HostBuffer>, o: &SoftmaxBackwardOptions<'_, HostBuffer>| {
        softmax_backward(&Cpu, &spec, y, dy, o).map(|_| ())
    };
    let bd = SoftmaxBackwardOptions::default;
    expect_arg(bwd(Rows::new(&x, &[m, n]), Rows::new(&host(DType::F32, m * n, 3), &[m, n]), &bd()), "dy");
    expect_arg(bwd(Rows::new(&x, &[m, n]), Rows::new(&dy, &[m - 1, n]), &bd()), "dy");
    expect_arg(bwd(Rows::new(&host(DType::BF16, m * n, 1), &[m, n]), Rows::new(&dy, &[m, n]), &bd()), "y");
    let overlap = SoftmaxBackwardOptions { dx_out: Some(Rows::new(&dy, &[m, n])), ..bd() };
    expect_arg(bwd(Rows::new(&x, &[m, n]), Rows::new(&dy, &[m, n]), &overlap), "dx_out");
    let bad_spec = SoftmaxSpec { x: DType::I32, out: DType::F16 };
    expect_arg(softmax_backward(&Cpu, &bad_spec, Rows::new(&x, &[m, n]), Rows::new(&dy, &[m, n]), &bd()), "x");
    bwd(Rows::new(&x, &[m, n]), Rows::new(&dy, &[m, n]), &bd()).unwrap();
}
