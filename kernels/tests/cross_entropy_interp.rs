//! Cross-entropy forward and backward on the CPU interpreter against the fp64 reference: random
//! shapes × dtypes (logits f32/f16/bf16, targets i64/i32) × ignored rows × reductions × incoming
//! gradients × where `dlogits` goes (new, in place, a caller's strided buffer) × configs (rows in
//! registers and the online chunked logsumexp), plus `ignore_index`, bad targets and typed errors.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::cross_entropy::check::{run_case, Case, Dest};
use tritonite_kernels::cross_entropy::{
    cross_entropy, cross_entropy_backward, CrossEntropyBackwardOptions, CrossEntropyConfig, CrossEntropyOptions,
    CrossEntropySpec, GradMode, GradOut, LossGrad, Reduction,
};
use tritonite_kernels::reference::random_buffer;
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

fn assert_case(case: &Case) {
    let result = run_case(&Cpu, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let failures = result.failures();
    assert!(failures.is_empty(), "{case}: {failures:?}");
}

fn cfg(block_size: usize, rows: usize, num_warps: u32) -> CrossEntropyConfig {
    CrossEntropyConfig { block_size, num_warps, rows, programs: 1 }
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
    for (i, v) in [1usize, 7, 33, 100, 1000, 3000].into_iter().enumerate() {
        let spec = CrossEntropySpec { logits: FLOATS[i % 3], target: [DType::I64, DType::I32][i % 2] };
        let m = [3, 5, 2, 9, 4, 2][i];
        let fits = v.next_power_of_two().max(16);
        let base = Case { config: cfg(fits, 4, 2), config_backward: cfg(fits, 2, 1), ..Case::new(m, v, spec, 4) };
        assert_case(&base);
        let chunked = Case { config: cfg(16, 2, 1), config_backward: cfg(16, 4, 1), ..base };
        assert_case(&Case { scale: 20.0, pad: 3, view_offset: 1, dest: Dest::InPlace, ..chunked });
        assert_case(&Case { ignore_percent: 20, dest: Dest::Caller, pad: 2, ..chunked });
        let per_row = Case { reduction: Reduction::None, grad: GradMode::PerRow, ..chunked };
        assert_case(&Case { ignore_index: 0, ignore_percent: 50, ..per_row });
        assert_case(&Case { reduction: Reduction::Sum, grad: GradMode::Scalar, ..base });
    }
}

#[test]
fn vocabulary_of_262144_walks_in_chunks() {
    let spec = CrossEntropySpec { logits: DType::BF16, target: DType::I64 };
    let case = Case { ignore_percent: 20, dest: Dest::InPlace, ..Case::new(3, 262144, spec, 4) };
    assert!(case.config.block_size < case.v, "the heuristic walks V = 262144 in chunks");
    assert_case(&case);
}

#[test]
fn case_generator_reaches_every_option() {
    let cases: Vec<Case> = (0..300).map(|s| Case::random(s, 40, 3000, 4, 4096)).collect();
    let any = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.m == 0) && any(&|c| c.v == 1));
    assert!(any(&|c| c.v > c.config.block_size) && any(&|c| c.v <= c.config.block_size));
    assert!(any(&|c| c.dest == Dest::InPlace) && any(&|c| c.dest == Dest::Caller) && any(&|c| c.dest == Dest::New));
    assert!(
        any(&|c| c.grad == GradMode::Mean)
            && any(&|c| c.grad == GradMode::PerRow)
            && any(&|c| c.grad == GradMode::Scalar)
    );
    assert!(any(&|c| c.ignore_percent == 100 && c.m > 0) && any(&|c| c.ignore_index >= 0 && c.ignore_percent > 0));
    assert!(any(&|c| c.spec.target == DType::I32) && any(&|c| c.pad > 0 && c.view_offset > 0));
}

fn targets(d: DType, t: &[i64]) -> HostBuffer {
    HostBuffer::new(Buffer::from_f64(d, &t.iter().map(|&x| x as f64).collect::<Vec<_>>()))
}

#[test]
fn ignored_rows_and_bad_targets() {
    let (m, v) = (4, 50);
    let logits = HostBuffer::new(random_buffer(DType::F32, m * v, 3));
    for d in [DType::I64, DType::I32] {
        // Row 1 ignored (index 7, inside [0, V)), row 2 out of range.
        let t = targets(d, &[3, 7, 50, 0]);
        let opts = CrossEntropyOptions { ignore_index: 7, ..Default::default() };
        let out = cross_entropy(&Cpu, Rows::new(&logits, &[m, v]), &t, &opts).unwrap();
        let loss = out.loss.to_f64();
        assert!(loss[0] > 0.0 && loss[3] > 0.0 && loss[1] == 0.0 && loss[2].is_nan(), "{loss:?}");
        let reduced = out.reduced.as_ref().unwrap().to_f64();
        assert!(reduced[0].is_nan() && reduced[1] == 3.0, "{reduced:?}");
        let bopts = CrossEntropyBackwardOptions { ignore_index: 7, ..Default::default() };
        let grads = cross_entropy_backward(
            &Cpu,
            &out.spec,
            Rows::new(&logits, &[m, v]),
            &t,
            &out.lse,
            LossGrad::Mean { grad: 1.0, reduced: out.reduced.as_ref().unwrap() },
            &bopts,
        )
        .unwrap();
        let g = grads.dlogits.unwrap().to_f64();
        assert!(g[v..2 * v].iter().all(|x| *x == 0.0), "an ignored row's gradient is 0");
        // A good row's gradient sums to 0 (softmax − one-hot), scaled by 1/3.
        let s: f64 = g[..v].iter().sum();
        assert!(s.abs() < 1e-6, "{s}");
        let x = logits.to_f64();
        let lse = out.lse.to_f64()[0];
        for (j, gj) in g[..v].iter().enumerate() {
            let want = ((x[j] - lse).exp() - (j == 3) as u8 as f64) / 3.0;
            assert!((gj - want).abs() < 1e-6, "column {j}: {gj} vs {want}");
        }
    }
    // Every row ignored: the mean is NaN (0 / 0), the count 0, the gradient all 0.
    let t = targets(DType::I64, &[-100; 4]);
    let out = cross_entropy(&Cpu, Rows::new(&logits, &[m, v]), &t, &CrossEntropyOptions::default()).unwrap();
    let reduced = out.reduced.as_ref().unwrap().to_f64();
    assert!(reduced[0].is_nan() && reduced[1] == 0.0 && out.loss.to_f64() == vec![0.0; 4]);
    let grads = cross_entropy_backward(
        &Cpu,
        &out.spec,
        Rows::new(&logits, &[m, v]),
        &t,
        &out.lse,
        LossGrad::Mean { grad: 1.0, reduced: out.reduced.as_ref().unwrap() },
        &CrossEntropyBackwardOptions::default(),
    )
    .unwrap();
    assert!(grads.dlogits.unwrap().to_f64().iter().all(|x| *x == 0.0));
}

#[test]
fn in_place_gradient_equals_out_of_place() {
    let (m, v) = (7, 300);
    for (logits_dtype, config) in [(DType::BF16, cfg(64, 2, 1)), (DType::F32, cfg(512, 4, 2))] {
        let host = random_buffer(logits_dtype, m * v, 11);
        let logits = HostBuffer::new(host.clone());
        let t = targets(DType::I64, &[0, 299, -100, 5, 6, 150, 1]);
        let opts = CrossEntropyOptions { reduction: Reduction::Sum, config: Some(config), ..Default::default() };
        let out = cross_entropy(&Cpu, Rows::new(&logits, &[m, v]), &t, &opts).unwrap();
        let run = |dest: GradOut<'_, HostBuffer>| {
            let bopts = CrossEntropyBackwardOptions { out: dest, config: Some(config), ..Default::default() };
            cross_entropy_backward(
                &Cpu,
                &out.spec,
                Rows::new(&logits, &[m, v]),
                &t,
                &out.lse,
                LossGrad::Scalar(0.5),
                &bopts,
            )
            .unwrap()
        };
        let new = run(GradOut::New).dlogits.unwrap().into_inner();
        assert_eq!(logits.to_buffer(), host, "an out-of-place backward leaves the logits");
        assert!(run(GradOut::InPlace).dlogits.is_none());
        assert_eq!(logits.to_buffer(), new, "in place: the logits now hold the gradient, bit for bit");
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
    let (m, v) = (3, 40);
    let logits = HostBuffer::new(random_buffer(DType::BF16, m * v, 1));
    let t = targets(DType::I64, &[1, 2, 3]);
    let d = CrossEntropyOptions::default();
    let fwd =
        |l: Rows<'_, HostBuffer>, t: &HostBuffer, o: &CrossEntropyOptions| cross_entropy(&Cpu, l, t, o).map(|_| ());
    expect_arg(fwd(Rows::new(&HostBuffer::new(random_buffer(DType::I32, m * v, 1)), &[m, v]), &t, &d), "logits");
    expect_arg(fwd(Rows::new(&logits, &[m, v + 1]), &t, &d), "logits");
    expect_arg(fwd(Rows::new(&logits, &[m, 0]), &t, &d), "shape");
    expect_arg(fwd(Rows::new(&logits, &[m, v]), &targets(DType::F32, &[1, 2, 3]), &d), "target");
    expect_arg(fwd(Rows::new(&logits, &[m, v]), &targets(DType::I64, &[1, 2]), &d), "target");
    let bad_cfg = CrossEntropyOptions { config: Some(cfg(16, 128, 1)), ..d };
    expect_arg(fwd(Rows::new(&logits, &[m, v]), &t, &bad_cfg), "rows");

    let out = cross_entropy(&Cpu, Rows::new(&logits, &[m, v]), &t, &d).unwrap();
    let spec = out.spec;
    let reduced = out.reduced.as_ref().unwrap();
    let short = HostBuffer::new(Buffer::filled(DType::F32, m - 1, 1.0));
    let bwd = |lse: &HostBuffer, grad: LossGrad<'_, HostBuffer>, o: &CrossEntropyBackwardOptions<'_, HostBuffer>| {
        cross_entropy_backward(&Cpu, &spec, Rows::new(&logits, &[m, v]), &t, lse, grad, o).map(|_| ())
    };
    let bd = CrossEntropyBackwardOptions::default;
    let before = logits.to_buffer();
    expect_arg(bwd(&short, LossGrad::Scalar(1.0), &bd()), "lse");
    expect_arg(bwd(&out.lse, LossGrad::PerRow(&short), &bd()), "dloss");
    let one = HostBuffer::new(Buffer::filled(DType::F32, 1, 1.0));
    expect_arg(bwd(&out.lse, LossGrad::Mean { grad: 1.0, reduced: &one }, &bd()), "reduced");
    expect_arg(bwd(&out.lse, LossGrad::Scalar(f32::NAN), &bd()), "grad");
    expect_arg(bwd(&out.lse, LossGrad::Mean { grad: f32::INFINITY, reduced }, &bd()), "grad");
    // A caller buffer overlapping the logits, of the wrong dtype, too short.
    let overlap = CrossEntropyBackwardOptions { out: GradOut::Into(Rows::new(&logits, &[m, v])), ..bd() };
    expect_arg(bwd(&out.lse, LossGrad::Scalar(1.0), &overlap), "out");
    let f32_out = HostBuffer::new(Buffer::filled(DType::F32, m * v, 0.0));
    let wrong = CrossEntropyBackwardOptions { out: GradOut::Into(Rows::new(&f32_out, &[m, v])), ..bd() };
    expect_arg(bwd(&out.lse, LossGrad::Scalar(1.0), &wrong), "out");
    // An in-place gradient into logits that share memory with the lse is refused.
    let shared = HostBuffer::new(Buffer::filled(DType::F32, m * v, 0.0));
    let spec32 = CrossEntropySpec { logits: DType::F32, target: DType::I64 };
    let in_place = CrossEntropyBackwardOptions { out: GradOut::InPlace, ..bd() };
    let r = cross_entropy_backward(
        &Cpu,
        &spec32,
        Rows::new(&shared, &[m, v]),
        &t,
        &shared,
        LossGrad::Scalar(1.0),
        &in_place,
    );
    expect_arg(r.map(|_| ()), "lse");
    assert_eq!(logits.to_buffer(), before, "failed calls write nothing");
    bwd(&out.lse, LossGrad::Mean { grad: 1.0, reduced }, &bd()).unwrap();
}
