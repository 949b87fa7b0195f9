//! RMSNorm autotuning on the CPU interpreter (the same code path the GPU takes, with the wall
//! clock instead of CUDA events): the space is pruned, a miss is tuned only when the mode says so,
//! results persist, a second run tunes nothing, and the typed API runs the cached winner.

use tritonite_kernels::backend::{Backend, Binding};
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::plan::Plan;
use tritonite_kernels::reference::random_buffer;
use tritonite_kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite_kernels::rmsnorm::{rms_norm, RmsNormConfig, RmsNormOptions, RmsNormSpec};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::tuning::{Autotuner, Cache, DeviceId, Entry, Outcome, Source, TuneMode};
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

/// The interpreter with an autotuner attached.
struct TunedCpu(Autotuner);

impl Backend for TunedCpu {
    type Buffer = HostBuffer;
    type Prepared = ();
    fn alloc(&self, dtype: DType, len: usize) -> Result<HostBuffer, KernelError> {
        Cpu.alloc(dtype, len)
    }
    fn upload(&self, host: &Buffer) -> Result<HostBuffer, KernelError> {
        Cpu.upload(host)
    }
    fn download(&self, buf: &HostBuffer) -> Result<Buffer, KernelError> {
        Cpu.download(buf)
    }
    fn prepare(&self, plan: &Plan, b: &[Binding<'_, HostBuffer>]) -> Result<(), KernelError> {
        Cpu.prepare(plan, b)
    }
    fn launch(&self, plan: &Plan, p: &(), b: &[Binding<'_, HostBuffer>]) -> Result<(), KernelError> {
        Cpu.launch(plan, p, b)
    }
    fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        work: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        Cpu.time_ms(warmup, reps, work)
    }
    fn sm_count(&self) -> usize {
        2
    }
    fn autotuner(&self) -> Option<&Autotuner> {
        Some(&self.0)
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tritonite-tuning-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn device() -> DeviceId {
    DeviceId::new("interpreter", "cpu", "0")
}

fn problem(pass: Pass) -> Problem {
    Problem { pass, spec: RmsNormSpec::new(DType::F32, Some(DType::F32)), dresidual_out: false, m: 6, n: 100 }
}

#[test]
fn candidates_are_pruned_and_include_the_heuristic() {
    for pass in [Pass::Forward, Pass::Backward] {
        for n in [1, 100, 4096, 262144] {
            let p = Problem { n, m: 1000, ..problem(pass) };
            let c = p.candidates(132);
            assert_eq!(c[0], p.heuristic(132));
            for cfg in &c {
                cfg.check().unwrap();
                let per_thread = cfg.rows * cfg.block_size / (32 * cfg.num_warps as usize);
                // A staged tile holds no registers: up to 64 elements a thread.
                let held = if cfg.staged { 4..=64 } else { 4..=32 };
                assert!(cfg == &c[0] || held.contains(&per_thread), "{cfg:?}");
            }
            assert!(c.len() <= 72, "{} candidates for {pass:?} n={n}", c.len());
            for cfg in c.iter().filter(|c| c.cluster > 1) {
                assert!(cfg.cluster * cfg.block_size >= n && cfg.block_size >= 1024, "{cfg:?} for n={n}");
            }
            // Cluster blocks are at most 16384 columns backward: clusters hold rows up to 16 of them.
            let splits = n >= 4096 && (pass == Pass::Forward || n <= 16 * 16384);
            assert_eq!(c.iter().any(|x| x.cluster > 1), splits, "clusters tried for {pass:?} n={n}");
            if pass == Pass::Backward && n > 1 {
                assert!(c.iter().any(|x| x.programs != c[0].programs), "no program counts tried");
            }
            if n <= 100 {
                assert!(c.iter().any(|x| x.rows >= 8), "no tiles of several rows tried for n={n}");
            }
        }
    }
}

#[test]
fn keys_bucket_m_and_keep_n_exact() {
    let d = device();
    let key = |m, n| Problem { m, n, ..problem(Pass::Forward) }.key(&d);
    assert_eq!(key(3000, 4096).id(), key(4000, 4096).id());
    assert_ne!(key(4000, 4096).id(), key(5000, 4096).id());
    assert_ne!(key(4096, 4096).id(), key(4096, 4095).id());
    let bwd = Problem { m: 4096, n: 4096, ..problem(Pass::Backward) }.key(&d);
    assert_ne!(key(4096, 4096).id(), bwd.id());
    let bias = Problem {
        spec: RmsNormSpec { bias: Some(DType::F32), ..problem(Pass::Forward).spec },
        ..problem(Pass::Forward)
    };
    assert_ne!(bias.key(&d).id(), problem(Pass::Forward).key(&d).id());
    let other = DeviceId::new("other", "cpu", "0");
    assert_ne!(problem(Pass::Forward).key(&other).id(), problem(Pass::Forward).key(&d).id());
}

#[test]
fn off_mode_never_measures() {
    let backend = TunedCpu(Autotuner::new(Cache::in_memory(), TuneMode::Off, device()));
    let p = problem(Pass::Forward);
    let mut runs = 0;
    let s = select(&backend, &p, &mut |_| runs += 1).unwrap();
    assert_eq!((s.source, s.config, runs), (Source::Default, p.heuristic(2), 0));
}

#[test]
fn on_miss_tunes_once_persists_and_the_api_runs_the_winner() {
    let dir = temp_dir("persist");
    for pass in [Pass::Forward, Pass::Backward] {
        let p = problem(pass);
        let backend = TunedCpu(Autotuner::new(Cache::open(&dir), TuneMode::OnMiss, device()));
        let mut runs = 0;
        let first = select(&backend, &p, &mut |_| runs += 1).unwrap();
        assert_eq!(first.source, Source::Tuned);
        assert!(runs >= p.candidates(2).len(), "{runs} measurements for {} candidates", p.candidates(2).len());
        let entry: Entry = backend.0.cache().entry(&p.key(&device())).cloned().expect("recorded");
        assert_eq!(entry.results.len(), p.candidates(2).len(), "every config's result kept");
        assert!(entry.results.iter().all(|(_, o)| matches!(o, Outcome::Timed { .. })), "{:?}", entry.results);

        // A new process (a new cache over the same dir) finds it and measures nothing.
        let again = TunedCpu(Autotuner::new(Cache::open(&dir), TuneMode::OnMiss, device()));
        let mut runs = 0;
        let second = select(&again, &p, &mut |_| runs += 1).unwrap();
        assert_eq!((second.source, second.config, runs), (Source::Cache, first.config, 0));
    }
    // The typed API picks the cached winner.
    let backend = TunedCpu(Autotuner::new(Cache::open(&dir), TuneMode::Off, device()));
    let p = problem(Pass::Forward);
    let winner = select(&backend, &p, &mut |_| {}).unwrap().config;
    let x = HostBuffer::new(random_buffer(DType::F32, p.m * p.n, 1));
    let w = HostBuffer::new(random_buffer(DType::F32, p.n, 2));
    let out = rms_norm(&backend, Rows::new(&x, &[p.m, p.n]), Some(&w), &RmsNormOptions::default()).unwrap();
    assert_eq!(out.config, winner);
    let given =
        RmsNormConfig { block_size: 128, num_warps: 1, programs: 1, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN };
    let out = rms_norm(
        &backend,
        Rows::new(&x, &[p.m, p.n]),
        Some(&w),
        &RmsNormOptions { config: Some(given), ..Default::default() },
    )
    .unwrap();
    assert_eq!(out.config, given, "a caller's config wins over the cache");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_foreign_or_corrupt_config_falls_back_to_the_heuristic() {
    let p = problem(Pass::Forward);
    let backend = TunedCpu(Autotuner::new(Cache::in_memory(), TuneMode::Off, device()));
    let bad = tritonite_kernels::tuning::Config::new().with("BLOCK_SIZE", 24).with("num_warps", 4).with("PROGRAMS", 1);
    let entry = Entry::new(p.key(&device()), bad.clone(), vec![(bad, Outcome::from_samples(vec![1.0]))]);
    backend.0.cache().record(entry).unwrap();
    let s = select(&backend, &p, &mut |_| {}).unwrap();
    assert_eq!((s.source, s.config), (Source::Default, p.heuristic(2)));
}

#[test]
fn keys_still_find_the_shipped_h100_results() {
    // Every entry of benches/tuned-h100.json is found again by the key RMSNorm builds for its
    // problem: the keys (and the hash of rmsnorm/kernels.rs in them) are unchanged.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/tuned-h100.json");
    let mut cache = Cache::in_memory();
    let count = cache.import(&path).unwrap();
    assert!(count >= 20, "{count} entries");
    let entries: Vec<Entry> = cache.list().into_iter().cloned().collect();
    let dtype = |k: &tritonite_kernels::tuning::Key, name: &str| match k.features()[name].as_str() {
        "-" => None,
        d => Some(DType::parse(d).unwrap()),
    };
    for e in &entries {
        let k = &e.key;
        let pass = match k.kernel() {
            "rmsnorm-fwd" => Pass::Forward,
            "rmsnorm-bwd" => Pass::Backward,
            // Other kernels' results (matmul_tuning.rs checks the tensor-core ones).
            _ => continue,
        };
        let spec = RmsNormSpec {
            x: dtype(k, "x").unwrap(),
            weight: dtype(k, "weight"),
            bias: dtype(k, "bias"),
            residual: dtype(k, "residual"),
            residual_out: dtype(k, "residual_out"),
            out: dtype(k, "out").unwrap(),
        };
        let dresidual_out = k.features()["dresidual_out"] == "1";
        let p = Problem { pass, spec, dresidual_out, m: k.shape()["M"] as usize, n: k.shape()["N"] as usize };
        assert_eq!(p.key(k.device()).id(), k.id(), "{k}");
        assert!(RmsNormConfig::from_config(&e.winner).is_ok(), "{}", e.winner);
    }
}
