//! RMSNorm through the typed API: a fused residual add + RMSNorm with an f32 weight on bf16
//! activations, then its backward. Runs on the GPU when there is one, else on the CPU interpreter
//! (the same code: both are a `Backend`).
//!
//! `cargo run --release --example rmsnorm`

use anyhow::Result;
use tritonite::kernels::backend::Backend;
use tritonite::kernels::cpu::Cpu;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::reference::random_buffer;
use tritonite::kernels::rmsnorm::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormOptions};
use tritonite::kernels::tensor::Rows;
use tritonite::lang::DType;
use tritonite::runtime::Device;

fn run<B: Backend>(backend: &B) -> Result<()> {
    let (batch, seq, hidden) = (2, 8, 512);
    let x = backend.upload(&random_buffer(DType::BF16, batch * seq * hidden, 1))?;
    let residual = backend.upload(&random_buffer(DType::BF16, batch * seq * hidden, 2))?;
    let weight = backend.upload(&random_buffer(DType::F32, hidden, 3))?;

    // h = x + residual; y = h / rms(h) * w. Leading dims flatten into rows.
    let opts = RmsNormOptions {
        eps: 1e-5,
        residual: Some(Rows::new(&residual, &[batch, seq, hidden])),
        ..RmsNormOptions::default()
    };
    let out = rms_norm(backend, Rows::new(&x, &[batch, seq, hidden]), Some(&weight), &opts)?;
    let y = out.y.as_ref().expect("no `out` given: y is a new buffer");
    let h = out.residual_out.as_ref().expect("a residual was added");
    println!(
        "forward: y {:?}, residual_out {:?}, config {:?}",
        backend.download(y)?.dtype(),
        backend.download(h)?.dtype(),
        out.config
    );

    // Backward: the saved input is residual_out (h); dy has y's dtype.
    let dy = backend.upload(&random_buffer(DType::BF16, batch * seq * hidden, 4))?;
    let rows = batch * seq;
    let grads = rms_norm_backward(
        backend,
        &out.spec,
        Rows::new(h, &[rows, hidden]),
        Some(&weight),
        Rows::new(&dy, &[rows, hidden]),
        &out.rstd,
        &RmsNormBackwardOptions::default(),
    )?;
    let dw = backend.download(grads.dweight.as_ref().expect("a weight was given"))?;
    let dres = backend.download(grads.dresidual.as_ref().expect("a residual was added"))?;
    println!("backward: dw[0..4] = {:?}, dresidual has {} elements", &dw.to_f64()[..4], dres.len());
    Ok(())
}

fn main() -> Result<()> {
    match Device::open(0) {
        Ok(device) => {
            println!("on the GPU: {}", device.name()?);
            run(&GpuExecutor::new(device)?)
        }
        Err(e) => {
            println!("no GPU ({e}): on the CPU interpreter");
            run(&Cpu)
        }
    }
}
