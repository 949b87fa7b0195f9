//! Every RMSNorm variant in a grid of configs × dtypes lowers through MLIR to PTX, assembles with
//! ptxas for sm_90 without spills with the heuristic configs (rows up to 262144: held in registers,
//! split over clusters beyond one block, walked in chunks beyond 16 blocks; the backward's 16-warp
//! cluster blocks may spill a few bytes), and uses 16-byte global loads where N is aligned.

use tritonite::kernels::rmsnorm::{self, RmsNormConfig, RmsNormSpec, Tiling};
use tritonite::lang::{DType, Kernel};
use tritonite::lowering::{compile, ptxas, CompileOptions};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Options with every pointer and integer argument marked 16-aligned (what the launcher picks for
/// an aligned N).
fn aligned(kernel: &Kernel, num_warps: u32) -> CompileOptions {
    let all = (0..kernel.params.len())
        .filter(|&i| kernel.params[i].kind.dtype() != DType::F32 || kernel.params[i].kind.is_ptr())
        .map(|i| (i, 16))
        .collect();
    CompileOptions { num_warps, divisibility: all, ..CompileOptions::default() }
}

fn check(kernel: &Kernel, opts: &CompileOptions) -> String {
    check_spills(kernel, opts, 0)
}

/// [`check`], allowing up to `max_spill` bytes of spill stores and loads.
fn check_spills(kernel: &Kernel, opts: &CompileOptions, max_spill: u32) -> String {
    let compiled = compile(kernel, opts).unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
    assert!(compiled.ptx.contains(&format!(".entry {}", kernel.name)), "{}: no entry in PTX", kernel.name);
    match ptxas::find_ptxas() {
        Some(_) => {
            let r = ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
            let spills = r.spill_stores.max(r.spill_loads);
            assert!(
                spills <= max_spill,
                "{} with {opts:?} spills {spills} bytes ({} registers)",
                kernel.name,
                r.registers
            );
            assert!(!r.cubin.is_empty());
        }
        None => println!("ptxas not installed: skipped assembling {} (run scripts/setup.sh)", kernel.name),
    }
    compiled.ptx
}

/// Plain, weighted, and everything on at once (f32 weight, bias, residual, f32 residual_out).
fn specs(d: DType) -> [RmsNormSpec; 3] {
    let fused = RmsNormSpec {
        weight: Some(DType::F32),
        bias: Some(d),
        residual: Some(d),
        residual_out: Some(DType::F32),
        ..RmsNormSpec::new(d, None)
    };
    [RmsNormSpec::new(d, None), RmsNormSpec::new(d, Some(d)), fused]
}

#[test]
fn forward_variants_lower_without_spills() {
    for d in DTYPES {
        for spec in specs(d) {
            for (n, block, warps) in [(1000, 1024, 4), (8192, 1024, 4), (64, 64, 1), (300, 512, 2)] {
                let kernel = rmsnorm::forward(
                    &spec,
                    &if n <= block { Tiling::held(block, 1, 1) } else { Tiling::chunked(block, 1) },
                    true,
                )
                .unwrap();
                check(&kernel, &aligned(&kernel, warps));
            }
            for n in [100, 256, 1000, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288] {
                let cfg = RmsNormConfig::heuristic(&spec, n, 132);
                let kernel = rmsnorm::forward(&spec, &rmsnorm::plan::tiling(&cfg, n).unwrap(), false).unwrap();
                check(&kernel, &aligned(&kernel, cfg.num_warps));
            }
        }
    }
}

#[test]
fn backward_variants_lower_without_spills() {
    for d in DTYPES {
        for spec in specs(d) {
            for n in [100, 256, 1000, 4096, 5120, 8192, 16384, 32768, 65536, 131072, 262144] {
                for dro in [false, spec.residual_out.is_some()] {
                    let cfg = RmsNormConfig::heuristic_backward(&spec, dro, n, 132);
                    let kernel = rmsnorm::backward(&spec, dro, &rmsnorm::plan::tiling(&cfg, n).unwrap()).unwrap();
                    // A split row's 16-bit blocks of 16384 columns hold x, dy, w and the dw sums
                    // at 32 elements a thread: ptxas spills a few registers (20-132 bytes), measured
                    // faster than blocks half the size.
                    let max_spill = if cfg.cluster > 1 && cfg.num_warps == 16 { 160 } else { 0 };
                    check_spills(&kernel, &aligned(&kernel, cfg.num_warps), max_spill);
                }
            }
        }
        let kernel = tritonite::kernels::partials::sum_partials(d, 256).unwrap();
        check(&kernel, &aligned(&kernel, 4));
    }
}

#[test]
fn aligned_forward_uses_16_byte_loads() {
    for (d, want) in
        [(DType::F32, "ld.global.v4.b32"), (DType::BF16, "ld.global.v4.b32"), (DType::F16, "ld.global.v4.b32")]
    {
        let kernel = rmsnorm::forward(&RmsNormSpec::new(d, Some(d)), &Tiling::held(4096, 1, 1), true).unwrap();
        let ptx = check(&kernel, &aligned(&kernel, 8));
        assert!(ptx.contains(want), "{d}: no {want} in the forward PTX");
        // Tiles of 8 rows of 256: still 16-byte accesses along each row.
        let tile = rmsnorm::forward(&RmsNormSpec::new(d, Some(d)), &Tiling::held(256, 8, 1), true).unwrap();
        assert!(check(&tile, &aligned(&tile, 4)).contains(want), "{d}: no {want} in the tiled forward PTX");
        let tile = rmsnorm::backward(&RmsNormSpec::new(d, Some(d)), false, &Tiling::held(256, 8, 1)).unwrap();
        assert!(check(&tile, &aligned(&tile, 4)).contains(want), "{d}: no {want} in the tiled backward PTX");
        // Rows split over a cluster of 8: each program's columns start at a multiple of the block.
        let split = rmsnorm::forward(&RmsNormSpec::new(d, Some(d)), &Tiling::held(8192, 1, 8), false).unwrap();
        assert!(check(&split, &aligned(&split, 16)).contains(want), "{d}: no {want} in the cluster forward PTX");
        let split = rmsnorm::backward(&RmsNormSpec::new(d, Some(d)), false, &Tiling::held(4096, 1, 8)).unwrap();
        assert!(check(&split, &aligned(&split, 16)).contains(want), "{d}: no {want} in the cluster backward PTX");
        // Unaligned (nothing known about N or the strides): no vector loads of x.
        let plain = compile(&kernel, &CompileOptions { num_warps: 8, ..CompileOptions::default() }).unwrap();
        assert!(!plain.ptx.contains("ld.global.v4"), "{d}: vector loads without alignment facts");
    }
}

#[test]
fn rows_of_1000_use_16_byte_loads() {
    // N = 1000 = 8 · 125: the mask `col < n` is constant over aligned groups of 8 columns and every
    // row starts 16-byte aligned, so 8 bf16 (or 4 f32) move per access; N = 1001 gets no vectors.
    use tritonite::kernels::registry::arg_divisibility;
    for d in DTYPES {
        let kernel = rmsnorm::forward(&RmsNormSpec::new(d, Some(d)), &Tiling::held(1024, 2, 1), true).unwrap();
        let opts =
            |n| CompileOptions { num_warps: 4, divisibility: arg_divisibility(&kernel, n), ..Default::default() };
        assert!(check(&kernel, &opts(1000)).contains("ld.global.v4.b32"), "{d}: no 16-byte loads at N = 1000");
        assert!(!check(&kernel, &opts(1001)).contains("ld.global.v4"), "{d}: vector loads at N = 1001");
    }
}

/// The backward's first stage lets the partials' sums start as its programs finish their rows,
/// and the sums wait for it (programmatic dependent launch), on sm_90; for an older target neither instruction is emitted
/// (its launches run one after another).
#[test]
fn backward_stages_overlap_on_sm_90_only() {
    let spec = RmsNormSpec::new(DType::BF16, Some(DType::BF16));
    let first = rmsnorm::backward(&spec, false, &Tiling::held(4096, 1, 1)).unwrap();
    let sums = tritonite::kernels::partials::sum_partials(DType::BF16, 256).unwrap();
    assert!(!first.waits_for_previous_launch && first.to_string().contains("release_next_launch"));
    assert!(sums.waits_for_previous_launch && !sums.to_string().contains("release_next_launch"));
    for (kernel, instr) in [(&first, "griddepcontrol.launch_dependents;"), (&sums, "griddepcontrol.wait;")] {
        let ptx = check(kernel, &aligned(kernel, 4));
        assert_eq!(ptx.matches("griddepcontrol").count(), 1, "{}: {ptx}", kernel.name);
        assert!(ptx.contains(instr), "{}: no {instr}", kernel.name);
        let mut old = aligned(kernel, 4);
        old.target.chip = "sm_80".into();
        let mlir = tritonite::lowering::emit_mlir(kernel, &old).unwrap();
        assert!(!mlir.contains("griddepcontrol"), "{}: griddepcontrol for sm_80", kernel.name);
    }
}
