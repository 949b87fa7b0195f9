//! Softmax cases checked end to end against the fp64 reference on any [`Backend`]: what the CPU
//! property tests and the GPU suite run. A case draws the dtypes, the logits' scale, `-inf`
//! entries, strided and offset views, caller-provided outputs and the kernel config; new outputs
//! start as NaN, and the padding of a caller's strided output must come back untouched.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{softmax, softmax_backward, SoftmaxBackwardOptions, SoftmaxOptions};
use super::reference;
use super::{heuristic, SoftmaxConfig, SoftmaxSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::reference::{random_values, rel_error, rel_error_scaled, tolerance};
pub use crate::rmsnorm::check::{CaseResult, Check};
use crate::rowwise::{padding_written, rows_of, view_len, Draw};
use crate::tensor::{Rows, Storage};

/// One softmax problem with all its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Dtypes.
    pub spec: SoftmaxSpec,
    /// The inputs are uniform in `[-2·scale, 2·scale)`.
    pub scale: f64,
    /// Percentage of elements (never a row's first) set to `-inf`.
    pub neg_inf_percent: u64,
    /// Extra elements between rows of `x`, `dy` and the caller-provided outputs.
    pub pad: usize,
    /// Element where those views start in their buffers.
    pub view_offset: usize,
    /// Write `y` and `dx` into caller-provided strided buffers.
    pub caller_out: bool,
    /// Kernel config (forward and backward).
    pub config: SoftmaxConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

impl Case {
    /// `m × n` of `spec` with `config`: inputs in `[-2, 2)`, contiguous rows, new outputs.
    pub fn new(m: usize, n: usize, spec: SoftmaxSpec, config: SoftmaxConfig) -> Case {
        Case {
            m,
            n,
            spec,
            scale: 1.0,
            neg_inf_percent: 0,
            pad: 0,
            view_offset: 0,
            caller_out: false,
            config,
            seed: m as u64 * 31 + n as u64,
        }
    }

    /// A case drawn from `seed` with `m ≤ max_m`, `n ≤ max_n` and a config valid for `sm_count`
    /// SMs (rows held in registers or walked in chunks), tiles of at most `max_tile` elements.
    pub fn random(seed: u64, max_m: usize, max_n: usize, sm_count: usize, max_tile: usize) -> Case {
        let mut d = Draw::new(seed);
        let m = d.rows(max_m);
        let n = d.cols(max_n);
        let x = d.pick(&FLOATS);
        let out = if d.chance(75) { x } else { d.pick(&FLOATS) };
        let spec = SoftmaxSpec { x, out };
        let scale = d.pick(&[1.0, 1.0, 5.0, 20.0]);
        let neg_inf_percent = if d.chance(25) { d.pick(&[5, 50]) } else { 0 };
        let strided = d.chance(30);
        let pad = if strided { d.pick(&[1, 3, 8]) } else { 0 };
        let view_offset = if strided { d.pick(&[0, 1, 5]) } else { 0 };
        let caller_out = d.chance(30);
        let config = d.config(n, heuristic(n, x, sm_count), sm_count, max_tile);
        Case { m, n, spec, scale, neg_inf_percent, pad, view_offset, caller_out, config, seed: d.next() }
    }

    fn stride(&self) -> usize {
        self.n + self.pad
    }

    fn view_len(&self) -> usize {
        view_len(self.m, self.n, self.stride(), self.view_offset)
    }

    fn rows_of(&self, b: &Buffer) -> Vec<f64> {
        rows_of(b, self.m, self.n, self.stride(), self.view_offset)
    }

    fn view<'a, S: Storage>(&self, buf: &'a S) -> Rows<'a, S> {
        Rows::strided(buf, self.view_offset, self.m, self.n, self.stride())
    }

    /// The input buffer: random values times `scale`, some `-inf`.
    fn input(&self) -> Buffer {
        let mut v: Vec<f64> = random_values(self.view_len(), self.seed).iter().map(|x| x * self.scale).collect();
        if self.neg_inf_percent > 0 {
            let mut d = Draw::new(self.seed ^ 7);
            let stride = self.stride();
            for (i, x) in v.iter_mut().enumerate() {
                let col = (i + stride - self.view_offset % stride) % stride;
                if i >= self.view_offset && col != 0 && d.below(100) < self.neg_inf_percent {
                    *x = f64::NEG_INFINITY;
                }
            }
        }
        Buffer::from_f64(self.spec.x, &v)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} x={} y={} scale={}", self.m, self.n, self.spec.x, self.spec.out, self.scale)?;
        if self.neg_inf_percent > 0 {
            write!(f, " -inf={}%", self.neg_inf_percent)?;
        }
        if self.pad > 0 || self.view_offset > 0 {
            write!(f, " stride=n+{} at={}", self.pad, self.view_offset)?;
        }
        if self.caller_out {
            write!(f, " out=caller")?;
        }
        let c = &self.config;
        write!(f, " block={} rows={} warps={}", c.block_size, c.rows, c.num_warps)
    }
}

/// Runs `case` forward and backward on `backend` and compares every output with the fp64
/// reference. The backward takes the forward's `y` (as the kernel wrote it) and a random `dy`.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let spec = &case.spec;
    let (m, n) = (case.m, case.n);
    let stride = case.stride();
    let x_host = case.input();
    let x = backend.upload(&x_host)?;
    let out_host = case.caller_out.then(|| Buffer::filled(spec.out, case.view_len(), f64::NAN));
    let out = out_host.as_ref().map(|b| backend.upload(b)).transpose()?;
    let opts = SoftmaxOptions {
        out_dtype: Some(spec.out),
        out: out.as_ref().map(|o| case.view(o)),
        config: Some(case.config),
    };
    let fwd = softmax(backend, case.view(&x), &opts)?;
    debug_assert_eq!(&fwd.spec, spec);
    let mut checks = vec![];
    let mut outputs = vec![];
    let y_rows = match (&fwd.y, &out) {
        (Some(y), _) => backend.download(y)?,
        (None, Some(o)) => {
            let o = backend.download(o)?;
            let written = padding_written(&o, m, n, stride, case.view_offset);
            checks.push(Check { name: "out padding untouched", error: written as f64, tolerance: 0.0 });
            Buffer::from_f64(spec.out, &case.rows_of(&o))
        }
        (None, None) => unreachable!("softmax returns y unless given out"),
    };
    let expect = reference::softmax(&case.rows_of(&x_host), m, n);
    checks.push(Check { name: "y", error: rel_error(&y_rows.to_f64(), &expect), tolerance: tolerance(spec.out) });

    // Backward from the y the forward wrote (contiguous) and a dy strided like x.
    let y = backend.upload(&y_rows)?;
    let dy_host = Buffer::from_f64(spec.out, &random_values(case.view_len(), case.seed ^ 4));
    let dy = backend.upload(&dy_host)?;
    let dx_host = case.caller_out.then(|| Buffer::filled(spec.x, case.view_len(), f64::NAN));
    let dx_out = dx_host.as_ref().map(|b| backend.upload(b)).transpose()?;
    let bopts = SoftmaxBackwardOptions { dx_out: dx_out.as_ref().map(|o| case.view(o)), config: Some(case.config) };
    let grads = softmax_backward(backend, spec, Rows::new(&y, &[m, n]), case.view(&dy), &bopts)?;
    let dx_rows = match (&grads.dx, &dx_out) {
        (Some(d), _) => backend.download(d)?.to_f64(),
        (None, Some(o)) => {
            let o = backend.download(o)?;
            let written = padding_written(&o, m, n, stride, case.view_offset);
            checks.push(Check { name: "dx_out padding untouched", error: written as f64, tolerance: 0.0 });
            case.rows_of(&o)
        }
        (None, None) => unreachable!("softmax_backward returns dx unless given dx_out"),
    };
    let (dx_ref, dx_scale) = reference::softmax_backward(&y_rows.to_f64(), &case.rows_of(&dy_host), m, n);
    let tol = tolerance(spec.x).max(tolerance(spec.out));
    checks.push(Check { name: "dx", error: rel_error_scaled(&dx_rows, &dx_ref, dx_scale), tolerance: tol });
    outputs.extend([y_rows, Buffer::from_f64(spec.x, &dx_rows)]);
    Ok(CaseResult { checks, outputs })
}
