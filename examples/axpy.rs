//! The README's example kernel: `out = x * alpha + y`, traced, printed and run on the interpreter.

use tritonite::lang::{build_kernel, interp, Arg, Buffer, DType, Lit};

fn main() -> anyhow::Result<()> {
    // out[i] = x[i] * alpha + y[i], one program per BLOCK elements.
    let kernel = build_kernel("axpy", |k| {
        let block = k.meta("BLOCK_SIZE", 1024);
        let x = k.ptr_arg("x", DType::F32);
        let y = k.ptr_arg("y", DType::F32);
        let out = k.mut_ptr_arg("out", DType::F32);
        let n = k.scalar_arg("n", DType::I32);
        let alpha = k.scalar_arg("alpha", DType::F32);
        let offs = k.program_id(0) * block + k.arange(0, block);
        let mask = offs.lt(n);
        let xv = k.load_masked(x + offs, mask, 0.0);
        let yv = k.load_masked(y + offs, mask, 0.0);
        k.store_masked(out + offs, xv * alpha + yv, mask);
    })?;
    println!("{kernel}");

    let n = 3000;
    let x = Buffer::from_f64(DType::F32, &(0..n).map(|i| i as f64).collect::<Vec<_>>());
    let y = Buffer::from_f64(DType::F32, &vec![2.0; n]);
    let mut out = Buffer::filled(DType::F32, n, f64::NAN);
    let grid = n.div_ceil(1024) as u32;
    interp::run(
        &kernel,
        [grid, 1, 1],
        &mut [
            Arg::In(&x),
            Arg::In(&y),
            Arg::Out(&mut out),
            Arg::Scalar(Lit::Int(n as i64)),
            Arg::Scalar(Lit::Float(0.5)),
        ],
    )?;
    for i in 0..n {
        let want = i as f64 * 0.5 + 2.0;
        anyhow::ensure!(out.get(i) == want, "out[{i}] = {} but expected {want}", out.get(i));
    }
    println!("interpreter: all {n} elements match; out[{}] = {}", n - 1, out.get(n - 1));
    Ok(())
}
