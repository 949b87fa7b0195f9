//! LayerNorm forward and backward on the CPU interpreter against the fp64 reference: random shapes ×
//! dtypes × weight/bias × strided views × caller outputs × configs (rows in registers and chunked),
//! through the typed API, plus the typed errors of bad calls.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::layernorm::check::{run_case, Case};
use tritonite_kernels::layernorm::{
    layer_norm, layer_norm_backward, LayerNormBackwardOptions, LayerNormConfig, LayerNormOptions, LayerNormSpec,
};
use tritonite_kernels::reference::{random_buffer, random_weight};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

fn assert_case(case: &Case) {
    let result = run_case(&Cpu, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let failures = result.failures();
    assert!(failures.is_empty(), "{case}: {failures:?}");
}

fn cfg(block_size: usize, rows: usize, num_warps: u32, programs: usize) -> LayerNormConfig {
    LayerNormConfig { block_size, num_warps, rows, programs }
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
fn ragged_shapes_in_registers_and_in_chunks() {
    for (i, n) in [1usize, 7, 33, 100, 1000, 3000].into_iter().enumerate() {
        let x = FLOATS[i % 3];
        let m = [3, 5, 2, 9, 4, 2][i];
        let spec = LayerNormSpec::new(x, Some(if i % 2 == 0 { x } else { DType::F32 }), Some(DType::F32));
        // The whole row in one block, several rows a tile.
        let fits = n.next_power_of_two().max(16);
        assert_case(&Case::new(m, n, spec, cfg(fits, 4, 2, 3)));
        // Small chunks: the row walked in pieces (a ragged last chunk), a ragged last tile.
        assert_case(&Case { pad: 3, view_offset: 1, caller_out: true, ..Case::new(m, n, spec, cfg(16, 2, 1, 2)) });
        // A mean far from zero, chunked and not.
        assert_case(&Case {
            shift: 40.0,
            ..Case::new(m, n, LayerNormSpec::new(DType::F32, None, None), cfg(32, 1, 1, 1))
        });
        assert_case(&Case {
            shift: 40.0,
            ..Case::new(m, n, LayerNormSpec::new(DType::F32, None, None), cfg(fits, 1, 1, 1))
        });
    }
}

#[test]
fn case_generator_reaches_both_paths_and_every_option() {
    let cases: Vec<Case> = (0..300).map(|s| Case::random(s, 20, 1000, 4, 4096)).collect();
    let any = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.m == 0) && any(&|c| c.n == 1));
    assert!(any(&|c| c.n > c.config.block_size) && any(&|c| c.n <= c.config.block_size));
    assert!(any(&|c| c.spec.weight.is_none()) && any(&|c| c.spec.bias.is_none()));
    assert!(any(&|c| c.spec.weight == Some(DType::F32) && c.spec.x != DType::F32));
    assert!(any(&|c| c.spec.out != c.spec.x) && any(&|c| c.caller_out) && any(&|c| c.pad > 0 && c.view_offset > 0));
    assert!(any(&|c| c.shift != 0.0) && any(&|c| c.config.rows >= 4 && c.m % c.config.rows != 0));
}

#[test]
fn backward_is_deterministic() {
    let spec = LayerNormSpec::new(DType::BF16, Some(DType::BF16), Some(DType::F32));
    let case = Case::new(37, 300, spec, cfg(128, 4, 2, 5));
    let (a, b) = (run_case(&Cpu, &case).unwrap(), run_case(&Cpu, &case).unwrap());
    assert!(a.failures().is_empty(), "{:?}", a.failures());
    assert_eq!(a.outputs, b.outputs);
}

#[test]
fn zero_rows_give_zero_parameter_grads() {
    let x = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let w = HostBuffer::new(random_weight(DType::F32, 8, 1));
    let out = layer_norm(&Cpu, Rows::new(&x, &[0, 8]), Some(&w), &LayerNormOptions::default()).unwrap();
    assert!(out.y.unwrap().into_inner().is_empty() && out.mean.into_inner().is_empty());
    let dy = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let empty = HostBuffer::new(Buffer::filled(DType::F32, 0, 0.0));
    let spec = LayerNormSpec::new(DType::F32, Some(DType::F32), None);
    let grads = layer_norm_backward(
        &Cpu,
        &spec,
        Rows::new(&x, &[0, 8]),
        Some(&w),
        Rows::new(&dy, &[0, 8]),
        &empty,
        &empty,
        &LayerNormBackwardOptions::default(),
    )
    .unwrap();
    assert_eq!(grads.dweight.unwrap().to_f64(), vec![0.0; 8]);
}

#[track_caller]
fn expect_arg<T: std::fmt::Debug>(r: Result<T, KernelError>, arg: &str) {
    match r {
        Err(KernelError::BadArgument { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}

fn host(dtype: DType, len: usize, seed: u64) -> HostBuffer {
    HostBuffer::new(random_buffer(dtype, len, seed))
}

#[test]
fn bad_calls_give_typed_errors_and_write_nothing() {
    let (m, n) = (3, 16);
    let x = host(DType::BF16, m * n, 1);
    let d = LayerNormOptions::default;
    let fwd = |x: Rows<'_, HostBuffer>, w: Option<&HostBuffer>, o: &LayerNormOptions<'_, HostBuffer>| {
        layer_norm(&Cpu, x, w, o).map(|_| ())
    };
    expect_arg(fwd(Rows::new(&host(DType::I32, m * n, 1), &[m, n]), None, &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, n + 1]), None, &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, 0]), None, &d()), "shape");
    expect_arg(fwd(Rows::strided(&x, 0, m, n, n + 1), None, &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&host(DType::F16, n, 2)), &d()), "weight");
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&host(DType::BF16, n + 1, 2)), &d()), "weight");
    let bias = host(DType::F32, n - 1, 3);
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &LayerNormOptions { bias: Some(&bias), ..d() }), "bias");
    for eps in [0.0, -1.0, f32::NAN] {
        expect_arg(fwd(Rows::new(&x, &[m, n]), None, &LayerNormOptions { eps, ..d() }), "eps");
    }
    expect_arg(
        fwd(Rows::new(&x, &[m, n]), None, &LayerNormOptions { out_dtype: Some(DType::I64), ..d() }),
        "out_dtype",
    );
    expect_arg(
        fwd(Rows::new(&x, &[m, n]), None, &LayerNormOptions { config: Some(cfg(24, 1, 1, 1)), ..d() }),
        "block_size",
    );
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &LayerNormOptions { config: Some(cfg(16, 3, 1, 1)), ..d() }), "rows");
    // An output that overlaps the input is refused, and nothing is written.
    let out = host(DType::BF16, m * n, 9);
    let before = out.to_buffer();
    let same = LayerNormOptions { out: Some(Rows::new(&x, &[m, n])), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &same), "out");
    let wrong = LayerNormOptions { out: Some(Rows::new(&out, &[m, n])), out_dtype: Some(DType::F32), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &wrong), "out");
    assert_eq!(out.to_buffer(), before);

    // Backward: a missing weight, stats of the wrong length, a dy of the wrong dtype.
    let spec = LayerNormSpec::new(DType::BF16, Some(DType::BF16), None);
    let w = host(DType::BF16, n, 2);
    let dy = host(DType::BF16, m * n, 4);
    let stats = host(DType::F32, m, 5);
    let short = host(DType::F32, m - 1, 5);
    let bwd = |w: Option<&HostBuffer>, dy: &HostBuffer, mean: &HostBuffer, rstd: &HostBuffer| {
        let o = LayerNormBackwardOptions::default();
        layer_norm_backward(&Cpu, &spec, Rows::new(&x, &[m, n]), w, Rows::new(dy, &[m, n]), mean, rstd, &o).map(|_| ())
    };
    expect_arg(bwd(None, &dy, &stats, &stats), "weight");
    expect_arg(bwd(Some(&w), &dy, &short, &stats), "mean");
    expect_arg(bwd(Some(&w), &dy, &stats, &short), "rstd");
    expect_arg(bwd(Some(&w), &host(DType::F32, m * n, 4), &stats, &stats), "dy");
    bwd(Some(&w), &dy, &stats, &stats).unwrap();
}
