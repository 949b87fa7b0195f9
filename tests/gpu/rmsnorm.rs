//! RMSNorm forward and backward on a GPU against the fp64 reference, through the typed API: random
//! shapes × dtypes × every option (weight in x's dtype or f32, Gemma offset, bias, residual with
//! its own dtypes, output dtype, strided and offset views, caller `out`, the residual stream's
//! gradient) × configs (rows split over clusters among them), plus fixed cases at the limits
//! (N = 262144, M = 65536). Inputs are random,
//! new outputs start as NaN. Skips, saying so, where there is no GPU.

use super::{executor, quick, run_all, MAX_ELEMENTS};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::rmsnorm::check::{run_case, Case};
use tritonite::kernels::rmsnorm::{RmsNormConfig, RmsNormSpec};
use tritonite::lang::DType;

fn random_cases(count: u64, sms: usize) -> Vec<Case> {
    (0..count)
        .map(|s| {
            let mut c = Case::random(1000 + s, 3000, 70000, sms);
            c.m = c.m.min(MAX_ELEMENTS / c.n);
            c
        })
        .collect()
}

/// Cases at the limits of the shapes the issue names.
fn fixed_cases(sms: usize) -> Vec<Case> {
    let base = |m, n, spec, block_size, num_warps| {
        Case::new(
            m,
            n,
            spec,
            RmsNormConfig { block_size, num_warps, programs: 2 * sms, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN },
        )
    };
    let plain = |d| RmsNormSpec::new(d, Some(d));
    let fused = |d| RmsNormSpec {
        weight: Some(DType::F32),
        bias: Some(d),
        residual: Some(d),
        residual_out: Some(DType::F32),
        ..RmsNormSpec::new(d, None)
    };
    let mut cases = vec![];
    for d in [DType::F32, DType::F16, DType::BF16] {
        cases.push(base(4, 262144, plain(d), 16384, 16));
        cases.push(Case { offset: 1.0, dresidual_out: true, pad: 16, ..base(3, 262144, fused(d), 16384, 16) });
        cases.push(base(65536, 128, plain(d), 128, 1));
        cases.push(Case { caller_out: true, pad: 3, view_offset: 1, ..base(257, 1000, fused(d), 1024, 4) });
        cases.push(base(1, 1, plain(d), 16, 1));
        cases.push(base(7, 65535, plain(d), 16384, 16));
        // Rows split over clusters of 16, 4 and 2 programs.
        let split = |c: Case, cluster| Case { config: RmsNormConfig { cluster, ..c.config }, ..c };
        cases.push(split(base(4, 262144, plain(d), 16384, 32), 16));
        cases.push(split(base(7, 65535, plain(d), 16384, 32), 4));
        cases
            .push(split(Case { offset: 1.0, dresidual_out: true, pad: 16, ..base(300, 20000, fused(d), 8192, 16) }, 4));
        cases.push(split(base(1000, 5000, plain(d), 4096, 8), 2));
        // Prefetched through shared memory and in registers (the forward's weight then staged in
        // shared memory), over clusters of 16 (16-bit: two tiles of x and dy fit) and of 3 with
        // every option; and staged without prefetch (the forward: one program a tile).
        for (prefetch, staged) in [(true, true), (true, false), (false, true)] {
            let over = |c: Case, cluster, programs| Case {
                config: RmsNormConfig { cluster, programs, prefetch, staged, ..c.config },
                ..c
            };
            if d.bits() == 16 {
                cases.push(over(base(37, 262144, plain(d), 16384, 16), 16, 2));
            }
            cases.push(over(
                Case { offset: 1.0, dresidual_out: true, pad: 16, ..base(300, 6000, fused(d), 2048, 4) },
                3,
                7,
            ));
        }
    }
    cases
}

#[test]
fn rmsnorm_options_match_fp64_on_random_cases() {
    let Some(gpu) = executor() else { return };
    let count = if quick() { 12 } else { 120 };
    let failures = run_all(&gpu, run_case, &random_cases(count, gpu.sm_count()));
    println!("compiled {} kernel variants", gpu.compile_count());
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rmsnorm_matches_fp64_at_the_limits() {
    let Some(gpu) = executor() else { return };
    let mut cases = fixed_cases(gpu.sm_count());
    if quick() {
        cases.retain(|c| c.m * c.n <= 1 << 20);
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rmsnorm_is_deterministic_on_the_gpu() {
    let Some(gpu) = executor() else { return };
    let spec = RmsNormSpec {
        weight: Some(DType::F32),
        bias: Some(DType::BF16),
        residual: Some(DType::BF16),
        residual_out: Some(DType::BF16),
        ..RmsNormSpec::new(DType::BF16, None)
    };
    let off = (false, false);
    let cases = [(1000, 3000, 4096, 1, off), (300, 20000, 4096, 1, off), (300, 20000, 8192, 4, off)];
    let staged = [
        (300, 20000, 4096, 5, (true, false)),
        (300, 20000, 4096, 5, (true, true)),
        (300, 20000, 4096, 5, (false, true)),
    ];
    for (m, n, block, cluster, (prefetch, staged)) in cases.into_iter().chain(staged) {
        let mut case = Case::random(5, m, n, gpu.sm_count());
        (case.m, case.n, case.spec, case.offset, case.dresidual_out) = (m, n, spec, 1.0, true);
        let programs = 2 * gpu.sm_count() / cluster;
        case.config = RmsNormConfig { block_size: block, num_warps: 8, programs, rows: 1, cluster, prefetch, staged };
        let (a, b) = (run_case(&gpu, &case).unwrap(), run_case(&gpu, &case).unwrap());
        assert!(a.failures().is_empty(), "{case}: {}", a.summary());
        for (i, (p, q)) in a.outputs.iter().zip(&b.outputs).enumerate() {
            let same = p.to_f64().iter().zip(q.to_f64()).all(|(u, v)| u.to_bits() == v.to_bits());
            assert!(same, "{case}: output {i} differs between two identical runs");
        }
    }
    println!(
        "ok: forward and backward bit-identical across runs (row in registers, chunked, split over a cluster of 4, and of 5 prefetched in registers, prefetched in shared memory, and staged in shared memory)"
    );
}
