//! The tensor-core kernels' tuning spaces and keys: every candidate is a valid tiling, the heuristic
//! comes first, configs survive the round trip through the cache's form, keys tell the problems
//! apart, and every candidate plan computes the same product on the interpreter.

use tritonite_kernels::cpu::Cpu;
use tritonite_kernels::matmul::tuning::{DotKernel, Problem};
use tritonite_kernels::matmul::MatmulConfig;
use tritonite_kernels::tuning::{Config, DeviceId, Knobs, Tunable};
use tritonite_kernels::KernelError;
use tritonite_lang::DType;

fn problem(kernel: DotKernel, m: usize, n: usize, k: usize) -> Problem {
    Problem { kernel, dtype: DType::BF16, out: DType::BF16, m, n, k }
}

const KERNELS: [DotKernel; 3] =
    [DotKernel::Matmul { b_transposed: false }, DotKernel::Matmul { b_transposed: true }, DotKernel::RmsNormLinear];

#[test]
fn candidates_are_valid_distinct_and_start_with_the_heuristic() {
    for kernel in KERNELS {
        for (m, n, k) in [(1, 4096, 4096), (64, 4096, 4096), (256, 4096, 4096), (4096, 4096, 4096), (3, 17, 5)] {
            let p = problem(kernel, m, n, k);
            let c = p.candidates(132);
            assert_eq!(c[0], p.heuristic(132), "{p:?}");
            assert!(c.len() >= 6, "{p:?}: {} candidates", c.len());
            for (i, cfg) in c.iter().enumerate() {
                cfg.check().unwrap_or_else(|e| panic!("{p:?} {cfg:?}: {e}"));
                assert!(!c[..i].contains(cfg), "{p:?}: {cfg:?} twice");
                assert_eq!(MatmulConfig::from_config(&cfg.to_config()).unwrap(), *cfg);
            }
            // Decode steps try split k; large problems do not.
            assert_eq!(c.iter().any(|c| c.split_k > 1), m <= 64 && k >= 256, "{p:?}");
        }
    }
}

#[test]
fn keys_tell_problems_apart() {
    let d = DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "12.8");
    let key = |kernel, m, n, k| problem(kernel, m, n, k).key(&d).canonical();
    let nn = DotKernel::Matmul { b_transposed: false };
    let nt = DotKernel::Matmul { b_transposed: true };
    assert_ne!(key(nn, 64, 4096, 4096), key(nt, 64, 4096, 4096));
    assert_ne!(key(nn, 64, 4096, 4096), key(DotKernel::RmsNormLinear, 64, 4096, 4096));
    assert_ne!(key(nn, 64, 4096, 4096), key(nn, 64, 4096, 1024));
    assert_ne!(key(nn, 64, 4096, 4096), key(nn, 64, 2048, 4096));
    // Rows are bucketed to a power of two.
    assert_eq!(key(nn, 50, 4096, 4096), key(nn, 64, 4096, 4096));
}

#[test]
fn a_config_missing_a_knob_or_out_of_range_is_a_typed_error() {
    let good = MatmulConfig::heuristic(64, 64, 64, 4).to_config();
    let without = Config::new().with("BLOCK_M", 64).with("BLOCK_N", 64);
    assert!(matches!(MatmulConfig::from_config(&without), Err(KernelError::BadArgument { arg: "BLOCK_K", .. })));
    let mut split = good.clone();
    split.try_set("SPLIT_K", 100).unwrap();
    assert!(matches!(MatmulConfig::from_config(&split), Err(KernelError::BadArgument { arg: "split_k", .. })));
}

/// Every candidate of a small decode problem computes the product the heuristic does (the
/// interpreter runs each plan, as the tuner would on a GPU before timing it).
#[test]
fn every_candidate_computes_the_same_product() {
    use tritonite_kernels::matmul::check::{run_case, Case};
    use tritonite_kernels::matmul::MatmulSpec;
    let p = problem(DotKernel::Matmul { b_transposed: true }, 3, 40, 300);
    let spec = MatmulSpec { dtype: DType::BF16, out: DType::F32, b_transposed: true };
    for cfg in p.candidates(4) {
        let case = Case::new(3, 40, 300, spec, cfg);
        let r = run_case(&Cpu, &case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(r.failures().is_empty(), "{case}: {:?}", r.failures());
    }
}

#[test]
fn keys_still_find_the_shipped_h100_results() {
    // Every tensor-core entry of benches/tuned-h100.json is found again by the key its problem
    // builds (so the hash of the kernels' source in it is unchanged), and its winner is valid.
    use tritonite_kernels::tuning::Cache;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/tuned-h100.json");
    let mut cache = Cache::in_memory();
    cache.import(&path).unwrap();
    let mut found = 0;
    for e in cache.list() {
        let k = &e.key;
        let kernel = match (k.kernel(), k.features().get("b").map(String::as_str)) {
            ("matmul", Some(b)) => DotKernel::Matmul { b_transposed: b == "nk" },
            ("rmsnorm-linear", _) => DotKernel::RmsNormLinear,
            _ => continue,
        };
        let dtype = |name: &str| DType::parse(&k.features()[name]).unwrap();
        let (m, n, kk) = (k.shape()["M"] as usize, k.shape()["N"] as usize, k.shape()["K"] as usize);
        let p = Problem { kernel, dtype: dtype("dtype"), out: dtype("out"), m, n, k: kk };
        assert_eq!(p.key(k.device()).id(), k.id(), "{k}");
        MatmulConfig::from_config(&e.winner).unwrap_or_else(|err| panic!("{}: {err}", e.winner));
        found += 1;
    }
    assert!(found >= 6, "{found} tensor-core entries");
}
