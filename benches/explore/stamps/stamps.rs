//! Per-cluster start and end times of the tuned RMSNorm forward and backward of 1024x262144 bf16
//! (benches/explore/stamps/build.sh builds it with lowering.patch applied, which makes every
//! kernel write its programs' %globaltimer at start and end, and %smid, into the first bytes of y / dx).
use anyhow::Result;
use tritonite::kernels::backend::Backend;
use tritonite::kernels::gpu::GpuExecutor;
use tritonite::kernels::reference::random_buffer;
use tritonite::kernels::rmsnorm::{rms_norm, rms_norm_backward, RmsNormBackwardOptions, RmsNormConfig, RmsNormOptions};
use tritonite::kernels::tensor::Rows;
use tritonite::lang::{Buffer, DType};
use tritonite::runtime::Device;

fn decode(name: &str, b: &Buffer, programs: usize, cluster: usize) {
    let Buffer::BF16(v) = b else { panic!("bf16") };
    let bytes: Vec<u8> = v[..programs * 16].iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
    let rec: Vec<(u64, u64, u32)> = (0..programs)
        .map(|p| {
            let r = &bytes[p * 32..];
            let t0 = u64::from_le_bytes(r[0..8].try_into().unwrap());
            let t1 = u64::from_le_bytes(r[8..16].try_into().unwrap());
            let s = u32::from_le_bytes(r[16..20].try_into().unwrap());
            (t0, t1, s)
        })
        .collect();
    let base = rec.iter().map(|r| r.0).min().unwrap();
    let last = rec.iter().map(|r| r.1).max().unwrap();
    println!("{name}: span {:.1} us", (last - base) as f64 / 1e3);
    for c in 0..programs / cluster {
        let g = &rec[c * cluster..(c + 1) * cluster];
        let s0 = g.iter().map(|r| r.0).min().unwrap() - base;
        let s1 = g.iter().map(|r| r.0).max().unwrap() - base;
        let e0 = g.iter().map(|r| r.1).min().unwrap() - base;
        let e1 = g.iter().map(|r| r.1).max().unwrap() - base;
        let sms: Vec<u32> = g.iter().map(|r| r.2).collect();
        println!(
            "  cluster {c}: start {:.1}-{:.1} us, end {:.1}-{:.1} us, sms {:?}",
            s0 as f64 / 1e3,
            s1 as f64 / 1e3,
            e0 as f64 / 1e3,
            e1 as f64 / 1e3,
            sms
        );
    }
}

fn main() -> Result<()> {
    let (m, n) = (1024usize, 262144usize);
    let dev = GpuExecutor::new(Device::open(0)?)?;
    let x = dev.upload(&random_buffer(DType::BF16, m * n, 1))?;
    let w = dev.upload(&random_buffer(DType::BF16, n, 2))?;
    let dy = dev.upload(&random_buffer(DType::BF16, m * n, 3))?;
    let base = RmsNormConfig { block_size: 16384, programs: 7, rows: 1, cluster: 16, prefetch: true, ..RmsNormConfig::PLAIN };
    let fwd_cfg = RmsNormConfig { num_warps: 32, ..base };
    let bwd_cfg = RmsNormConfig { num_warps: 16, staged: true, ..base };
    for round in 0..3 {
        let opts = RmsNormOptions { config: Some(fwd_cfg), ..RmsNormOptions::default() };
        let out = rms_norm(&dev, Rows::new(&x, &[m, n]), Some(&w), &opts)?;
        decode(&format!("round {round} forward"), &dev.download(out.y.as_ref().unwrap())?, 112, 16);
        let bopts = RmsNormBackwardOptions { config: Some(bwd_cfg), ..RmsNormBackwardOptions::default() };
        let g = rms_norm_backward(&dev, &out.spec, Rows::new(&x, &[m, n]), Some(&w), Rows::new(&dy, &[m, n]), &out.rstd, &bopts)?;
        let dx = dev.download(g.dx.as_ref().unwrap())?;
        decode(&format!("round {round} backward"), &dx, 112, 16);
        let dw = dev.download(g.dweight.as_ref().unwrap())?.to_f64();
        let dxs: f64 = dx.to_f64()[4096..].iter().map(|v| v.abs()).sum();
        let dws: f64 = dw.iter().map(|v| v.abs()).sum();
        println!("  checksums: |dx| (past the stamps) {dxs:.6e}, |dw| {dws:.6e}, dw[0..3] {:?}", &dw[..3]);
    }
    Ok(())
}
