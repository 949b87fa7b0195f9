//! The fused RMSNorm → Linear kernel on the CPU interpreter against the fp64 reference: random
//! ragged shapes × dtypes × tilings, the decode shapes' default tiling, and typed errors.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::rmsnorm_linear::check::{run_case, Case};
use tritonite_kernels::rmsnorm_linear::{heuristic, rms_norm_linear, RmsNormLinearArgs, RmsNormLinearSpec};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_cases_match_fp64(seed in any::<u64>()) {
        let case = Case::random(seed, 70, 150);
        let result = run_case(&Cpu, &case).map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
        let failures = result.failures();
        prop_assert!(failures.is_empty(), "{}: {:?}", case, failures);
    }
}

#[test]
fn decode_shapes_with_the_default_tiling() {
    for (m, dtype) in [(1, DType::BF16), (5, DType::F16), (64, DType::BF16)] {
        let (n, k) = (96, 300);
        let case = Case::new(m, n, k, RmsNormLinearSpec { dtype, out: dtype }, heuristic(m, n, k, 4));
        let r = run_case(&Cpu, &case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(r.failures().is_empty(), "{case}: {:?}", r.failures());
    }
}

#[test]
fn bad_calls_are_typed_errors() {
    let x = HostBuffer::new(Buffer::filled(DType::BF16, 4 * 32, 1.0));
    let g = HostBuffer::new(Buffer::filled(DType::BF16, 32, 1.0));
    let short_g = HostBuffer::new(Buffer::filled(DType::BF16, 31, 1.0));
    let w = HostBuffer::new(Buffer::filled(DType::BF16, 8 * 32, 1.0));
    let args = |g, eps| RmsNormLinearArgs {
        x: Rows::new(&x, &[4, 32]),
        g,
        w: Rows::new(&w, &[8, 32]),
        eps,
        out_dtype: None,
        config: None,
    };
    let e = rms_norm_linear(&Cpu, &args(&short_g, 1e-6)).unwrap_err();
    assert!(matches!(e, KernelError::BadArgument { arg: "g", .. }), "{e}");
    let e = rms_norm_linear(&Cpu, &args(&g, f32::NAN)).unwrap_err();
    assert!(matches!(e, KernelError::BadArgument { arg: "eps", .. }), "{e}");
    let (y, _) = rms_norm_linear(&Cpu, &args(&g, 1e-6)).unwrap();
    // x = 1, g = 1: rmsnorm(x) = 1, and each output sums 32 ones.
    assert!(y.to_f64().iter().all(|&v| (v - 32.0).abs() < 0.2), "{:?}", &y.to_f64()[..4]);
}

/// Split-K: slices of `k` summed by their own programs, then added up and scaled by rstd in a
/// second launch; ragged slice counts, and more slices than steps of `k` (empty slices).
#[test]
fn split_k_matches_fp64_with_ragged_and_empty_slices() {
    for (m, k, split_k) in [(1, 300, 2), (5, 300, 3), (17, 40, 8), (3, 1, 4)] {
        let spec = RmsNormLinearSpec { dtype: DType::BF16, out: DType::F32 };
        let config = tritonite_kernels::matmul::MatmulConfig { split_k, block_k: 32, ..heuristic(m, 40, k, 4) };
        let case = Case::new(m, 40, k, spec, config);
        let r = run_case(&Cpu, &case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(r.failures().is_empty(), "{case}: {:?}", r.failures());
    }
}
