//! Criterion benchmarks on the CPU: tracing a kernel, lowering it to MLIR text, and the whole
//! compile to PTX (goal: one variant in < 100 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use tritonite::kernels::registry;
use tritonite::lang::DType;
use tritonite::lowering::{self, CompileOptions};

fn compile(c: &mut Criterion) {
    let settings = [("BLOCK_SIZE".to_string(), 4096)];
    let built = registry::build("rmsnorm-fwd", DType::BF16, 4096, &settings).expect("registry kernel builds");
    let opts = CompileOptions {
        num_warps: built.num_warps,
        divisibility: registry::arg_divisibility(&built.kernel, 4096),
        ..Default::default()
    };
    c.bench_function("trace rmsnorm-fwd bf16", |b| {
        b.iter(|| registry::build("rmsnorm-fwd", DType::BF16, 4096, &settings).expect("builds"))
    });
    c.bench_function("emit MLIR rmsnorm-fwd bf16", |b| {
        b.iter(|| lowering::emit_mlir(&built.kernel, &opts).expect("emits"))
    });
    c.bench_function("compile to PTX rmsnorm-fwd bf16", |b| {
        b.iter(|| lowering::compile(&built.kernel, &opts).expect("compiles"))
    });
    // The largest variant: the backward over 2-D tiles (8 rows of 512) with weight, bias and residual.
    let settings = [
        ("BLOCK_SIZE".to_string(), 512),
        ("ROWS".to_string(), 8),
        ("BIAS".to_string(), 1),
        ("RESIDUAL".to_string(), 1),
    ];
    let bwd = registry::build("rmsnorm-bwd", DType::BF16, 512, &settings).expect("registry kernel builds");
    let bwd_opts = CompileOptions {
        num_warps: 4,
        divisibility: registry::arg_divisibility(&bwd.kernel, 512),
        ..Default::default()
    };
    c.bench_function("compile to PTX rmsnorm-bwd bf16 tiles", |b| {
        b.iter(|| lowering::compile(&bwd.kernel, &bwd_opts).expect("compiles"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = compile
}
criterion_main!(benches);
