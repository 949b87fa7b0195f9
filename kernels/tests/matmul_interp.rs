//! Matmul (the language's `dot`) on the CPU interpreter against the fp64 reference: random ragged
//! shapes × dtypes × `b` storages × padded rows × tilings, plus the interpreter's exact
//! `f32`-accumulate semantics and typed errors of bad calls.

use proptest::prelude::*;
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::matmul::check::{run_case, Case};
use tritonite_kernels::matmul::{matmul, MatmulArgs, MatmulConfig, MatmulSpec};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::KernelError;
use tritonite_lang::interp::{run, Arg};
use tritonite_lang::{build_kernel, Buffer, DType};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_cases_match_fp64(seed in any::<u64>()) {
        let case = Case::random(seed, 80, 100);
        let result = run_case(&Cpu, &case).map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
        let failures = result.failures();
        prop_assert!(failures.is_empty(), "{}: {:?}", case, failures);
    }
}

#[test]
fn ragged_shapes_both_storages_and_tilings() {
    let cfg = |block_m, block_n, block_k, num_warps, prefetch, split_k| MatmulConfig {
        block_m,
        block_n,
        block_k,
        group_m: 2,
        num_warps,
        prefetch,
        split_k,
    };
    for (i, (m, n, k)) in [(1, 1, 1), (17, 33, 65), (64, 64, 64), (5, 100, 40), (70, 3, 17)].into_iter().enumerate() {
        for b_transposed in [false, true] {
            let dtype = if i % 2 == 0 { DType::BF16 } else { DType::F16 };
            let spec = MatmulSpec { dtype, out: DType::F32, b_transposed };
            let configs = [
                cfg(16, 16, 16, 1, false, 1),
                cfg(32, 64, 32, 4, true, 1),
                cfg(64, 16, 64, 2, true, 1),
                cfg(16, 32, 16, 2, true, 3),
            ];
            for config in configs {
                let case = Case { pad: i, ..Case::new(m, n, k, spec, config) };
                let r = run_case(&Cpu, &case).unwrap_or_else(|e| panic!("{case}: {e}"));
                assert!(r.failures().is_empty(), "{case}: {:?}", r.failures());
            }
        }
    }
}

#[test]
fn dot_sums_exact_products_in_f32_in_order_of_k() {
    // 1 + 2⁻²⁴ + … in f32: adding 2⁻²⁴ to 1 rounds back to 1 every time (ties to even), where
    // fp64 would keep 16 · 2⁻²⁴. The products 2⁻¹² · 2⁻¹² are exact in bf16 inputs.
    let k = build_kernel("dot16", |k| {
        let a = k.ptr_arg("a", DType::BF16);
        let b = k.ptr_arg("b", DType::BF16);
        let c = k.mut_ptr_arg("c", DType::F32);
        let (r, col) = (k.arange(0, 16), k.arange(0, 16));
        let idx = r.expand_dims(1) * 16 + col.expand_dims(0);
        let acc = k.full(&[16, 16], 1.0, DType::F32);
        k.store(c + idx, k.dot(k.load(a + idx), k.load(b + idx), acc));
    })
    .unwrap();
    let tiny = 2f64.powi(-12);
    let a = Buffer::filled(DType::BF16, 256, tiny);
    let b = Buffer::filled(DType::BF16, 256, tiny);
    let mut c = Buffer::filled(DType::F32, 256, 0.0);
    run(&k, [1, 1, 1], &mut [Arg::In(&a), Arg::In(&b), Arg::Out(&mut c)]).unwrap();
    let c = c.to_f64();
    assert!(c.iter().all(|&v| v == 1.0), "{:?}", &c[..4]);
}

#[test]
fn bad_calls_are_typed_errors() {
    let a = HostBuffer::new(Buffer::filled(DType::BF16, 64, 1.0));
    let f = HostBuffer::new(Buffer::filled(DType::F32, 64, 1.0));
    let b = HostBuffer::new(Buffer::filled(DType::BF16, 64, 1.0));
    // f32 operands: the tensor cores take 16-bit floats.
    let e = matmul(&Cpu, &MatmulArgs::new(Rows::new(&f, &[8, 8]), Rows::new(&f, &[8, 8]))).unwrap_err();
    assert!(matches!(e, KernelError::BadArgument { arg: "a", .. }), "{e}");
    // b's rows must match a's columns.
    let e = matmul(&Cpu, &MatmulArgs::new(Rows::new(&a, &[8, 8]), Rows::new(&b, &[4, 16]))).unwrap_err();
    assert!(matches!(e, KernelError::BadArgument { arg: "b", .. }), "{e}");
    // A tiling over 48 KiB of shared memory.
    let big =
        MatmulConfig { block_m: 256, block_n: 256, block_k: 64, group_m: 1, num_warps: 8, prefetch: false, split_k: 1 };
    let args = MatmulArgs { config: Some(big), ..MatmulArgs::new(Rows::new(&a, &[8, 8]), Rows::new(&b, &[8, 8])) };
    let e = matmul(&Cpu, &args).unwrap_err();
    assert!(matches!(e, KernelError::BadArgument { arg: "block_k", .. }), "{e}");
}

#[test]
fn case_generator_reaches_every_option() {
    let cases: Vec<Case> = (0..300).map(|s| Case::random(s, 80, 100)).collect();
    let any = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.spec.b_transposed) && any(&|c| !c.spec.b_transposed));
    assert!(any(&|c| c.config.prefetch) && any(&|c| c.pad > 0) && any(&|c| c.spec.out == DType::F16));
    assert!(any(&|c| c.config.split_k == 3) && any(&|c| c.config.split_k == 8));
    assert!(any(&|c| c.m % 16 != 0 && c.n % 16 != 0 && c.k % 16 != 0) && any(&|c| c.k < 16));
}

#[test]
fn an_unwritten_element_fails_the_check_wherever_it_is() {
    use tritonite_kernels::matmul::check::scaled_error;
    let expect = [1.0, 2.0, 3.0];
    let scale = [1.0; 3];
    for at in 0..3 {
        let mut c = expect;
        c[at] = f64::NAN;
        assert!(scaled_error(&c, &expect, &scale, DType::F32).is_nan(), "NaN at {at}");
    }
    assert_eq!(scaled_error(&expect, &expect, &scale, DType::F32), 0.0);
}

/// f16 products below f16's smallest normal round to an absolute grid, not a relative one: such a
/// case (found by a random seed) passes, and an error at a normal magnitude still fails.
#[test]
fn subnormal_f16_outputs_are_judged_on_the_absolute_grid() {
    use tritonite_kernels::matmul::check::{scaled_error, tolerance};
    let tiny = 1e-5; // below 2⁻¹⁴: an f16 subnormal, spaced 2⁻²⁴ apart
    let rounded = (tiny * 2f64.powi(24)).round() / 2f64.powi(24);
    assert!(scaled_error(&[rounded], &[tiny], &[tiny], DType::F16) <= tolerance(DType::F16));
    assert!(scaled_error(&[1.01], &[1.0], &[1.0], DType::F16) > tolerance(DType::F16));
}

/// A random case that once failed: K = 1 with f16 products below f16's smallest normal.
#[test]
fn seed_with_subnormal_products_passes() {
    let case = Case::random(17052163650170342973, 80, 100);
    assert_eq!((case.k, case.spec.out), (1, DType::F16));
    let result = run_case(&Cpu, &case).unwrap();
    assert!(result.failures().is_empty(), "{case}: {:?}", result.failures());
}

/// Split-K: ragged slice counts, more slices than steps of `k` (empty slices), `k = 0`; and slice
/// counts out of range are typed errors.
#[test]
fn split_k_matches_fp64_and_bad_counts_are_typed_errors() {
    for (m, n, k, split_k) in [(3, 40, 300, 3), (20, 17, 40, 8), (2, 5, 0, 2), (1, 64, 1000, 64)] {
        let spec = MatmulSpec { dtype: DType::F16, out: DType::F32, b_transposed: k % 2 == 0 };
        let config = MatmulConfig { split_k, block_k: 32, ..MatmulConfig::heuristic(m, n, k, 4) };
        let case = Case::new(m, n, k, spec, config);
        let r = run_case(&Cpu, &case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(r.failures().is_empty(), "{case}: {:?}", r.failures());
    }
    for split_k in [0, 65] {
        let e = MatmulConfig { split_k, ..MatmulConfig::heuristic(16, 16, 16, 4) }.check().unwrap_err();
        assert!(matches!(e, KernelError::BadArgument { arg: "split_k", .. }), "{e}");
    }
}

/// The default tilings (matmul and fused) pass their own checks for every size class and SM count.
#[test]
fn default_tilings_are_valid_everywhere() {
    let sizes = [0, 1, 7, 16, 33, 64, 65, 200, 256, 300, 512, 1000, 4096, 100_000];
    for &m in &sizes {
        for &n in &sizes {
            for &k in &[0, 1, 100, 4096] {
                for sms in [1, 4, 132] {
                    let c = MatmulConfig::heuristic(m, n, k, sms);
                    c.check().unwrap_or_else(|e| panic!("matmul {m}x{n}x{k} on {sms}: {c:?}: {e}"));
                    let f = tritonite_kernels::rmsnorm_linear::heuristic(m, n, k, sms);
                    f.check().unwrap_or_else(|e| panic!("fused {m}x{n}x{k} on {sms}: {f:?}: {e}"));
                }
            }
        }
    }
}
