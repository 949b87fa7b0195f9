//! The typed softmax entry points, over any [`Backend`]: every argument is validated before
//! anything is allocated or launched, so a bad call writes nothing.

use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::tuning::{Pass, Problem};
use super::{SoftmaxConfig, SoftmaxSpec};
use crate::backend::{Backend, Binding};
use crate::error::KernelError;
use crate::plan::check_shape;
use crate::tensor::{check_no_overlap, Operand, Rows};
use crate::tuning::config_for;

/// Options of [`softmax`]; the default writes a new `y` in `x`'s dtype with the tuned or heuristic
/// config.
#[derive(Debug)]
pub struct SoftmaxOptions<'a, S> {
    /// dtype of `y`; default: `out`'s dtype when given, else `x`'s.
    pub out_dtype: Option<DType>,
    /// Write `y` here (same shape as `x`, any row stride) instead of a new buffer.
    pub out: Option<Rows<'a, S>>,
    /// Kernel config; default: the backend's tuned config for this problem (see
    /// [`crate::tuning::select`]), else [`super::heuristic`].
    pub config: Option<SoftmaxConfig>,
}

impl<S> Default for SoftmaxOptions<'_, S> {
    fn default() -> Self {
        SoftmaxOptions { out_dtype: None, out: None, config: None }
    }
}

/// What [`softmax`] returns.
#[derive(Debug)]
pub struct SoftmaxOutput<B> {
    /// The softmax of each row (a new contiguous `[m, n]` buffer), or `None` when written into
    /// [`SoftmaxOptions::out`].
    pub y: Option<B>,
    /// What was computed: pass it to [`softmax_backward`].
    pub spec: SoftmaxSpec,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: SoftmaxConfig,
}

/// Softmax along the rows of `x` (f32, f16 or bf16), computed in f32.
///
/// ```no_run
/// # use tritonite_kernels::{cpu::{Cpu, HostBuffer}, tensor::Rows, softmax::{softmax, SoftmaxOptions}};
/// # use tritonite_lang::{Buffer, DType};
/// let x = HostBuffer::new(Buffer::filled(DType::F16, 4 * 1000, 1.0));
/// let out = softmax(&Cpu, Rows::new(&x, &[4, 1000]), &SoftmaxOptions::default()).unwrap();
/// ```
pub fn softmax<B: Backend>(
    backend: &B,
    x: Rows<'_, B::Buffer>,
    opts: &SoftmaxOptions<'_, B::Buffer>,
) -> Result<SoftmaxOutput<B::Buffer>, KernelError> {
    let (m, n) = (x.rows, x.cols);
    check_shape(m, n)?;
    let out = match (opts.out_dtype, opts.out.map(|o| crate::tensor::Storage::dtype(o.buf))) {
        (Some(a), Some(b)) if a != b => {
            return Err(KernelError::BadArgument {
                arg: "out",
                expected: format!("dtype {a} (out_dtype)"),
                got: format!("dtype {b}"),
            })
        }
        (a, b) => a.or(b).unwrap_or(crate::tensor::Storage::dtype(x.buf)),
    };
    let spec = SoftmaxSpec { x: crate::tensor::Storage::dtype(x.buf), out };
    spec.check()?;
    x.check("x", spec.x, m, n)?;
    if let Some(o) = &opts.out {
        o.check("out", spec.out, m, n)?;
        check_no_overlap(&[("x", Operand::Rows(&x))], &[("out", Operand::Rows(o))])?;
    }
    let cfg = config_for(backend, opts.config, &Problem { pass: Pass::Forward, spec, m, n })?;
    let shape = ForwardShape { m, n, stride_x: x.row_stride, stride_y: opts.out.map_or(n, |o| o.row_stride) };
    let plan = forward_plan(&spec, &shape, &cfg)?;
    let y_new = match opts.out {
        Some(_) => None,
        None => Some(backend.alloc_output(spec.out, m * n)?),
    };
    let y_binding = match (&opts.out, &y_new) {
        (Some(o), _) => Binding { name: "y", buf: o.buf, offset: o.offset },
        (None, Some(y)) => Binding::whole("y", y),
        (None, None) => unreachable!("y is allocated when no out is given"),
    };
    backend.run(&plan, &[Binding { name: "x", buf: x.buf, offset: x.offset }, y_binding])?;
    Ok(SoftmaxOutput { y: y_new, spec, config: cfg })
}

/// Options of [`softmax_backward`].
#[derive(Debug)]
pub struct SoftmaxBackwardOptions<'a, S> {
    /// Write `dx` here (`[m, n]`, `x`'s dtype, any row stride) instead of a new buffer.
    pub dx_out: Option<Rows<'a, S>>,
    /// Kernel config; default: the backend's tuned config for this problem, else
    /// [`super::heuristic_backward`].
    pub config: Option<SoftmaxConfig>,
}

impl<S> Default for SoftmaxBackwardOptions<'_, S> {
    fn default() -> Self {
        SoftmaxBackwardOptions { dx_out: None, config: None }
    }
}

/// What [`softmax_backward`] returns.
#[derive(Debug)]
pub struct SoftmaxGrads<B> {
    /// Gradient of `x` (a new contiguous `[m, n]` buffer of `x`'s dtype), or `None` when written
    /// into [`SoftmaxBackwardOptions::dx_out`].
    pub dx: Option<B>,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: SoftmaxConfig,
}

/// Softmax backward of a forward that computed `spec`: `dx = y · (dy − Σ y · dy)` per row, from the
/// forward's output `y` and its gradient `dy` (both `y`'s dtype).
pub fn softmax_backward<B: Backend>(
    backend: &B,
    spec: &SoftmaxSpec,
    y: Rows<'_, B::Buffer>,
    dy: Rows<'_, B::Buffer>,
    opts: &SoftmaxBackwardOptions<'_, B::Buffer>,
) -> Result<SoftmaxGrads<B::Buffer>, KernelError> {
    let (m, n) = (y.rows, y.cols);
    check_shape(m, n)?;
    spec.check()?;
    y.check("y", spec.out, m, n)?;
    dy.check("dy", spec.out, m, n)?;
    if let Some(o) = &opts.dx_out {
        o.check("dx_out", spec.x, m, n)?;
        let inputs = [("y", Operand::Rows(&y)), ("dy", Operand::Rows(&dy))];
        check_no_overlap(&inputs, &[("dx_out", Operand::Rows(o))])?;
    }
    let cfg = config_for(backend, opts.config, &Problem { pass: Pass::Backward, spec: *spec, m, n })?;
    let shape = BackwardShape {
        m,
        n,
        stride_y: y.row_stride,
        stride_dy: dy.row_stride,
        stride_dx: opts.dx_out.map_or(n, |o| o.row_stride),
    };
    let plan = backward_plan(spec, &shape, &cfg)?;
    let dx = if opts.dx_out.is_some() { None } else { Some(backend.alloc_output(spec.x, m * n)?) };
    let dx_binding = match (&opts.dx_out, &dx) {
        (Some(o), _) => Binding { name: "dx", buf: o.buf, offset: o.offset },
        (None, Some(d)) => Binding::whole("dx", d),
        (None, None) => unreachable!("dx is allocated when no dx_out is given"),
    };
    let bindings = [
        Binding { name: "y", buf: y.buf, offset: y.offset },
        Binding { name: "dy", buf: dy.buf, offset: dy.offset },
        dx_binding,
    ];
    backend.run(&plan, &bindings)?;
    Ok(SoftmaxGrads { dx, config: cfg })
}
