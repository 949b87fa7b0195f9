//! Cross-entropy forward and backward on a GPU against the fp64 reference, through the typed API:
//! random shapes × dtypes (logits f32/f16/bf16, targets i64/i32) × ignored rows × reductions ×
//! incoming gradients × where `dlogits` goes (new, in place, a caller's strided buffer) × configs,
//! plus fixed cases at the limits (V = 262144, M = 65536). Skips, saying so, where there is no GPU.

use super::{executor, quick, run_all, MAX_ELEMENTS};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::cross_entropy::check::{run_case, Case, Dest};
use tritonite::kernels::cross_entropy::{CrossEntropySpec, GradMode, Reduction};
use tritonite::lang::DType;

#[test]
fn cross_entropy_matches_fp64_on_random_cases() {
    let Some(gpu) = executor() else { return };
    let count = if quick() { 12 } else { 120 };
    let cases: Vec<Case> = (0..count)
        .map(|s| {
            let mut c = Case::random(4000 + s, 3000, 300000, gpu.sm_count(), 16384);
            c.m = c.m.min(MAX_ELEMENTS / c.v);
            c
        })
        .collect();
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn cross_entropy_matches_fp64_at_the_limits() {
    let Some(gpu) = executor() else { return };
    let sms = gpu.sm_count();
    let mut cases = vec![];
    for logits in [DType::F32, DType::F16, DType::BF16] {
        for target in [DType::I64, DType::I32] {
            let spec = CrossEntropySpec { logits, target };
            cases.push(Case { ignore_percent: 20, ..Case::new(8, 262144, spec, sms) });
            cases.push(Case { dest: Dest::InPlace, scale: 20.0, ..Case::new(4, 262144, spec, sms) });
            cases.push(Case { ignore_percent: 20, dest: Dest::InPlace, ..Case::new(65536, 32, spec, sms) });
            cases.push(Case::new(1, 1, spec, sms));
            let per_row =
                Case { reduction: Reduction::None, grad: GradMode::PerRow, ..Case::new(33, 50257, spec, sms) };
            cases.push(Case { pad: 7, view_offset: 3, dest: Dest::Caller, ..per_row });
            cases.push(Case { reduction: Reduction::Sum, grad: GradMode::Scalar, ..Case::new(1000, 32000, spec, sms) });
            cases.push(Case { ignore_percent: 100, ..Case::new(100, 4096, spec, sms) });
        }
    }
    if quick() {
        cases.retain(|c| c.m * c.v <= 1 << 20);
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}
