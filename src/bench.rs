//! `tritonite bench`: RMSNorm forward and backward timed on the GPU with CUDA events, next to a
//! device-to-device copy measured in the same process (the bandwidth ceiling).
//!
//! The measurement (GPU only) produces a [`BenchReport`]; everything after it — the Markdown tables,
//! the merge with the peers' `peers.json` (written by `shared/anchors/peers.py`), the PNG plot — works
//! from that report alone, so `tritonite bench report --from DIR/bench.json` regenerates it without a
//! GPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tritonite::kernels::backend::{alloc_scratch, Backend, Binding};
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::plan::Plan;
use tritonite::kernels::reference;
use tritonite::kernels::rmsnorm::tuning::{select, Pass, Problem};
use tritonite::kernels::rmsnorm::{self, BackwardShape, ForwardShape, RmsNormSpec};
use tritonite::kernels::tuning::{Source, TuneMode};
use tritonite::lang::DType;
use tritonite::runtime::{Device, DeviceBuffer};

/// The shapes of ../shared/anchors/PEERS.md.
pub const PEER_SHAPES: &str = "2048x8192:f32,16384x1024:f32,32768x4096:f32,16384x1000:f32,4096x8192:bf16,\
4096x4096:f16,32768x256:bf16,32768x1024:bf16,32768x4096:bf16,32768x5120:bf16,32768x8192:bf16,\
16384x32768:bf16,4096x65536:bf16,1024x262144:bf16";

/// Arguments of `tritonite bench`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// `report`: regenerate the tables and plot from a saved bench.json (no GPU needed).
    #[command(subcommand)]
    action: Option<BenchAction>,
    /// Shapes as MxN:dtype, comma-separated (default: the shapes of the peer table); with `--ops`,
    /// op:MxN:dtype (op: layernorm, softmax, cross_entropy; default: benches/peers_ops.py's shapes).
    #[arg(long)]
    shapes: Option<String>,
    /// Time LayerNorm, softmax and cross-entropy instead of RMSNorm (their peers' file is written by
    /// benches/peers_ops.py).
    #[arg(long)]
    ops: bool,
    /// Also write DIR/bench.json, DIR/bench.md and DIR/bench.png (default: print only).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The peers.json written by shared/anchors/peers.py (or, with `--ops`, the peers_ops.json of
    /// benches/peers_ops.py): merge the peers into the table and plot.
    #[arg(long, value_name = "PATH")]
    peers: Option<PathBuf>,
}

/// Subcommands of `tritonite bench`.
#[derive(clap::Subcommand)]
pub enum BenchAction {
    /// Print (and with --out, write) the tables and plot of a saved bench.json; needs no GPU.
    Report {
        /// A bench.json written by `tritonite bench --out DIR`.
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// The peers.json written by shared/anchors/peers.py, to merge in.
        #[arg(long, value_name = "PATH")]
        peers: Option<PathBuf>,
        /// Write DIR/bench.json (the report read back), DIR/bench.md and DIR/bench.png.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Runs `tritonite bench` with its arguments.
pub fn main(args: &BenchArgs) -> Result<()> {
    match &args.action {
        Some(BenchAction::Report { from, peers, out }) => {
            let text = std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
            let report: BenchReport =
                serde_json::from_str(&text).with_context(|| format!("{} is not a bench.json", from.display()))?;
            let peers = peers.as_deref().map(PeersFile::load).transpose()?;
            emit(&report, peers.as_ref(), out.as_deref())
        }
        None => {
            let default = if args.ops { crate::bench_ops::OPS_SHAPES } else { PEER_SHAPES };
            let report = measure(args.shapes.as_deref().unwrap_or(default), args.ops)?;
            // Our own results are written even when the peers' file turns out unreadable.
            match args.peers.as_deref().map(PeersFile::load).transpose() {
                Ok(peers) => emit(&report, peers.as_ref(), args.out.as_deref())?,
                Err(e) => {
                    emit(&report, None, args.out.as_deref())?;
                    return Err(e);
                }
            }
            if !report.failures.is_empty() {
                bail!("{} of the shapes could not be measured", report.failures.len());
            }
            Ok(())
        }
    }
}

/// Prints the tables; with `out`, writes bench.json, bench.md and bench.png there.
fn emit(report: &BenchReport, peers: Option<&PeersFile>, out: Option<&Path>) -> Result<()> {
    let md = markdown(report, peers);
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join("bench.json");
        std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        let md_path = dir.join("bench.md");
        std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
        let png = dir.join("bench.png");
        plot(report, peers, &png)?;
        print!("{md}");
        println!("\nwrote {}, {} and {}", json.display(), md_path.display(), png.display());
    } else {
        print!("{md}");
    }
    Ok(())
}

/// One benchmark run: the device, its copy ceiling and one row per shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// The GPU's name.
    pub device: String,
    /// Its streaming multiprocessors.
    pub sm_count: usize,
    /// Device-to-device copy of 1 GiB measured in the same process, GB/s of bytes read + written.
    pub copy_gbs: f64,
    /// When it ran (UTC).
    pub date: String,
    /// One row per shape, in the order measured.
    pub rows: Vec<BenchRow>,
    /// Shapes that could not be measured, with why.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// One shape's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRow {
    /// The kernel: `rmsnorm` (the default of older reports), `layernorm`, `softmax`,
    /// `cross_entropy`.
    #[serde(default = "rmsnorm_op")]
    pub op: String,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Element dtype: f32, f16 or bf16.
    pub dtype: String,
    /// Forward: x read, y written (+ w).
    pub fwd: PassResult,
    /// Backward, one full call producing dx and dw: x and dy read, dx written (+ w, dw).
    pub bwd: PassResult,
}

/// One pass of one shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassResult {
    /// The kernel config (`BLOCK_SIZE=… num_warps=… PROGRAMS=…`).
    pub config: String,
    /// Whether the config came from the autotuning cache (else the heuristic).
    pub tuned: bool,
    /// Median time in microseconds.
    pub median_us: f64,
    /// Bytes that must move / median time, GB/s.
    pub gbs: f64,
    /// `gbs` over the copy ceiling of the same run.
    pub ratio_to_copy: f64,
}

/// Bytes that must move in the forward (x read, y written, w read) and the backward (x and dy read,
/// dx written, w read and dw written), as `peers.py` counts them.
pub fn bytes_moved(m: usize, n: usize, elem_bytes: usize) -> (f64, f64) {
    let (m, n, es) = (m as f64, n as f64, elem_bytes as f64);
    ((2.0 * m * n + n) * es, (3.0 * m * n + 2.0 * n) * es)
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

/// How many copies of `bytes` of inputs to rotate among so that together they exceed twice the
/// L2 (50 MB) and no run finds its inputs in cache (1 to 8).
pub(crate) fn copies_past_l2(bytes: usize) -> usize {
    100_000_000usize.div_ceil(bytes.max(1)).clamp(1, 8)
}

/// Median microseconds of `plan`'s launches (5 warm-up, 40 timed), rotating among the binding
/// `sets` so that no run finds its inputs in the L2.
pub(crate) fn time_plan(gpu: &GpuExecutor, plan: &Plan, sets: &[Vec<Binding<'_, DeviceBuffer>>]) -> Result<f64> {
    let prepared = gpu.prepare(plan, &sets[0])?;
    let mut i = 0;
    let times = gpu.device().time_ms(5, 40, || {
        i += 1;
        gpu.launch(plan, &prepared, &sets[i % sets.len()])
    })?;
    Ok(median_us(times))
}

/// Times every shape (of RMSNorm, or with `ops` of the ops named in them) on GPU 0, printing each
/// row as it completes.
fn measure(shapes: &str, ops: bool) -> Result<BenchReport> {
    let shapes = if ops {
        crate::bench_ops::parse_op_shapes(shapes)?
    } else {
        parse_shapes(shapes, None)?.into_iter().map(|(m, n, d)| (rmsnorm_op(), m, n, d)).collect()
    };
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
    eprintln!("device {name}: {sms} SMs, device-to-device copy {copy_gbs:.0} GB/s (read + write)");

    let mut report =
        BenchReport { device: name, sm_count: sms, copy_gbs, date: utc_now(), rows: vec![], failures: vec![] };
    for (op, m, n, dtype) in shapes {
        // One shape failing (a plan refused, a launch error) leaves the others' rows standing.
        let row = match op.as_str() {
            "rmsnorm" => measure_shape(&gpu, m, n, dtype, copy_gbs),
            op => crate::bench_ops::measure_op(&gpu, op, m, n, dtype, copy_gbs),
        };
        let shape = shape_cell(&op, m, n);
        match row {
            Ok(row) => {
                eprintln!(
                    "{shape} {dtype}: fwd {:.1} us {:.0} GB/s, bwd {:.1} us {:.0} GB/s",
                    row.fwd.median_us, row.fwd.gbs, row.bwd.median_us, row.bwd.gbs
                );
                report.rows.push(row);
            }
            Err(e) => {
                eprintln!("{shape} {dtype}: FAILED: {e:#}");
                report.failures.push(format!("{shape} {dtype}: {e:#}"));
            }
        }
    }
    Ok(report)
}

/// Times one shape's forward and backward with the cached tuned configs, else the heuristics.
fn measure_shape(gpu: &GpuExecutor, m: usize, n: usize, dtype: DType, copy_gbs: f64) -> Result<BenchRow> {
    let dev = gpu.device();
    let es = dtype.size_bytes();
    // The cached tuned configs (`tritonite autotune`), else the heuristics; never tunes here.
    let spec = RmsNormSpec::new(dtype, Some(dtype));
    let pick = |pass| {
        let problem = Problem { pass, spec, dresidual_out: false, m, n };
        select(gpu, &problem, &mut |_| {})
    };
    let (fwd_sel, bwd_sel) = (pick(Pass::Forward)?, pick(Pass::Backward)?);
    let (cfg, bwd_cfg) = (fwd_sel.config, bwd_sel.config);
    let copies = copies_past_l2(m * n * es);
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
    let dw = DeviceBuffer::filled(dev, dtype, n, 0.0)?;
    let fwd = rmsnorm::forward_plan(&spec, &ForwardShape::contiguous(m, n), 1e-6, 0.0, &cfg)?;
    let bwd = rmsnorm::backward_plan(&spec, false, &BackwardShape::contiguous(m, n), 0.0, &bwd_cfg)?;
    // The dW partials, as the plan sizes them.
    let scratch = alloc_scratch(gpu, &bwd)?;
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
                bind("dw", &dw),
            ]
            .into_iter()
            .chain(scratch.iter().map(|(name, b)| bind(name, b)))
            .collect()
        })
        .collect();
    let fwd_us = time_plan(gpu, &fwd, &fwd_sets)?;
    let bwd_us = time_plan(gpu, &bwd, &bwd_sets)?;
    let (fwd_bytes, bwd_bytes) = bytes_moved(m, n, es);
    let pass = |config: String, tuned: bool, us: f64, bytes: f64| {
        let gbs = bytes / (us * 1e-6) / 1e9;
        PassResult { config, tuned, median_us: us, gbs, ratio_to_copy: gbs / copy_gbs }
    };
    Ok(BenchRow {
        op: rmsnorm_op(),
        m,
        n,
        dtype: dtype.to_string(),
        fwd: pass(cfg.to_config().to_string(), fwd_sel.source == Source::Cache, fwd_us, fwd_bytes),
        bwd: pass(bwd_cfg.to_config().to_string(), bwd_sel.source == Source::Cache, bwd_us, bwd_bytes),
    })
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar).
fn utc_date(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// What `shared/anchors/peers.py` writes to `$OUT/peers.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct PeersFile {
    /// The GPU's name as torch reports it.
    #[serde(default)]
    pub device: String,
    /// The device-to-device copy peers.py measured, GB/s (read + write).
    #[serde(rename = "copy_GBs", default)]
    pub copy_gbs: Option<f64>,
    /// One row per peer and shape.
    pub rows: Vec<PeerRow>,
}

/// What rows without an `op` measured: RMSNorm (peers.py and the first reports).
pub fn rmsnorm_op() -> String {
    "rmsnorm".into()
}

/// `rmsnorm 4096x8192` for other ops, `4096x8192` for RMSNorm (the tables' shape cell).
fn shape_cell(op: &str, m: usize, n: usize) -> String {
    if op == "rmsnorm" {
        format!("{m}x{n}")
    } else {
        format!("{op} {m}x{n}")
    }
}

/// One peer on one shape.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerRow {
    /// The kernel (`rmsnorm` when absent: peers.py measures only RMSNorm).
    #[serde(default = "rmsnorm_op")]
    pub op: String,
    /// `torch`, `torch.compile`, `liger`, `quack`.
    pub peer: String,
    /// Rows.
    #[serde(rename = "M")]
    pub m: usize,
    /// Columns.
    #[serde(rename = "N")]
    pub n: usize,
    /// `fp32`, `fp16` or `bf16`.
    pub dtype: String,
    /// Forward GB/s (absent when the peer failed).
    #[serde(rename = "fwd_GBs", default)]
    pub fwd_gbs: Option<f64>,
    /// Backward GB/s (absent when the peer failed).
    #[serde(rename = "bwd_GBs", default)]
    pub bwd_gbs: Option<f64>,
    /// Why the peer failed on this shape.
    #[serde(default)]
    pub error: Option<String>,
}

impl PeersFile {
    /// Reads and parses a peers.json.
    pub fn load(path: &Path) -> Result<PeersFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a peers.py peers.json", path.display()))
    }

    /// The peers' names in the order they first appear.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = vec![];
        for r in &self.rows {
            if !names.contains(&r.peer.as_str()) {
                names.push(&r.peer);
            }
        }
        names
    }

    /// The row of `peer` on our row's op and shape, if measured.
    pub fn find(&self, peer: &str, row: &BenchRow) -> Option<&PeerRow> {
        self.rows.iter().find(|r| r.peer == peer && r.matches(row))
    }

    /// The fastest peer on our row's op and shape for one pass: its name and GB/s.
    pub fn best(&self, row: &BenchRow, bwd: bool) -> Option<(&str, f64)> {
        self.rows
            .iter()
            .filter(|r| r.matches(row) && r.error.is_none())
            .filter_map(|r| Some((r.peer.as_str(), if bwd { r.bwd_gbs? } else { r.fwd_gbs? })))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl PeerRow {
    /// Whether this peer row measured the same op, shape and dtype as our `row`.
    pub fn matches(&self, row: &BenchRow) -> bool {
        self.op == row.op && self.m == row.m && self.n == row.n && canonical_dtype(&self.dtype) == row.dtype
    }
}

/// peers.py's `fp32`/`fp16` as ours (`f32`/`f16`); `bf16` and anything else unchanged.
fn canonical_dtype(d: &str) -> &str {
    match d {
        "fp32" | "float32" => "f32",
        "fp16" | "float16" => "f16",
        "bfloat16" => "bf16",
        d => d,
    }
}

/// The Markdown report: our table, then (with peers) the merged table against the peers.
pub fn markdown(report: &BenchReport, peers: Option<&PeersFile>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark: {} ({} SMs), {}\n", report.device, report.sm_count, report.date);
    let _ = writeln!(
        s,
        "Device-to-device copy in the same process: {:.0} GB/s (read + write), the ceiling. \
         GB/s = bytes that must move / median time.\n",
        report.copy_gbs
    );
    let _ = writeln!(s, "| shape | dtype | config | fwd us | fwd GB/s | fwd / copy | bwd us | bwd GB/s | bwd / copy |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    let source = |p: &PassResult| if p.tuned { "tuned" } else { "heuristic" };
    for r in &report.rows {
        let _ = writeln!(
            s,
            "| {} | {} | fwd {} {}; bwd {} {} | {:.1} | {:.0} | {:.2} | {:.1} | {:.0} | {:.2} |",
            shape_cell(&r.op, r.m, r.n),
            r.dtype,
            source(&r.fwd),
            r.fwd.config,
            source(&r.bwd),
            r.bwd.config,
            r.fwd.median_us,
            r.fwd.gbs,
            r.fwd.ratio_to_copy,
            r.bwd.median_us,
            r.bwd.gbs,
            r.bwd.ratio_to_copy
        );
    }
    if !report.failures.is_empty() {
        let _ = writeln!(s, "\nNot measured:");
        for f in &report.failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    if let Some(p) = peers {
        s.push('\n');
        s.push_str(&merged_markdown(report, p));
    }
    s
}

/// The merged table: per shape, ours and each peer's fwd / bwd GB/s, the best peer per pass, and
/// ours over the best peer and over the copy ceiling. Ours is bold where ≥ the best peer.
pub fn merged_markdown(report: &BenchReport, peers: &PeersFile) -> String {
    let names = peers.names();
    let mut s = String::new();
    let _ = writeln!(s, "## Against the peers (peers.py{})\n", same_device_note(report, peers));
    let peers_copy = peers.copy_gbs.map_or("—".to_string(), |c| format!("{c:.0} GB/s"));
    let _ = writeln!(
        s,
        "Copy ceiling: ours {:.0} GB/s (in-process), peers.py {peers_copy}. Cells are fwd / bwd GB/s; \
         ÷ best is ours over the fastest peer of that pass, ÷ copy ours over our copy. Bold: ours ≥ the \
         best peer.\n",
        report.copy_gbs
    );
    let mut header = String::from("| shape | dtype | ours |");
    let mut rule = String::from("|---|---|---|");
    for n in &names {
        let _ = write!(header, " {n} |");
        rule.push_str("---|");
    }
    header.push_str(" best fwd | best bwd | fwd ÷ best | bwd ÷ best | fwd ÷ copy | bwd ÷ copy | ≥ best |");
    rule.push_str("---|---|---|---|---|---|---|");
    let _ = writeln!(s, "{header}\n{rule}");
    let (mut wins_fwd, mut wins_bwd, mut compared) = (0, 0, 0);
    for r in &report.rows {
        let best_fwd = peers.best(r, false);
        let best_bwd = peers.best(r, true);
        let beats = |ours: f64, best: Option<(&str, f64)>| best.is_some_and(|(_, b)| ours >= b);
        let (fwd_wins, bwd_wins) = (beats(r.fwd.gbs, best_fwd), beats(r.bwd.gbs, best_bwd));
        let bold = |v: f64, win: bool| if win { format!("**{v:.0}**") } else { format!("{v:.0}") };
        let _ = write!(
            s,
            "| {} | {} | {} / {} |",
            shape_cell(&r.op, r.m, r.n),
            r.dtype,
            bold(r.fwd.gbs, fwd_wins),
            bold(r.bwd.gbs, bwd_wins)
        );
        for name in &names {
            let cell = match peers.find(name, r) {
                None => "—".to_string(),
                Some(p) if p.error.is_some() => "error".to_string(),
                Some(p) => format!("{} / {}", gbs_cell(p.fwd_gbs), gbs_cell(p.bwd_gbs)),
            };
            let _ = write!(s, " {cell} |");
        }
        let best_cell = |b: Option<(&str, f64)>| b.map_or("—".to_string(), |(n, v)| format!("{v:.0} {n}"));
        let ratio =
            |ours: f64, b: Option<(&str, f64)>| b.map_or("—".to_string(), |(_, v)| format!("{:.2}", ours / v));
        let mark = match (fwd_wins, bwd_wins) {
            (true, true) => "fwd, bwd",
            (true, false) => "fwd",
            (false, true) => "bwd",
            (false, false) => "",
        };
        let _ = writeln!(
            s,
            " {} | {} | {} | {} | {:.2} | {:.2} | {mark} |",
            best_cell(best_fwd),
            best_cell(best_bwd),
            ratio(r.fwd.gbs, best_fwd),
            ratio(r.bwd.gbs, best_bwd),
            r.fwd.gbs / report.copy_gbs,
            r.bwd.gbs / report.copy_gbs
        );
        if best_fwd.is_some() || best_bwd.is_some() {
            compared += 1;
        }
        wins_fwd += usize::from(fwd_wins);
        wins_bwd += usize::from(bwd_wins);
    }
    let _ = writeln!(
        s,
        "\nOurs ≥ the best peer: forward on {wins_fwd} of {compared} shapes, backward on {wins_bwd} of {compared}."
    );
    let unmatched = peers.rows.iter().filter(|p| !report.rows.iter().any(|r| p.matches(r))).count();
    if unmatched > 0 {
        let _ = writeln!(s, "({unmatched} peer rows are on shapes we did not run and are left out.)");
    }
    s
}

fn gbs_cell(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |v| format!("{v:.0}"))
}

fn same_device_note(report: &BenchReport, peers: &PeersFile) -> String {
    if peers.device.is_empty() || peers.device == report.device {
        String::new()
    } else {
        format!("; NOTE: measured on {}, not {}", peers.device, report.device)
    }
}

/// The font the plots are labelled with: a DejaVu Sans subset (assets/fonts/LICENSE-DejaVu.txt),
/// embedded so that no system font library is needed.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-ascii.ttf");

/// Plots GB/s against N (log scale), one panel per dtype: ours forward and backward as lines, each
/// peer's forward (circles) and backward (triangles) as points, and the copy ceiling as a dashed line.
pub fn plot(report: &BenchReport, peers: Option<&PeersFile>, path: &Path) -> Result<()> {
    use plotters::prelude::*;

    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded plot font does not parse"))?;
    // One panel per op and dtype, in the order the rows first show them.
    let mut dtypes: Vec<(&str, &str)> = vec![];
    for r in &report.rows {
        if !dtypes.contains(&(r.op.as_str(), r.dtype.as_str())) {
            dtypes.push((&r.op, &r.dtype));
        }
    }
    if dtypes.is_empty() {
        bail!("plot: no rows to plot");
    }
    let names: Vec<&str> = peers.map(PeersFile::names).unwrap_or_default();
    let palette = [RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];
    let peer_color = |i: usize| palette[i % palette.len()];
    let (ours_fwd, ours_bwd) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
    let grey = RGBColor(110, 110, 110);

    let fail = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let panel_w = 640u32;
    let root = BitMapBackend::new(path, (panel_w * dtypes.len() as u32, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            &format!("GB/s vs N on {}: ours (lines), peers (points), copy (dashed)", report.device),
            ("sans-serif", 20),
        )
        .map_err(|e| fail(&e))?;
    let panels = body.split_evenly((1, dtypes.len()));
    for (i, (panel, &(op, dtype))) in panels.iter().zip(&dtypes).enumerate() {
        let mut rows: Vec<&BenchRow> = report.rows.iter().filter(|r| r.op == op && r.dtype == dtype).collect();
        rows.sort_by_key(|r| (r.n, r.m));
        let peer_rows: Vec<&PeerRow> = peers
            .map(|p| p.rows.iter().filter(|pr| pr.error.is_none() && rows.iter().any(|r| pr.matches(r))).collect())
            .unwrap_or_default();
        // x is log2(N), labelled with N at the powers of two.
        let lg = |n: usize| (n as f64).log2();
        let x_lo = rows.iter().map(|r| lg(r.n)).fold(f64::INFINITY, f64::min).floor() - 0.5;
        let x_hi = rows.iter().map(|r| lg(r.n)).fold(f64::NEG_INFINITY, f64::max).ceil() + 0.5;
        let mut y_max = report.copy_gbs.max(peers.and_then(|p| p.copy_gbs).unwrap_or(0.0));
        for r in &rows {
            y_max = y_max.max(r.fwd.gbs).max(r.bwd.gbs);
        }
        for p in &peer_rows {
            y_max = y_max.max(p.fwd_gbs.unwrap_or(0.0)).max(p.bwd_gbs.unwrap_or(0.0));
        }
        let mut chart = ChartBuilder::on(panel)
            .caption(if op == "rmsnorm" { dtype.to_string() } else { format!("{op} {dtype}") }, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x_lo..x_hi, 0.0..y_max * 1.1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("N (columns)")
            .y_desc("GB/s")
            .x_labels((x_hi - x_lo) as usize + 1)
            .x_label_formatter(&|x| format_n(*x))
            .light_line_style(WHITE)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| fail(&e))?;
        let copy = [(x_lo, report.copy_gbs), (x_hi, report.copy_gbs)];
        chart
            .draw_series(DashedLineSeries::new(copy, 8, 5, grey.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(format!("copy {:.0}", report.copy_gbs))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey.stroke_width(2)));
        for (k, name) in names.iter().enumerate() {
            let c = peer_color(k);
            let fwd: Vec<(f64, f64)> =
                peer_rows.iter().filter(|p| p.peer == *name).filter_map(|p| Some((lg(p.n), p.fwd_gbs?))).collect();
            let bwd: Vec<(f64, f64)> =
                peer_rows.iter().filter(|p| p.peer == *name).filter_map(|p| Some((lg(p.n), p.bwd_gbs?))).collect();
            chart
                .draw_series(fwd.into_iter().map(|xy| Circle::new(xy, 4, c.stroke_width(2))))
                .map_err(|e| fail(&e))?
                .label(format!("{name} fwd"))
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.stroke_width(2)));
            chart
                .draw_series(bwd.into_iter().map(|xy| TriangleMarker::new(xy, 5, c.filled())))
                .map_err(|e| fail(&e))?
                .label(format!("{name} bwd"))
                .legend(move |(x, y)| TriangleMarker::new((x + 9, y), 5, c.filled()));
        }
        for (bwd, color) in [(false, ours_fwd), (true, ours_bwd)] {
            let pts: Vec<(f64, f64)> =
                rows.iter().map(|r| (lg(r.n), if bwd { r.bwd.gbs } else { r.fwd.gbs })).collect();
            let label = if bwd { "ours bwd" } else { "ours fwd" };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
                .map_err(|e| fail(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
            chart.draw_series(pts.into_iter().map(|xy| Circle::new(xy, 4, color.filled()))).map_err(|e| fail(&e))?;
        }
        if i + 1 == dtypes.len() {
            // One legend, in the last panel (f16 for the peer shapes: a single N, room to spare).
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(grey)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| fail(&e))?;
        }
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// A tick of the log2(N) axis as N (256, 4K, 256K) at the powers of two, else blank.
fn format_n(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 || !(0.0..63.0).contains(&x) {
        return String::new();
    }
    let n = 1u64 << x.round() as u32;
    if n >= 1024 {
        format!("{}K", n / 1024)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(gbs: f64) -> PassResult {
        PassResult { config: "BLOCK_SIZE=1024".into(), tuned: false, median_us: 10.0, gbs, ratio_to_copy: gbs / 3000.0 }
    }

    fn report() -> BenchReport {
        let row = |m, n, dtype: &str, f, b| BenchRow {
            op: rmsnorm_op(),
            m,
            n,
            dtype: dtype.into(),
            fwd: pass(f),
            bwd: pass(b),
        };
        BenchReport {
            device: "GPU".into(),
            sm_count: 132,
            copy_gbs: 3000.0,
            date: "2026-11-21 12:00 UTC".into(),
            rows: vec![row(2048, 8192, "f32", 2400.0, 1500.0), row(4096, 4096, "f16", 2000.0, 900.0)],
            failures: vec![],
        }
    }

    fn peers() -> PeersFile {
        let row = |peer: &str, m, n, dtype: &str, f, b| PeerRow {
            op: rmsnorm_op(),
            peer: peer.into(),
            m,
            n,
            dtype: dtype.into(),
            fwd_gbs: Some(f),
            bwd_gbs: Some(b),
            error: None,
        };
        let mut failed = row("liger", 4096, 4096, "fp16", 9999.0, 9999.0);
        failed.error = Some("boom".into());
        PeersFile {
            device: "GPU".into(),
            copy_gbs: Some(3010.0),
            rows: vec![
                row("torch", 2048, 8192, "fp32", 1800.0, 1200.0),
                row("quack", 2048, 8192, "fp32", 2600.0, 400.0),
                row("torch", 4096, 4096, "fp16", 2000.0, 1000.0),
                failed,
                row("torch", 1, 1, "bf16", 1.0, 1.0),
            ],
        }
    }

    #[test]
    fn best_peer_skips_failures_and_matches_ops_and_dtype_names() {
        let p = peers();
        let r = report();
        assert_eq!(p.names(), ["torch", "quack", "liger"]);
        assert_eq!(p.best(&r.rows[0], false), Some(("quack", 2600.0)));
        assert_eq!(p.best(&r.rows[0], true), Some(("torch", 1200.0)));
        assert_eq!(p.best(&r.rows[1], false), Some(("torch", 2000.0)));
        let mut bf16 = r.rows[1].clone();
        bf16.dtype = "bf16".into();
        assert_eq!(p.best(&bf16, false), None);
        // The same shape of another op is not a peer of this row.
        let mut softmax = r.rows[0].clone();
        softmax.op = "softmax".into();
        assert_eq!(p.best(&softmax, false), None);
    }

    #[test]
    fn merged_table_has_ratios_marks_and_both_copies() {
        let md = markdown(&report(), Some(&peers()));
        assert!(md.contains("ours 3000 GB/s (in-process), peers.py 3010 GB/s"), "{md}");
        // 2400 / 2600 = 0.92, 1500 / 1200 = 1.25; bwd wins only.
        assert!(
            md.contains(
                "| 2048x8192 | f32 | 2400 / **1500** | 1800 / 1200 | 2600 / 400 | — | 2600 quack | 1200 torch | 0.92 | 1.25 | 0.80 | 0.50 | bwd |"
            ),
            "{md}"
        );
        // A tie counts as ≥ best; liger's failure shows as an error and is not the best.
        assert!(
            md.contains("| 4096x4096 | f16 | **2000** / 900 | 2000 / 1000 | — | error | 2000 torch | 1000 torch | 1.00 | 0.90 | 0.67 | 0.30 | fwd |"),
            "{md}"
        );
        assert!(md.contains("forward on 1 of 2 shapes, backward on 1 of 2"), "{md}");
        assert!(md.contains("(1 peer rows are on shapes we did not run"), "{md}");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3600 * 13 + 60 * 7), "2000-02-29 13:07 UTC");
        assert_eq!(utc_date(1_795_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = report();
        let back: BenchReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.rows.len(), 2);
        assert_eq!(back.rows[1].dtype, "f16");
        assert_eq!(back.rows[0].bwd.gbs, 1500.0);
        // A bench.json without failures reads; failures are listed under our table.
        let mut json: serde_json::Value = serde_json::to_value(&r).unwrap();
        json.as_object_mut().unwrap().remove("failures");
        assert!(serde_json::from_value::<BenchReport>(json).unwrap().failures.is_empty());
        let failed = BenchReport { failures: vec!["8x8 f32: no kernel".into()], ..r };
        assert!(markdown(&failed, None).contains("\nNot measured:\n- 8x8 f32: no kernel\n"));
    }
}
