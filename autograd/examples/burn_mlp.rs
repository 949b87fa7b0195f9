//! Trains a small MLP with RMSNorm on burn's CUDA backend under `Autodiff` twice from the same
//! start: once with tritonite's RMSNorm (our forward and backward kernels), once with burn's own
//! `RmsNorm` (unfused primitives). Prints both loss curves and how many times our kernels ran.
//!
//! ```text
//! cargo run --release -p tritonite-autograd --features burn --example burn_mlp
//! ```

use burn::backend::Autodiff;
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Tensor, TensorData};
use tritonite_autograd::burn::{Cuda, RmsNormBackend};

/// The backend: burn's CUDA backend with autodiff.
pub type Train = Autodiff<Cuda<f32>>;

/// Which RMSNorm the model uses.
#[derive(Clone, Copy, Debug)]
pub enum Norm {
    /// `tritonite_autograd::burn::RmsNorm`.
    Tritonite,
    /// `burn::nn::RmsNorm`.
    Burn,
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

pub fn tensor<B: Backend, const D: usize>(seed: u64, shape: [usize; D], scale: f32, dev: &Device<B>) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values(seed, shape.iter().product(), scale), shape), dev)
}

/// The model: Linear → RMSNorm → GELU → Linear (weights as plain parameters, no bias).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// First layer, `[D_IN, HIDDEN]`.
    pub w1: Param<Tensor<B, 2>>,
    /// Our RMSNorm.
    pub ours: tritonite_autograd::burn::RmsNorm<B>,
    /// burn's RmsNorm.
    pub theirs: burn::nn::RmsNorm<B>,
    /// Second layer, `[HIDDEN, D_OUT]`.
    pub w2: Param<Tensor<B, 2>>,
}

impl<B: RmsNormBackend> Mlp<B> {
    /// The starting point (the same for both norms).
    pub fn new(dev: &Device<B>) -> Mlp<B> {
        Mlp {
            w1: Param::from_tensor(tensor(1, [D_IN, HIDDEN], (1.0 / D_IN as f32).sqrt(), dev)),
            ours: tritonite_autograd::burn::RmsNormConfig::new(HIDDEN).with_epsilon(1e-6).init(dev),
            theirs: burn::nn::RmsNormConfig::new(HIDDEN).with_epsilon(1e-6).init(dev),
            w2: Param::from_tensor(tensor(2, [HIDDEN, D_OUT], (1.0 / HIDDEN as f32).sqrt(), dev)),
        }
    }

    /// The model's output for `x`.
    pub fn forward(&self, x: Tensor<B, 2>, norm: Norm) -> Tensor<B, 2> {
        let h = x.matmul(self.w1.val());
        let h = match norm {
            Norm::Tritonite => self.ours.forward(h),
            Norm::Burn => self.theirs.forward(h),
        };
        gelu(h).matmul(self.w2.val())
    }
}

/// Trains the MLP with Adam to match a fixed random teacher; the loss of every step.
pub fn train(norm: Norm, steps: usize, dev: &Device<Train>) -> Vec<f32> {
    let mut model = Mlp::<Train>::new(dev);
    let teacher = tensor::<Train, 2>(3, [D_IN, D_OUT], 1.0, dev);
    let mut opt = AdamConfig::new().init::<Train, Mlp<Train>>();
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        let x = tensor::<Train, 2>(100 + step as u64, [BATCH, D_IN], 1.0, dev);
        let target = x.clone().matmul(teacher.clone()).tanh().detach();
        let out = model.forward(x, norm);
        let loss = (out - target).powi_scalar(2).mean();
        losses.push(loss.clone().into_scalar());
        let grads = GradientsParams::from_grads::<Train, Mlp<Train>>(loss.backward(), &model);
        model = opt.step(2e-3, model, grads);
    }
    losses
}

/// Trains both models and prints the loss curves and the launch counts.
pub fn main() {
    if let Err(e) = tritonite_runtime::Device::open(0) {
        println!("burn_mlp: skipped, no CUDA GPU ({e})");
        return;
    }
    let dev = Default::default();
    let steps = 300;
    let before = tritonite_autograd::op::stats();
    let ours = train(Norm::Tritonite, steps, &dev);
    let after = tritonite_autograd::op::stats();
    let theirs = train(Norm::Burn, steps, &dev);
    println!("step  loss (tritonite RMSNorm)  loss (burn RmsNorm)");
    for s in (0..steps).step_by(25).chain([steps - 1]) {
        println!("{s:>4}  {:>24.6}  {:>19.6}", ours[s], theirs[s]);
    }
    println!(
        "tritonite RMSNorm ran {} forwards and {} backwards on the GPU",
        after.forward - before.forward,
        after.backward - before.backward
    );
}
