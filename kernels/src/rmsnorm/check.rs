//! RMSNorm cases checked end to end against the fp64 reference on any [`Backend`]: what the CPU
//! property tests, the GPU suite and the CLI's main job run. A case draws every option (dtypes,
//! weight, offset, bias, residual, output dtype, strided and offset views, a caller-provided `out`,
//! the residual stream's gradient) and the kernel config; inputs are random, new outputs start as
//! NaN, and the padding between strided rows must come back untouched.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormOptions};
use super::{RmsNormConfig, RmsNormSpec};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::reference::{random_values, rel_error, rel_error_scaled, tolerance, RmsNormRef};
use crate::tensor::Rows;

/// One RMSNorm problem with all its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Dtypes and options.
    pub spec: RmsNormSpec,
    /// Gemma offset (used with a weight).
    pub offset: f32,
    /// Epsilon.
    pub eps: f32,
    /// Extra elements between rows of `x`, `residual`, `dy` and a caller-provided `out`.
    pub pad: usize,
    /// Element where those views start in their buffers.
    pub view_offset: usize,
    /// Write `y` into a caller-provided strided buffer.
    pub caller_out: bool,
    /// Pass a gradient of `residual_out` to the backward (needs `residual_out`).
    pub dresidual_out: bool,
    /// Kernel config.
    pub config: RmsNormConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

/// A tiny deterministic generator for drawing cases.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

impl Case {
    /// `m × n` of `spec` with `config` and nothing else on: no offset, `eps = 1e-6`, contiguous
    /// rows, new outputs, no residual-stream gradient; inputs seeded from the shape.
    pub fn new(m: usize, n: usize, spec: RmsNormSpec, config: RmsNormConfig) -> Case {
        Case {
            m,
            n,
            spec,
            offset: 0.0,
            eps: 1e-6,
            pad: 0,
            view_offset: 0,
            caller_out: false,
            dresidual_out: false,
            config,
            seed: m as u64 * 31 + n as u64,
        }
    }

    /// A case drawn from `seed` with `m ≤ max_m` and `n ≤ max_n` (often small or ragged, sometimes
    /// at the limits) and a config valid for `sm_count` SMs: the block either holds the row or
    /// walks it in chunks.
    pub fn random(seed: u64, max_m: usize, max_n: usize, sm_count: usize) -> Case {
        let mut d = Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let m = match d.below(10) {
            0 => 0,
            1 => 1,
            2 => max_m,
            _ => 1 + d.below(max_m.max(1) as u64) as usize,
        }
        .min(max_m);
        let n = match d.below(10) {
            0 => 1,
            1 => max_n,
            2 => (1usize << d.below((usize::BITS - max_n.leading_zeros()) as u64)).min(max_n),
            _ => 1 + d.below(max_n as u64) as usize,
        };
        let x = d.pick(&FLOATS);
        let param = |d: &mut Draw| match d.below(3) {
            0 => None,
            1 => Some(x),
            _ => Some(DType::F32),
        };
        let weight = param(&mut d);
        let bias = if d.chance(30) { param(&mut d) } else { None };
        let residual = if d.chance(40) { Some(d.pick(&[x, DType::F32])) } else { None };
        let residual_out = match residual {
            Some(r) => Some(if d.chance(70) { r } else { d.pick(&FLOATS) }),
            None if d.chance(10) => Some(d.pick(&FLOATS)),
            None => None,
        };
        let out = if d.chance(70) { x } else { d.pick(&FLOATS) };
        let spec = RmsNormSpec { x, weight, bias, residual, residual_out, out };
        let offset = if weight.is_some() && d.chance(30) { 1.0 } else { 0.0 };
        let eps = d.pick(&[1e-6, 1e-5, 0.1]);
        let strided = d.chance(30);
        let pad = if strided { d.pick(&[1, 3, 8, 64]) } else { 0 };
        let view_offset = if strided { d.pick(&[0, 1, 5, 8]) } else { 0 };
        let caller_out = d.chance(30);
        let dresidual_out = residual_out.is_some() && d.chance(60);
        let heuristic = RmsNormConfig::heuristic(&spec, n, sm_count);
        // A third of the cases split each row over a cluster of programs.
        // Blocks stay ≤ 16384 columns: at least the cluster that holds the row in such blocks.
        let need = n.div_ceil(1 << 14).next_power_of_two();
        let cluster = if need <= 16 && d.chance(33) { d.pick(&[2, 3, 4, 5, 8, 16]).max(need) } else { 1 };
        let block_size = if cluster > 1 {
            n.div_ceil(cluster).next_power_of_two().max(16)
        } else if d.chance(50) {
            heuristic.block_size
        } else {
            // Anything from 16 to 4× the row: chunked walks included.
            1 << (4 + d.below(((n.next_power_of_two() * 4).trailing_zeros() as u64).saturating_sub(3).max(1)))
        }
        .min(1 << 14);
        // Tiles of several rows, up to 16384 elements.
        let rows = d.pick(&[1, 1, 2, 4, 8, 16, 32]).min((1 << 14) / block_size);
        // 1 to 64 elements of a tile per thread.
        let tile = rows * block_size;
        let num_warps = d.pick(&[1, 2, 4, 8, 16]).clamp(tile / 2048, (tile / 32).max(1)) as u32;
        let programs = 1 + d.below(2 * sm_count.max(1) as u64) as usize;
        // Held rows are prefetched in 40% of the cases and, independently, staged in shared
        // memory in half of those where two tiles of x and dy fit there (32 KiB a tile of each).
        let held = n <= cluster * block_size;
        let prefetch = held && d.chance(40);
        let staged = held && tile * 4 <= 32 << 10 && d.chance(50);
        let config = RmsNormConfig { block_size, num_warps, programs, rows, cluster, prefetch, staged };
        Case { m, n, spec, offset, eps, pad, view_offset, caller_out, dresidual_out, config, seed: d.next() }
    }

    fn stride(&self) -> usize {
        self.n + self.pad
    }

    /// Elements of a buffer holding one strided view.
    fn view_len(&self) -> usize {
        self.view_offset + crate::plan::span(self.m, self.n, self.stride())
    }

    /// A buffer for a strided view with random rows and random padding.
    fn view_buffer(&self, dtype: DType, seed: u64) -> Buffer {
        Buffer::from_f64(dtype, &random_values(self.view_len(), seed))
    }

    /// The rows of a strided view, as f64 row-major `[m, n]`.
    fn rows_of(&self, b: &Buffer) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.m * self.n);
        for r in 0..self.m {
            let start = self.view_offset + r * self.stride();
            v.extend((start..start + self.n).map(|i| b.get(i)));
        }
        v
    }

    fn view<'a, S: crate::tensor::Storage>(&self, buf: &'a S) -> Rows<'a, S> {
        Rows::strided(buf, self.view_offset, self.m, self.n, self.stride())
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        let opt = |d: Option<DType>| d.map_or("-".to_string(), |d| d.name().to_string());
        write!(
            f,
            "{}x{} x={} w={} b={} r={} ro={} y={}",
            self.m,
            self.n,
            s.x.name(),
            opt(s.weight),
            opt(s.bias),
            opt(s.residual),
            opt(s.residual_out),
            s.out.name()
        )?;
        if self.offset != 0.0 {
            write!(f, " offset={}", self.offset)?;
        }
        if self.pad > 0 || self.view_offset > 0 {
            write!(f, " stride=n+{} at={}", self.pad, self.view_offset)?;
        }
        if self.caller_out {
            write!(f, " out=caller")?;
        }
        if self.dresidual_out {
            write!(f, " dresidual_out")?;
        }
        let c = &self.config;
        write!(
            f,
            " eps={} block={} rows={} warps={} programs={} cluster={}",
            self.eps, c.block_size, c.rows, c.num_warps, c.programs, c.cluster
        )?;
        for (name, on) in [("prefetch", c.prefetch), ("staged", c.staged)] {
            if on {
                write!(f, " {name}")?;
            }
        }
        Ok(())
    }
}

/// One output compared with the reference.
#[derive(Clone, Debug)]
pub struct Check {
    /// The output.
    pub name: &'static str,
    /// Relative error against fp64 (NaN when an element was never written).
    pub error: f64,
    /// The most it may be.
    pub tolerance: f64,
}

impl Check {
    /// True when within tolerance.
    pub fn passed(&self) -> bool {
        self.error <= self.tolerance
    }
}

/// What running a case gave.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Every output's comparison.
    pub checks: Vec<Check>,
    /// Every output, as downloaded (for bit-for-bit comparisons between runs).
    pub outputs: Vec<Buffer>,
}

impl CaseResult {
    /// The checks over tolerance.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed()).collect()
    }

    /// A line with every output's error.
    pub fn summary(&self) -> String {
        self.checks.iter().map(|c| format!("{} {:.1e}", c.name, c.error)).collect::<Vec<_>>().join(", ")
    }
}

/// Runs `case` forward and backward on `backend` and compares every output with the fp64
/// reference.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let spec = &case.spec;
    let (m, n) = (case.m, case.n);
    let seed = case.seed;
    let up = |b: &Buffer| backend.upload(b);
    let x_host = case.view_buffer(spec.x, seed);
    let res_host = spec.residual.map(|d| case.view_buffer(d, seed ^ 1));
    let w_host = spec.weight.map(|d| {
        // Gemma weights sit around 0 (the offset adds the 1); plain weights around 1.
        let base = if case.offset != 0.0 { 0.0 } else { 1.0 };
        Buffer::from_f64(d, &random_values(n, seed ^ 2).iter().map(|v| base + 0.25 * v).collect::<Vec<_>>())
    });
    let b_host = spec.bias.map(|d| Buffer::from_f64(d, &random_values(n, seed ^ 3)));
    let out_host = case.caller_out.then(|| Buffer::filled(spec.out, case.view_len(), f64::NAN));

    let x = up(&x_host)?;
    let res = res_host.as_ref().map(up).transpose()?;
    let w = w_host.as_ref().map(up).transpose()?;
    let b = b_host.as_ref().map(up).transpose()?;
    let out = out_host.as_ref().map(up).transpose()?;
    let opts = RmsNormOptions {
        eps: case.eps,
        offset: case.offset,
        bias: b.as_ref(),
        residual: res.as_ref().map(|r| case.view(r)),
        residual_out_dtype: spec.residual_out,
        out_dtype: Some(spec.out),
        out: out.as_ref().map(|o| case.view(o)),
        config: Some(case.config),
    };
    let fwd = rms_norm(backend, case.view(&x), w.as_ref(), &opts)?;
    debug_assert_eq!(&fwd.spec, spec);

    let x_rows = case.rows_of(&x_host);
    let res_rows = res_host.as_ref().map(|r| case.rows_of(r));
    let w_f = w_host.as_ref().map(Buffer::to_f64);
    let b_f = b_host.as_ref().map(Buffer::to_f64);
    let reference = RmsNormRef {
        m,
        n,
        x: &x_rows,
        residual: res_rows.as_deref(),
        w: w_f.as_deref(),
        bias: b_f.as_deref(),
        offset: case.offset as f64,
        eps: case.eps as f64,
    };
    let expect = reference.forward();
    let rstd_ref = expect.rstd.clone();
    let mut checks = vec![];
    let mut outputs = vec![];
    let check = |checks: &mut Vec<Check>, name, got: &[f64], want: &[f64], tol| {
        checks.push(Check { name, error: rel_error(got, want), tolerance: tol });
    };
    let y_rows = match (&fwd.y, &out) {
        (Some(y), _) => backend.download(y)?,
        (None, Some(o)) => {
            let o = backend.download(o)?;
            let untouched = (0..o.len()).filter(|i| o.get(*i).is_nan()).count();
            let padding = o.len() - m * n;
            checks.push(Check {
                name: "out padding untouched",
                error: (padding - untouched.min(padding)) as f64,
                tolerance: 0.0,
            });
            Buffer::from_f64(spec.out, &case.rows_of(&o))
        }
        (None, None) => unreachable!("rms_norm returns y unless given out"),
    };
    check(&mut checks, "y", &y_rows.to_f64(), &expect.y, tolerance(spec.out));
    let rstd = backend.download(&fwd.rstd)?;
    check(&mut checks, "rstd", &rstd.to_f64(), &expect.rstd, 1e-5);
    outputs.extend([y_rows, rstd]);
    let saved_host = match (&fwd.residual_out, spec.residual_out) {
        (Some(r), Some(d)) => {
            let r = backend.download(r)?;
            check(&mut checks, "residual_out", &r.to_f64(), &expect.h, tolerance(d));
            outputs.push(r.clone());
            Some(r)
        }
        _ => None,
    };

    // Backward: dy (strided like x), the residual stream's gradient (contiguous), and the saved h.
    let dy_host = case.view_buffer(spec.out, seed ^ 4);
    let dro_host = case.dresidual_out.then(|| Buffer::from_f64(spec.saved(), &random_values(m * n, seed ^ 5)));
    let dy = up(&dy_host)?;
    let dro = dro_host.as_ref().map(up).transpose()?;
    let saved = match &fwd.residual_out {
        Some(r) => Rows::new(r, &[m, n]),
        None => case.view(&x),
    };
    let bopts = RmsNormBackwardOptions {
        offset: case.offset,
        dresidual_out: dro.as_ref().map(|d| Rows::new(d, &[m, n])),
        config: Some(case.config),
        ..RmsNormBackwardOptions::default()
    };
    let grads = rms_norm_backward(backend, spec, saved, w.as_ref(), case.view(&dy), &fwd.rstd, &bopts)?;
    let saved_rows = saved_host.as_ref().map_or(x_rows.clone(), Buffer::to_f64);
    let dy_rows = case.rows_of(&dy_host);
    let dro_f = dro_host.as_ref().map(Buffer::to_f64);
    let expect =
        RmsNormRef { x: &saved_rows, residual: None, ..reference }.backward(&rstd_ref, &dy_rows, dro_f.as_deref());
    // A 16-bit residual_out rounds h: the gradients inherit that error.
    let tol = |d: DType| tolerance(d).max(tolerance(spec.saved()));
    let scale = |name, got: &Buffer, d: DType, checks: &mut Vec<Check>| {
        let error = rel_error_scaled(&got.to_f64(), &expect.dx, expect.dx_scale);
        checks.push(Check { name, error, tolerance: tol(d) });
    };
    let dx = backend.download(grads.dx.as_ref().expect("dx is returned without dx_out"))?;
    scale("dx", &dx, spec.x, &mut checks);
    outputs.push(dx);
    if let (Some(g), Some(d)) = (&grads.dresidual, spec.residual) {
        let g = backend.download(g)?;
        scale("dresidual", &g, d, &mut checks);
        outputs.push(g);
    }
    for (name, g, want, floor, d) in [
        ("dw", &grads.dweight, &expect.dw, expect.dw_scale, spec.weight),
        ("dbias", &grads.dbias, &expect.db, expect.db_scale, spec.bias),
    ] {
        if let (Some(g), Some(d)) = (g, d) {
            let g = backend.download(g)?;
            let error = rel_error_scaled(&g.to_f64(), want, floor);
            checks.push(Check { name, error, tolerance: tol(d) });
            outputs.push(g);
        }
    }
    Ok(CaseResult { checks, outputs })
}
