//! Tutorial 03: RMSNorm forward and backward (docs/tutorials/03-rmsnorm.md).
//!
//! The library's RMSNorm through its typed API (`rms_norm`, `rms_norm_backward`), checked against
//! the fp64 reference on the CPU interpreter for rows held in registers and rows walked in chunks,
//! then, when there is a GPU, checked and timed there.
//!
//! `cargo run --release --example tutorial_03_rmsnorm`

use anyhow::{ensure, Result};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::reference::{random_buffer, random_weight, rel_error, rel_error_scaled, tolerance, RmsNormRef};
use tritonite::kernels::rmsnorm::tuning::{Pass, Problem};
use tritonite::kernels::rmsnorm::{
    rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormConfig, RmsNormOptions, RmsNormSpec,
};
use tritonite::kernels::tensor::Rows;
use tritonite::lang::DType;
use tritonite::runtime::Device;

const EPS: f32 = 1e-6;

// [check]
/// RMSNorm of `[m, n]` bf16 `x` with an f32 weight, forward and backward on `backend`, checked
/// against the fp64 reference. `config` forces a kernel config; `None` takes the tuned or
/// heuristic one.
fn check<B: Backend>(backend: &B, who: &str, m: usize, n: usize, config: Option<RmsNormConfig>) -> Result<()> {
    let x_host = random_buffer(DType::BF16, m * n, 1);
    let w_host = random_weight(DType::F32, n, 2);
    let dy_host = random_buffer(DType::BF16, m * n, 3);
    let (x, w, dy) = (backend.upload(&x_host)?, backend.upload(&w_host)?, backend.upload(&dy_host)?);

    // Forward: y = x · rstd · w with rstd = 1 / sqrt(mean(x²) + eps), computed in f32.
    let opts = RmsNormOptions { eps: EPS, config, ..RmsNormOptions::default() };
    let out = rms_norm(backend, Rows::new(&x, &[m, n]), Some(&w), &opts)?;
    let y = out.y.as_ref().expect("no `out` given: y is a new buffer");

    // Backward from the saved x and rstd: dx, and dw summed over the rows.
    let bopts = RmsNormBackwardOptions { config, ..RmsNormBackwardOptions::default() };
    let saved = Rows::new(&x, &[m, n]);
    let grads = rms_norm_backward(backend, &out.spec, saved, Some(&w), Rows::new(&dy, &[m, n]), &out.rstd, &bopts)?;

    // The same in f64 from the same (rounded) inputs.
    let (xf, wf, dyf) = (x_host.to_f64(), w_host.to_f64(), dy_host.to_f64());
    let reference = RmsNormRef { m, n, x: &xf, residual: None, w: Some(&wf), bias: None, offset: 0.0, eps: EPS as f64 };
    let want = reference.forward();
    let want_grads = reference.backward(&want.rstd, &dyf, None);

    let y = backend.download(y)?.to_f64();
    let rstd = backend.download(&out.rstd)?.to_f64();
    let dx = backend.download(grads.dx.as_ref().expect("no `dx_out` given"))?.to_f64();
    let dw = backend.download(grads.dweight.as_ref().expect("a weight was given"))?.to_f64();
    let errors = [
        ("y", rel_error(&y, &want.y), tolerance(DType::BF16)),
        ("rstd", rel_error(&rstd, &want.rstd), tolerance(DType::F32)),
        // dx is a difference of two terms: its error is measured against their scale.
        ("dx", rel_error_scaled(&dx, &want_grads.dx, want_grads.dx_scale), tolerance(DType::BF16)),
        ("dw", rel_error(&dw, &want_grads.dw), tolerance(DType::BF16)),
    ];
    for (name, err, tol) in errors {
        ensure!(err <= tol, "{who} {m}x{n}: {name} relative error {err:.2e} > {tol:.0e}");
    }
    let c = |c: RmsNormConfig| {
        let how = match c.cluster {
            1 if n <= c.block_size => "held".to_string(),
            1 => "chunked".to_string(),
            k => format!("held by {k}"),
        };
        format!("{}x{} {how}", c.rows, c.block_size)
    };
    println!(
        "{who} {m:>3}x{n:<5} fwd tile {:<15} bwd tile {} on {} programs   errors: y {:.1e}, rstd {:.1e}, dx {:.1e}, dw {:.1e}",
        c(out.config),
        c(grads.config),
        grads.config.programs.min(m.div_ceil(grads.config.rows).max(1)),
        errors[0].1,
        errors[1].1,
        errors[2].1,
        errors[3].1
    );
    Ok(())
}
// [/check]

// [time]
/// Median microseconds of `f` over 20 runs after 5 warm-up runs, on the backend's clock.
fn median_us<B: Backend>(
    backend: &B,
    f: &mut dyn FnMut() -> Result<(), tritonite::kernels::KernelError>,
) -> Result<f64> {
    let mut times = backend.time_ms(5, 20, f)?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] * 1e3)
}

/// Times forward and backward calls through the public API (host dispatch included) on `[m, n]`
/// bf16 with an f32 weight, with the config the library picks (tuned if cached, else heuristic).
/// As in a training loop, `y`, `dx` and `dw` are allocated once and passed in (`out`, `dx_out`,
/// `dweight_out`) rather than allocated by every call.
fn time_calls<B: Backend>(backend: &B, m: usize, n: usize) -> Result<()> {
    let x = backend.upload(&random_buffer(DType::BF16, m * n, 1))?;
    let w = backend.upload(&random_weight(DType::F32, n, 2))?;
    let dy = backend.upload(&random_buffer(DType::BF16, m * n, 3))?;
    let (y, dx, dw) =
        (backend.alloc(DType::BF16, m * n)?, backend.alloc(DType::BF16, m * n)?, backend.alloc(DType::F32, n)?);
    let rows = |b| Rows::new(b, &[m, n]);
    let opts = RmsNormOptions { eps: EPS, out: Some(rows(&y)), ..RmsNormOptions::default() };
    let out = rms_norm(backend, rows(&x), Some(&w), &opts)?;
    let bopts =
        RmsNormBackwardOptions { dx_out: Some(rows(&dx)), dweight_out: Some(&dw), ..RmsNormBackwardOptions::default() };
    let grads = rms_norm_backward(backend, &out.spec, rows(&x), Some(&w), rows(&dy), &out.rstd, &bopts)?;

    let fwd_us = median_us(backend, &mut || rms_norm(backend, rows(&x), Some(&w), &opts).map(drop))?;
    let bwd_us = median_us(backend, &mut || {
        rms_norm_backward(backend, &out.spec, rows(&x), Some(&w), rows(&dy), &out.rstd, &bopts).map(drop)
    })?;
    // Bytes that must move, as `tritonite bench` counts them.
    let bytes = |pass| Problem { pass, spec: out.spec, dresidual_out: false, m, n }.bytes();
    let gbs = |pass, us: f64| bytes(pass) / (us * 1e-6) / 1e9;
    let cfg = |c: RmsNormConfig| format!("BLOCK_SIZE={} ROWS={} warps={}", c.block_size, c.rows, c.num_warps);
    println!(
        "| {m}x{n} | {fwd_us:.1} | {:.0} | {bwd_us:.1} | {:.0} | {} / {} |",
        gbs(Pass::Forward, fwd_us),
        gbs(Pass::Backward, bwd_us),
        cfg(out.config),
        cfg(grads.config)
    );
    Ok(())
}
// [/time]

fn main() -> Result<()> {
    // The forward kernel the library builds for N = 1000 held in registers, tiles of 4 rows.
    let spec = RmsNormSpec::new(DType::BF16, Some(DType::F32));
    println!(
        "{}",
        tritonite::kernels::rmsnorm::forward(&spec, &tritonite::kernels::rmsnorm::Tiling::held(1024, 4, 1), true)?
    );

    // [cpu]
    // The heuristic config (rows held in registers), then forced configs: chunks of 1024 columns,
    // tiles of 4 rows with a ragged last tile spread over 3 persistent backward programs, and rows
    // split over clusters of 4 programs holding 2048 columns each.
    let chunked =
        RmsNormConfig { block_size: 1024, num_warps: 4, programs: 2, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN };
    let tiled =
        RmsNormConfig { block_size: 512, num_warps: 2, programs: 3, rows: 4, cluster: 1, ..RmsNormConfig::PLAIN };
    let split =
        RmsNormConfig { block_size: 2048, num_warps: 4, programs: 2, rows: 1, cluster: 4, ..RmsNormConfig::PLAIN };
    check(&Cpu, "interpreter", 8, 1000, None)?;
    check(&Cpu, "interpreter", 3, 5000, Some(chunked))?;
    check(&Cpu, "interpreter", 37, 300, Some(tiled))?;
    check(&Cpu, "interpreter", 5, 7000, Some(split))?;
    // [/cpu]

    match Device::open(0) {
        Ok(device) => {
            println!("\nGPU: {}", device.name()?);
            let gpu = GpuExecutor::new(device)?;
            check(&gpu, "GPU", 8, 1000, None)?;
            check(&gpu, "GPU", 3, 5000, Some(chunked))?;
            check(&gpu, "GPU", 37, 300, Some(tiled))?;
            check(&gpu, "GPU", 5, 7000, Some(split))?;
            check(&gpu, "GPU", 4096, 4096, None)?;
            println!("\n| shape (bf16, f32 weight) | fwd us | fwd GB/s | bwd us | bwd GB/s | configs fwd / bwd |");
            println!("|---|---|---|---|---|---|");
            for (m, n) in [(4096, 4096), (32768, 4096), (32768, 8192)] {
                time_calls(&gpu, m, n)?;
            }
        }
        Err(e) => println!("\nno GPU ({e}): the GPU check and timings were skipped"),
    }
    Ok(())
}
