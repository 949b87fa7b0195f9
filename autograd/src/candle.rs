//! candle 0.11 adapter (feature `candle`): RMSNorm with our CUDA forward **and backward**.
//!
//! candle-nn's `RmsNorm` runs a fused forward without a backward on contiguous input, so the
//! gradient of the weight and of `x` silently stops there (candle issue #2168). Swap one line:
//!
//! ```ignore
//! let norm = candle_nn::rms_norm(d, 1e-6, vb.pp("norm"))?;              // before
//! let norm = tritonite_autograd::candle::rms_norm(d, 1e-6, vb.pp("norm"))?; // after
//! ```
//!
//! On a CUDA device the op runs our kernels on candle's own stream (in order with candle's work,
//! no synchronization); f32, f16 and bf16; contiguous or row-strided input (anything else is made
//! contiguous first). On other devices it falls back to candle's differentiable composite.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorageSlice};
use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Module, Result, Shape, Storage, Tensor};
use tritonite_kernels::tensor::Rows;
use tritonite_lang::DType;
use tritonite_runtime::cudarc::driver::DevicePtr;
use tritonite_runtime::DeviceBuffer;

use crate::error::AutogradError;
use crate::op::{self, rows_of, Saved};

fn wrap(e: impl Into<AutogradError>) -> candle_core::Error {
    candle_core::Error::wrap(e.into())
}

/// RMSNorm of the last dimension of `x`, scaled by `weight` (`[n]`): `x / sqrt(mean(x²) + eps) ·
/// weight`, differentiable in `x` and `weight`.
pub fn rms_norm_op(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    if !x.device().is_cuda() {
        return candle_nn::ops::rms_norm_slow(x, weight, eps);
    }
    let x = if strided_rows(x).is_some() { x.clone() } else { x.contiguous()? };
    let weight = weight.contiguous()?;
    x.apply_op2(&weight, RmsNormOp { eps, saved: Mutex::new(None) })
}

/// A drop-in for `candle_nn::RmsNorm` whose backward works: our forward and backward on CUDA.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// RMSNorm with `weight` (`[n]`) and `eps`.
    pub fn new(weight: Tensor, eps: f64) -> RmsNorm {
        RmsNorm { weight, eps }
    }

    /// The weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The epsilon added to the mean square.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        rms_norm_op(xs, &self.weight, self.eps as f32)
    }
}

/// Like `candle_nn::rms_norm`: a [`RmsNorm`] of `size` whose weight (`weight`, initialised to 1)
/// comes from `vb`.
pub fn rms_norm(size: usize, eps: f64, vb: candle_nn::VarBuilder) -> Result<RmsNorm> {
    let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.))?;
    Ok(RmsNorm::new(weight, eps))
}

/// `(offset, m, n, row_stride)` of a tensor whose rows our kernels take as they are.
fn strided_rows(t: &Tensor) -> Option<(usize, usize, usize, usize)> {
    let layout = t.layout();
    rows_of(layout.dims(), layout.stride(), layout.start_offset())
}

/// The op candle records in its graph; it keeps the forward's [`Saved`] for the backward.
struct RmsNormOp {
    eps: f32,
    saved: Mutex<Option<Saved>>,
}

/// A view of `len` elements of a candle CUDA storage from element `offset` on.
fn borrow(storage: &CudaStorage, offset: usize, len: usize) -> std::result::Result<DeviceBuffer, AutogradError> {
    let stream = storage.device.cuda_stream();
    let (address, dtype, have) = match &storage.slice {
        CudaStorageSlice::F32(s) => (s.device_ptr(&stream).0, DType::F32, s.len()),
        CudaStorageSlice::F16(s) => (s.device_ptr(&stream).0, DType::F16, s.len()),
        CudaStorageSlice::BF16(s) => (s.device_ptr(&stream).0, DType::BF16, s.len()),
        _ => {
            return Err(AutogradError::Unsupported(format!("dtype {:?} (expected f32, f16 or bf16)", storage.dtype())))
        }
    };
    if offset + len > have {
        return Err(AutogradError::BadArgument {
            arg: "layout",
            expected: format!("a view inside its storage of {have} elements"),
            got: format!("elements {offset}..{}", offset + len),
        });
    }
    // SAFETY: the view lies inside the storage (checked above), which candle keeps alive for
    // this call, and the work on it is queued on the storage's own stream.
    Ok(unsafe { DeviceBuffer::borrowed(address + (offset * dtype.size_bytes()) as u64, dtype, len) })
}

/// Our new buffer as a candle storage on `device` (it takes the allocation over).
fn to_storage(buf: DeviceBuffer, device: &CudaDevice) -> std::result::Result<CudaStorage, AutogradError> {
    let device = device.clone();
    Ok(match buf.dtype() {
        DType::F32 => CudaStorage::wrap_cuda_slice(buf.into_cuda_slice::<f32>()?, device),
        DType::F16 => CudaStorage::wrap_cuda_slice(buf.into_cuda_slice::<half::f16>()?, device),
        DType::BF16 => CudaStorage::wrap_cuda_slice(buf.into_cuda_slice::<half::bf16>()?, device),
        d => return Err(AutogradError::Unsupported(format!("output dtype {d}"))),
    })
}

/// `[m, n]` rows of a tensor's CUDA storage, as our view.
fn rows_view(storage: &CudaStorage, layout: &Layout, arg: &'static str) -> Result<(DeviceBuffer, [usize; 3])> {
    let (offset, m, n, stride) = rows_of(layout.dims(), layout.stride(), layout.start_offset()).ok_or_else(|| {
        wrap(AutogradError::BadArgument {
            arg,
            expected: "rows with contiguous columns and one row stride".into(),
            got: format!("shape {:?} with strides {:?}", layout.dims(), layout.stride()),
        })
    })?;
    let span = if m == 0 { 0 } else { (m - 1) * stride + n };
    Ok((borrow(storage, offset, span).map_err(wrap)?, [m, n, stride]))
}

/// The weight's storage as an `[n]` view.
fn weight_view(storage: &CudaStorage, layout: &Layout, n: usize) -> Result<DeviceBuffer> {
    if layout.dims() != [n] || !layout.is_contiguous() {
        return Err(wrap(AutogradError::BadArgument {
            arg: "weight",
            expected: format!("a contiguous [{n}]"),
            got: format!("shape {:?} with strides {:?}", layout.dims(), layout.stride()),
        }));
    }
    borrow(storage, layout.start_offset(), n).map_err(wrap)
}

fn cuda_storage<'a>(s: &'a Storage, arg: &'static str) -> Result<&'a CudaStorage> {
    match s {
        Storage::Cuda(s) => Ok(s),
        _ => Err(wrap(AutogradError::Unsupported(format!("`{arg}` not on a CUDA device")))),
    }
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "tritonite-rms-norm"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        // `rms_norm_op` sends CPU tensors to candle's composite; this op is only built for CUDA.
        Err(wrap(AutogradError::Unsupported("CPU tensors in the CUDA op".into())))
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, ws: &CudaStorage, wl: &Layout) -> Result<(CudaStorage, Shape)> {
        let exec = op::executor_for(&xs.device.cuda_stream()).map_err(wrap)?;
        let (x, [m, n, stride]) = rows_view(xs, xl, "x")?;
        let w = weight_view(ws, wl, n)?;
        let (y, saved) =
            op::forward(&exec, Rows::strided(&x, 0, m, n, stride), Some(&w), self.eps, None).map_err(wrap)?;
        *self.saved.lock().expect("saved lock") = Some(saved);
        let y = y.expect("y is returned without y_out");
        Ok((to_storage(y, &xs.device).map_err(wrap)?, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, weight: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().expect("saved lock");
        let saved = saved
            .as_ref()
            .ok_or_else(|| wrap(AutogradError::Unsupported("a backward before its CUDA forward".into())))?;
        let dy = if strided_rows(dy).is_some() { dy.clone() } else { dy.contiguous()? };
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = weight.storage_and_layout();
        let (dys, dyl) = dy.storage_and_layout();
        let xs = cuda_storage(&xs, "x")?;
        let (xb, [m, n, stride]) = rows_view(xs, xl, "x")?;
        let wb = weight_view(cuda_storage(&ws, "weight")?, wl, n)?;
        let (dyb, [_, _, dy_stride]) = rows_view(cuda_storage(&dys, "dy")?, dyl, "dy")?;
        let exec = op::executor_for(&xs.device.cuda_stream()).map_err(wrap)?;
        let (dx, dw) = op::backward(
            &exec,
            saved,
            Rows::strided(&xb, 0, m, n, stride),
            Some(&wb),
            Rows::strided(&dyb, 0, m, n, dy_stride),
            None,
            None,
        )
        .map_err(wrap)?;
        let tensor = |b: DeviceBuffer, shape: &Shape| -> Result<Tensor> {
            let s = to_storage(b, &xs.device).map_err(wrap)?;
            Ok(Tensor::from_storage(Storage::Cuda(s), shape.clone(), BackpropOp::none(), false))
        };
        let dx = tensor(dx.expect("dx is returned without dx_out"), x.shape())?;
        let dw = dw.map(|d| tensor(d, weight.shape())).transpose()?;
        Ok((Some(dx), dw))
    }
}
