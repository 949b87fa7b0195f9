//! The typed RMSNorm API rejects each kind of bad input with an error naming the argument, and
//! writes nothing when it does.

use tritonite_kernels::backend::{Backend, Binding};
use tritonite_kernels::cpu::{Cpu, HostBuffer};
use tritonite_kernels::plan::Plan;
use tritonite_kernels::reference::{random_buffer, random_weight};
use tritonite_kernels::rmsnorm::{
    rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormConfig, RmsNormOptions, RmsNormSpec,
};
use tritonite_kernels::tensor::{Rows, Storage};
use tritonite_kernels::KernelError;
use tritonite_lang::{Buffer, DType};

fn host(dtype: DType, len: usize, seed: u64) -> HostBuffer {
    HostBuffer::new(random_buffer(dtype, len, seed))
}

#[track_caller]
fn expect_arg<T: std::fmt::Debug>(r: Result<T, KernelError>, arg: &str) {
    match r {
        Err(KernelError::BadArgument { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}

fn fwd<'a>(
    x: Rows<'a, HostBuffer>,
    w: Option<&'a HostBuffer>,
    opts: &RmsNormOptions<'a, HostBuffer>,
) -> Result<(), KernelError> {
    rms_norm(&Cpu, x, w, opts).map(|_| ())
}

#[test]
fn forward_rejects_bad_tensors() {
    let (m, n) = (3, 16);
    let x = host(DType::BF16, m * n, 1);
    let w = HostBuffer::new(random_weight(DType::BF16, n, 2));
    let d = RmsNormOptions::default;
    expect_arg(fwd(Rows::new(&host(DType::I32, m * n, 1), &[m, n]), None, &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, n + 1]), None, &d()), "x");
    expect_arg(fwd(Rows::new(&x, &[m, 0]), None, &d()), "shape");
    // A strided view past the buffer's end, and rows that overlap each other.
    expect_arg(fwd(Rows::strided(&x, 0, m, n, n + 1), None, &d()), "x");
    expect_arg(fwd(Rows::strided(&x, 0, m, n, n - 1), None, &d()), "x");
    // Weight: wrong length, a dtype other than x's or f32.
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&host(DType::BF16, n + 1, 2)), &d()), "weight");
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&host(DType::F16, n, 2)), &d()), "weight");
    let bias = host(DType::F16, n, 3);
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&w), &RmsNormOptions { bias: Some(&bias), ..d() }), "bias");
    let short_bias = host(DType::F32, n - 1, 3);
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &RmsNormOptions { bias: Some(&short_bias), ..d() }), "bias");
    let res = host(DType::F32, m * n, 4);
    let opts = RmsNormOptions { residual: Some(Rows::new(&res, &[m - 1, n])), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "residual");
    let ints = host(DType::I32, m * n, 4);
    let opts = RmsNormOptions { residual: Some(Rows::new(&ints, &[m, n])), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "residual");
    let opts = RmsNormOptions { residual_out_dtype: Some(DType::I64), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "residual_out_dtype");
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &RmsNormOptions { out_dtype: Some(DType::I32), ..d() }), "out_dtype");
}

#[test]
fn forward_rejects_bad_scalars_and_configs() {
    let (m, n) = (3, 16);
    let x = host(DType::F32, m * n, 1);
    let w = host(DType::F32, n, 2);
    let d = RmsNormOptions::default;
    for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        expect_arg(fwd(Rows::new(&x, &[m, n]), None, &RmsNormOptions { eps, ..d() }), "eps");
    }
    expect_arg(fwd(Rows::new(&x, &[m, n]), Some(&w), &RmsNormOptions { offset: f32::NAN, ..d() }), "offset");
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &RmsNormOptions { offset: 1.0, ..d() }), "offset");
    let cfg = |block_size, num_warps, programs| RmsNormOptions {
        config: Some(RmsNormConfig { block_size, num_warps, programs, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN }),
        ..d()
    };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &cfg(24, 4, 1)), "block_size");
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &cfg(32, 3, 1)), "num_warps");
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &cfg(32, 4, 0)), "programs");
}

#[test]
fn caller_out_is_checked_and_untouched_on_error() {
    let (m, n) = (4, 8);
    let x = host(DType::F32, m * n, 1);
    let out = HostBuffer::new(Buffer::filled(DType::F32, m * n, 5.0));
    let d = RmsNormOptions::default;
    let opts = RmsNormOptions { out: Some(Rows::new(&out, &[m, n])), out_dtype: Some(DType::BF16), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "out");
    let opts = RmsNormOptions { out: Some(Rows::new(&out, &[m, n - 1])), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "out");
    let opts = RmsNormOptions { out: Some(Rows::new(&out, &[m, n])), eps: -1.0, ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "eps");
    assert_eq!(out.to_f64(), vec![5.0; m * n], "a rejected call wrote into out");
    // Writing in place over x is an overlap.
    let opts = RmsNormOptions { out: Some(Rows::new(&x, &[m, n])), ..d() };
    expect_arg(fwd(Rows::new(&x, &[m, n]), None, &opts), "out");
}

#[test]
fn interleaved_column_slices_of_one_buffer_do_not_overlap() {
    // x = t[:, 0..8] and out = t[:, 8..16] of one [4, 16] buffer: disjoint, so allowed.
    let (m, n) = (4, 8);
    let t = host(DType::F32, m * 2 * n, 7);
    let before = t.to_f64();
    let opts = RmsNormOptions { out: Some(Rows::strided(&t, n, m, n, 2 * n)), ..RmsNormOptions::default() };
    rms_norm(&Cpu, Rows::strided(&t, 0, m, n, 2 * n), None, &opts).unwrap();
    let after = t.to_f64();
    for r in 0..m {
        assert_eq!(after[r * 2 * n..r * 2 * n + n], before[r * 2 * n..r * 2 * n + n], "x columns changed");
        let row = &before[r * 2 * n..r * 2 * n + n];
        let rstd = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / n as f64 + 1e-6).sqrt();
        for j in 0..n {
            assert!((after[r * 2 * n + n + j] - row[j] * rstd).abs() < 1e-5);
        }
    }
    // Shifted by one column the slices share an element per row.
    let opts = RmsNormOptions { out: Some(Rows::strided(&t, n - 1, m, n, 2 * n)), ..RmsNormOptions::default() };
    expect_arg(rms_norm(&Cpu, Rows::strided(&t, 0, m, n, 2 * n), None, &opts).map(|_| ()), "out");
}

#[test]
fn backward_rejects_bad_tensors() {
    let (m, n) = (3, 16);
    let spec = RmsNormSpec::new(DType::BF16, Some(DType::BF16));
    let x = host(DType::BF16, m * n, 1);
    let w = HostBuffer::new(random_weight(DType::BF16, n, 2));
    let dy = host(DType::BF16, m * n, 3);
    let rstd = host(DType::F32, m, 4);
    let d = RmsNormBackwardOptions::default;
    let bwd = |spec: &RmsNormSpec, x, w, dy, rstd, opts: &RmsNormBackwardOptions<'_, HostBuffer>| {
        rms_norm_backward(&Cpu, spec, x, w, dy, rstd, opts).map(|_| ())
    };
    let rows = |b| Rows::new(b, &[m, n]);
    bwd(&spec, rows(&x), Some(&w), rows(&dy), &rstd, &d()).unwrap();
    expect_arg(bwd(&spec, rows(&x), None, rows(&dy), &rstd, &d()), "weight");
    let dy16 = host(DType::F16, m * n, 3);
    expect_arg(bwd(&spec, rows(&x), Some(&w), rows(&dy16), &rstd, &d()), "dy");
    let long_rstd = host(DType::F32, m + 1, 4);
    expect_arg(bwd(&spec, rows(&x), Some(&w), rows(&dy), &long_rstd, &d()), "rstd");
    let xf = host(DType::F32, m * n, 1);
    expect_arg(bwd(&spec, rows(&xf), Some(&w), rows(&dy), &rstd, &d()), "saved (x)");
    let dro = host(DType::BF16, m * n, 5);
    let opts = RmsNormBackwardOptions { dresidual_out: Some(rows(&dro)), ..d() };
    expect_arg(bwd(&spec, rows(&x), Some(&w), rows(&dy), &rstd, &opts), "dresidual_out");
    let opts = RmsNormBackwardOptions { offset: f32::INFINITY, ..d() };
    expect_arg(bwd(&spec, rows(&x), Some(&w), rows(&dy), &rstd, &opts), "offset");
}

#[test]
fn backward_writes_into_caller_buffers() {
    // dx into the right half of a [m, 2n] buffer and dw into a given vector: the same values as
    // the buffers the API allocates, and the left half untouched.
    let (m, n) = (5, 24);
    let spec = RmsNormSpec::new(DType::F32, Some(DType::F32));
    let x = host(DType::F32, m * n, 1);
    let w = HostBuffer::new(random_weight(DType::F32, n, 2));
    let dy = host(DType::F32, m * n, 3);
    let rows = |b| Rows::new(b, &[m, n]);
    let fwd = rms_norm(&Cpu, rows(&x), Some(&w), &RmsNormOptions::default()).unwrap();
    let d = RmsNormBackwardOptions::default;
    let want = rms_norm_backward(&Cpu, &spec, rows(&x), Some(&w), rows(&dy), &fwd.rstd, &d()).unwrap();
    let (want_dx, want_dw) = (want.dx.unwrap().to_f64(), want.dweight.unwrap().to_f64());
    let wide = host(DType::F32, m * 2 * n, 9);
    let before = wide.to_f64();
    let dw = host(DType::F32, n, 10);
    let opts =
        RmsNormBackwardOptions { dx_out: Some(Rows::strided(&wide, n, m, n, 2 * n)), dweight_out: Some(&dw), ..d() };
    let got = rms_norm_backward(&Cpu, &spec, rows(&x), Some(&w), rows(&dy), &fwd.rstd, &opts).unwrap();
    assert!(got.dx.is_none() && got.dweight.is_none(), "nothing new is allocated");
    let after = wide.to_f64();
    for r in 0..m {
        assert_eq!(after[r * 2 * n..r * 2 * n + n], before[r * 2 * n..r * 2 * n + n], "left half changed");
        assert_eq!(after[r * 2 * n + n..(r + 1) * 2 * n], want_dx[r * n..(r + 1) * n], "dx row {r}");
    }
    assert_eq!(dw.to_f64(), want_dw);

    // Wrong shapes and dtypes, or an output over an input, are errors naming the output.
    let short = host(DType::F32, n - 1, 11);
    let opts = RmsNormBackwardOptions { dweight_out: Some(&short), ..d() };
    expect_arg(
        rms_norm_backward(&Cpu, &spec, rows(&x), Some(&w), rows(&dy), &fwd.rstd, &opts).map(|_| ()),
        "dweight_out",
    );
    let dx16 = host(DType::F16, m * n, 12);
    let opts = RmsNormBackwardOptions { dx_out: Some(rows(&dx16)), ..d() };
    expect_arg(rms_norm_backward(&Cpu, &spec, rows(&x), Some(&w), rows(&dy), &fwd.rstd, &opts).map(|_| ()), "dx_out");
    let opts = RmsNormBackwardOptions { dx_out: Some(rows(&dy)), ..d() };
    expect_arg(rms_norm_backward(&Cpu, &spec, rows(&x), Some(&w), rows(&dy), &fwd.rstd, &opts).map(|_| ()), "dx_out");
    let no_weight = RmsNormSpec::new(DType::F32, None);
    let opts = RmsNormBackwardOptions { dweight_out: Some(&dw), ..d() };
    expect_arg(
        rms_norm_backward(&Cpu, &no_weight, rows(&x), None, rows(&dy), &fwd.rstd, &opts).map(|_| ()),
        "dweight_out",
    );
}

/// Buffers at arbitrary addresses, to reach the alignment check; running one is a test failure.
#[derive(Debug)]
struct Fake {
    dtype: DType,
    len: usize,
    address: u64,
}

impl Storage for Fake {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn address(&self) -> u64 {
        self.address
    }
}

struct NoRun;

impl Backend for NoRun {
    type Buffer = Fake;
    fn alloc(&self, dtype: DType, len: usize) -> Result<Fake, KernelError> {
        Ok(Fake { dtype, len, address: 1 << 40 })
    }
    fn upload(&self, host: &Buffer) -> Result<Fake, KernelError> {
        self.alloc(host.dtype(), host.len())
    }
    fn download(&self, _: &Fake) -> Result<Buffer, KernelError> {
        panic!("nothing should be downloaded")
    }
    type Prepared = ();
    fn prepare(&self, _: &Plan, _: &[Binding<'_, Fake>]) -> Result<(), KernelError> {
        panic!("a rejected call must not run")
    }
    fn launch(&self, _: &Plan, _: &(), _: &[Binding<'_, Fake>]) -> Result<(), KernelError> {
        panic!("a rejected call must not run")
    }
    fn time_ms(
        &self,
        _: usize,
        _: usize,
        _: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        panic!("a rejected call must not be timed")
    }
    fn sm_count(&self) -> usize {
        1
    }
}

#[test]
fn misaligned_buffers_are_rejected() {
    let x = Fake { dtype: DType::F32, len: 64, address: 0x1000_0002 };
    let err = rms_norm(&NoRun, Rows::new(&x, &[4, 16]), None, &RmsNormOptions::default()).unwrap_err();
    assert!(matches!(err, KernelError::BadArgument { arg: "x", .. }), "{err}");
    assert!(err.to_string().contains("aligned to 4 bytes"), "{err}");
    let x = Fake { dtype: DType::BF16, len: 64, address: 0x1000_0000 };
    let w = Fake { dtype: DType::BF16, len: 16, address: 0x2000_0001 };
    let err = rms_norm(&NoRun, Rows::new(&x, &[4, 16]), Some(&w), &RmsNormOptions::default()).unwrap_err();
    assert!(matches!(err, KernelError::BadArgument { arg: "weight", .. }), "{err}");
}
