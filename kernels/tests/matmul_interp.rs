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
    let cfg = |block_m, block_n, block_k, num_warps, prefetch| MatmulConfig {
        block_m,
        block_n,
        block_k,
        group_m: 2,
        num_warps,
        prefetch,
    };
    for (i, (m, n, k)) in [(1, 1, 1), (17, 33, 65), (64, 64, 64), (5, 100, 40), (70, 3, 17)].into_iter().enumerate() {
        for b_transposed in [false, true] {
            let dtype = if i % 2 == 0 { DType::BF16 } else { DType::F16 };
            let spec = MatmulSpec { dtype, out: DType::F32, b_transposed };
            for config in [cfg(16, 16, 16, 1, false), cfg(32, 64, 32, 4, true), cfg(64, 16, 64, 2, true)] {
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
    let big = MatmulConfig { block_m: 256, block_n: 256, block_k: 64, group_m: 1, num_warps: 8, prefetch: false };
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
        assert!(scaled_error(&c, &expect, &scale).is_nan(), "NaN at {at}");
    }
    assert_eq!(scaled_error(&expect, &expect, &scale), 0.0);
}
