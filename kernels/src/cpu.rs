//! Running the kernels on the CPU interpreter, with the argument checks a caller expects.
//!
//! These are the host-side steps of each kernel (argument order, grid, the second `dw` stage) on
//! host buffers; the GPU runtime performs the same steps on device buffers.

use tritonite_lang::interp::{self, Arg, Buffer};
use tritonite_lang::{DType, Lit};

use crate::error::KernelError;
use crate::rmsnorm::{self, RmsNormBwdConfig, RmsNormFwdConfig};

fn check_len(arg: &'static str, b: &Buffer, want: usize) -> Result<(), KernelError> {
    if b.len() != want {
        return Err(KernelError::BadArgument { arg, expected: format!("{want} elements"), got: format!("{} elements", b.len()) });
    }
    Ok(())
}

fn check_block(block_size: usize) -> Result<(), KernelError> {
    if !block_size.is_power_of_two() || block_size > 1 << 16 {
        return Err(KernelError::BadArgument { arg: "block_size", expected: "a power of two ≤ 65536".into(), got: block_size.to_string() });
    }
    Ok(())
}

fn check_shape(m: usize, n: usize) -> Result<(), KernelError> {
    if n == 0 || n > i32::MAX as usize || m > i32::MAX as usize {
        return Err(KernelError::BadArgument { arg: "shape", expected: "1 ≤ n < 2^31 and m < 2^31".into(), got: format!("[{m}, {n}]") });
    }
    Ok(())
}

/// RMSNorm forward on the interpreter: `x` is `[m, n]` row-major; returns `(y, rstd)`.
pub fn rms_norm_forward(x: &Buffer, w: Option<&Buffer>, m: usize, n: usize, eps: f32, block_size: usize) -> Result<(Buffer, Buffer), KernelError> {
    check_shape(m, n)?;
    check_block(block_size)?;
    check_len("x", x, m * n)?;
    if let Some(w) = w {
        check_len("w", w, n)?;
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(KernelError::BadArgument { arg: "eps", expected: "a finite value > 0".into(), got: eps.to_string() });
    }
    let cfg = RmsNormFwdConfig::new(x.dtype(), w.map(Buffer::dtype), n, block_size);
    let kernel = rmsnorm::forward(&cfg)?;
    let mut y = Buffer::filled(x.dtype(), m * n, f64::NAN);
    let mut rstd = Buffer::filled(DType::F32, m, f64::NAN);
    if m == 0 {
        return Ok((y, rstd));
    }
    let mut args = vec![Arg::In(x)];
    args.extend(w.map(Arg::In));
    args.extend([
        Arg::Out(&mut y),
        Arg::Out(&mut rstd),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Float(eps as f64)),
    ]);
    interp::run(&kernel, [m as u32, 1, 1], &mut args)?;
    Ok((y, rstd))
}

/// RMSNorm backward on the interpreter with `programs` persistent programs: returns `(dx, dw)`
/// (`dw` only with a weight). `rstd` is what the forward returned.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    x: &Buffer,
    w: Option<&Buffer>,
    dy: &Buffer,
    rstd: &Buffer,
    m: usize,
    n: usize,
    block_size: usize,
    programs: usize,
) -> Result<(Buffer, Option<Buffer>), KernelError> {
    check_shape(m, n)?;
    check_block(block_size)?;
    check_len("x", x, m * n)?;
    check_len("dy", dy, m * n)?;
    check_len("rstd", rstd, m)?;
    if let Some(w) = w {
        check_len("w", w, n)?;
    }
    if dy.dtype() != x.dtype() {
        return Err(KernelError::BadArgument { arg: "dy", expected: format!("dtype {}", x.dtype()), got: dy.dtype().to_string() });
    }
    if rstd.dtype() != DType::F32 {
        return Err(KernelError::BadArgument { arg: "rstd", expected: "dtype f32".into(), got: rstd.dtype().to_string() });
    }
    if programs == 0 {
        return Err(KernelError::BadArgument { arg: "programs", expected: "at least 1".into(), got: "0".into() });
    }
    let cfg = RmsNormBwdConfig::new(x.dtype(), w.map(Buffer::dtype), n, block_size);
    let kernel = rmsnorm::backward(&cfg)?;
    let mut dx = Buffer::filled(x.dtype(), m * n, f64::NAN);
    let mut dw = w.map(|w| Buffer::filled(w.dtype(), n, f64::NAN));
    let programs = programs.min(m.max(1));
    let mut partial = Buffer::filled(DType::F32, programs * n, f64::NAN);
    let mut args = vec![Arg::In(x)];
    args.extend(w.map(Arg::In));
    args.extend([Arg::In(dy), Arg::In(rstd), Arg::Out(&mut dx)]);
    if w.is_some() {
        args.push(Arg::Out(&mut partial));
    }
    args.extend([
        Arg::Scalar(Lit::Int(m as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
        Arg::Scalar(Lit::Int(n as i64)),
    ]);
    interp::run(&kernel, [programs as u32, 1, 1], &mut args)?;
    if let Some(dw) = dw.as_mut() {
        let reduce = rmsnorm::dw_reduce(dw.dtype(), block_size)?;
        let grid = n.div_ceil(block_size) as u32;
        let mut args = [
            Arg::In(&partial),
            Arg::Out(dw),
            Arg::Scalar(Lit::Int(programs as i64)),
            Arg::Scalar(Lit::Int(n as i64)),
        ];
        interp::run(&reduce, [grid, 1, 1], &mut args)?;
    }
    Ok((dx, dw))
}
