//! RMSNorm forward and backward on a GPU against the fp64 reference: random inputs, outputs
//! poisoned with NaN before every run, many shapes (ragged N, M up to 65536, N up to 65536), all
//! dtypes, weight on/off, several BLOCK_SIZE / num_warps. Skips, saying so, where there is no GPU.
//!
//! `TRITONITE_GPU_QUICK=1` runs a small subset (for compute-sanitizer, which is slow).

use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::reference;
use tritonite::lang::{Buffer, DType};
use tritonite::runtime::{Device, DeviceBuffer};

fn executor() -> Option<GpuExecutor> {
    match Device::open(0) {
        Ok(d) => Some(GpuExecutor::new(d).expect("a GPU that opens can be queried")),
        Err(e) => {
            // Straight to the stderr handle, past the test harness's capture, so CI logs show it.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: GPU tests need a GPU ({e})");
            None
        }
    }
}

fn quick() -> bool {
    std::env::var_os("TRITONITE_GPU_QUICK").is_some_and(|v| v != "0")
}

struct Case {
    m: usize,
    n: usize,
    dtype: DType,
    weight: bool,
    block: usize,
    warps: u32,
}

fn cases() -> Vec<Case> {
    let mut shapes: Vec<(usize, usize, usize, u32)> = vec![
        (1, 1, 16, 1),
        (3, 7, 16, 1),
        (5, 33, 64, 2),
        (257, 1000, 1024, 4),
        (128, 4096, 4096, 8),
        (96, 8192, 2048, 4),
        (300, 4097, 1024, 4),
        (65536, 128, 128, 1),
        (2048, 768, 1024, 4),
        (16, 65536, 4096, 8),
        (7, 65535, 8192, 16),
        (40, 12345, 4096, 8),
    ];
    if quick() {
        shapes = vec![(3, 7, 16, 1), (33, 1000, 1024, 4), (9, 4096, 4096, 8), (5, 5000, 1024, 4), (4, 64, 32, 4)];
    }
    let mut out = vec![];
    for (i, (m, n, block, warps)) in shapes.into_iter().enumerate() {
        for (j, dtype) in [DType::F32, DType::F16, DType::BF16].into_iter().enumerate() {
            out.push(Case { m, n, dtype, weight: (i + j) % 3 != 0, block, warps });
        }
    }
    out
}

#[test]
fn rmsnorm_forward_and_backward_match_fp64() {
    let Some(gpu) = executor() else { return };
    let dev = gpu.device();
    let eps = 1e-6f32;
    let mut failures = vec![];
    for (seed, c) in cases().iter().enumerate() {
        let seed = seed as u64 * 3 + 1;
        let x = reference::random_buffer(c.dtype, c.m * c.n, seed);
        let dy = reference::random_buffer(c.dtype, c.m * c.n, seed + 1);
        let w = c.weight.then(|| reference::random_weight(c.dtype, c.n, seed + 2));
        let (xd, dyd) = (DeviceBuffer::upload(dev, &x).unwrap(), DeviceBuffer::upload(dev, &dy).unwrap());
        let wd = w.as_ref().map(|w| DeviceBuffer::upload(dev, w).unwrap());
        let (y, rstd) = gpu.rms_norm_forward(&xd, wd.as_ref(), c.m, c.n, eps, c.block, c.warps).unwrap();
        let programs = 132 * 2;
        let (dx, dw) =
            gpu.rms_norm_backward(&xd, wd.as_ref(), &dyd, &rstd, c.m, c.n, c.block, c.warps, programs).unwrap();
        let (xf, wf) = (x.to_f64(), w.as_ref().map(Buffer::to_f64));
        let (y_ref, rstd_ref) = reference::rms_norm_forward(&xf, wf.as_deref(), c.m, c.n, eps as f64);
        let (dx_ref, dw_ref) = reference::rms_norm_backward(&xf, wf.as_deref(), &dy.to_f64(), c.m, c.n, eps as f64);
        let dx_scale = reference::rms_norm_backward_scale(&xf, wf.as_deref(), &dy.to_f64(), c.m, c.n, eps as f64);
        let mut checks = vec![
            ("y", reference::rel_error(&y.download(dev).unwrap().to_f64(), &y_ref), reference::tolerance(c.dtype)),
            ("rstd", reference::rel_error(&rstd.download(dev).unwrap().to_f64(), &rstd_ref), 1e-5),
            (
                "dx",
                reference::rel_error_scaled(&dx.download(dev).unwrap().to_f64(), &dx_ref, dx_scale),
                reference::tolerance(c.dtype),
            ),
        ];
        if let Some(dw) = dw {
            checks.push((
                "dw",
                reference::rel_error(&dw.download(dev).unwrap().to_f64(), &dw_ref),
                reference::tolerance(c.dtype),
            ));
        }
        let line: Vec<String> = checks.iter().map(|(n, e, _)| format!("{n} {e:.1e}")).collect();
        let ok = checks.iter().all(|(_, e, tol)| *e <= *tol);
        println!(
            "{} {:>6}x{:<6} {:>4} w={} BLOCK={:<5} warps={:<2}: {}",
            if ok { "ok  " } else { "FAIL" },
            c.m,
            c.n,
            c.dtype,
            c.weight as u8,
            c.block,
            c.warps,
            line.join(", ")
        );
        if !ok {
            failures.push(format!(
                "{}x{} {} w={} block={} warps={}: {}",
                c.m,
                c.n,
                c.dtype,
                c.weight,
                c.block,
                c.warps,
                line.join(", ")
            ));
        }
    }
    println!("compiled {} kernel variants", gpu.compile_count());
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rmsnorm_is_deterministic_on_the_gpu() {
    let Some(gpu) = executor() else { return };
    let dev = gpu.device();
    let (m, n, d) = (1000, 3000, DType::BF16);
    let x = DeviceBuffer::upload(dev, &reference::random_buffer(d, m * n, 5)).unwrap();
    let dy = DeviceBuffer::upload(dev, &reference::random_buffer(d, m * n, 6)).unwrap();
    let w = DeviceBuffer::upload(dev, &reference::random_buffer(d, n, 7)).unwrap();
    let run = || {
        let (y, rstd) = gpu.rms_norm_forward(&x, Some(&w), m, n, 1e-6, 1024, 4).unwrap();
        let (dx, dw) = gpu.rms_norm_backward(&x, Some(&w), &dy, &rstd, m, n, 1024, 4, 264).unwrap();
        [y, rstd, dx, dw.unwrap()].map(|b| b.download(dev).unwrap())
    };
    let (a, b) = (run(), run());
    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
        let same = p.to_f64().iter().zip(q.to_f64()).all(|(u, v)| u.to_bits() == v.to_bits());
        assert!(same, "output {i} differs between two identical runs");
    }
    println!("ok: forward and backward bit-identical across runs");
}

#[test]
fn zero_rows_launch_nothing_and_dw_is_zero() {
    let Some(gpu) = executor() else { return };
    let dev = gpu.device();
    let x = DeviceBuffer::upload(dev, &Buffer::filled(DType::F32, 0, 0.0)).unwrap();
    let w = DeviceBuffer::upload(dev, &reference::random_buffer(DType::F32, 64, 1)).unwrap();
    let (y, rstd) = gpu.rms_norm_forward(&x, Some(&w), 0, 64, 1e-6, 64, 2).unwrap();
    assert!(y.is_empty() && rstd.is_empty());
    let (dx, dw) = gpu.rms_norm_backward(&x, Some(&w), &x, &rstd, 0, 64, 64, 2, 8).unwrap();
    assert!(dx.is_empty());
    assert!(dw.unwrap().download(dev).unwrap().to_f64().iter().all(|v| *v == 0.0));
}
