//! Autotuning of LayerNorm, softmax and cross-entropy (forward and backward) on the CPU
//! interpreter, the same code path the GPU takes with the wall clock instead of CUDA events: every
//! config space is non-empty, valid and pruned for ragged, tiny and huge rows; configs round-trip
//! through autotune configs; keys tell problems apart; a tuning run measures every candidate
//! against the default's output, and the typed APIs then run the cached winner, which matches the
//! fp64 reference.

use tritonite_kernels::backend::{Backend, Binding};
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::cross_entropy::{self, CrossEntropySpec, GradMode};
use tritonite_kernels::layernorm::{self, LayerNormOptions, LayerNormSpec};
use tritonite_kernels::plan::Plan;
use tritonite_kernels::reference::random_buffer;
use tritonite_kernels::rowwise::{RowConfig, RowSpace};
use tritonite_kernels::softmax::{self, SoftmaxOptions, SoftmaxSpec};
use tritonite_kernels::tensor::Rows;
use tritonite_kernels::tuning::{
    select, Autotuner, Cache, Config, DeviceId, Knobs, Outcome, Source, Tunable, TuneMode,
};
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
        SMS
    }
    fn autotuner(&self) -> Option<&Autotuner> {
        Some(&self.0)
    }
}

/// The SM count of [`TunedCpu`] (small, so persistent grids are a few programs).
const SMS: usize = 2;

fn device() -> DeviceId {
    DeviceId::new("interpreter", "cpu", "0")
}

fn tuned(mode: TuneMode) -> TunedCpu {
    TunedCpu(Autotuner::new(Cache::in_memory(), mode, device()))
}

/// One problem of each tuned kernel and pass, over `m × n` of `x`.
#[derive(Clone, Copy, Debug)]
enum Any {
    LayerNorm(layernorm::tuning::Problem),
    Softmax(softmax::tuning::Problem),
    CrossEntropy(cross_entropy::tuning::Problem),
}

impl Any {
    fn all(m: usize, n: usize, x: DType) -> Vec<Any> {
        let ln = LayerNormSpec::new(x, Some(x), Some(DType::F32));
        let sm = SoftmaxSpec::new(x);
        let ce = CrossEntropySpec { logits: x, target: DType::I64 };
        use cross_entropy::tuning::Problem as Ce;
        use layernorm::tuning::{Pass as LnPass, Problem as Ln};
        use softmax::tuning::{Pass as SmPass, Problem as Sm};
        vec![
            Any::LayerNorm(Ln { pass: LnPass::Forward, spec: ln, m, n }),
            Any::LayerNorm(Ln { pass: LnPass::Backward, spec: ln, m, n }),
            Any::Softmax(Sm { pass: SmPass::Forward, spec: sm, m, n }),
            Any::Softmax(Sm { pass: SmPass::Backward, spec: sm, m, n }),
            Any::CrossEntropy(Ce::forward(ce, m, n)),
            Any::CrossEntropy(Ce::backward(ce, GradMode::Mean, true, m, n)),
        ]
    }

    fn kernel(&self) -> &'static str {
        match self {
            Any::LayerNorm(p) => p.kernel(),
            Any::Softmax(p) => p.kernel(),
            Any::CrossEntropy(p) => p.kernel(),
        }
    }

    fn space(&self) -> RowSpace {
        match self {
            Any::LayerNorm(p) => p.pass.space(),
            Any::Softmax(p) => p.pass.space(),
            Any::CrossEntropy(p) => p.pass.space(),
        }
    }

    fn heuristic(&self) -> RowConfig {
        match self {
            Any::LayerNorm(p) => p.heuristic(SMS),
            Any::Softmax(p) => p.heuristic(SMS),
            Any::CrossEntropy(p) => p.heuristic(SMS),
        }
    }

    fn candidates(&self) -> Vec<RowConfig> {
        match self {
            Any::LayerNorm(p) => p.candidates(SMS),
            Any::Softmax(p) => p.candidates(SMS),
            Any::CrossEntropy(p) => p.candidates(SMS),
        }
    }

    fn key_id(&self) -> String {
        match self {
            Any::LayerNorm(p) => p.key(&device()).id().to_string(),
            Any::Softmax(p) => p.key(&device()).id().to_string(),
            Any::CrossEntropy(p) => p.key(&device()).id().to_string(),
        }
    }
}

#[test]
fn spaces_are_valid_and_pruned_for_ragged_tiny_and_huge_rows() {
    let ns = [1, 7, 100, 1000, 1025, 4096, 5000, 8192, 12000, 16384, 20000, 32768, 32769, 50257, 262144];
    for n in ns {
        for m in [1, 6, 4096] {
            for x in [DType::F32, DType::BF16] {
                for p in Any::all(m, n, x) {
                    let what = format!("{} {m}x{n} {x}", p.kernel());
                    let space = p.space();
                    let c = p.candidates();
                    assert_eq!(c[0], p.heuristic(), "{what}: the heuristic comes first");
                    assert!(c.len() <= 64, "{what}: {} candidates", c.len());
                    let whole = n.next_power_of_two().max(16);
                    let bucket = m.next_power_of_two();
                    for (i, cfg) in c.iter().enumerate() {
                        cfg.check().unwrap_or_else(|e| panic!("{what}: {cfg:?}: {e}"));
                        assert!(!c[..i].contains(cfg), "{what}: {cfg:?} twice");
                        assert!(cfg.block_size <= whole, "{what}: {cfg:?} holds more than the row");
                        if i == 0 {
                            continue;
                        }
                        let held = cfg.row_in_block(n);
                        let per_thread = cfg.rows * cfg.block_size / (32 * cfg.num_warps as usize);
                        let (max_block, max_per_thread) = if held {
                            (space.max_held, space.held_per_thread)
                        } else {
                            (space.max_chunk, space.chunk_per_thread)
                        };
                        assert!(cfg.block_size <= max_block, "{what}: {cfg:?} over the block bound");
                        assert!((4..=max_per_thread).contains(&per_thread), "{what}: {cfg:?}: {per_thread} a thread");
                        assert!(cfg.rows <= bucket, "{what}: {cfg:?}: tiles past the last row");
                        assert!(cfg.num_warps <= space.max_warps, "{what}: {cfg:?}");
                        // Chunks of a row that could be held are at least a quarter of it.
                        if !held && whole <= space.max_held {
                            assert!(whole > 4096 && cfg.block_size >= whole / 4, "{what}: {cfg:?}");
                        }
                    }
                    if n >= 100 && m >= 6 {
                        assert!(c.len() >= 3, "{what}: only {c:?}");
                    }
                    // A row that fits the space is tried held; a longer one only in chunks.
                    if whole <= space.max_held {
                        assert!(c.iter().any(|cfg| cfg.block_size == whole), "{what}: never held");
                    } else {
                        assert!(c.iter().all(|cfg| !cfg.row_in_block(n)), "{what}");
                    }
                    if p.kernel() == "layernorm-bwd" && c.len() > 1 {
                        let programs: std::collections::BTreeSet<usize> = c.iter().map(|c| c.programs).collect();
                        assert_eq!(programs.into_iter().collect::<Vec<_>>(), [SMS, 2 * SMS, 4 * SMS], "{what}");
                    }
                    if n <= 100 && m >= 6 {
                        assert!(c.iter().any(|cfg| cfg.rows >= 4), "{what}: no tiles of several rows tried");
                    }
                }
            }
        }
    }
}

#[test]
fn heuristics_hold_long_rows_that_fit() {
    let held = |p: &Any, n: usize| p.heuristic().row_in_block(n);
    for x in [DType::F32, DType::BF16] {
        // (kernel, longest row the heuristic holds in registers).
        let limits = [
            ("layernorm-fwd", 16384),
            ("layernorm-bwd", 8192),
            ("softmax-fwd", 32768),
            ("softmax-bwd", 16384),
            ("cross-entropy-fwd", 16384),
        ];
        for (kernel, limit) in limits {
            for (n, fits) in [(limit, true), (limit - 1, true), (limit + 1, false)] {
                let p = Any::all(64, n, x).into_iter().find(|p| p.kernel() == kernel).unwrap();
                assert_eq!(held(&p, n), fits, "{kernel} n={n} {x}: {:?}", p.heuristic());
                // Held rows leave each thread at most 64 elements of the tile, and use 16 warps
                // once that many are needed.
                let h = p.heuristic();
                let per_thread = h.rows * h.block_size / (32 * h.num_warps as usize);
                assert!(per_thread <= 64, "{kernel} n={n}: {h:?}");
                if fits && n > 4096 {
                    assert_eq!(h.num_warps, 16, "{kernel} n={n}: {h:?}");
                }
            }
        }
    }
    // The tutorial's measured case: softmax of 32768 f32 columns, one read of 16 warps.
    let h = softmax::heuristic(32768, DType::F32, 132);
    assert_eq!((h.block_size, h.rows, h.num_warps), (32768, 1, 16));
    // Past the register budget: chunks as before.
    let h = softmax::heuristic(262144, DType::BF16, 132);
    assert_eq!((h.block_size, h.rows, h.num_warps), (4096, 1, 8));
    let h = layernorm::heuristic_backward(16384, DType::BF16, 132);
    assert_eq!((h.block_size, h.rows, h.num_warps, h.programs), (1024, 4, 8, 264));
}

#[test]
fn configs_round_trip_through_autotune_configs() {
    for p in Any::all(6, 1000, DType::F16).into_iter().chain(Any::all(4096, 50257, DType::F32)) {
        for cfg in p.candidates() {
            let c = cfg.to_config();
            assert_eq!(RowConfig::from_config(&c).unwrap(), cfg);
            let text: Config = c.to_string().parse().unwrap();
            assert_eq!(RowConfig::from_config(&text).unwrap(), cfg, "{c}");
        }
    }
    let c = RowConfig { block_size: 1024, num_warps: 4, rows: 2, programs: 264 }.to_config();
    assert_eq!(c.to_string(), "BLOCK_SIZE=1024 PROGRAMS=264 ROWS=2 num_warps=4");
    let bad = |text: &str, arg: &str| {
        let err = RowConfig::from_config(&text.parse().unwrap()).unwrap_err();
        assert!(matches!(&err, KernelError::BadArgument { arg: a, .. } if *a == arg), "{text}: {err}");
    };
    bad("BLOCK_SIZE=1024 ROWS=2 num_warps=4", "PROGRAMS");
    bad("BLOCK_SIZE=1000 PROGRAMS=4 ROWS=2 num_warps=4", "block_size");
    bad("BLOCK_SIZE=1024 PROGRAMS=4 ROWS=0 num_warps=4", "ROWS");
    bad("BLOCK_SIZE=1024 PROGRAMS=4 ROWS=2 num_warps=64", "num_warps");
    bad("BLOCK_SIZE=65536 PROGRAMS=4 ROWS=2 num_warps=4", "rows");
}

#[test]
fn keys_tell_kernels_dtypes_options_and_shape_buckets_apart() {
    let ids = |m, n, x| Any::all(m, n, x).iter().map(Any::key_id).collect::<Vec<_>>();
    let base = ids(3000, 4096, DType::BF16);
    let distinct: std::collections::HashSet<&String> = base.iter().collect();
    assert_eq!(distinct.len(), base.len(), "every kernel and pass has its own key");
    assert_eq!(ids(4000, 4096, DType::BF16), base, "M is bucketed");
    for other in [ids(5000, 4096, DType::BF16), ids(4000, 4095, DType::BF16), ids(4000, 4096, DType::F16)] {
        for (a, b) in other.iter().zip(&base) {
            assert_ne!(a, b, "bucket, N and dtype are in the key");
        }
    }

    let d = device();
    let ln = |spec| layernorm::tuning::Problem { pass: layernorm::tuning::Pass::Forward, spec, m: 64, n: 768 };
    let f32_ln = LayerNormSpec::new(DType::F32, Some(DType::F32), Some(DType::F32));
    assert_ne!(ln(f32_ln).key(&d).id(), ln(LayerNormSpec { bias: None, ..f32_ln }).key(&d).id());
    assert_ne!(ln(f32_ln).key(&d).id(), ln(LayerNormSpec { out: DType::BF16, ..f32_ln }).key(&d).id());
    assert_ne!(ln(f32_ln).key(&d).id(), ln(f32_ln).key(&DeviceId::new("other", "cpu", "0")).id());

    let sm = |out| softmax::tuning::Problem {
        pass: softmax::tuning::Pass::Forward,
        spec: SoftmaxSpec { x: DType::BF16, out },
        m: 64,
        n: 768,
    };
    assert_ne!(sm(DType::BF16).key(&d).id(), sm(DType::F32).key(&d).id());

    use cross_entropy::tuning::Problem as Ce;
    let spec = CrossEntropySpec { logits: DType::BF16, target: DType::I64 };
    let i32_spec = CrossEntropySpec { target: DType::I32, ..spec };
    let bwd = Ce::backward(spec, GradMode::Mean, true, 4096, 32000);
    assert_ne!(bwd.key(&d).id(), Ce::backward(i32_spec, GradMode::Mean, true, 4096, 32000).key(&d).id());
    assert_ne!(bwd.key(&d).id(), Ce::backward(spec, GradMode::PerRow, true, 4096, 32000).key(&d).id());
    assert_ne!(bwd.key(&d).id(), Ce::backward(spec, GradMode::Mean, false, 4096, 32000).key(&d).id());
    assert_eq!(bwd.key(&d).features()["grad"], "mean");
    // The forward has no gradient mode: one entry serves them all.
    let fwd = Ce::forward(spec, 4096, 32000);
    assert_eq!(fwd.key(&d).id(), Ce { mode: GradMode::Scalar, in_place: true, ..fwd }.key(&d).id());
    assert!(!fwd.key(&d).features().contains_key("grad"));
    assert_eq!(fwd.key(&d).shape()["N"], 32000);
    assert_eq!(fwd.key(&d).shape()["M"], 4096);
}

#[test]
fn off_mode_and_backends_without_a_tuner_take_the_heuristic() {
    for p in Any::all(6, 100, DType::F32) {
        let mut runs = 0;
        let (got, want) = match p {
            Any::LayerNorm(p) => (select(&tuned(TuneMode::Off), &p, &mut |_| runs += 1).unwrap(), p.heuristic(SMS)),
            Any::Softmax(p) => (select(&tuned(TuneMode::Off), &p, &mut |_| runs += 1).unwrap(), p.heuristic(SMS)),
            Any::CrossEntropy(p) => (select(&Cpu, &p, &mut |_| runs += 1).unwrap(), p.heuristic(Cpu.sm_count())),
        };
        assert_eq!((got.source, got.config, runs), (Source::Default, want, 0), "{}", p.kernel());
    }
}

/// Tunes `problem` on the interpreter (on a miss): every candidate is measured and passes the
/// check against the default's output; a second selection finds it cached. Returns the backend
/// (its cache holding the result, tuning off) and the winner.
fn tune<P: Tunable<Knobs = RowConfig>>(problem: &P) -> (TunedCpu, RowConfig) {
    let backend = tuned(TuneMode::OnMiss);
    let mut runs = 0;
    let first = select(&backend, problem, &mut |_| runs += 1).unwrap();
    let what = problem.kernel();
    assert_eq!(first.source, Source::Tuned, "{what}");
    let candidates = problem.candidates(SMS);
    assert!(candidates.len() >= 3, "{what}: {candidates:?}");
    assert!(runs >= candidates.len(), "{what}: {runs} measurements for {} candidates", candidates.len());
    let entry = backend.0.cache().entry(&problem.key(&device())).cloned().expect("recorded");
    assert_eq!(entry.results.len(), candidates.len(), "{what}: every config's result kept");
    for (c, o) in &entry.results {
        assert!(matches!(o, Outcome::Timed { .. }), "{what}: {c}: {o:?}");
    }
    assert_eq!(entry.default, problem.heuristic(SMS).to_config());
    assert!(candidates.contains(&first.config), "{what}: the winner is a candidate");
    let mut runs = 0;
    let again = select(&backend, problem, &mut |_| runs += 1).unwrap();
    assert_eq!((again.source, again.config, runs), (Source::Cache, first.config, 0), "{what}");
    backend.0.set_mode(TuneMode::Off);
    (backend, first.config)
}

fn assert_case_ok(what: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{what}: {failures:?}");
}

#[test]
fn layernorm_tuning_picks_a_correct_config_that_the_api_runs() {
    use layernorm::tuning::{Pass, Problem};
    let spec = LayerNormSpec::new(DType::F32, Some(DType::F32), Some(DType::F32));
    let (m, n) = (6, 100);
    for pass in [Pass::Forward, Pass::Backward] {
        let problem = Problem { pass, spec, m, n };
        let (backend, winner) = tune(&problem);
        // The winner against the fp64 reference, forward and backward.
        let case = layernorm::check::Case::new(m, n, spec, winner);
        let result = layernorm::check::run_case(&Cpu, &case).unwrap();
        assert_case_ok(&format!("{case}"), result.failures().iter().map(|f| format!("{f:?}")).collect());
        // The typed API runs the cached winner unless given a config.
        let x = HostBuffer::new(random_buffer(DType::F32, m * n, 1));
        let w = HostBuffer::new(random_buffer(DType::F32, n, 2));
        let b = HostBuffer::new(random_buffer(DType::F32, n, 3));
        let opts = LayerNormOptions { bias: Some(&b), ..LayerNormOptions::default() };
        let out = layernorm::layer_norm(&backend, Rows::new(&x, &[m, n]), Some(&w), &opts).unwrap();
        let dy = HostBuffer::new(random_buffer(DType::F32, m * n, 4));
        let grads = layernorm::layer_norm_backward(
            &backend,
            &spec,
            Rows::new(&x, &[m, n]),
            Some(&w),
            Rows::new(&dy, &[m, n]),
            &out.mean,
            &out.rstd,
            &layernorm::LayerNormBackwardOptions::default(),
        )
        .unwrap();
        let ran = if pass == Pass::Forward { out.config } else { grads.config };
        assert_eq!(ran, winner, "{pass:?}: the API runs the cached winner");
        let given = RowConfig { block_size: 32, num_warps: 1, rows: 1, programs: 1 };
        let out = layernorm::layer_norm(
            &backend,
            Rows::new(&x, &[m, n]),
            Some(&w),
            &LayerNormOptions { config: Some(given), ..opts },
        )
        .unwrap();
        assert_eq!(out.config, given, "a caller's config wins over the cache");
    }
}

#[test]
fn softmax_tuning_picks_a_correct_config_that_the_api_runs() {
    use softmax::tuning::{Pass, Problem};
    let spec = SoftmaxSpec::new(DType::F16);
    let (m, n) = (5, 300);
    for pass in [Pass::Forward, Pass::Backward] {
        let problem = Problem { pass, spec, m, n };
        let (backend, winner) = tune(&problem);
        let case = softmax::check::Case::new(m, n, spec, winner);
        let result = softmax::check::run_case(&Cpu, &case).unwrap();
        assert_case_ok(&format!("{case}"), result.failures().iter().map(|f| format!("{f:?}")).collect());
        let x = HostBuffer::new(random_buffer(DType::F16, m * n, 1));
        let out = softmax::softmax(&backend, Rows::new(&x, &[m, n]), &SoftmaxOptions::default()).unwrap();
        let y = out.y.as_ref().unwrap();
        let grads = softmax::softmax_backward(
            &backend,
            &spec,
            Rows::new(y, &[m, n]),
            Rows::new(&x, &[m, n]),
            &softmax::SoftmaxBackwardOptions::default(),
        )
        .unwrap();
        let ran = if pass == Pass::Forward { out.config } else { grads.config };
        assert_eq!(ran, winner, "{pass:?}: the API runs the cached winner");
        let given = RowConfig { block_size: 64, num_warps: 1, rows: 2, programs: 1 };
        let out = softmax::softmax(
            &backend,
            Rows::new(&x, &[m, n]),
            &SoftmaxOptions { config: Some(given), ..SoftmaxOptions::default() },
        )
        .unwrap();
        assert_eq!(out.config, given, "a caller's config wins over the cache");
    }
}

#[test]
fn cross_entropy_tuning_picks_a_correct_config_that_the_api_runs() {
    use cross_entropy::check::{run_case, Case, Dest};
    use cross_entropy::tuning::Problem;
    use cross_entropy::{CrossEntropyBackwardOptions, CrossEntropyOptions, GradOut, LossGrad, Reduction};
    let spec = CrossEntropySpec { logits: DType::BF16, target: DType::I64 };
    let (m, v) = (6, 1000);
    // The forward, and the backward in place (its logits restored before every check) and not.
    let problems = [
        Problem::forward(spec, m, v),
        Problem::backward(spec, GradMode::Mean, true, m, v),
        Problem::backward(spec, GradMode::PerRow, false, m, v),
    ];
    for problem in problems {
        let (backend, winner) = tune(&problem);
        let backward = problem.pass == cross_entropy::tuning::Pass::Backward;
        let base = Case::new(m, v, spec, SMS);
        let case = if backward {
            let dest = if problem.in_place { Dest::InPlace } else { Dest::New };
            let reduction = if problem.mode == GradMode::Mean { Reduction::Mean } else { Reduction::None };
            Case { config_backward: winner, grad: problem.mode, dest, reduction, ..base }
        } else {
            Case { config: winner, ..base }
        };
        let result = run_case(&Cpu, &case).unwrap();
        assert_case_ok(&format!("{case}"), result.failures().iter().map(|f| format!("{f:?}")).collect());

        let logits = HostBuffer::new(random_buffer(DType::BF16, m * v, 1));
        let target = HostBuffer::new(Buffer::from_f64(DType::I64, &[3.0, -100.0, 999.0, 0.0, 17.0, 500.0]));
        let out = cross_entropy::cross_entropy(
            &backend,
            Rows::new(&logits, &[m, v]),
            &target,
            &CrossEntropyOptions::default(),
        )
        .unwrap();
        let dloss = HostBuffer::new(random_buffer(DType::F32, m, 5));
        let reduced = out.reduced.as_ref().unwrap();
        let (grad, dest) = match (problem.mode, problem.in_place) {
            (GradMode::Mean, true) => (LossGrad::Mean { grad: 1.0, reduced }, GradOut::InPlace),
            _ => (LossGrad::PerRow(&dloss), GradOut::New),
        };
        let bopts = CrossEntropyBackwardOptions { out: dest, ..CrossEntropyBackwardOptions::default() };
        let grads = cross_entropy::cross_entropy_backward(
            &backend,
            &spec,
            Rows::new(&logits, &[m, v]),
            &target,
            &out.lse,
            grad,
            &bopts,
        )
        .unwrap();
        let ran = if backward { grads.config } else { out.config };
        assert_eq!(ran, winner, "{:?}: the API runs the cached winner", problem.pass);
    }
}
