//! Softmax forward and backward on a GPU against the fp64 reference, through the typed API: random
//! shapes × dtypes × logit scales × `-inf` entries × strided views × caller outputs × configs (rows
//! in registers and the online chunked path), plus fixed cases at the limits (N = 65536 and
//! 262144, M = 65536). Skips, saying so, where there is no GPU.

use super::{executor, quick, run_all, MAX_ELEMENTS};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::softmax::check::{run_case, Case};
use tritonite::kernels::softmax::{heuristic, heuristic_backward, SoftmaxConfig, SoftmaxSpec};
use tritonite::lang::DType;

#[test]
fn softmax_matches_fp64_on_random_cases() {
    let Some(gpu) = executor() else { return };
    let count = if quick() { 12 } else { 120 };
    let cases: Vec<Case> = (0..count)
        .map(|s| {
            let mut c = Case::random(3000 + s, 3000, 70000, gpu.sm_count(), 16384);
            c.m = c.m.min(MAX_ELEMENTS / c.n);
            c
        })
        .collect();
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn softmax_matches_fp64_at_the_limits() {
    let Some(gpu) = executor() else { return };
    let sms = gpu.sm_count();
    let mut cases = vec![];
    for d in [DType::F32, DType::F16, DType::BF16] {
        let spec = SoftmaxSpec::new(d);
        for (m, n) in [(16, 65536), (3, 262144), (65536, 128), (1, 1), (257, 1000), (5, 16385)] {
            for config in [heuristic(n, d, sms), heuristic_backward(n, d, sms)] {
                cases.push(Case::new(m, n, spec, config));
            }
        }
        let chunked = SoftmaxConfig { block_size: 1024, num_warps: 4, rows: 2, programs: 1 };
        cases.push(Case { scale: 20.0, neg_inf_percent: 50, ..Case::new(64, 65536, spec, heuristic(65536, d, sms)) });
        cases.push(Case { pad: 3, view_offset: 1, caller_out: true, ..Case::new(300, 5000, spec, chunked) });
    }
    if quick() {
        cases.retain(|c| c.m * c.n <= 1 << 20);
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}
