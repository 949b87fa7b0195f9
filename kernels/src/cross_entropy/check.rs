//! Cross-entropy cases checked end to end against the fp64 reference on any [`Backend`]: what the
//! CPU property tests and the GPU suite run. A case draws the dtypes, the logits' scale, ignored
//! rows, strided and offset logits, the reduction, the kind of incoming gradient, where `dlogits`
//! goes (new, in place, a caller's strided buffer) and the kernel configs.

use std::fmt;

use tritonite_lang::{Buffer, DType};

use super::api::{
    cross_entropy, cross_entropy_backward, CrossEntropyBackwardOptions, CrossEntropyOptions, GradOut, LossGrad,
};
use super::reference;
use super::{heuristic, heuristic_backward, CrossEntropyConfig, CrossEntropySpec, GradMode, Reduction};
use crate::backend::Backend;
use crate::error::KernelError;
use crate::reference::{random_values, rel_error_scaled, tolerance};
pub use crate::rmsnorm::check::{CaseResult, Check};
use crate::rowwise::{padding_written, rows_of, view_len, Draw};
use crate::tensor::{Rows, Storage};

/// Where a case's backward writes `dlogits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A new buffer.
    New,
    /// Over the logits.
    InPlace,
    /// A caller's strided buffer (strided like the logits).
    Caller,
}

/// One cross-entropy problem with all its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Case {
    /// Rows.
    pub m: usize,
    /// Classes.
    pub v: usize,
    /// Dtypes.
    pub spec: CrossEntropySpec,
    /// The logits are uniform in `[-2·scale, 2·scale)`.
    pub scale: f64,
    /// Percentage of rows whose target is `ignore_index`.
    pub ignore_percent: u64,
    /// The ignore index.
    pub ignore_index: i64,
    /// Extra elements between rows of the logits.
    pub pad: usize,
    /// Element where the logits start in their buffer.
    pub view_offset: usize,
    /// The forward's reduction.
    pub reduction: Reduction,
    /// The kind of gradient the backward gets.
    pub grad: GradMode,
    /// Where `dlogits` goes.
    pub dest: Dest,
    /// Forward config.
    pub config: CrossEntropyConfig,
    /// Backward config.
    pub config_backward: CrossEntropyConfig,
    /// Seed of the inputs.
    pub seed: u64,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

impl Case {
    /// `m × v` logits of `spec` with heuristic configs for `sm_count` SMs: no ignored rows,
    /// contiguous, a mean and its gradient into a new buffer.
    pub fn new(m: usize, v: usize, spec: CrossEntropySpec, sm_count: usize) -> Case {
        Case {
            m,
            v,
            spec,
            scale: 1.0,
            ignore_percent: 0,
            ignore_index: -100,
            pad: 0,
            view_offset: 0,
            reduction: Reduction::Mean,
            grad: GradMode::Mean,
            dest: Dest::New,
            config: heuristic(v, spec.logits, sm_count),
            config_backward: heuristic_backward(v, spec.logits, sm_count),
            seed: m as u64 * 31 + v as u64,
        }
    }

    /// A case drawn from `seed` with `m ≤ max_m`, `v ≤ max_v` and configs valid for `sm_count`
    /// SMs (rows held in registers or walked in chunks), tiles of at most `max_tile` elements.
    pub fn random(seed: u64, max_m: usize, max_v: usize, sm_count: usize, max_tile: usize) -> Case {
        let mut d = Draw::new(seed);
        let m = d.rows(max_m);
        let v = d.cols(max_v);
        let spec = CrossEntropySpec { logits: d.pick(&FLOATS), target: d.pick(&[DType::I64, DType::I32]) };
        let scale = d.pick(&[1.0, 1.0, 5.0, 20.0]);
        let ignore_percent = d.pick(&[0, 0, 20, 100]);
        // An ignore index inside [0, V) too: a row with that target is still ignored.
        let ignore_index = if d.chance(20) { d.below(v as u64) as i64 } else { -100 };
        let strided = d.chance(30);
        let pad = if strided { d.pick(&[1, 3, 8]) } else { 0 };
        let view_offset = if strided { d.pick(&[0, 1, 5]) } else { 0 };
        let reduction = d.pick(&[Reduction::None, Reduction::Mean, Reduction::Sum]);
        let grad = match reduction {
            Reduction::None => GradMode::PerRow,
            Reduction::Mean => d.pick(&[GradMode::Mean, GradMode::Scalar]),
            Reduction::Sum => GradMode::Scalar,
        };
        let dest = d.pick(&[Dest::New, Dest::InPlace, Dest::Caller]);
        let config = d.config(v, heuristic(v, spec.logits, sm_count), sm_count, max_tile);
        let config_backward = d.config(v, heuristic_backward(v, spec.logits, sm_count), sm_count, max_tile);
        Case {
            m,
            v,
            spec,
            scale,
            ignore_percent,
            ignore_index,
            pad,
            view_offset,
            reduction,
            grad,
            dest,
            config,
            config_backward,
            seed: d.next(),
        }
    }

    fn stride(&self) -> usize {
        self.v + self.pad
    }

    fn view_len(&self) -> usize {
        view_len(self.m, self.v, self.stride(), self.view_offset)
    }

    fn rows_of(&self, b: &Buffer) -> Vec<f64> {
        rows_of(b, self.m, self.v, self.stride(), self.view_offset)
    }

    fn view<'a, S: Storage>(&self, buf: &'a S) -> Rows<'a, S> {
        Rows::strided(buf, self.view_offset, self.m, self.v, self.stride())
    }

    /// The targets: uniform in `[0, V)`, `ignore_percent` of them `ignore_index`.
    pub fn targets(&self) -> Vec<i64> {
        let mut d = Draw::new(self.seed ^ 9);
        (0..self.m)
            .map(|_| if d.below(100) < self.ignore_percent { self.ignore_index } else { d.below(self.v as u64) as i64 })
            .collect()
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} logits={} target={} scale={}",
            self.m, self.v, self.spec.logits, self.spec.target, self.scale
        )?;
        if self.ignore_percent > 0 {
            write!(f, " ignored={}% (index {})", self.ignore_percent, self.ignore_index)?;
        }
        if self.pad > 0 || self.view_offset > 0 {
            write!(f, " stride=v+{} at={}", self.pad, self.view_offset)?;
        }
        let (c, b) = (&self.config, &self.config_backward);
        write!(
            f,
            " {:?} grad={:?} dest={:?} fwd block={} rows={} warps={} bwd block={} rows={} warps={}",
            self.reduction, self.grad, self.dest, c.block_size, c.rows, c.num_warps, b.block_size, b.rows, b.num_warps
        )
    }
}

/// 0 when `got` and `want` agree to `tol` relatively (both NaN agree), else their relative error
/// (1 for a NaN on one side only).
fn scalar_error(got: f64, want: f64) -> f64 {
    match (got.is_nan(), want.is_nan()) {
        (true, true) => 0.0,
        (false, false) => (got - want).abs() / want.abs().max(1e-30),
        _ => 1.0,
    }
}

/// Runs `case` forward and backward on `backend` and compares every output with the fp64
/// reference.
pub fn run_case<B: Backend>(backend: &B, case: &Case) -> Result<CaseResult, KernelError> {
    let spec = &case.spec;
    let (m, v) = (case.m, case.v);
    let values: Vec<f64> = random_values(case.view_len(), case.seed).iter().map(|x| x * case.scale).collect();
    let logits_host = Buffer::from_f64(spec.logits, &values);
    let targets = case.targets();
    let target_host = Buffer::from_f64(spec.target, &targets.iter().map(|&t| t as f64).collect::<Vec<_>>());
    let logits = backend.upload(&logits_host)?;
    let target = backend.upload(&target_host)?;
    let opts =
        CrossEntropyOptions { ignore_index: case.ignore_index, reduction: case.reduction, config: Some(case.config) };
    let fwd = cross_entropy(backend, case.view(&logits), &target, &opts)?;
    debug_assert_eq!(&fwd.spec, spec);

    let logit_rows = case.rows_of(&logits_host);
    let expect = reference::cross_entropy(&logit_rows, &targets, m, v, case.ignore_index);
    let mut checks = vec![];
    let mut outputs = vec![];
    let loss = backend.download(&fwd.loss)?;
    let lse = backend.download(&fwd.lse)?;
    // The loss is a difference of terms of lse's size: its error is measured against ‖lse‖.
    let lse_norm = expect.lse.iter().map(|x| x * x).sum::<f64>().sqrt();
    checks.push(Check {
        name: "loss",
        error: rel_error_scaled(&loss.to_f64(), &expect.loss, lse_norm),
        tolerance: 1e-5,
    });
    checks.push(Check { name: "lse", error: rel_error_scaled(&lse.to_f64(), &expect.lse, 1.0), tolerance: 1e-5 });
    outputs.extend([loss, lse]);
    if let Some(r) = &fwd.reduced {
        let r = backend.download(r)?;
        let want = if case.reduction == Reduction::Mean { expect.mean } else { expect.sum };
        // Each loss is owed accuracy relative to its row's |lse| (the f32 lse rounds there): a sum
        // is measured against ‖lse‖·√m, a mean against the mean |lse| of the rows it counts.
        let counted_lse = (0..m).filter(|&r| targets[r] != case.ignore_index).map(|r| expect.lse[r].abs()).sum::<f64>();
        let floor = match case.reduction {
            Reduction::Mean => counted_lse / expect.count.max(1) as f64,
            _ => lse_norm * (m as f64).sqrt(),
        };
        let err = if want.is_nan() {
            scalar_error(r.get(0), want)
        } else {
            (r.get(0) - want).abs() / want.abs().max(floor).max(1e-30)
        };
        checks.push(Check { name: "reduced", error: err, tolerance: 1e-5 });
        checks.push(Check { name: "count", error: (r.get(1) - expect.count as f64).abs(), tolerance: 0.0 });
        outputs.push(r);
    }

    // Backward.
    let dloss_host = Buffer::from_f64(DType::F32, &random_values(m, case.seed ^ 5));
    let dloss = backend.upload(&dloss_host)?;
    let g = 0.75f32;
    let (grad, scale): (LossGrad<'_, B::Buffer>, Vec<f64>) = match case.grad {
        GradMode::PerRow => (LossGrad::PerRow(&dloss), dloss_host.to_f64()),
        GradMode::Scalar => (LossGrad::Scalar(g), vec![g as f64; m]),
        GradMode::Mean => {
            let reduced = fwd.reduced.as_ref().expect("a mean gradient comes with a reduction");
            (LossGrad::Mean { grad: g, reduced }, vec![g as f64 / expect.count as f64; m])
        }
    };
    let caller_host = (case.dest == Dest::Caller).then(|| Buffer::filled(spec.logits, case.view_len(), f64::NAN));
    let caller = caller_host.as_ref().map(|b| backend.upload(b)).transpose()?;
    let out = match (case.dest, &caller) {
        (Dest::New, _) => GradOut::New,
        (Dest::InPlace, _) => GradOut::InPlace,
        (Dest::Caller, Some(c)) => GradOut::Into(case.view(c)),
        (Dest::Caller, None) => unreachable!("allocated above"),
    };
    let bopts =
        CrossEntropyBackwardOptions { ignore_index: case.ignore_index, out, config: Some(case.config_backward) };
    let grads = cross_entropy_backward(backend, spec, case.view(&logits), &target, &fwd.lse, grad, &bopts)?;
    let got = match (case.dest, &grads.dlogits, &caller) {
        (Dest::New, Some(d), _) => backend.download(d)?.to_f64(),
        (Dest::InPlace, _, _) => {
            let b = backend.download(&logits)?;
            // The padding between rows keeps the logits.
            let mut inside = vec![false; b.len()];
            for r in 0..m {
                let start = case.view_offset + r * case.stride();
                inside[start..start + v].iter_mut().for_each(|x| *x = true);
            }
            let changed_outside =
                (0..b.len()).filter(|&i| !inside[i] && b.get(i).to_bits() != logits_host.get(i).to_bits()).count();
            checks.push(Check { name: "in-place padding untouched", error: changed_outside as f64, tolerance: 0.0 });
            case.rows_of(&b)
        }
        (Dest::Caller, _, Some(c)) => {
            let b = backend.download(c)?;
            let written = padding_written(&b, m, v, case.stride(), case.view_offset);
            checks.push(Check { name: "out padding untouched", error: written as f64, tolerance: 0.0 });
            case.rows_of(&b)
        }
        _ => unreachable!("cross_entropy_backward returns dlogits exactly for GradOut::New"),
    };
    let want = reference::cross_entropy_backward(&logit_rows, &targets, m, v, case.ignore_index, &scale);
    let ignored_rows_zero = (0..m)
        .filter(|&r| targets[r] == case.ignore_index)
        .map(|r| got[r * v..(r + 1) * v].iter().filter(|x| **x != 0.0).count())
        .sum::<usize>();
    checks.push(Check { name: "ignored rows' gradient is 0", error: ignored_rows_zero as f64, tolerance: 0.0 });
    // lse is f32, so each row's softmax carries a relative error of up to ulp(lse): where the target
    // holds nearly all the mass, `p − 1` cancels to that and no more (as in every f32 softmax). A
    // row's gradient is therefore owed no better than |scale|·ulp(lse) in absolute terms.
    let floor = (0..m)
        .map(|r| (scale[r] * 4.0 * f32::EPSILON as f64 * expect.lse[r].abs().max(1.0)).powi(2))
        .sum::<f64>()
        .sqrt();
    let tol = tolerance(spec.logits);
    checks.push(Check { name: "dlogits", error: rel_error_scaled(&got, &want, floor / tol), tolerance: tol });
    outputs.push(Buffer::from_f64(spec.logits, &got));
    Ok(CaseResult { checks, outputs })
}
