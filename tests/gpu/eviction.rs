//! Loads and stores with an eviction policy on the GPU against the CPU interpreter: the policy is
//! a cache hint, so the values must be exactly those of plain accesses — at 16-byte vectors,
//! narrower groups under ragged masks, strided single elements and a scalar pointer.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role, SharedKernel};
use tritonite::kernels::reference;
use tritonite::lang::{build_kernel, Buffer, DType, Eviction, Kernel};

use super::{executor, report};

/// `y = x · 2 + z` over `block` elements `stride` apart (masked at `n`), plus `y[last] = x[0]`
/// through scalar pointers: `x` read with `Last`, `z` with `First`, `y` written with `store`.
fn kernel(dtype: DType, stride: i64, store: Eviction) -> Kernel {
    build_kernel(&format!("evict_{}_{stride}_{store:?}", dtype.name()), |k| {
        let x = k.ptr_arg("x", dtype);
        let z = k.ptr_arg("z", dtype);
        let y = k.mut_ptr_arg("y", dtype);
        let n = k.scalar_arg("n", DType::I32);
        let base = k.program_id(0) * 1024;
        let offs = base + if stride == 1 { k.arange(0, 1024) } else { k.arange(0, 1024) * stride };
        let ok = offs.lt(n - 1);
        let xv = k.load_masked_evict(x + offs, ok, 0.0, Eviction::Last);
        let zv = k.load_masked_evict(z + offs, ok, 0.0, Eviction::First);
        k.store_masked_evict(y + offs, xv * 2.0 + zv, ok, store);
        let first = k.program_id(0).equal(0);
        let x0 = k.load_masked_evict(x, first, 0.0, Eviction::First);
        k.store_masked_evict(y + (n - 1), x0, first, store);
    })
    .expect("the eviction kernel builds")
}

fn run<B: Backend>(b: &B, plan: &Plan, inputs: [&Buffer; 2], len: usize, dtype: DType) -> Buffer {
    let x = b.upload(inputs[0]).expect("upload");
    let z = b.upload(inputs[1]).expect("upload");
    let y = b.upload(&Buffer::filled(dtype, len, 0.0)).expect("upload");
    let bindings = [Binding::whole("x", &x), Binding::whole("z", &z), Binding::whole("y", &y)];
    b.run(plan, &bindings).expect("the eviction kernel runs");
    b.download(&y).expect("download")
}

#[test]
fn evicting_accesses_match_the_interpreter() {
    let Some(gpu) = executor() else { return };
    let mut failures = vec![];
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for n in [1usize, 77, 1024, 3000, 4096] {
            for stride in [1, 3] {
                for store in [Eviction::First, Eviction::Last] {
                    let kernel = SharedKernel::new(kernel(dtype, stride, store));
                    let programs = n.div_ceil(1024 * stride as usize).max(1);
                    let mut plan = Plan::default();
                    plan.buffer("x", dtype, n, Role::Input);
                    plan.buffer("z", dtype, n, Role::Input);
                    plan.buffer("y", dtype, n, Role::Output);
                    let args =
                        vec![PlanArg::Buffer("x"), PlanArg::Buffer("z"), PlanArg::Buffer("y"), PlanArg::I32(n as i32)];
                    plan.launches.push(Launch { kernel, grid: [programs as u32, 1, 1], args, num_warps: 4 });
                    let x = reference::random_buffer(dtype, n, n as u64);
                    let z = reference::random_buffer(dtype, n, n as u64 + 1);
                    let want = run(&Cpu, &plan, [&x, &z], n, dtype).to_f64();
                    let got = run(&gpu, &plan, [&x, &z], n, dtype).to_f64();
                    let case = format!("{dtype:?} n {n} stride {stride} store {store:?}");
                    let bad = want.iter().zip(&got).position(|(w, g)| w.to_bits() != g.to_bits());
                    report(&mut failures, &case, bad.map(|i| format!("element {i}: {} against {}", got[i], want[i])));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
