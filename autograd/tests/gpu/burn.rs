//! burn adapter on a CUDA GPU (`Autodiff<Cuda<F>>`): gradients of x and the weight against burn's
//! own `RmsNorm`, for f32/f16/bf16, contiguous and strided input, ragged shapes; gradients must
//! flow; the example's training matches burn's RmsNorm. Skips (and says so) without a CUDA GPU.

use burn::backend::Autodiff;
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Tensor, TensorData};
use burn_cubecl::FloatElement;
use tritonite_autograd::burn::{rms_norm, Cuda};
use tritonite_kernels::reference::rel_error;

use crate::random_values;

#[path = "../../examples/burn_mlp.rs"]
mod example;

fn gpu() -> bool {
    match tritonite_runtime::Device::open(0) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: no CUDA GPU ({e})");
            false
        }
    }
}

fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// y, dx, dw of `loss = sum(rmsnorm(x) · r)` on `Autodiff<Cuda<F>>`, with ours or burn's RmsNorm
/// (`transpose`: x is the transpose of a `[n, m]` tensor, so its rows are not strided rows).
fn run<F: FloatElement, const D: usize>(ours: bool, shape: [usize; D], transpose: bool, seed: u64) -> [Vec<f64>; 3]
where
    Cuda<F>: Backend,
{
    type A<F> = Autodiff<Cuda<F>>;
    let dev: Device<A<F>> = Default::default();
    let n = shape[D - 1];
    let numel: usize = shape.iter().product();
    let x = if transpose {
        let mut t = shape;
        t.swap(D - 1, D - 2);
        Tensor::<A<F>, D>::from_data(TensorData::new(random_values(seed, numel), t).convert::<F>(), &dev)
            .swap_dims(D - 1, D - 2)
    } else {
        Tensor::<A<F>, D>::from_data(TensorData::new(random_values(seed, numel), shape).convert::<F>(), &dev)
    }
    .require_grad();
    let w0: Vec<f32> = random_values(seed + 1, n).iter().map(|v| v + 1.5).collect();
    let w = Tensor::<A<F>, 1>::from_data(TensorData::new(w0, [n]).convert::<F>(), &dev).require_grad();
    let r = Tensor::<A<F>, D>::from_data(TensorData::new(random_values(seed + 2, numel), shape).convert::<F>(), &dev);
    let y = if ours {
        rms_norm(x.clone(), w.clone(), 1e-6).unwrap()
    } else {
        let norm = burn::nn::RmsNormConfig::new(n).with_epsilon(1e-6).init::<A<F>>(&dev);
        let norm = burn::nn::RmsNorm { gamma: Param::from_tensor(w.clone()), ..norm };
        norm.forward(x.clone())
    };
    let grads = (y.clone() * r).sum().backward();
    let dx = x.grad(&grads).expect("a gradient for x");
    let dw = w.grad(&grads).expect("a gradient for the weight");
    [to_f64(y.inner()), to_f64(dx), to_f64(dw)]
}

fn check<F: FloatElement>(tol: f64)
where
    Cuda<F>: Backend,
{
    let before = tritonite_autograd::op::stats();
    let cases: [([usize; 3], bool); 4] =
        [([1, 37, 1000], false), ([4, 9, 768], false), ([2, 5, 4096], false), ([3, 96, 40], true)];
    for (i, (shape, transpose)) in cases.iter().enumerate() {
        // burn's RmsNorm in f32 is the reference for every dtype (16-bit composites round each step).
        let got = run::<F, 3>(true, *shape, *transpose, 10 * i as u64);
        let want = run::<f32, 3>(false, *shape, *transpose, 10 * i as u64);
        for (name, g, w) in [("y", &got[0], &want[0]), ("dx", &got[1], &want[1]), ("dw", &got[2], &want[2])] {
            let e = rel_error(g, w);
            let dtype = F::dtype();
            println!("{dtype:?} {shape:?} transposed={transpose} {name}: rel. error {e:.2e}");
            assert!(e <= tol, "{dtype:?} {shape:?} {name}: rel. error {e:.2e} > {tol:.0e}");
            assert!(g.iter().any(|v| *v != 0.0), "{name} is all zeros");
        }
    }
    let after = tritonite_autograd::op::stats();
    assert_eq!(after.forward - before.forward, cases.len());
    assert_eq!(after.backward - before.backward, cases.len());
}

#[test]
fn gradients_match_burns_rmsnorm() {
    if !gpu() {
        return;
    }
    check::<f32>(1e-4);
    check::<half::f16>(1e-2);
    check::<half::bf16>(2e-2);
}

#[test]
fn training_matches_burns_rmsnorm() {
    if !gpu() {
        return;
    }
    let dev = Default::default();
    let steps = 300;
    let before = tritonite_autograd::op::stats();
    let ours = example::train(example::Norm::Tritonite, steps, &dev);
    let after = tritonite_autograd::op::stats();
    let theirs = example::train(example::Norm::Burn, steps, &dev);
    assert_eq!(after.forward - before.forward, steps);
    assert_eq!(after.backward - before.backward, steps);
    let (first, last) = (ours[0], ours[steps - 1]);
    println!("loss: ours {first:.5} -> {last:.5}, burn's {:.5} -> {:.5}", theirs[0], theirs[steps - 1]);
    assert!(last < 0.5 * first, "the loss did not fall: {first} -> {last}");
    for s in 0..steps {
        let d = (ours[s] - theirs[s]).abs() / theirs[s].abs();
        assert!(d < 1e-2, "step {s}: loss {} vs burn's {} (rel. {d:.2e})", ours[s], theirs[s]);
    }
}

#[test]
fn bad_input_is_an_error() {
    if !gpu() {
        return;
    }
    let dev = Default::default();
    let x = Tensor::<Autodiff<Cuda>, 2>::ones([4, 64], &dev);
    let w = Tensor::<Autodiff<Cuda>, 1>::ones([32], &dev);
    let e = rms_norm(x, w, 1e-6).unwrap_err().to_string();
    assert!(e.contains("weight"), "{e}");
}

/// One optimizer step moves every parameter the loss depends on (prints gradient norms and the
/// parameters' changes: a zero here means a gradient stopped).
#[test]
fn one_step_moves_every_parameter() {
    if !gpu() {
        return;
    }
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    type B = example::Train;
    let dev = Default::default();
    for norm in [example::Norm::Tritonite, example::Norm::Burn] {
        let model = example::Mlp::<B>::new(&dev);
        let x = example::tensor::<B, 2>(100, [example::BATCH, example::D_IN], 1.0, &dev);
        let loss = model.forward(x, norm).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads::<B, example::Mlp<B>>(loss.backward(), &model);
        let gamma = match norm {
            example::Norm::Tritonite => &model.ours.gamma,
            example::Norm::Burn => &model.theirs.gamma,
        };
        let g1 = grads.get::<Cuda, 2>(model.w1.id).map(|g| g.powi_scalar(2).sum().into_scalar());
        let g2 = grads.get::<Cuda, 2>(model.w2.id).map(|g| g.powi_scalar(2).sum().into_scalar());
        let gg = grads.get::<Cuda, 1>(gamma.id).map(|g| g.powi_scalar(2).sum().into_scalar());
        let before = [to_f64(model.w1.val()), to_f64(model.w2.val())];
        let mut opt = AdamConfig::new().init::<B, example::Mlp<B>>();
        let after = opt.step(1e-3, model, grads);
        let moved = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let m1 = moved(&before[0], &to_f64(after.w1.val()));
        let m2 = moved(&before[1], &to_f64(after.w2.val()));
        println!("{norm:?}: |grad|² w1 {g1:?} w2 {g2:?} gamma {gg:?}; max change w1 {m1:.2e} w2 {m2:.2e}");
        assert!(g1.is_some_and(|g| g > 0.0) && g2.is_some_and(|g| g > 0.0) && gg.is_some_and(|g| g > 0.0));
        assert!(m1 > 0.0 && m2 > 0.0);
    }
}

/// The example itself, as `cargo run --example burn_mlp` runs it (prints both loss curves and how
/// many times our kernels ran).
#[test]
fn example_runs() {
    if !gpu() {
        return;
    }
    example::main();
}
