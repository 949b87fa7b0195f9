//! burn 0.21 adapter (feature `burn`): RMSNorm with our CUDA forward **and backward** for
//! `Autodiff<Cuda<F>>` (burn's CUDA backend, `burn::backend::Cuda`, without fusion).
//!
//! burn's own `RmsNorm` is composed of unfused primitives. Swap one line:
//!
//! ```ignore
//! let norm = burn::nn::RmsNormConfig::new(d).init(&device);                     // before
//! let norm = tritonite_autograd::burn::RmsNormConfig::new(d).init(&device);     // after
//! ```
//!
//! burn does not expose the CUDA stream its work is queued on, so each call waits for burn's
//! queued work, runs our kernels on a stream of ours, and waits for them before burn goes on: two
//! host synchronizations per call, correct but not overlapped with burn's own work.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_cubecl::cubecl::server::Handle;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, FloatElement, IntElement};
use cubecl_cuda::CudaRuntime;
use tritonite_kernels::gpu::GpuExecutor;
use tritonite_kernels::tensor::Rows;
use tritonite_lang::DType;
use tritonite_runtime::DeviceBuffer;

use crate::error::AutogradError;
use crate::op::{self, rows_of, Saved};

/// burn's CUDA backend (what `burn::backend::Cuda<F, I>` is without fusion).
pub type Cuda<F = f32, I = i32, BT = u8> = CubeBackend<CudaRuntime, F, I, BT>;

/// Backends that run tritonite's RMSNorm: burn's CUDA backend (forward only: inference) and
/// `Autodiff` over it (forward and backward).
pub trait RmsNormBackend: Backend {
    /// RMSNorm of the last dimension of `x`, scaled by `weight` (`[n]`).
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> Result<FloatTensor<Self>, AutogradError>;
}

/// RMSNorm of the last dimension of `x`, scaled by `weight` (`[n]`): `x / sqrt(mean(x²) + eps) ·
/// weight`; differentiable in `x` and `weight` under `Autodiff`.
pub fn rms_norm<B: RmsNormBackend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f32,
) -> Result<Tensor<B, D>, AutogradError> {
    let y = B::rms_norm(x.into_primitive().tensor(), weight.into_primitive().tensor(), eps)?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// A drop-in for `burn::nn::RmsNorm` (same fields and formula) that runs our kernels.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// The learnable scale, `[d_model]`, initialised to 1.
    pub gamma: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub epsilon: f64,
}

/// Like `burn::nn::RmsNormConfig`.
#[derive(Clone, Debug)]
pub struct RmsNormConfig {
    /// Size of the normalized (last) dimension.
    pub d_model: usize,
    /// Added to the mean square; default 1e-5 (burn's).
    pub epsilon: f64,
}

impl RmsNormConfig {
    /// A config for rows of `d_model`.
    pub fn new(d_model: usize) -> RmsNormConfig {
        RmsNormConfig { d_model, epsilon: 1e-5 }
    }

    /// With another epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> RmsNormConfig {
        self.epsilon = epsilon;
        self
    }

    /// The module, its weight all ones on `device`.
    pub fn init<B: Backend>(&self, device: &burn::tensor::Device<B>) -> RmsNorm<B> {
        RmsNorm { gamma: Param::from_tensor(Tensor::ones([self.d_model], device)), epsilon: self.epsilon }
    }
}

impl<B: RmsNormBackend> RmsNorm<B> {
    /// Normalizes the last dimension of `x`.
    ///
    /// # Panics
    /// When our kernels cannot run it (wrong size of the last dimension, a dtype other than
    /// f32/f16/bf16, a GPU error), as burn's own modules panic on bad shapes. [`rms_norm`]
    /// returns those errors instead.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        rms_norm(x, self.gamma.val(), self.epsilon as f32).unwrap_or_else(|e| panic!("{e}"))
    }
}

type Cube = CubeTensor<CudaRuntime>;

/// Our dtype of a burn tensor.
fn dtype_of(t: &Cube) -> Result<DType, AutogradError> {
    match t.dtype {
        burn::tensor::DType::F32 => Ok(DType::F32),
        burn::tensor::DType::F16 => Ok(DType::F16),
        burn::tensor::DType::BF16 => Ok(DType::BF16),
        d => Err(AutogradError::Unsupported(format!("dtype {d:?} (expected f32, f16 or bf16)"))),
    }
}

/// A tensor's memory, kept alive while our kernels use it.
struct Held {
    _resource: Box<dyn std::any::Any>,
    buf: DeviceBuffer,
}

/// Our view of all of `t`'s memory, from its first element.
fn hold(t: &Cube, len: usize) -> Result<Held, AutogradError> {
    let dtype = dtype_of(t)?;
    let resource = t
        .client
        .get_resource(t.handle.clone())
        .map_err(|e| AutogradError::Unsupported(format!("a burn tensor whose memory cannot be reached: {e:?}")))?;
    let r = resource.resource();
    if (r.size as usize) < len * dtype.size_bytes() {
        return Err(AutogradError::BadArgument {
            arg: "tensor",
            expected: format!("memory for {len} elements of {dtype}"),
            got: format!("{} bytes", r.size),
        });
    }
    // SAFETY: the resource (held beside the view) keeps the memory allocated, and burn's queued
    // work is finished before ours starts and ours before burn's resumes (`run`).
    let buf = unsafe { DeviceBuffer::borrowed(r.ptr, dtype, len) };
    Ok(Held { _resource: Box::new(resource), buf })
}

/// `[m, n, row_stride]` of a tensor's rows; a tensor whose rows are not strided rows is made
/// contiguous first.
fn as_rows(t: Cube) -> (Cube, [usize; 3]) {
    if let Some((_, m, n, s)) = rows_of(t.meta.shape(), t.meta.strides(), 0) {
        return (t, [m, n, s]);
    }
    let t = burn_cubecl::kernel::into_contiguous(t);
    let (_, m, n, s) = rows_of(t.meta.shape(), t.meta.strides(), 0).expect("a contiguous tensor has rows");
    (t, [m, n, s])
}

fn span([m, n, s]: [usize; 3]) -> usize {
    if m == 0 {
        0
    } else {
        (m - 1) * s + n
    }
}

/// A new contiguous tensor like `like` with `shape`, from burn's allocator.
fn empty_like(like: &Cube, shape: &[usize]) -> Cube {
    let bytes = shape.iter().product::<usize>() * like.dtype.size();
    let handle: Handle = like.client.empty(bytes.max(1));
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape.to_vec().into(), handle, like.dtype)
}

/// Runs `work` on our stream between burn's work: waits for burn's queued work first and for
/// ours after.
fn run<R>(t: &Cube, work: impl FnOnce(&GpuExecutor) -> Result<R, AutogradError>) -> Result<R, AutogradError> {
    let exec = op::executor_on(t.device.index)?;
    burn_cubecl::cubecl::future::block_on(t.client.sync())
        .map_err(|e| AutogradError::Unsupported(format!("burn's queued work failed: {e:?}")))?;
    let out = work(&exec)?;
    exec.device().synchronize()?;
    Ok(out)
}

fn check_weight(w: &Cube, n: usize) -> Result<(), AutogradError> {
    if w.meta.shape().as_slice() != [n] || !w.is_contiguous() {
        return Err(AutogradError::BadArgument {
            arg: "weight",
            expected: format!("a contiguous [{n}]"),
            got: format!("shape {:?} with strides {:?}", w.meta.shape().as_slice(), &w.meta.strides()[..]),
        });
    }
    Ok(())
}

/// Forward on burn's CUDA tensors: `y` (new, contiguous) and what the backward needs.
fn forward(x: Cube, w: Cube, eps: f32) -> Result<(Cube, Cube, Saved), AutogradError> {
    let (x, dims @ [m, n, stride]) = as_rows(x);
    check_weight(&w, n)?;
    let y = empty_like(&x, x.meta.shape());
    let (xh, wh, yh) = (hold(&x, span(dims))?, hold(&w, n)?, hold(&y, m * n)?);
    let saved = run(&x, |exec| {
        let y_out = Rows::strided(&yh.buf, 0, m, n, n);
        let (_, saved) = op::forward(exec, Rows::strided(&xh.buf, 0, m, n, stride), Some(&wh.buf), eps, Some(y_out))?;
        Ok(saved)
    })?;
    Ok((x, y, saved))
}

/// Backward on burn's CUDA tensors: `(dx, dw)`, new and contiguous.
fn backward(x: &Cube, w: &Cube, saved: &Saved, dy: Cube) -> Result<(Cube, Cube), AutogradError> {
    let (_, m, n, stride) = rows_of(x.meta.shape(), x.meta.strides(), 0).expect("the forward keeps x as rows");
    let xdims = [m, n, stride];
    let (dy, dydims) = as_rows(dy);
    let dx = empty_like(x, x.meta.shape());
    let dw = empty_like(w, w.meta.shape());
    let (xh, wh, dyh) = (hold(x, span(xdims))?, hold(w, n)?, hold(&dy, span(dydims))?);
    let (dxh, dwh) = (hold(&dx, m * n)?, hold(&dw, n)?);
    run(x, |exec| {
        op::backward(
            exec,
            saved,
            Rows::strided(&xh.buf, 0, m, n, stride),
            Some(&wh.buf),
            Rows::strided(&dyh.buf, 0, m, n, dydims[2]),
            Some(Rows::strided(&dxh.buf, 0, m, n, n)),
            Some(&dwh.buf),
        )
    })?;
    Ok((dx, dw))
}

impl<F: FloatElement, I: IntElement, BT: BoolElement> RmsNormBackend for Cuda<F, I, BT> {
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> Result<FloatTensor<Self>, AutogradError> {
        Ok(forward(x, weight, eps)?.1)
    }
}

/// The backward step burn's autodiff graph runs: our backward kernels.
#[derive(Debug)]
struct RmsNormBackward;

impl<F: FloatElement, I: IntElement, BT: BoolElement> Backward<Cuda<F, I, BT>, 2> for RmsNormBackward {
    /// `x` (as rows), the weight, and the forward's `rstd`.
    type State = (Cube, Cube, Arc<Saved>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Cuda<F, I, BT>>(&ops.node);
        let (x, w, saved) = ops.state;
        // burn's backward steps cannot return errors; after a forward that ran, only a GPU
        // failure gets here.
        let (dx, dw) = backward(&x, &w, &saved, dy).unwrap_or_else(|e| panic!("tritonite RMSNorm backward: {e}"));
        if let Some(node) = node_x {
            grads.register::<Cuda<F, I, BT>>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<Cuda<F, I, BT>>(node.id, dw);
        }
    }
}

impl<F: FloatElement, I: IntElement, BT: BoolElement, C: CheckpointStrategy> RmsNormBackend
    for Autodiff<Cuda<F, I, BT>, C>
{
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> Result<FloatTensor<Self>, AutogradError> {
        match RmsNormBackward.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, y, saved) = forward(x.primitive, weight.primitive.clone(), eps)?;
                Ok(prep.finish((x, weight.primitive, Arc::new(saved)), y))
            }
            OpsKind::UnTracked(prep) => Ok(prep.finish(forward(x.primitive, weight.primitive, eps)?.1)),
        }
    }
}
