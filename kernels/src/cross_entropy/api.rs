//! The typed cross-entropy entry points, over any [`Backend`]: every argument is validated before
//! anything is allocated or launched, so a bad call writes nothing.

use tritonite_lang::DType;

use super::plan::{backward_plan, forward_plan, BackwardShape, ForwardShape};
use super::tuning::Problem;
use super::{CrossEntropyConfig, CrossEntropySpec, GradMode, Reduction};
use crate::backend::{Backend, Binding};
use crate::error::KernelError;
use crate::plan::check_shape;
use crate::rowwise::check_scalar;
use crate::tensor::{check_no_overlap, check_vector, Operand, Rows, Storage};
use crate::tuning::config_for;

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Options of [`cross_entropy`]; the default ignores targets of −100 and takes the mean.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyOptions {
    /// Rows whose target equals this give loss 0 and gradient 0, and do not count in the mean.
    pub ignore_index: i64,
    /// Also return the mean or sum of the per-row losses (computed on the device).
    pub reduction: Reduction,
    /// Kernel config; default: the backend's tuned config for this problem (see
    /// [`crate::tuning::select`]), else [`super::heuristic`].
    pub config: Option<CrossEntropyConfig>,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions { ignore_index: DEFAULT_IGNORE_INDEX, reduction: Reduction::Mean, config: None }
    }
}

/// What [`cross_entropy`] returns, each a new buffer of f32.
#[derive(Debug)]
pub struct CrossEntropyOutput<B> {
    /// The loss of each row (`[m]`): `lse − logits[target]`, 0 for ignored rows, NaN for a target
    /// outside `[0, V)`.
    pub loss: B,
    /// `log Σ exp(logits)` of each row (`[m]`), saved for the backward.
    pub lse: B,
    /// With a reduction, `[mean or sum, count of rows not ignored]` (`[2]`); pass it to the
    /// backward of a mean as [`LossGrad::Mean`].
    pub reduced: Option<B>,
    /// The dtypes: pass them to [`cross_entropy_backward`].
    pub spec: CrossEntropySpec,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: CrossEntropyConfig,
}

/// Cross-entropy of the rows of `logits` (`[m, V]`, f32/f16/bf16, any row stride) against
/// `target` (`[m]`, i64 or i32).
///
/// ```no_run
/// # use tritonite_kernels::{cpu::{Cpu, HostBuffer}, tensor::Rows};
/// # use tritonite_kernels::cross_entropy::{cross_entropy, CrossEntropyOptions};
/// # use tritonite_lang::{Buffer, DType};
/// let logits = HostBuffer::new(Buffer::filled(DType::BF16, 4 * 1000, 0.5));
/// let target = HostBuffer::new(Buffer::from_f64(DType::I64, &[3.0, -100.0, 999.0, 0.0]));
/// let out = cross_entropy(&Cpu, Rows::new(&logits, &[4, 1000]), &target, &CrossEntropyOptions::default()).unwrap();
/// ```
pub fn cross_entropy<B: Backend>(
    backend: &B,
    logits: Rows<'_, B::Buffer>,
    target: &B::Buffer,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<B::Buffer>, KernelError> {
    let (m, v) = (logits.rows, logits.cols);
    check_shape(m, v)?;
    let spec = CrossEntropySpec { logits: logits.buf.dtype(), target: target.dtype() };
    spec.check()?;
    logits.check("logits", spec.logits, m, v)?;
    check_vector("target", target, spec.target, m)?;
    let cfg = config_for(backend, opts.config, &Problem::forward(spec, m, v))?;
    let shape = ForwardShape { m, v, stride: logits.row_stride };
    let plan = forward_plan(&spec, &shape, opts.ignore_index, opts.reduction, &cfg)?;
    let loss = backend.alloc_output(DType::F32, m)?;
    let lse = backend.alloc_output(DType::F32, m)?;
    let reduced = match opts.reduction {
        Reduction::None => None,
        _ => Some(backend.alloc_output(DType::F32, 2)?),
    };
    let mut bindings = vec![
        Binding { name: "logits", buf: logits.buf, offset: logits.offset },
        Binding::whole("target", target),
        Binding::whole("loss", &loss),
        Binding::whole("lse", &lse),
    ];
    bindings.extend(reduced.as_ref().map(|r| Binding::whole("reduced", r)));
    backend.run(&plan, &bindings)?;
    Ok(CrossEntropyOutput { loss, lse, reduced, spec, config: cfg })
}

/// The gradient arriving at the loss.
#[derive(Debug)]
pub enum LossGrad<'a, S> {
    /// Of each row's loss: an f32 buffer `[m]` (reduction `None`).
    PerRow(&'a S),
    /// One value for every row: the gradient of a sum, or of a mean whose count the caller knows
    /// (pass `grad / count`).
    Scalar(f32),
    /// The gradient of the mean: `grad / count`, with the count of rows not ignored read on the
    /// device from the forward's `reduced` output (no host sync).
    Mean {
        /// The gradient of the mean.
        grad: f32,
        /// The forward's [`CrossEntropyOutput::reduced`] (`[2]`, f32).
        reduced: &'a S,
    },
}

/// Where the backward writes `dlogits`.
#[derive(Debug)]
pub enum GradOut<'a, S> {
    /// A new contiguous `[m, V]` buffer of the logits' dtype.
    New,
    /// Over the logits themselves (no extra memory; the logits are gone afterwards).
    InPlace,
    /// Into a caller's `[m, V]` view of the logits' dtype (any row stride).
    Into(Rows<'a, S>),
}

/// Options of [`cross_entropy_backward`].
#[derive(Debug)]
pub struct CrossEntropyBackwardOptions<'a, S> {
    /// The forward's `ignore_index`.
    pub ignore_index: i64,
    /// Where `dlogits` goes; default: a new buffer.
    pub out: GradOut<'a, S>,
    /// Kernel config; default: the backend's tuned config for this problem, else
    /// [`super::heuristic_backward`].
    pub config: Option<CrossEntropyConfig>,
}

impl<S> Default for CrossEntropyBackwardOptions<'_, S> {
    fn default() -> Self {
        CrossEntropyBackwardOptions { ignore_index: DEFAULT_IGNORE_INDEX, out: GradOut::New, config: None }
    }
}

/// What [`cross_entropy_backward`] returns.
#[derive(Debug)]
pub struct CrossEntropyGrads<B> {
    /// The new `dlogits` buffer with [`GradOut::New`], else `None`.
    pub dlogits: Option<B>,
    /// The kernel config that ran (given, tuned or heuristic).
    pub config: CrossEntropyConfig,
}

/// Cross-entropy backward: `dlogits = (softmax(logits) − onehot(target)) · dloss_row`, 0 on ignored
/// rows, from the forward's `lse`. `logits` and `target` are the forward's (for
/// [`GradOut::InPlace`] the logits are overwritten).
pub fn cross_entropy_backward<B: Backend>(
    backend: &B,
    spec: &CrossEntropySpec,
    logits: Rows<'_, B::Buffer>,
    target: &B::Buffer,
    lse: &B::Buffer,
    grad: LossGrad<'_, B::Buffer>,
    opts: &CrossEntropyBackwardOptions<'_, B::Buffer>,
) -> Result<CrossEntropyGrads<B::Buffer>, KernelError> {
    let (m, v) = (logits.rows, logits.cols);
    check_shape(m, v)?;
    spec.check()?;
    logits.check("logits", spec.logits, m, v)?;
    check_vector("target", target, spec.target, m)?;
    check_vector("lse", lse, DType::F32, m)?;
    let mut inputs = vec![("target", Operand::Whole(target)), ("lse", Operand::Whole(lse))];
    let (mode, scalar) = match &grad {
        LossGrad::PerRow(d) => {
            check_vector("dloss", *d, DType::F32, m)?;
            inputs.push(("dloss", Operand::Whole(*d)));
            (GradMode::PerRow, 0.0)
        }
        LossGrad::Scalar(g) => {
            check_scalar("grad", *g, false)?;
            (GradMode::Scalar, *g)
        }
        LossGrad::Mean { grad, reduced } => {
            check_scalar("grad", *grad, false)?;
            check_vector("reduced", *reduced, DType::F32, 2)?;
            inputs.push(("reduced", Operand::Whole(*reduced)));
            (GradMode::Mean, *grad)
        }
    };
    let stride_dlogits = match &opts.out {
        GradOut::New => v,
        GradOut::InPlace => {
            check_no_overlap(&inputs, &[("logits", Operand::Rows(&logits))])?;
            logits.row_stride
        }
        GradOut::Into(o) => {
            o.check("out", spec.logits, m, v)?;
            inputs.push(("logits", Operand::Rows(&logits)));
            check_no_overlap(&inputs, &[("out", Operand::Rows(o))])?;
            o.row_stride
        }
    };
    let in_place = matches!(opts.out, GradOut::InPlace);
    let cfg = config_for(backend, opts.config, &Problem::backward(*spec, mode, in_place, m, v))?;
    let shape = BackwardShape { m, v, stride: logits.row_stride, stride_dlogits };
    let plan = backward_plan(spec, &shape, mode, in_place, opts.ignore_index, scalar, &cfg)?;
    let dlogits = match opts.out {
        GradOut::New => Some(backend.alloc_output(spec.logits, m * v)?),
        _ => None,
    };
    let mut bindings = vec![
        Binding { name: "logits", buf: logits.buf, offset: logits.offset },
        Binding::whole("target", target),
        Binding::whole("lse", lse),
    ];
    match grad {
        LossGrad::PerRow(d) => bindings.push(Binding::whole("dloss", d)),
        LossGrad::Mean { reduced, .. } => bindings.push(Binding::whole("reduced", reduced)),
        LossGrad::Scalar(_) => {}
    }
    match (&opts.out, &dlogits) {
        (GradOut::Into(o), _) => bindings.push(Binding { name: "dlogits", buf: o.buf, offset: o.offset }),
        (GradOut::New, Some(d)) => bindings.push(Binding::whole("dlogits", d)),
        _ => {}
    }
    backend.run(&plan, &bindings)?;
    Ok(CrossEntropyGrads { dlogits, config: cfg })
}
