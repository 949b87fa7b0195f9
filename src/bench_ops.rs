//! `tritonite bench --ops`: LayerNorm, softmax and cross-entropy timed like RMSNorm (CUDA events
//! around prepared launches, inputs rotated past the L2, the copy ceiling of the same process), one
//! [`BenchRow`] per op and shape. Peers come from `benches/peers_ops.py`'s `peers_ops.json`.
//!
//! Every plan is timed the same way: its buffers are allocated from its own declarations (inputs
//! random, integer inputs valid class indices), so a new kernel needs only its plans here.

use anyhow::{bail, Context, Result};
use tritonite::kernels::backend::Binding;
use tritonite::kernels::cross_entropy::{self, CrossEntropySpec, GradMode, Reduction};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::layernorm::{self, LayerNormSpec};
use tritonite::kernels::plan::{Plan, Role};
use tritonite::kernels::reference;
use tritonite::kernels::rowwise::RowConfig;
use tritonite::kernels::softmax::{self, SoftmaxSpec};
use tritonite::kernels::tuning::{select, Source, Tunable};
use tritonite::lang::{Buffer, DType};
use tritonite::runtime::DeviceBuffer;

use crate::bench::{BenchRow, PassResult};

/// The shapes `benches/peers_ops.py` measures, as `op:MxN:dtype`.
pub const OPS_SHAPES: &str = "layernorm:32768x4096:bf16,layernorm:16384x1000:f32,layernorm:4096x8192:bf16,\
layernorm:32768x1024:bf16,softmax:32768x4096:bf16,softmax:16384x1000:f32,softmax:4096x32768:bf16,\
softmax:1024x262144:bf16,cross_entropy:4096x32000:bf16,cross_entropy:4096x128256:bf16,\
cross_entropy:1024x262144:bf16,cross_entropy:8192x50257:f32";

/// The ops `--ops` knows.
pub const OPS: [&str; 3] = ["layernorm", "softmax", "cross_entropy"];

/// Parses `op:MxN:dtype,...` ([`OPS_SHAPES`] for `peers`).
pub fn parse_op_shapes(spec: &str) -> Result<Vec<(String, usize, usize, DType)>> {
    let spec = if spec == "peers" { OPS_SHAPES } else { spec };
    spec.split(',')
        .map(|s| {
            let s = s.trim();
            let (op, rest) = s.split_once(':').with_context(|| format!("shape {s:?}: expected op:MxN:dtype"))?;
            if !OPS.contains(&op) {
                bail!("shape {s:?}: unknown op {op:?} (expected one of {})", OPS.join(", "));
            }
            let (m, n, dtype) = crate::bench::parse_shapes(rest, None)?
                .pop()
                .with_context(|| format!("shape {s:?}: expected op:MxN:dtype"))?;
            Ok((op.to_string(), m, n, dtype))
        })
        .collect()
}

/// Bytes that must move in the forward and the backward, as `peers_ops.py` counts them.
pub fn op_bytes(op: &str, m: usize, n: usize, es: usize) -> (f64, f64) {
    let (m, n, es) = (m as f64, n as f64, es as f64);
    match op {
        "layernorm" => (2.0 * m * n * es + 2.0 * n * es + 8.0 * m, 3.0 * m * n * es + 4.0 * n * es),
        "softmax" => (2.0 * m * n * es, 3.0 * m * n * es),
        _ => (m * n * es + 12.0 * m, 2.0 * m * n * es + 8.0 * m),
    }
}

/// A config as the tables show it.
fn describe(c: &RowConfig) -> String {
    format!("BLOCK_SIZE={} PROGRAMS={} ROWS={} num_warps={}", c.block_size, c.programs, c.rows, c.num_warps)
}

/// One pass's plan, its config as the tables show it, and whether that config was tuned.
type PassPlan = (Plan, String, bool);

/// The config of `problem`: the cached tuned one (`tritonite autotune`), else the heuristic; never
/// tunes here (the bench sets the mode off). Returns it and whether it came from the cache.
fn pick<P: Tunable<Knobs = RowConfig>>(gpu: &GpuExecutor, problem: &P) -> Result<(RowConfig, bool)> {
    let s = select(gpu, problem, &mut |_| {})?;
    Ok((s.config, s.source == Source::Cache))
}

/// The forward and backward plans of one op and shape with the cached tuned configs, else the
/// heuristics, each with a name for its config.
fn plans(gpu: &GpuExecutor, op: &str, m: usize, n: usize, dtype: DType) -> Result<[PassPlan; 2]> {
    Ok(match op {
        "layernorm" => {
            use layernorm::tuning::{Pass, Problem};
            let spec = LayerNormSpec::new(dtype, Some(dtype), Some(dtype));
            let (f, ft) = pick(gpu, &Problem { pass: Pass::Forward, spec, m, n })?;
            let (b, bt) = pick(gpu, &Problem { pass: Pass::Backward, spec, m, n })?;
            [
                (
                    layernorm::forward_plan(&spec, &layernorm::ForwardShape::contiguous(m, n), 1e-5, &f)?,
                    describe(&f),
                    ft,
                ),
                (layernorm::backward_plan(&spec, &layernorm::BackwardShape::contiguous(m, n), &b)?, describe(&b), bt),
            ]
        }
        "softmax" => {
            use softmax::tuning::{Pass, Problem};
            let spec = SoftmaxSpec::new(dtype);
            let (f, ft) = pick(gpu, &Problem { pass: Pass::Forward, spec, m, n })?;
            let (b, bt) = pick(gpu, &Problem { pass: Pass::Backward, spec, m, n })?;
            [
                (softmax::forward_plan(&spec, &softmax::ForwardShape::contiguous(m, n), &f)?, describe(&f), ft),
                (softmax::backward_plan(&spec, &softmax::BackwardShape::contiguous(m, n), &b)?, describe(&b), bt),
            ]
        }
        _ => {
            use cross_entropy::tuning::Problem;
            let spec = CrossEntropySpec { logits: dtype, target: DType::I64 };
            // The backward of a mean loss, written in place into the logits (what training does).
            let (f, ft) = pick(gpu, &Problem::forward(spec, m, n))?;
            let (b, bt) = pick(gpu, &Problem::backward(spec, GradMode::Mean, true, m, n))?;
            let fwd_shape = cross_entropy::ForwardShape { m, v: n, stride: n };
            let bwd_shape = cross_entropy::BackwardShape { m, v: n, stride: n, stride_dlogits: n };
            [
                (cross_entropy::forward_plan(&spec, &fwd_shape, -100, Reduction::Mean, &f)?, describe(&f), ft),
                (
                    cross_entropy::backward_plan(&spec, &bwd_shape, GradMode::Mean, true, -100, 1.0, &b)?,
                    describe(&b),
                    bt,
                ),
            ]
        }
    })
}

/// A buffer for one declaration of a plan: random floats, class indices in `[0, classes)` for
/// integer inputs (the cross-entropy targets), zeros for outputs and scratch.
fn buffer_for(
    dev: &tritonite::runtime::Device,
    dtype: DType,
    len: usize,
    role: Role,
    classes: usize,
    seed: u64,
) -> Result<DeviceBuffer> {
    let host = match role {
        Role::Input if dtype.is_int() => Buffer::from_f64(
            dtype,
            &(0..len).map(|i| ((i * 7919 + seed as usize) % classes) as f64).collect::<Vec<_>>(),
        ),
        Role::Input => reference::random_buffer(dtype, len, seed),
        Role::Output | Role::Scratch => Buffer::filled(dtype, len, 0.0),
    };
    Ok(DeviceBuffer::upload(dev, &host)?)
}

/// Median microseconds of `plan`'s launches over copies of its buffers rotated past the L2.
fn time_fresh_plan(gpu: &GpuExecutor, plan: &Plan, classes: usize) -> Result<f64> {
    time_on(gpu, plan, &fresh_buffers(gpu, plan, classes)?)
}

/// Buffers for every declaration of `plan` ([`buffer_for`]), in as many copies as keep the runs
/// out of the L2. Plans that declare the same buffers (one shape, other configs) can share them.
pub(crate) fn fresh_buffers(gpu: &GpuExecutor, plan: &Plan, classes: usize) -> Result<Vec<Vec<DeviceBuffer>>> {
    let dev = gpu.device();
    let bytes: usize = plan.buffers.iter().map(|d| d.len * d.dtype.size_bytes()).sum();
    (0..crate::bench::copies_past_l2(bytes))
        .map(|c| {
            plan.buffers
                .iter()
                .enumerate()
                .map(|(i, d)| buffer_for(dev, d.dtype, d.len, d.role, classes, (c * 31 + i) as u64 + 1))
                .collect()
        })
        .collect()
}

/// Median microseconds of `plan`'s launches, rotating among the buffer `sets` (bound to the
/// plan's declarations in order).
pub(crate) fn time_on(gpu: &GpuExecutor, plan: &Plan, sets: &[Vec<DeviceBuffer>]) -> Result<f64> {
    let bindings: Vec<Vec<Binding<'_, DeviceBuffer>>> =
        sets.iter().map(|set| plan.buffers.iter().zip(set).map(|(d, b)| Binding::whole(d.name, b)).collect()).collect();
    crate::bench::time_plan(gpu, plan, &bindings)
}

/// Times one op on one shape: forward and backward with the cached tuned configs, else the
/// heuristics.
pub fn measure_op(gpu: &GpuExecutor, op: &str, m: usize, n: usize, dtype: DType, copy_gbs: f64) -> Result<BenchRow> {
    let [(fwd, fwd_cfg, fwd_tuned), (bwd, bwd_cfg, bwd_tuned)] = plans(gpu, op, m, n, dtype)?;
    let fwd_us = time_fresh_plan(gpu, &fwd, n)?;
    let bwd_us = time_fresh_plan(gpu, &bwd, n)?;
    let (fwd_bytes, bwd_bytes) = op_bytes(op, m, n, dtype.size_bytes());
    let pass = |config: String, tuned: bool, us: f64, bytes: f64| {
        let gbs = bytes / (us * 1e-6) / 1e9;
        PassResult { config, tuned, median_us: us, gbs, ratio_to_copy: gbs / copy_gbs }
    };
    Ok(BenchRow {
        op: op.to_string(),
        m,
        n,
        dtype: dtype.to_string(),
        fwd: pass(fwd_cfg, fwd_tuned, fwd_us, fwd_bytes),
        bwd: pass(bwd_cfg, bwd_tuned, bwd_us, bwd_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_shapes_parse_and_reject_unknown_ops() {
        let shapes = parse_op_shapes("peers").unwrap();
        assert_eq!(shapes.len(), 12);
        assert_eq!(shapes[0], ("layernorm".to_string(), 32768, 4096, DType::BF16));
        assert!(parse_op_shapes("gelu:1x2:f32").unwrap_err().to_string().contains("unknown op"));
        assert!(parse_op_shapes("softmax:1x2").is_err());
    }
}
