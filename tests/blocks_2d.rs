//! 2-D blocks through the whole compiler: tiles of `[R, C]` with row and column reductions,
//! `expand_dims` of a reduction, broadcasts, ragged masks, row-major and column-major access and
//! loop-carried 2-D accumulators. Every kernel lowers to PTX (and assembles without spills where
//! ptxas is installed); on a GPU each runs on random inputs and ragged shapes and must match the
//! CPU interpreter. Skips the GPU part, saying so, where there is no GPU.

use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::{Launch, Plan, PlanArg, Role};
use tritonite::kernels::reference;
use tritonite::lang::{build_kernel, DType, Kernel};
use tritonite::lowering::{compile, ptxas, CompileOptions};
use tritonite::runtime::Device;

/// One test kernel and the shape it works on.
struct Case {
    kernel: Kernel,
    /// Rows and columns of `x`.
    m: usize,
    n: usize,
    /// Rows per program.
    rows: usize,
    num_warps: u32,
    dtype: DType,
}

/// `R` rows per program, the row held whole in a `[R, C]` tile (C ≥ N): row sums and maxima, the
/// tile minus its row mean (an `expand_dims` of a reduction), and per-program column sums.
/// Arguments: `x, y, row_sum, row_max, col_sum, m, n, stride`.
fn tile_kernel(dtype: DType, r: usize, c: usize) -> Kernel {
    build_kernel("tile_rows", |k| {
        let r = k.meta("ROWS", r as i64);
        let c = k.meta("COLS", c as i64);
        let x = k.ptr_arg("x", dtype);
        let y = k.mut_ptr_arg("y", dtype);
        let row_sum = k.mut_ptr_arg("row_sum", DType::F32);
        let row_max = k.mut_ptr_arg("row_max", DType::F32);
        let col_sum = k.mut_ptr_arg("col_sum", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let stride = k.scalar_arg("stride", DType::I32);
        let pid = k.program_id(0);
        let rows = pid * r + k.arange(0, r);
        let cols = k.arange(0, c);
        let row_ok = rows.lt(m);
        let mask = row_ok.expand_dims(1) & cols.lt(n).expand_dims(0);
        let offs = rows.expand_dims(1) * stride + cols.expand_dims(0);
        let t = k.load_masked(x + offs, mask, 0.0).cast(DType::F32);
        let s = t.sum(1);
        k.store_masked(row_sum + rows, s, row_ok);
        let big = k.where_(mask, t, -1.0e30);
        k.store_masked(row_max + rows, big.max(1), row_ok);
        let mean = s / n.cast(DType::F32);
        let centered = t - mean.expand_dims(1);
        k.store_masked(y + offs, centered.cast(dtype), mask);
        let cs = t.sum(0);
        k.store_masked(col_sum + pid * n + cols, cs, cols.lt(n));
    })
    .expect("tile kernel builds")
}

/// The same reductions over rows longer than the tile: a loop over column chunks carrying a `[R]`
/// sum and a `[R, C]` running maximum. Arguments: `x, row_sum, row_max, m, n, stride`.
fn chunked_kernel(dtype: DType, r: usize, c: usize) -> Kernel {
    build_kernel("chunked_rows", |k| {
        let r = k.meta("ROWS", r as i64);
        let c = k.meta("COLS", c as i64);
        let x = k.ptr_arg("x", dtype);
        let row_sum = k.mut_ptr_arg("row_sum", DType::F32);
        let row_max = k.mut_ptr_arg("row_max", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let stride = k.scalar_arg("stride", DType::I32);
        let rows = k.program_id(0) * r + k.arange(0, r);
        let cols = k.arange(0, c);
        let row_ok = rows.lt(m);
        let sum0 = k.zeros(&[r as usize], DType::F32);
        let max0 = k.full(&[r as usize, c as usize], -1.0e30, DType::F32);
        let acc = k.for_range(0, n, c, &[sum0, max0], |start, acc| {
            let cc = start + cols;
            let mask = row_ok.expand_dims(1) & cc.lt(n).expand_dims(0);
            let t = k.load_masked(x + (rows.expand_dims(1) * stride + cc.expand_dims(0)), mask, 0.0).cast(DType::F32);
            vec![acc[0] + t.sum(1), acc[1].maximum(k.where_(mask, t, -1.0e30))]
        });
        k.store_masked(row_sum + rows, acc[0], row_ok);
        k.store_masked(row_max + rows, acc[1].max(1), row_ok);
    })
    .expect("chunked kernel builds")
}

/// Column-major reads (`x[col * stride + row]`, no vector access possible) reduced along axis 0.
/// Arguments: `x, col_sum, m, n, stride` with `x` holding `n` columns of `stride ≥ m` elements.
fn column_major_kernel(dtype: DType, r: usize, c: usize) -> Kernel {
    build_kernel("column_major", |k| {
        let r = k.meta("ROWS", r as i64);
        let c = k.meta("COLS", c as i64);
        let x = k.ptr_arg("x", dtype);
        let col_sum = k.mut_ptr_arg("col_sum", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let stride = k.scalar_arg("stride", DType::I32);
        let cols = k.program_id(0) * c + k.arange(0, c);
        let rows = k.arange(0, r);
        let col_ok = cols.lt(n);
        let mask = rows.lt(m).expand_dims(1) & col_ok.expand_dims(0);
        let t = k.load_masked(x + (cols.expand_dims(0) * stride + rows.expand_dims(1)), mask, 0.0);
        k.store_masked(col_sum + cols, t.cast(DType::F32).sum(0), col_ok);
    })
    .expect("column-major kernel builds")
}

/// A launch plan for `case` (buffers named after the kernel's arguments).
fn plan(case: &Case) -> Plan {
    let (m, n) = (case.m, case.n);
    let mut p = Plan::default();
    let k = &case.kernel;
    let programs;
    let args: Vec<PlanArg>;
    match k.name.as_str() {
        "tile_rows" => {
            programs = m.div_ceil(case.rows);
            p.buffer("x", case.dtype, m * n, Role::Input);
            p.buffer("y", case.dtype, m * n, Role::Output);
            p.buffer("row_sum", DType::F32, m, Role::Output);
            p.buffer("row_max", DType::F32, m, Role::Output);
            p.buffer("col_sum", DType::F32, programs * n, Role::Output);
            args = ["x", "y", "row_sum", "row_max", "col_sum"].map(PlanArg::Buffer).to_vec();
        }
        "chunked_rows" => {
            programs = m.div_ceil(case.rows);
            p.buffer("x", case.dtype, m * n, Role::Input);
            p.buffer("row_sum", DType::F32, m, Role::Output);
            p.buffer("row_max", DType::F32, m, Role::Output);
            args = ["x", "row_sum", "row_max"].map(PlanArg::Buffer).to_vec();
        }
        "column_major" => {
            let c = k.meta.iter().find(|mp| mp.name == "COLS").expect("COLS").value as usize;
            programs = n.div_ceil(c);
            p.buffer("x", case.dtype, m * n, Role::Input);
            p.buffer("col_sum", DType::F32, n, Role::Output);
            args = ["x", "col_sum"].map(PlanArg::Buffer).to_vec();
        }
        other => unreachable!("no plan for {other}"),
    }
    let stride = if k.name == "column_major" { m } else { n };
    let mut args = args;
    args.extend([PlanArg::I32(m as i32), PlanArg::I32(n as i32), PlanArg::I32(stride as i32)]);
    p.launches.push(Launch {
        kernel: k.clone().into(),
        grid: [programs as u32, 1, 1],
        args,
        num_warps: case.num_warps,
    });
    p
}

/// Random cases: every kernel × dtype over tile shapes, warps and ragged problem shapes.
fn cases() -> Vec<Case> {
    let mut out = vec![];
    let mut seed = 7u64;
    let mut next = |hi: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % hi
    };
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (r, c) in [(1, 256), (2, 64), (4, 256), (8, 128), (16, 32), (4, 1024), (32, 8), (2, 4096)] {
            for num_warps in [1u32, 4, 8] {
                // At most 64 elements of a tile per thread: more would not fit in registers.
                if r * c > 64 * 32 * num_warps as usize {
                    continue;
                }
                let m = 1 + next(3 * r + 5);
                let n_tile = (c / 2 + 1 + next(c / 2)).min(c);
                out.push(Case { kernel: tile_kernel(dtype, r, c), m, n: n_tile, rows: r, num_warps, dtype });
                let n_long = 1 + next(5 * c);
                out.push(Case { kernel: chunked_kernel(dtype, r, c), m, n: n_long, rows: r, num_warps, dtype });
                let (mc, nc) = (1 + next(r), 1 + next(3 * c));
                out.push(Case { kernel: column_major_kernel(dtype, r, c), m: mc, n: nc, rows: r, num_warps, dtype });
            }
        }
    }
    out
}

#[test]
fn two_d_kernels_lower_to_ptx() {
    let mut checked = 0;
    for case in cases() {
        let opts = CompileOptions { num_warps: case.num_warps, ..CompileOptions::default() };
        let compiled = compile(&case.kernel, &opts).unwrap_or_else(|e| panic!("{} {:?}: {e}", case.kernel.name, opts));
        assert!(compiled.ptx.contains(".entry"), "{}: no entry", case.kernel.name);
        if let Some(_p) = ptxas::find_ptxas() {
            let r = ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", case.kernel.name));
            assert_eq!(
                (r.spill_stores, r.spill_loads),
                (0, 0),
                "{} R={} warps={} spills",
                case.kernel.name,
                case.rows,
                case.num_warps
            );
        }
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn row_major_tiles_use_vector_loads() {
    // [4, 256] f32 with 16-aligned x and stride: 16-byte loads along the rows.
    let kernel = tile_kernel(DType::F32, 4, 256);
    let all: Vec<(usize, u64)> = (0..kernel.params.len()).map(|i| (i, 16)).collect();
    let opts = CompileOptions { num_warps: 4, divisibility: all, ..CompileOptions::default() };
    let ptx = compile(&kernel, &opts).expect("compiles").ptx;
    assert!(ptx.contains("ld.global.v4.f32") || ptx.contains("ld.global.v4.b32"), "no 16-byte loads:\n{ptx}");
}

fn gpu() -> Option<GpuExecutor> {
    match Device::open(0) {
        Ok(d) => Some(GpuExecutor::new(d).expect("a GPU that opens can be queried")),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: GPU tests need a GPU ({e})");
            None
        }
    }
}

#[test]
fn two_d_kernels_match_the_interpreter_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = Cpu;
    for (i, case) in cases().into_iter().enumerate() {
        let plan = plan(&case);
        let x = reference::random_buffer(case.dtype, case.m * case.n, 100 + i as u64);
        let outs: Vec<_> = plan.buffers.iter().filter(|b| b.role == Role::Output).collect();
        let run_cpu = {
            let xb = cpu.upload(&x).unwrap();
            let bufs: Vec<_> = outs.iter().map(|b| cpu.alloc(b.dtype, b.len).unwrap()).collect();
            let mut binds = vec![Binding::whole("x", &xb)];
            binds.extend(outs.iter().zip(&bufs).map(|(b, buf)| Binding::whole(b.name, buf)));
            cpu.run(&plan, &binds).unwrap_or_else(|e| panic!("interpreter, {}: {e}", case.kernel.name));
            bufs.iter().map(|b| cpu.download(b).unwrap()).collect::<Vec<_>>()
        };
        let xg = gpu.upload(&x).unwrap();
        let bufs: Vec<_> = outs.iter().map(|b| gpu.alloc(b.dtype, b.len).unwrap()).collect();
        let mut binds = vec![Binding::whole("x", &xg)];
        binds.extend(outs.iter().zip(&bufs).map(|(b, buf)| Binding::whole(b.name, buf)));
        gpu.run(&plan, &binds).unwrap_or_else(|e| panic!("GPU, {}: {e}", case.kernel.name));
        for ((decl, want), got) in outs.iter().zip(&run_cpu).zip(&bufs) {
            let got = gpu.download(got).unwrap();
            for j in 0..decl.len {
                let (a, b) = (got.get(j), want.get(j));
                // Sums may associate differently; everything else is exact. 16-bit outputs are
                // rounded once from an f32 that may differ in the last place.
                let tol = 1e-5 * (1.0 + b.abs()) * (1.0 + case.n as f64).sqrt()
                    + if decl.dtype == DType::F32 { 0.0 } else { 1e-2 * (1.0 + b.abs()) };
                assert!(
                    (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                    "{} {} R={} warps={} m={} n={}: {}[{j}] = {a}, interpreter {b}",
                    case.kernel.name,
                    case.dtype,
                    case.rows,
                    case.num_warps,
                    case.m,
                    case.n,
                    decl.name
                );
            }
        }
    }
}
