//! candle adapter on a CUDA GPU: gradients of x and the weight against candle's own composite
//! RMSNorm, for f32/f16/bf16, contiguous and row-strided input, ragged shapes; gradients must flow;
//! the example's training matches candle's RMSNorm. Skips (and says so) without a CUDA GPU.

use candle_core::{DType, Device, Tensor, Var, D};

#[path = "../../examples/candle_mlp.rs"]
mod example;

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA GPU ({e})");
            None
        }
    }
}

/// Random values in [-1, 1) from a seed.
fn random(seed: u64, shape: &[usize], dev: &Device) -> Tensor {
    Tensor::from_vec(crate::random_values(seed, shape.iter().product()), shape, dev).unwrap()
}

/// ‖a − b‖ / ‖b‖ over all elements, in f64.
fn rel_error(a: &Tensor, b: &Tensor) -> f64 {
    let f64s = |t: &Tensor| -> Vec<f64> { t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap() };
    tritonite_kernels::reference::rel_error(&f64s(a), &f64s(b))
}

/// y, dx and dw of `loss = sum(rmsnorm(x) · r)` for ours and for candle's composite (in f32 from
/// the same rounded inputs); `wide` > n makes x a column slice of a wider tensor (strided rows).
fn grads(dev: &Device, dtype: DType, shape: &[usize], wide: usize, seed: u64) -> [(Tensor, Tensor); 3] {
    let n = *shape.last().unwrap();
    let mut full = shape.to_vec();
    *full.last_mut().unwrap() = wide;
    let x_full = random(seed, &full, dev).to_dtype(dtype).unwrap();
    let w0 = (random(seed + 1, &[n], dev) + 1.5).unwrap().to_dtype(dtype).unwrap();
    let r = random(seed + 2, shape, dev);
    let run = |ours: bool| {
        let xv = Var::from_tensor(&if ours { x_full.clone() } else { x_full.to_dtype(DType::F32).unwrap() }).unwrap();
        let wv = Var::from_tensor(&if ours { w0.clone() } else { w0.to_dtype(DType::F32).unwrap() }).unwrap();
        let x = xv.as_tensor().narrow(D::Minus1, wide - n, n).unwrap();
        let y = if ours {
            tritonite_autograd::candle::rms_norm_op(&x, wv.as_tensor(), 1e-6).unwrap()
        } else {
            candle_nn::ops::rms_norm_slow(&x, wv.as_tensor(), 1e-6).unwrap()
        };
        let loss = y.to_dtype(DType::F32).unwrap().mul(&r).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let dx = g.get(xv.as_tensor()).expect("a gradient for x").narrow(D::Minus1, wide - n, n).unwrap();
        let dw = g.get(wv.as_tensor()).expect("a gradient for the weight").clone();
        [y, dx, dw]
    };
    let [y, dx, dw] = run(true);
    let [ry, rdx, rdw] = run(false);
    [(y, ry), (dx, rdx), (dw, rdw)]
}

#[test]
fn gradients_match_candles_composite() {
    let Some(dev) = gpu() else { return };
    let before = tritonite_autograd::op::stats();
    let shapes: [(&[usize], usize); 5] =
        [(&[37, 1000], 1000), (&[4, 9, 768], 768), (&[5, 4096], 4096), (&[16, 320], 512), (&[3, 7, 96], 160)];
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        // f32 against f32: the 1e-4. 16-bit: y and dx are rounded to 16 bits once.
        let tol = if dtype == DType::F32 { 1e-4 } else { 1e-2 };
        for (i, (shape, wide)) in shapes.iter().enumerate() {
            let [(y, ry), (dx, rdx), (dw, rdw)] = grads(&dev, dtype, shape, *wide, 10 * i as u64);
            for (name, got, want) in [("y", &y, &ry), ("dx", &dx, &rdx), ("dw", &dw, &rdw)] {
                let e = rel_error(got, want);
                println!("{dtype:?} {shape:?} (row stride {wide}) {name}: rel. error {e:.2e}");
                assert!(e <= tol, "{dtype:?} {shape:?} {name}: rel. error {e:.2e} > {tol:.0e}");
                assert_eq!(got.dtype(), dtype, "{name} keeps the input's dtype");
            }
        }
    }
    let after = tritonite_autograd::op::stats();
    assert_eq!(after.forward - before.forward, 15, "each case runs our forward once");
    assert_eq!(after.backward - before.backward, 15, "each case runs our backward once");
}

#[test]
fn gradients_flow_through_the_module() {
    let Some(dev) = gpu() else { return };
    let w = Var::from_tensor(&(random(7, &[256], &dev) + 1.0).unwrap()).unwrap();
    let x = Var::from_tensor(&random(8, &[12, 256], &dev)).unwrap();
    let norm = tritonite_autograd::candle::RmsNorm::new(w.as_tensor().clone(), 1e-6);
    let y = candle_core::Module::forward(&norm, x.as_tensor()).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("x", &x), ("weight", &w)] {
        let grad = g.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = grad.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm.is_finite() && norm > 0.0, "gradient of {name} is zero or not finite: {norm}");
    }
}

#[test]
fn training_matches_candles_rmsnorm() {
    let Some(dev) = gpu() else { return };
    let steps = 300;
    let before = tritonite_autograd::op::stats();
    let ours = example::train(example::Norm::Tritonite, steps, &dev).unwrap();
    let after = tritonite_autograd::op::stats();
    let theirs = example::train(example::Norm::Candle, steps, &dev).unwrap();
    assert_eq!(after.forward - before.forward, steps);
    assert_eq!(after.backward - before.backward, steps);
    let (first, last) = (ours[0], ours[steps - 1]);
    println!("loss: ours {first:.5} -> {last:.5}, candle's {:.5} -> {:.5}", theirs[0], theirs[steps - 1]);
    assert!(last < 0.5 * first, "the loss did not fall: {first} -> {last}");
    for s in 0..steps {
        let d = (ours[s] - theirs[s]).abs() / theirs[s].abs();
        assert!(d < 1e-2, "step {s}: loss {} vs candle's {} (rel. {d:.2e})", ours[s], theirs[s]);
    }
}

#[test]
fn bad_input_is_an_error() {
    let Some(dev) = gpu() else { return };
    let x = random(1, &[4, 64], &dev);
    let w = random(2, &[32], &dev);
    let e = tritonite_autograd::candle::rms_norm_op(&x, &w, 1e-6).unwrap_err().to_string();
    assert!(e.contains("weight"), "{e}");
    let xi = x.to_dtype(DType::U32).unwrap();
    let e = tritonite_autograd::candle::rms_norm_op(&xi, &w, 1e-6).unwrap_err().to_string();
    assert!(e.contains("dtype"), "{e}");
}

/// The example itself, as `cargo run --example candle_mlp` runs it (prints both loss curves and
/// how many times our kernels ran).
#[test]
fn example_runs() {
    if gpu().is_none() {
        return;
    }
    example::main().unwrap();
}
