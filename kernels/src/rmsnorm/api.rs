//! The typed RMSNorm entry points, over any [`Backend`]: every argument is validated before
//! anything is allocated or launched, so a bad call writes nothing.

use std::sync::OnceLock;

use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::tuning::{Pass, Problem};
use super::{RmsNormConfig, RmsNormSpec};
use crate::backend::{alloc_scratch, Backend, Binding};
use crate::error::KernelError;
use crate::plan::{check_shape, PlanMemo};
use crate::rowwise::{check_presence, check_scalar};
use crate::tensor::{check_no_overlap, check_vector, Operand, Rows, Storage};
use crate::tuning::config_for;

/// What a forward's plan depends on: spec, shape and strides, `eps` and `offset` (bits), config.
type ForwardCall = (RmsNormSpec, ForwardShape, u32, u32, RmsNormConfig);

/// What a backward's plan depends on: spec, `dresidual_out` given, shape and strides, `offset`
/// (bits), config.
type BackwardCall = (RmsNormSpec, bool, BackwardShape, u32, RmsNormConfig);

/// Options of [`rms_norm`]; `RmsNormOptions::default()` is plain RMSNorm with `eps = 1e-6`.
#[derive(Debug)]
pub struct RmsNormOptions<'a, S> {
    /// Added to the mean square before the square root; finite and > 0.
    pub eps: f32,
    /// Gemma-style offset: `y = x̂ · (w + offset)`, added in f32 (0 for plain RMSNorm). Needs a
    /// weight to apply to.
    pub offset: f32,
    /// Added after the scale: `y = x̂ · w + bias`; `n` elements, `x`'s dtype or f32.
    pub bias: Option<&'a S>,
    /// Added to `x` before normalizing (`h = x + residual`, in f32); same shape as `x`.
    pub residual: Option<Rows<'a, S>>,
    /// dtype of `residual_out` (`h`); default: the residual's dtype. Setting it without a residual
    /// returns `x` itself in this dtype (a first layer starting an f32 residual stream).
    pub residual_out_dtype: Option<DType>,
    /// dtype of `y`; default: `out`'s dtype when given, else `x`'s.
    pub out_dtype: Option<DType>,
    /// Write `y` here (same shape as `x`, any row stride) instead of a new buffer.
    pub out: Option<Rows<'a, S>>,
    /// Kernel config; default: the backend's tuned config for this problem (see
    /// [`super::tuning::select`]), else [`RmsNormConfig::heuristic`].
    pub config: Option<RmsNormConfig>,
}

impl<S> Default for RmsNormOptions<'_, S> {
    fn default() -> Self {
        RmsNormOptions {
            eps: 1e-6,
            offset: 0.0,
            bias: None,
            residual: None,
            residual_out_dtype: None,
            out_dtype: None,
            out: None,
            config: None,
        }
    }
}

/// What [`rms_norm`] returns. New buffers are contiguous `[m, n]` (`rstd`: `[m]`, f32).
#[derive(Debug)]
pub struct RmsNormOutput<B> {
    /// The normalized rows, or `None` when written into [`RmsNormOptions::out`].
    pub y: Option<B>,
    /// `1 / sqrt(mean(h²) + eps)` per row, saved for the backward.
    pub rstd: B,
    /// `h = x + residual`, when a residual was added or `residual_out_dtype` was set.
    pub residual_out: Option<B>,
    /// What was computed: pass it to [`rms_norm_backward`].
    pub spec: RmsNormSpec,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: RmsNormConfig,
}

/// RMSNorm forward of the rows of `x`, with an optional weight (`n` elements, `x`'s dtype or f32).
///
/// ```no_run
/// # use tritonite_kernels::{cpu::{Cpu, HostBuffer}, tensor::Rows, rmsnorm::{rms_norm, RmsNormOptions}};
/// # use tritonite_lang::{Buffer, DType};
/// let x = HostBuffer::new(Buffer::filled(DType::BF16, 4 * 64, 1.0));
/// let w = HostBuffer::new(Buffer::filled(DType::F32, 64, 1.0));
/// let out = rms_norm(&Cpu, Rows::new(&x, &[4, 64]), Some(&w), &RmsNormOptions::default()).unwrap();
/// ```
pub fn rms_norm<B: Backend>(
    backend: &B,
    x: Rows<'_, B::Buffer>,
    weight: Option<&B::Buffer>,
    opts: &RmsNormOptions<'_, B::Buffer>,
) -> Result<RmsNormOutput<B::Buffer>, KernelError> {
    let (m, n) = (x.rows, x.cols);
    check_shape(m, n)?;
    let residual = opts.residual.map(|r| r.buf.dtype());
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
    let spec = RmsNormSpec {
        x: x.buf.dtype(),
        weight: weight.map(Storage::dtype),
        bias: opts.bias.map(Storage::dtype),
        residual,
        residual_out: opts.residual_out_dtype.or(residual),
        out,
    };
    spec.check()?;
    check_scalar("eps", opts.eps, true)?;
    check_scalar("offset", opts.offset, false)?;
    if opts.offset != 0.0 && weight.is_none() {
        return Err(KernelError::BadArgument {
            arg: "offset",
            expected: "0 without a weight (it offsets the weight)".into(),
            got: opts.offset.to_string(),
        });
    }
    x.check("x", spec.x, m, n)?;
    if let Some(r) = &opts.residual {
        r.check("residual", r.buf.dtype(), m, n)?;
    }
    if let Some(w) = weight {
        check_vector("weight", w, w.dtype(), n)?;
    }
    if let Some(b) = opts.bias {
        check_vector("bias", b, b.dtype(), n)?;
    }
    // Sized for every optional operand up front: a call allocates each list once.
    let mut inputs = Vec::with_capacity(4);
    inputs.push(("x", Operand::Rows(&x)));
    inputs.extend(opts.residual.as_ref().map(|r| ("residual", Operand::Rows(r))));
    inputs.extend(weight.map(|w| ("weight", Operand::Whole(w))));
    inputs.extend(opts.bias.map(|b| ("bias", Operand::Whole(b))));
    if let Some(o) = &opts.out {
        o.check("out", spec.out, m, n)?;
        check_no_overlap(&inputs, &[("out", Operand::Rows(o))])?;
    }
    let problem = Problem { pass: Pass::Forward, spec, dresidual_out: false, m, n };
    let cfg = config_for(backend, opts.config, &problem)?;
    let shape = ForwardShape {
        m,
        n,
        stride_x: x.row_stride,
        stride_residual: opts.residual.map_or(n, |r| r.row_stride),
        stride_y: opts.out.map_or(n, |o| o.row_stride),
        stride_residual_out: n,
    };
    static PLANS: OnceLock<PlanMemo<ForwardCall>> = OnceLock::new();
    let key = (spec, shape, opts.eps.to_bits(), opts.offset.to_bits(), cfg);
    let plan =
        PLANS.get_or_init(PlanMemo::new).get(key, || forward_plan(&spec, &shape, opts.eps, opts.offset, &cfg))?;

    let y_new = match opts.out {
        Some(_) => None,
        None => Some(backend.alloc_output(spec.out, m * n)?),
    };
    let rstd = backend.alloc_output(DType::F32, m)?;
    let residual_out = spec.residual_out.map(|d| backend.alloc_output(d, m * n)).transpose()?;
    let mut bindings = Vec::with_capacity(7);
    bindings.push(Binding { name: "x", buf: x.buf, offset: x.offset });
    if let Some(r) = &opts.residual {
        bindings.push(Binding { name: "residual", buf: r.buf, offset: r.offset });
    }
    bindings.extend(weight.map(|w| Binding::whole("w", w)));
    bindings.extend(opts.bias.map(|b| Binding::whole("bias", b)));
    bindings.push(match (&opts.out, &y_new) {
        (Some(o), _) => Binding { name: "y", buf: o.buf, offset: o.offset },
        (None, Some(y)) => Binding::whole("y", y),
        (None, None) => unreachable!("y is allocated when no out is given"),
    });
    bindings.extend(residual_out.as_ref().map(|r| Binding::whole("residual_out", r)));
    bindings.push(Binding::whole("rstd", &rstd));
    backend.run(&plan, &bindings)?;
    Ok(RmsNormOutput { y: y_new, rstd, residual_out, spec, config: cfg })
}

/// Options of [`rms_norm_backward`].
#[derive(Debug)]
pub struct RmsNormBackwardOptions<'a, S> {
    /// The forward's Gemma offset.
    pub offset: f32,
    /// The gradient arriving at `residual_out` (the residual stream), added to `dx`; needs a
    /// forward that returned `residual_out`.
    pub dresidual_out: Option<Rows<'a, S>>,
    /// Write `dx` here (`[m, n]`, `x`'s dtype, any row stride) instead of a new buffer.
    pub dx_out: Option<Rows<'a, S>>,
    /// Write the weight's gradient here (`[n]`, the weight's dtype) instead of a new buffer.
    pub dweight_out: Option<&'a S>,
    /// Kernel config; default: the backend's tuned config for this problem, else
    /// [`RmsNormConfig::heuristic_backward`].
    pub config: Option<RmsNormConfig>,
}

impl<S> Default for RmsNormBackwardOptions<'_, S> {
    fn default() -> Self {
        RmsNormBackwardOptions { offset: 0.0, dresidual_out: None, dx_out: None, dweight_out: None, config: None }
    }
}

/// What [`rms_norm_backward`] returns, each a new contiguous buffer.
#[derive(Debug)]
pub struct RmsNormGrads<B> {
    /// Gradient of `x` (`[m, n]`, `x`'s dtype), or `None` when written into
    /// [`RmsNormBackwardOptions::dx_out`].
    pub dx: Option<B>,
    /// Gradient of the weight (`[n]`, its dtype), with a weight, unless written into
    /// [`RmsNormBackwardOptions::dweight_out`].
    pub dweight: Option<B>,
    /// Gradient of the bias (`[n]`, its dtype), with a bias.
    pub dbias: Option<B>,
    /// Gradient of the residual (`[m, n]`, its dtype; equal to `dx`), with a residual.
    pub dresidual: Option<B>,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: RmsNormConfig,
}

/// RMSNorm backward of a forward that computed `spec`. `saved` is what the forward normalized: `x`,
/// or `residual_out` when the spec has one; `rstd` is the forward's; `dy` has `y`'s dtype. `dw`
/// and `dbias` are summed over rows in a fixed order (bit-identical run to run).
pub fn rms_norm_backward<B: Backend>(
    backend: &B,
    spec: &RmsNormSpec,
    saved: Rows<'_, B::Buffer>,
    weight: Option<&B::Buffer>,
    dy: Rows<'_, B::Buffer>,
    rstd: &B::Buffer,
    opts: &RmsNormBackwardOptions<'_, B::Buffer>,
) -> Result<RmsNormGrads<B::Buffer>, KernelError> {
    let (m, n) = (saved.rows, saved.cols);
    check_shape(m, n)?;
    spec.check()?;
    check_scalar("offset", opts.offset, false)?;
    let saved_arg = if spec.residual_out.is_some() { "saved (residual_out)" } else { "saved (x)" };
    saved.check(saved_arg, spec.saved(), m, n)?;
    check_presence("weight", spec.weight, weight.map(Storage::dtype))?;
    if let (Some(w), Some(d)) = (weight, spec.weight) {
        check_vector("weight", w, d, n)?;
    }
    dy.check("dy", spec.out, m, n)?;
    check_vector("rstd", rstd, DType::F32, m)?;
    if let Some(d) = &opts.dresidual_out {
        if spec.residual_out.is_none() {
            return Err(KernelError::BadArgument {
                arg: "dresidual_out",
                expected: "nothing (the forward returned no residual_out)".into(),
                got: "a gradient".into(),
            });
        }
        d.check("dresidual_out", spec.saved(), m, n)?;
    }
    if let Some(o) = &opts.dx_out {
        o.check("dx_out", spec.x, m, n)?;
    }
    if let Some(o) = opts.dweight_out {
        let Some(d) = spec.weight else {
            return Err(KernelError::BadArgument {
                arg: "dweight_out",
                expected: "nothing (the forward had no weight)".into(),
                got: format!("a buffer of {}", o.dtype()),
            });
        };
        check_vector("dweight_out", o, d, n)?;
    }
    let mut inputs = Vec::with_capacity(5);
    inputs.extend([("saved", Operand::Rows(&saved)), ("dy", Operand::Rows(&dy)), ("rstd", Operand::Whole(rstd))]);
    inputs.extend(weight.map(|w| ("weight", Operand::Whole(w))));
    inputs.extend(opts.dresidual_out.as_ref().map(|d| ("dresidual_out", Operand::Rows(d))));
    let mut outputs = vec![];
    outputs.extend(opts.dx_out.as_ref().map(|o| ("dx_out", Operand::Rows(o))));
    outputs.extend(opts.dweight_out.map(|o| ("dweight_out", Operand::Whole(o))));
    check_no_overlap(&inputs, &outputs)?;
    let problem = Problem { pass: Pass::Backward, spec: *spec, dresidual_out: opts.dresidual_out.is_some(), m, n };
    let cfg = config_for(backend, opts.config, &problem)?;
    let shape = BackwardShape {
        m,
        n,
        stride_x: saved.row_stride,
        stride_dy: dy.row_stride,
        stride_dresidual_out: opts.dresidual_out.map_or(n, |d| d.row_stride),
        stride_dx: opts.dx_out.map_or(n, |o| o.row_stride),
        stride_dresidual: n,
    };
    static PLANS: OnceLock<PlanMemo<BackwardCall>> = OnceLock::new();
    let dro = opts.dresidual_out.is_some();
    let key = (*spec, dro, shape, opts.offset.to_bits(), cfg);
    let plan = PLANS.get_or_init(PlanMemo::new).get(key, || backward_plan(spec, dro, &shape, opts.offset, &cfg))?;

    let dx = if opts.dx_out.is_some() { None } else { Some(backend.alloc_output(spec.x, m * n)?) };
    let dresidual = spec.residual.map(|d| backend.alloc_output(d, m * n)).transpose()?;
    let dweight = match (spec.weight, opts.dweight_out) {
        (Some(d), None) => Some(backend.alloc_output(d, n)?),
        _ => None,
    };
    let dbias = spec.bias.map(|d| backend.alloc_output(d, n)).transpose()?;
    let scratch = alloc_scratch(backend, &plan)?;
    let mut bindings = Vec::with_capacity(9 + scratch.len());
    bindings.extend([
        Binding { name: "x", buf: saved.buf, offset: saved.offset },
        Binding { name: "dy", buf: dy.buf, offset: dy.offset },
        Binding::whole("rstd", rstd),
    ]);
    bindings.push(match (&opts.dx_out, &dx) {
        (Some(o), _) => Binding { name: "dx", buf: o.buf, offset: o.offset },
        (None, Some(d)) => Binding::whole("dx", d),
        (None, None) => unreachable!("dx is allocated when no dx_out is given"),
    });
    bindings.extend(weight.map(|w| Binding::whole("w", w)));
    if let Some(d) = &opts.dresidual_out {
        bindings.push(Binding { name: "dresidual_out", buf: d.buf, offset: d.offset });
    }
    bindings.extend(dresidual.as_ref().map(|d| Binding::whole("dresidual", d)));
    bindings.extend(opts.dweight_out.or(dweight.as_ref()).map(|d| Binding::whole("dw", d)));
    bindings.extend(dbias.as_ref().map(|d| Binding::whole("dbias", d)));
    bindings.extend(scratch.iter().map(|(name, b)| Binding::whole(name, b)));
    backend.run(&plan, &bindings)?;
    Ok(RmsNormGrads { dx, dweight, dbias, dresidual, config: cfg })
}
