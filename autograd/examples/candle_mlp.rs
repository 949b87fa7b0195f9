//! Trains a small MLP with RMSNorm on candle's CUDA backend twice from the same start: once with
//! tritonite's RMSNorm (our forward and backward kernels), once with candle's own differentiable
//! composite. Prints both loss curves and how many times our kernels ran.
//!
//! ```text
//! . scripts/cuda-env.sh   # build needs nvcc 13.0 and the CUDA link libraries (scripts/setup.sh)
//! cargo run --release -p tritonite-autograd --features candle --example candle_mlp
//! ```

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// Which RMSNorm the model uses.
#[derive(Clone, Copy, Debug)]
pub enum Norm {
    /// `tritonite_autograd::candle::RmsNorm`.
    Tritonite,
    /// candle's differentiable composite (`candle_nn::RmsNorm::forward_diff`).
    Candle,
}

/// Sizes of the problem.
pub const BATCH: usize = 64;
pub const D_IN: usize = 96;
pub const HIDDEN: usize = 512;
pub const D_OUT: usize = 32;

/// Deterministic values in [-scale, scale) from a seed (the same on every device and run).
fn values(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(seed: u64, shape: &[usize], scale: f32, dev: &Device) -> Result<Tensor> {
    Tensor::from_vec(values(seed, shape.iter().product(), scale), shape, dev)
}

/// Linear → RMSNorm → GELU → Linear, trained with AdamW to match a fixed random teacher.
/// Returns the loss of every step.
pub fn train(norm: Norm, steps: usize, dev: &Device) -> Result<Vec<f32>> {
    let w1 = Var::from_tensor(&tensor(1, &[HIDDEN, D_IN], (1.0 / D_IN as f32).sqrt(), dev)?)?;
    let g = Var::from_tensor(&Tensor::ones(HIDDEN, DType::F32, dev)?)?;
    let w2 = Var::from_tensor(&tensor(2, &[D_OUT, HIDDEN], (1.0 / HIDDEN as f32).sqrt(), dev)?)?;
    let teacher = tensor(3, &[D_OUT, D_IN], 1.0, dev)?;
    let mut opt = AdamW::new(
        vec![w1.clone(), g.clone(), w2.clone()],
        ParamsAdamW { lr: 2e-3, weight_decay: 0.0, ..Default::default() },
    )?;
    let ours = tritonite_autograd::candle::RmsNorm::new(g.as_tensor().clone(), 1e-6);
    let theirs = candle_nn::RmsNorm::new(g.as_tensor().clone(), 1e-6);
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        let x = tensor(100 + step as u64, &[BATCH, D_IN], 1.0, dev)?;
        let target = x.matmul(&teacher.t()?)?.tanh()?;
        let h = x.matmul(&w1.as_tensor().t()?)?;
        let h = match norm {
            Norm::Tritonite => ours.forward(&h)?,
            Norm::Candle => theirs.forward_diff(&h)?,
        };
        let out = h.gelu()?.matmul(&w2.as_tensor().t()?)?;
        let loss = (out - target)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        losses.push(loss.to_scalar::<f32>()?);
    }
    Ok(losses)
}

/// Trains both models and prints the loss curves and the launch counts.
pub fn main() -> anyhow::Result<()> {
    let dev = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            println!("candle_mlp: skipped, no CUDA GPU ({e})");
            return Ok(());
        }
    };
    let steps = 300;
    let before = tritonite_autograd::op::stats();
    let ours = train(Norm::Tritonite, steps, &dev)?;
    let after = tritonite_autograd::op::stats();
    let theirs = train(Norm::Candle, steps, &dev)?;
    println!("step  loss (tritonite RMSNorm)  loss (candle composite)");
    for s in (0..steps).step_by(25).chain([steps - 1]) {
        println!("{s:>4}  {:>24.6}  {:>23.6}", ours[s], theirs[s]);
    }
    println!(
        "tritonite RMSNorm ran {} forwards and {} backwards on the GPU",
        after.forward - before.forward,
        after.backward - before.backward
    );
    Ok(())
}
