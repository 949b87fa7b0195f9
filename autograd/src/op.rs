//! The framework-neutral op: RMSNorm forward and backward over device buffers, what every
//! framework adapter calls. The forward saves `rstd` (one f32 per row) for the backward, so the
//! backward never recomputes the row statistics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tritonite_kernels::gpu::GpuExecutor;
use tritonite_kernels::rmsnorm::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormOptions, RmsNormSpec};
use tritonite_kernels::tensor::Rows;
use tritonite_runtime::cudarc::driver::CudaStream;
use tritonite_runtime::{Device, DeviceBuffer};

use crate::error::AutogradError;

/// What the forward leaves for the backward.
#[derive(Debug)]
pub struct Saved {
    /// `1 / sqrt(mean(x²) + eps)` per row, f32.
    pub rstd: DeviceBuffer,
    /// What the forward computed (dtypes of x, weight and y).
    pub spec: RmsNormSpec,
}

/// RMSNorm of the rows of `x` (`y = x · rstd · w`), on `exec`'s stream: `y` is written into
/// `y_out` when given (any row stride), else into a new contiguous buffer that is returned. Also
/// returns what the backward needs.
pub fn forward(
    exec: &GpuExecutor,
    x: Rows<'_, DeviceBuffer>,
    weight: Option<&DeviceBuffer>,
    eps: f32,
    y_out: Option<Rows<'_, DeviceBuffer>>,
) -> Result<(Option<DeviceBuffer>, Saved), AutogradError> {
    let out = rms_norm(exec, x, weight, &RmsNormOptions { eps, out: y_out, ..RmsNormOptions::default() })?;
    FORWARD_CALLS.fetch_add(1, Ordering::Relaxed);
    Ok((out.y, Saved { rstd: out.rstd, spec: out.spec }))
}

/// The gradients of [`forward`] from its `x`, weight and [`Saved`], and `dy`: `dx` (`x`'s dtype)
/// and, with a weight, `dw` (the weight's dtype). Each is written into its `_out` buffer when
/// given, else into a new contiguous buffer that is returned.
pub fn backward(
    exec: &GpuExecutor,
    saved: &Saved,
    x: Rows<'_, DeviceBuffer>,
    weight: Option<&DeviceBuffer>,
    dy: Rows<'_, DeviceBuffer>,
    dx_out: Option<Rows<'_, DeviceBuffer>>,
    dw_out: Option<&DeviceBuffer>,
) -> Result<(Option<DeviceBuffer>, Option<DeviceBuffer>), AutogradError> {
    let opts = RmsNormBackwardOptions { dx_out, dweight_out: dw_out, ..RmsNormBackwardOptions::default() };
    let grads = rms_norm_backward(exec, &saved.spec, x, weight, dy, &saved.rstd, &opts)?;
    BACKWARD_CALLS.fetch_add(1, Ordering::Relaxed);
    Ok((grads.dx, grads.dweight))
}

/// The executor that queues work on `stream` (one per stream, made on first use and kept for the
/// life of the process, with its loaded kernels and tuned configs).
pub fn executor_for(stream: &Arc<CudaStream>) -> Result<Arc<GpuExecutor>, AutogradError> {
    registered(Key::Stream(stream.cu_stream() as usize), || Ok(Device::from_stream(stream.clone())))
}

/// The executor with a stream of its own on GPU `ordinal` (for frameworks whose stream is not
/// reachable: the caller orders its work against theirs), kept like [`executor_for`]'s.
pub fn executor_on(ordinal: usize) -> Result<Arc<GpuExecutor>, AutogradError> {
    registered(Key::Ordinal(ordinal), || Ok(Device::open(ordinal)?))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Stream(usize),
    Ordinal(usize),
}

fn registered(
    key: Key,
    device: impl FnOnce() -> Result<Device, AutogradError>,
) -> Result<Arc<GpuExecutor>, AutogradError> {
    static EXECUTORS: Mutex<Vec<(Key, Arc<GpuExecutor>)>> = Mutex::new(Vec::new());
    let mut executors = EXECUTORS.lock().expect("executor registry lock");
    if let Some((_, e)) = executors.iter().find(|(k, _)| *k == key) {
        return Ok(e.clone());
    }
    let exec = Arc::new(GpuExecutor::new(device()?)?);
    executors.push((key, exec.clone()));
    Ok(exec)
}

static FORWARD_CALLS: AtomicUsize = AtomicUsize::new(0);
static BACKWARD_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How often this process ran tritonite's RMSNorm through the adapters: proof that a training
/// step used our kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Forward calls.
    pub forward: usize,
    /// Backward calls.
    pub backward: usize,
}

/// The counts so far.
pub fn stats() -> Stats {
    Stats { forward: FORWARD_CALLS.load(Ordering::Relaxed), backward: BACKWARD_CALLS.load(Ordering::Relaxed) }
}

/// The `[m, n]` rows of a strided tensor: `shape` and `strides` in elements, starting at
/// `offset`. Rows need a unit column stride and one stride between consecutive rows (leading
/// dimensions that merge); anything else is `None`, and the caller makes the tensor contiguous.
pub fn rows_of(shape: &[usize], strides: &[usize], offset: usize) -> Option<(usize, usize, usize, usize)> {
    let (&n, lead) = shape.split_last()?;
    let m: usize = lead.iter().product();
    if n > 1 && strides.last() != Some(&1) {
        return None;
    }
    // The innermost leading dimension of size > 1 sets the row stride; the others must nest.
    let mut row_stride = None;
    let mut expected = None;
    for (&d, &s) in lead.iter().zip(strides).rev() {
        if d == 1 {
            continue;
        }
        match expected {
            None => {
                row_stride = Some(s);
                expected = Some(s * d);
            }
            Some(e) if e == s => expected = Some(s * d),
            Some(_) => return None,
        }
    }
    let row_stride = row_stride.unwrap_or(n);
    if m > 1 && row_stride < n {
        return None;
    }
    Some((offset, m, n, row_stride))
}

#[cfg(test)]
mod tests {
    use super::rows_of;

    #[test]
    fn rows_of_strided_tensors() {
        // Contiguous [2, 3, 8]: 6 rows of 8.
        assert_eq!(rows_of(&[2, 3, 8], &[24, 8, 1], 0), Some((0, 6, 8, 8)));
        // A column slice of a wider matrix: rows 16 apart.
        assert_eq!(rows_of(&[4, 8], &[16, 1], 5), Some((5, 4, 8, 16)));
        // Leading dims that merge with a padded row stride.
        assert_eq!(rows_of(&[2, 3, 8], &[48, 16, 1], 0), Some((0, 6, 8, 16)));
        // Leading dims that do not merge (a transpose of the leading dims).
        assert_eq!(rows_of(&[2, 3, 8], &[8, 16, 1], 0), None);
        // Columns not contiguous.
        assert_eq!(rows_of(&[4, 8], &[1, 4], 0), None);
        // Overlapping rows.
        assert_eq!(rows_of(&[4, 8], &[4, 1], 0), None);
        // Size-1 dims are ignored; a single row.
        assert_eq!(rows_of(&[1, 1, 8], &[99, 7, 1], 3), Some((3, 1, 8, 8)));
        assert_eq!(rows_of(&[], &[], 0), None);
    }
}
