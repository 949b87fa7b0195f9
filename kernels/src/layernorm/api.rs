//! The typed LayerNorm entry points, over any [`Backend`]: every argument is validated before
//! anything is allocated or launched, so a bad call writes nothing.

use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::tuning::{Pass, Problem};
use super::{LayerNormConfig, LayerNormSpec};
use crate::backend::{alloc_scratch, Backend, Binding};
use crate::error::KernelError;
use crate::plan::check_shape;
use crate::rowwise::{check_presence, check_scalar};
use crate::tensor::{check_no_overlap, check_vector, Operand, Rows, Storage};
use crate::tuning::config_for;

/// Options of [`layer_norm`]; `LayerNormOptions::default()` is plain LayerNorm with `eps = 1e-5`.
#[derive(Debug)]
pub struct LayerNormOptions<'a, S> {
    /// Added to the variance before the square root; finite and > 0.
    pub eps: f32,
    /// Added after the scale: `y = x̂ · w + bias`; `n` elements, `x`'s dtype or f32.
    pub bias: Option<&'a S>,
    /// dtype of `y`; default: `out`'s dtype when given, else `x`'s.
    pub out_dtype: Option<DType>,
    /// Write `y` here (same shape as `x`, any row stride) instead of a new buffer.
    pub out: Option<Rows<'a, S>>,
    /// Kernel config; default: the backend's tuned config for this problem (see
    /// [`crate::tuning::select`]), else [`super::heuristic`].
    pub config: Option<LayerNormConfig>,
}

impl<S> Default for LayerNormOptions<'_, S> {
    fn default() -> Self {
        LayerNormOptions { eps: 1e-5, bias: None, out_dtype: None, out: None, config: None }
    }
}

/// What [`layer_norm`] returns. New buffers are contiguous (`y`: `[m, n]`; `mean`, `rstd`: `[m]`,
/// f32).
#[derive(Debug)]
pub struct LayerNormOutput<B> {
    /// The normalized rows, or `None` when written into [`LayerNormOptions::out`].
    pub y: Option<B>,
    /// The mean of each row, saved for the backward.
    pub mean: B,
    /// `1 / sqrt(var + eps)` per row (biased variance), saved for the backward.
    pub rstd: B,
    /// What was computed: pass it to [`layer_norm_backward`].
    pub spec: LayerNormSpec,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: LayerNormConfig,
}

/// LayerNorm forward of the rows of `x` (f32, f16 or bf16), with an optional weight (`n`
/// elements, `x`'s dtype or f32).
///
/// ```no_run
/// # use tritonite_kernels::{cpu::{Cpu, HostBuffer}, tensor::Rows, layernorm::{layer_norm, LayerNormOptions}};
/// # use tritonite_lang::{Buffer, DType};
/// let x = HostBuffer::new(Buffer::filled(DType::BF16, 4 * 64, 1.0));
/// let w = HostBuffer::new(Buffer::filled(DType::F32, 64, 1.0));
/// let out = layer_norm(&Cpu, Rows::new(&x, &[4, 64]), Some(&w), &LayerNormOptions::default()).unwrap();
/// ```
pub fn layer_norm<B: Backend>(
    backend: &B,
    x: Rows<'_, B::Buffer>,
    weight: Option<&B::Buffer>,
    opts: &LayerNormOptions<'_, B::Buffer>,
) -> Result<LayerNormOutput<B::Buffer>, KernelError> {
    let (m, n) = (x.rows, x.cols);
    check_shape(m, n)?;
    let out = match (opts.out_dtype, opts.out.map(|o| o.buf.dtype())) {
        (Some(a), Some(b)) if a != b => {
            return Err(KernelError::BadArgument {
                arg: "out",
                expected: format!("dtype {a} (out_dtype)"),
                got: format!("dtype {b}"),
            })
        }
        (a, b) => a.or(b).unwrap_or(x.buf.dtype()),
    };
    let spec = LayerNormSpec {
        x: x.buf.dtype(),
        weight: weight.map(Storage::dtype),
        bias: opts.bias.map(Storage::dtype),
        out,
    };
    spec.check()?;
    check_scalar("eps", opts.eps, true)?;
    x.check("x", spec.x, m, n)?;
    if let Some(w) = weight {
        check_vector("weight", w, w.dtype(), n)?;
    }
    if let Some(b) = opts.bias {
        check_vector("bias", b, b.dtype(), n)?;
    }
    let mut inputs = vec![("x", Operand::Rows(&x))];
    inputs.extend(weight.map(|w| ("weight", Operand::Whole(w))));
    inputs.extend(opts.bias.map(|b| ("bias", Operand::Whole(b))));
    if let Some(o) = &opts.out {
        o.check("out", spec.out, m, n)?;
        check_no_overlap(&inputs, &[("out", Operand::Rows(o))])?;
    }
    let cfg = config_for(backend, opts.config, &Problem { pass: Pass::Forward, spec, m, n })?;
    let shape = ForwardShape { m, n, stride_x: x.row_stride, stride_y: opts.out.map_or(n, |o| o.row_stride) };
    let plan = forward_plan(&spec, &shape, opts.eps, &cfg)?;

    let y_new = match opts.out {
        Some(_) => None,
        None => Some(backend.alloc_output(spec.out, m * n)?),
    };
    let mean = backend.alloc_output(DType::F32, m)?;
    let rstd = backend.alloc_output(DType::F32, m)?;
    let mut bindings = vec![Binding { name: "x", buf: x.buf, offset: x.offset }];
    bindings.extend(weight.map(|w| Binding::whole("w", w)));
    bindings.extend(opts.bias.map(|b| Binding::whole("bias", b)));
    bindings.push(match (&opts.out, &y_new) {
        (Some(o), _) => Binding { name: "y", buf: o.buf, offset: o.offset },
        (None, Some(y)) => Binding::whole("y", y),
        (None, None) => unreachable!("y is allocated when no out is given"),
    });
    bindings.push(Binding::whole("mean", &mean));
    bindings.push(Binding::whole("rstd", &rstd));
    backend.run(&plan, &bindings)?;
    Ok(LayerNormOutput { y: y_new, mean, rstd, spec, config: cfg })
}

/// Options of [`layer_norm_backward`].
#[derive(Debug)]
pub struct LayerNormBackwardOptions<'a, S> {
    /// Write `dx` here (`[m, n]`, `x`'s dtype, any row stride) instead of a new buffer.
    pub dx_out: Option<Rows<'a, S>>,
    /// Kernel config; default: the backend's tuned config for this problem, else
    /// [`super::heuristic_backward`].
    pub config: Option<LayerNormConfig>,
}

impl<S> Default for LayerNormBackwardOptions<'_, S> {
    fn default() -> Self {
        LayerNormBackwardOptions { dx_out: None, config: None }
    }
}

/// What [`layer_norm_backward`] returns, each a new contiguous buffer.
#[derive(Debug)]
pub struct LayerNormGrads<B> {
    /// Gradient of `x` (`[m, n]`, `x`'s dtype), or `None` when written into
    /// [`LayerNormBackwardOptions::dx_out`].
    pub dx: Option<B>,
    /// Gradient of the weight (`[n]`, its dtype), with a weight.
    pub dweight: Option<B>,
    /// Gradient of the bias (`[n]`, its dtype), with a bias.
    pub dbias: Option<B>,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: LayerNormConfig,
}

/// LayerNorm backward of a forward that computed `spec` on `x`, with that forward's `mean` and
/// `rstd`; `dy` has `y`'s dtype. `dw` and `dbias` are summed over rows in a fixed order
/// (bit-identical run to run).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<B: Backend>(
    backend: &B,
    spec: &LayerNormSpec,
    x: Rows<'_, B::Buffer>,
    weight: Option<&B::Buffer>,
    dy: Rows<'_, B::Buffer>,
    mean: &B::Buffer,
    rstd: &B::Buffer,
    opts: &LayerNormBackwardOptions<'_, B::Buffer>,
) -> Result<LayerNormGrads<B::Buffer>, KernelError> {
    let (m, n) = (x.rows, x.cols);
    check_shape(m, n)?;
    spec.check()?;
    x.check("x", spec.x, m, n)?;
    check_presence("weight", spec.weight, weight.map(Storage::dtype))?;
    if let (Some(w), Some(d)) = (weight, spec.weight) {
        check_vector("weight", w, d, n)?;
    }
    dy.check("dy", spec.out, m, n)?;
    check_vector("mean", mean, DType::F32, m)?;
    check_vector("rstd", rstd, DType::F32, m)?;
    let mut inputs = vec![
        ("x", Operand::Rows(&x)),
        ("dy", Operand::Rows(&dy)),
        ("mean", Operand::Whole(mean)),
        ("rstd", Operand::Whole(rstd)),
    ];
    inputs.extend(weight.map(|w| ("weight", Operand::Whole(w))));
    if let Some(o) = &opts.dx_out {
        o.check("dx_out", spec.x, m, n)?;
        check_no_overlap(&inputs, &[("dx_out", Operand::Rows(o))])?;
    }
    let cfg = config_for(backend, opts.config, &Problem { pass: Pass::Backward, spec: *spec, m, n })?;
    let shape = BackwardShape {
        m,
        n,
        stride_x: x.row_stride,
        stride_dy: dy.row_stride,
        stride_dx: opts.dx_out.map_or(n, |o| o.row_stride),
    };
    let plan = backward_plan(spec, &shape, &cfg)?;

    let dx = if opts.dx_out.is_some() { None } else { Some(backend.alloc_output(spec.x, m * n)?) };
    let dweight = spec.weight.map(|d| backend.alloc_output(d, n)).transpose()?;
    let dbias = spec.bias.map(|d| backend.alloc_output(d, n)).transpose()?;
    let scratch = alloc_scratch(backend, &plan)?;
    let mut bindings = vec![
        Binding { name: "x", buf: x.buf, offset: x.offset },
        Binding { name: "dy", buf: dy.buf, offset: dy.offset },
        Binding::whole("mean", mean),
        Binding::whole("rstd", rstd),
    ];
    bindings.push(match (&opts.dx_out, &dx) {
        (Some(o), _) => Binding { name: "dx", buf: o.buf, offset: o.offset },
        (None, Some(d)) => Binding::whole("dx", d),
        (None, None) => unreachable!("dx is allocated when no dx_out is given"),
    });
    bindings.extend(weight.map(|w| Binding::whole("w", w)));
    bindings.extend(dweight.as_ref().map(|d| Binding::whole("dw", d)));
    bindings.extend(dbias.as_ref().map(|d| Binding::whole("dbias", d)));
    bindings.extend(scratch.iter().map(|(name, b)| Binding::whole(name, b)));
    backend.run(&plan, &bindings)?;
    Ok(LayerNormGrads { dx, dweight, dbias, config: cfg })
}
