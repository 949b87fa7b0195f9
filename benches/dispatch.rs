//! Criterion benchmark on the CPU: the host cost of one RMSNorm call through the public API, less
//! the driver. A backend that checks bindings and packs arguments as the GPU executor does, but
//! launches nothing, stands in for the GPU; its autotuner has tuning off and an empty cache (a
//! lookup per call, as on a GPU). `tritonite dispatch` measures the same calls with the driver, on
//! a GPU.

use std::cell::Cell;

use criterion::{criterion_group, criterion_main, Criterion};
use tritonite::kernels::backend::{check_bindings, Backend, Binding};
use tritonite::kernels::error::KernelError;
use tritonite::kernels::plan::{Plan, PlanArg};
use tritonite::kernels::rmsnorm::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormOptions};
use tritonite::kernels::tensor::{Rows, Storage};
use tritonite::kernels::tuning::{Autotuner, Cache, DeviceId, TuneMode};
use tritonite::lang::{Buffer, DType};

/// A buffer that is only a dtype, a length and an address.
struct Fake {
    dtype: DType,
    len: usize,
    address: u64,
}

impl Storage for Fake {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn address(&self) -> u64 {
        self.address
    }
}

/// Checks and packs like the GPU executor; launches nothing.
struct Null {
    tuner: Autotuner,
    next: Cell<u64>,
}

impl Null {
    fn new() -> Null {
        let device = DeviceId::new("null", "sm_90", "13.0");
        Null { tuner: Autotuner::new(Cache::in_memory(), TuneMode::Off, device), next: Cell::new(1 << 20) }
    }
}

impl Backend for Null {
    type Buffer = Fake;
    type Prepared = ();

    fn alloc(&self, dtype: DType, len: usize) -> Result<Fake, KernelError> {
        let address = self.next.get();
        self.next.set(address + (len * dtype.size_bytes()).next_multiple_of(256) as u64);
        Ok(Fake { dtype, len, address })
    }

    fn upload(&self, host: &Buffer) -> Result<Fake, KernelError> {
        self.alloc(host.dtype(), host.len())
    }

    fn download(&self, buf: &Fake) -> Result<Buffer, KernelError> {
        Ok(Buffer::filled(buf.dtype, buf.len, 0.0))
    }

    fn prepare(&self, plan: &Plan, bindings: &[Binding<'_, Fake>]) -> Result<(), KernelError> {
        check_bindings(plan, bindings)
    }

    fn launch(&self, plan: &Plan, _: &(), bindings: &[Binding<'_, Fake>]) -> Result<(), KernelError> {
        for launch in &plan.launches {
            let mut slots = [0u64; 64];
            for (slot, a) in slots.iter_mut().zip(&launch.args) {
                *slot = match a {
                    PlanArg::Buffer(name) => Binding::find(bindings, name)?.buf.address,
                    PlanArg::I32(v) => *v as u64,
                    PlanArg::I64(v) => *v as u64,
                    PlanArg::F32(v) => v.to_bits() as u64,
                };
            }
            std::hint::black_box(&slots);
        }
        Ok(())
    }

    fn time_ms(
        &self,
        _: usize,
        _: usize,
        _: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        Ok(vec![])
    }

    fn sm_count(&self) -> usize {
        132
    }

    fn autotuner(&self) -> Option<&Autotuner> {
        Some(&self.tuner)
    }
}

fn dispatch(c: &mut Criterion) {
    let null = Null::new();
    let (m, n) = (1, 4096);
    let x = null.alloc(DType::BF16, m * n).expect("alloc");
    let w = null.alloc(DType::BF16, n).expect("alloc");
    let dy = null.alloc(DType::BF16, m * n).expect("alloc");
    let rows = |b| Rows::new(b, &[m, n]);
    let opts = RmsNormOptions::default();
    c.bench_function("rms_norm 1x4096 bf16, host cost less the driver", |b| {
        b.iter(|| rms_norm(&null, rows(&x), Some(&w), &opts).expect("runs"))
    });
    let saved = rms_norm(&null, rows(&x), Some(&w), &opts).expect("runs");
    let bopts = RmsNormBackwardOptions::default();
    c.bench_function("rms_norm_backward 1x4096 bf16, host cost less the driver", |b| {
        b.iter(|| {
            rms_norm_backward(&null, &saved.spec, rows(&x), Some(&w), rows(&dy), &saved.rstd, &bopts).expect("runs")
        })
    });
}

criterion_group!(benches, dispatch);

fn steps(c: &mut Criterion) {
    use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
    use tritonite::kernels::rmsnorm::{forward_plan, ForwardShape, RmsNormSpec};
    let null = Null::new();
    let spec = RmsNormSpec::new(DType::BF16, Some(DType::BF16));
    let problem = Problem { pass: Pass::Forward, spec, dresidual_out: false, m: 1, n: 4096 };
    c.bench_function("step select", |b| b.iter(|| select(&null, &problem, &mut |_| {}).expect("selects")));
    let cfg = select(&null, &problem, &mut |_| {}).expect("selects").config;
    let shape = ForwardShape::contiguous(1, 4096);
    c.bench_function("step plan", |b| b.iter(|| forward_plan(&spec, &shape, 1e-6, 0.0, &cfg).expect("plans")));
}
criterion_group!(step_benches, steps);
criterion_main!(benches, step_benches);
