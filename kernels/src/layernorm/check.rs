//! LayerNorm cases checked end to end against the fp64 reference on any [`Backend`]: what the CPU
//! property tests and the GPU suite run. A case draws the dtypes, the weight and bias, strided and
//! offset views, a caller-provided `out` and `dx_out`, a shifted mean, and the kernel config;
//! inputs are random, new outputs start as NaN, and the padding between strided rows of a caller's
//! output must come back untouched.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{layer_norm, layer_norm_backward, LayerNormBackwardOptions, LayerNormOptions};
use super::reference::LayerNormRef;
use super::{heuristic, LayerNormConfig, LayerNormSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::reference::{random_values, rel_error, rel_error_scaled, tolerance};
pub use crate::rmsnorm::check::{CaseResult, Check};
use crate::rowwise::{padding_written, rows_of, view_len, Draw};
use crate::tensor::{Rows, Storage};

/// One LayerNorm problem with all its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Dtypes and options.
    pub spec: LayerNormSpec,
    /// Epsilon.
    pub eps: f32,
    /// Added to every input element (a mean far from zero).
    pub shift: f64,
    /// Extra elements between rows of `x`, `dy` and the caller-provided outputs.
    pub pad: usize,
    /// Element where those views start in their buffers.
    pub view_offset: usize,
    /// Write `y` and `dx` into caller-provided strided buffers.
    pub caller_out: bool,
    /// Kernel config (forward and backward).
    pub config: LayerNormConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

impl Case {
    /// `m × n` of `spec` with `config` and nothing else on: `eps = 1e-5`, contiguous rows, new
    /// outputs, no shift; inputs seeded from the shape.
    pub fn new(m: usize, n: usize, spec: LayerNormSpec, config: LayerNormConfig) -> Case {
        Case {
            m,
            n,
            spec,
            eps: 1e-5,
            shift: 0.0,
            pad: 0,
            view_offset: 0,
            caller_out: false,
            config,
            seed: m as u64 * 31 + n as u64,
        }
    }

    /// A case drawn from `seed` with `m ≤ max_m`, `n ≤ max_n` and a config valid for `sm_count`
    /// SMs (the block either holds the row or walks it in chunks), tiles of at most `max_tile`
    /// elements.
    pub fn random(seed: u64, max_m: usize, max_n: usize, sm_count: usize, max_tile: usize) -> Case {
        let mut d = Draw::new(seed);
        let m = d.rows(max_m);
        let n = d.cols(max_n);
        let x = d.pick(&FLOATS);
        let param = |d: &mut Draw| match d.below(3) {
            0 => None,
            1 => Some(x),
            _ => Some(DType::F32),
        };
        let weight = param(&mut d);
        let bias = param(&mut d);
        let out = if d.chance(70) { x } else { d.pick(&FLOATS) };
        let spec = LayerNormSpec { x, weight, bias, out };
        let eps = d.pick(&[1e-6, 1e-5, 0.1]);
        let shift = if d.chance(20) { d.pick(&[10.0, -50.0]) } else { 0.0 };
        let strided = d.chance(30);
        let pad = if strided { d.pick(&[1, 3, 8]) } else { 0 };
        let view_offset = if strided { d.pick(&[0, 1, 5]) } else { 0 };
        let caller_out = d.chance(30);
        let config = d.config(n, heuristic(n, x, sm_count), sm_count, max_tile);
        Case { m, n, spec, eps, shift, pad, view_offset, caller_out, config, seed: d.next() }
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
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        let opt = |d: Option<DType>| d.map_or("-".to_string(), |d| d.name().to_string());
        write!(f, "{}x{} x={} w={} b={} y={}", self.m, self.n, s.x, opt(s.weight), opt(s.bias), s.out)?;
        if self.shift != 0.0 {
            write!(f, " shift={}", self.shift)?;
        }
        if self.pad > 0 || self.view_offset > 0 {
            write!(f, " stride=n+{} at={}", self.pad, self.view_offset)?;
        }
        if self.caller_out {
            write!(f, " out=caller")?;
        }
        let c = &self.config;
        write!(
            f,
            " eps={} block={} rows={} warps={} programs={}",
            self.eps, c.block_size, c.rows, c.num_warps, c.programs
        )
    }
}

/// Runs `case` forward and backward on `backend` and compares every output with the fp64
/// reference.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let spec = &case.spec;
    let (m, n, seed) = (case.m, case.n, case.seed);
    let stride = case.stride();
    let up = |b: &Buffer| backend.upload(b);
    let values = |len, seed, shift: f64| random_values(len, seed).iter().map(|v| v + shift).collect::<Vec<_>>();
    let x_host = Buffer::from_f64(spec.x, &values(case.view_len(), seed, case.shift));
    let w_host = spec
        .weight
        .map(|d| Buffer::from_f64(d, &values(n, seed ^ 2, 0.0).iter().map(|v| 1.0 + 0.25 * v).collect::<Vec<_>>()));
    let b_host = spec.bias.map(|d| Buffer::from_f64(d, &random_values(n, seed ^ 3)));
    let out_host = case.caller_out.then(|| Buffer::filled(spec.out, case.view_len(), f64::NAN));

    let x = up(&x_host)?;
    let w = w_host.as_ref().map(up).transpose()?;
    let b = b_host.as_ref().map(up).transpose()?;
    let out = out_host.as_ref().map(up).transpose()?;
    let opts = LayerNormOptions {
        eps: case.eps,
        bias: b.as_ref(),
        out_dtype: Some(spec.out),
        out: out.as_ref().map(|o| case.view(o)),
        config: Some(case.config),
    };
    let fwd = layer_norm(backend, case.view(&x), w.as_ref(), &opts)?;
    debug_assert_eq!(&fwd.spec, spec);

    let x_rows = case.rows_of(&x_host);
    let w_f = w_host.as_ref().map(Buffer::to_f64);
    let b_f = b_host.as_ref().map(Buffer::to_f64);
    let reference = LayerNormRef { m, n, x: &x_rows, w: w_f.as_deref(), bias: b_f.as_deref(), eps: case.eps as f64 };
    let expect = reference.forward();
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
        (None, None) => unreachable!("layer_norm returns y unless given out"),
    };
    // x̂ loses digits to the f32 rounding of the mean (as rstd and dx below): it moves by up to
    // half an f32 ulp of the mean times rstd, which for a row of nearly equal values (large rstd;
    // likely in rows of 2 or 3 columns) can exceed the dtype's tolerance of dx's scale, and does
    // for a shifted x (a large mean) beyond 1e-4.
    let mean_rounding = expect
        .mean
        .iter()
        .zip(&expect.rstd)
        .map(|(mean, rstd)| mean.abs() * f64::from(f32::EPSILON) / 2.0 * rstd)
        .fold(0.0f64, f64::max);
    let shifted = |t: f64| {
        let t = t.max(8.0 * mean_rounding);
        if case.shift == 0.0 {
            t
        } else {
            t.max(1e-4)
        }
    };
    let y_tol = shifted(tolerance(spec.out));
    checks.push(Check { name: "y", error: rel_error(&y_rows.to_f64(), &expect.y), tolerance: y_tol });
    let mean = backend.download(&fwd.mean)?;
    // The mean's error is measured against the rows' magnitude (a mean near zero has no digits).
    let magnitude = (x_rows.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
    let mean_err = rel_error_scaled(&mean.to_f64(), &expect.mean, magnitude);
    checks.push(Check { name: "mean", error: mean_err, tolerance: 1e-5 });
    let rstd = backend.download(&fwd.rstd)?;
    // The variance of a shifted row loses digits to the shift, in the input dtype's rounding too.
    let rstd_tol = if case.shift != 0.0 { 1e-4 } else { 1e-5 };
    checks.push(Check { name: "rstd", error: rel_error(&rstd.to_f64(), &expect.rstd), tolerance: rstd_tol });
    outputs.extend([y_rows, mean, rstd]);

    // Backward: dy strided like x, dx into a strided caller buffer when asked.
    let dy_host = Buffer::from_f64(spec.out, &random_values(case.view_len(), seed ^ 4));
    let dx_host = case.caller_out.then(|| Buffer::filled(spec.x, case.view_len(), f64::NAN));
    let dy = up(&dy_host)?;
    let dx_out = dx_host.as_ref().map(up).transpose()?;
    let bopts = LayerNormBackwardOptions { dx_out: dx_out.as_ref().map(|o| case.view(o)), config: Some(case.config) };
    let grads =
        layer_norm_backward(backend, spec, case.view(&x), w.as_ref(), case.view(&dy), &fwd.mean, &fwd.rstd, &bopts)?;
    let dy_rows = case.rows_of(&dy_host);
    let expect = reference.backward(&expect.mean, &expect.rstd, &dy_rows);
    let tol = |d: DType| tolerance(d).max(tolerance(spec.out));
    let dx_rows = match (&grads.dx, &dx_out) {
        (Some(d), _) => backend.download(d)?.to_f64(),
        (None, Some(o)) => {
            let o = backend.download(o)?;
            let written = padding_written(&o, m, n, stride, case.view_offset);
            checks.push(Check { name: "dx_out padding untouched", error: written as f64, tolerance: 0.0 });
            case.rows_of(&o)
        }
        (None, None) => unreachable!("layer_norm_backward returns dx unless given dx_out"),
    };
    let dx_tol = shifted(tol(spec.x));
    checks.push(Check {
        name: "dx",
        error: rel_error_scaled(&dx_rows, &expect.dx, expect.dx_scale),
        tolerance: dx_tol,
    });
    outputs.push(Buffer::from_f64(spec.x, &dx_rows));
    for (name, g, want, floor, d) in [
        ("dw", &grads.dweight, &expect.dw, expect.dw_scale, spec.weight),
        ("dbias", &grads.dbias, &expect.db, expect.db_scale, spec.bias),
    ] {
        if let (Some(g), Some(d)) = (g, d) {
            let g = backend.download(g)?;
            checks.push(Check { name, error: rel_error_scaled(&g.to_f64(), want, floor), tolerance: shifted(tol(d)) });
            outputs.push(g);
        }
    }
    Ok(CaseResult { checks, outputs })
}
