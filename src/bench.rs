//! `tritonite bench`: RMSNorm forward and backward timed on the GPU with CUDA events, next to a
//! device-to-device copy measured in the same process (the bandwidth ceiling).

use anyhow::{bail, Context, Result};
use tritonite::kernels::backend::{Backend, Binding};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::Plan;
use tritonite::kernels::reference;
use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite::kernels::rmsnorm::{self, BackwardShape, ForwardShape, RmsNormConfig, RmsNormSpec};
use tritonite::kernels::tuning::{Source, TuneMode};
use tritonite::lang::DType;
use tritonite::runtime::{Device, DeviceBuffer};

/// The shapes of ../shared/anchors/PEERS.md.
pub const PEER_SHAPES: &str = "2048x8192:f32,16384x1024:f32,32768x4096:f32,16384x1000:f32,4096x8192:bf16,\
4096x4096:f16,32768x256:bf16,32768x1024:bf16,32768x4096:bf16,32768x5120:bf16,32768x8192:bf16,\
16384x32768:bf16,4096x65536:bf16,1024x262144:bf16";

/// One row of results.
pub struct Row {
    m: usize,
    n: usize,
    dtype: DType,
    fwd: RmsNormConfig,
    bwd: RmsNormConfig,
    /// Whether each config came from the tuned cache (else the heuristic).
    tuned: [bool; 2],
    fwd_us: f64,
    bwd_us: f64,
}

/// Parses `MxN[:dtype],...` (`peers` for [`PEER_SHAPES`]); a shape without a dtype takes
/// `default`.
pub fn parse_shapes(spec: &str, default: Option<DType>) -> Result<Vec<(usize, usize, DType)>> {
    let spec = if spec == "peers" { PEER_SHAPES } else { spec };
    spec.split(',')
        .map(|s| {
            let s = s.trim();
            let (mn, d) = match s.split_once(':') {
                Some((mn, d)) => (mn, DType::parse(d).filter(|d| d.is_float())),
                None => (s, default),
            };
            let dtype = d.with_context(|| format!("shape {s:?}: expected MxN:dtype with dtype f32, f16 or bf16"))?;
            let (m, n) = mn.split_once('x').with_context(|| format!("shape {s:?}: expected MxN"))?;
            let m = m.parse().with_context(|| format!("shape {s:?}: M is not a number"))?;
            let n = n.parse().with_context(|| format!("shape {s:?}: N is not a number"))?;
            Ok((m, n, dtype))
        })
        .collect()
}

fn median_us(mut t: Vec<f32>) -> f64 {
    t.sort_by(f32::total_cmp);
    t[t.len() / 2] as f64 * 1e3
}

fn time_plan(gpu: &GpuExecutor, plan: &Plan, sets: &[Vec<Binding<'_, DeviceBuffer>>]) -> Result<f64> {
    let prepared = gpu.prepare(plan, &sets[0])?;
    let mut i = 0;
    let times = gpu.device().time_ms(5, 40, || {
        i += 1;
        gpu.launch(plan, &prepared, &sets[i % sets.len()])
    })?;
    Ok(median_us(times))
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(shapes: &str) -> Result<()> {
    let shapes = parse_shapes(shapes, None)?;
    let device = match Device::open(0) {
        Ok(d) => d,
        Err(e) => bail!("bench needs a GPU: {e}"),
    };
    let name = device.name()?;
    let sms = device.sm_count()? as usize;
    let gpu = GpuExecutor::new(device)?;
    gpu.autotuner().expect("the GPU executor tunes").set_mode(TuneMode::Off);
    let dev = gpu.device();

    // Copy ceiling: 1 GiB device to device, bytes read + written.
    let copy_len = 1 << 28;
    let src = DeviceBuffer::filled(dev, DType::F32, copy_len, 1.0)?;
    let mut dst = DeviceBuffer::filled(dev, DType::F32, copy_len, 0.0)?;
    let copy_us = median_us(dev.time_ms(3, 20, || dst.copy_from(dev, &src))?);
    let copy_gbs = 2.0 * (copy_len * 4) as f64 / (copy_us * 1e-6) / 1e9;
    drop((src, dst));
    println!("device {name}: {sms} SMs, device-to-device copy {copy_gbs:.0} GB/s (read + write)\n");

    println!("| shape | dtype | config | fwd us | fwd GB/s | fwd / copy | bwd us | bwd GB/s | bwd / copy |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (m, n, dtype) in shapes {
        let es = dtype.size_bytes();
        // The cached tuned configs (`tritonite autotune`), else the heuristics; never tunes here.
        let spec = RmsNormSpec::new(dtype, Some(dtype));
        let pick = |pass| {
            let problem = Problem { pass, spec, dresidual_out: false, m, n };
            select(&gpu, &problem, &mut |_| {})
        };
        let (fwd_sel, bwd_sel) = (pick(Pass::Forward)?, pick(Pass::Backward)?);
        let (cfg, bwd_cfg) = (fwd_sel.config, bwd_sel.config);
        let tuned = [fwd_sel.source, bwd_sel.source].map(|s| s == Source::Cache);
        // Rotate among enough input copies to exceed twice the L2 (50 MB), so no run hits in cache.
        let copies = (100_000_000usize.div_ceil(m * n * es)).clamp(1, 8);
        let w = DeviceBuffer::upload(dev, &reference::random_weight(dtype, n, 99))?;
        let mut xs = vec![];
        let mut dys = vec![];
        let mut outs = vec![];
        for c in 0..copies {
            xs.push(DeviceBuffer::upload(dev, &reference::random_buffer(dtype, m * n, 2 * c as u64 + 1))?);
            dys.push(DeviceBuffer::upload(dev, &reference::random_buffer(dtype, m * n, 2 * c as u64 + 2))?);
            outs.push([
                DeviceBuffer::filled(dev, dtype, m * n, 0.0)?,
                DeviceBuffer::filled(dev, DType::F32, m, 0.0)?,
                DeviceBuffer::filled(dev, dtype, m * n, 0.0)?,
            ]);
        }
        let partial = DeviceBuffer::filled(dev, DType::F32, bwd_cfg.programs.min(m) * n, 0.0)?;
        let dw = DeviceBuffer::filled(dev, dtype, n, 0.0)?;
        let fwd = rmsnorm::forward_plan(&spec, &ForwardShape::contiguous(m, n), 1e-6, 0.0, &cfg)?;
        let bwd = rmsnorm::backward_plan(&spec, false, &BackwardShape::contiguous(m, n), 0.0, &bwd_cfg)?;
        let bind = Binding::whole;
        let fwd_sets: Vec<_> = (0..copies)
            .map(|c| vec![bind("x", &xs[c]), bind("w", &w), bind("y", &outs[c][0]), bind("rstd", &outs[c][1])])
            .collect();
        let bwd_sets: Vec<_> = (0..copies)
            .map(|c| {
                vec![
                    bind("x", &xs[c]),
                    bind("w", &w),
                    bind("dy", &dys[c]),
                    bind("rstd", &outs[c][1]),
                    bind("dx", &outs[c][2]),
                    bind("dw_partial", &partial),
                    bind("dw", &dw),
                ]
            })
            .collect();
        let fwd_us = time_plan(&gpu, &fwd, &fwd_sets)?;
        let bwd_us = time_plan(&gpu, &bwd, &bwd_sets)?;
        print_row(&Row { m, n, dtype, fwd: cfg, bwd: bwd_cfg, tuned, fwd_us, bwd_us }, copy_gbs);
    }
    Ok(())
}

fn print_row(r: &Row, copy_gbs: f64) {
    let es = r.dtype.size_bytes() as f64;
    let (m, n) = (r.m as f64, r.n as f64);
    let fwd_gbs = (2.0 * m * n + n) * es / (r.fwd_us * 1e-6) / 1e9;
    let bwd_gbs = (3.0 * m * n + 2.0 * n) * es / (r.bwd_us * 1e-6) / 1e9;
    println!(
        "| {}x{} | {} | fwd {} {}; bwd {} {} | {:.1} | {:.0} | {:.2} | {:.1} | {:.0} | {:.2} |",
        r.m,
        r.n,
        r.dtype,
        if r.tuned[0] { "tuned" } else { "heuristic" },
        r.fwd.to_config(),
        if r.tuned[1] { "tuned" } else { "heuristic" },
        r.bwd.to_config(),
        r.fwd_us,
        fwd_gbs,
        fwd_gbs / copy_gbs,
        r.bwd_us,
        bwd_gbs,
        bwd_gbs / copy_gbs
    );
}
