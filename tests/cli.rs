//! The `tritonite` command line: kernels listed in help, each stage printable, bad input rejected
//! with a clear message.

use std::process::Command;

fn tritonite(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tritonite")).args(args).output().expect("the CLI binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn compile_help_lists_kernels_and_meta_parameters() {
    let (ok, out, _) = tritonite(&["compile", "--help"]);
    assert!(ok);
    for needle in
        ["rmsnorm-fwd", "rmsnorm-bwd", "rmsnorm-sum-partials", "BLOCK_SIZE", "num_warps", "WEIGHT", "BIAS", "RESIDUAL"]
    {
        assert!(out.contains(needle), "help lacks {needle}:\n{out}");
    }
}

#[test]
fn compile_emits_each_stage() {
    let (ok, ir, err) = tritonite(&["compile", "rmsnorm-fwd", "--dtype", "bf16", "--n", "4096", "--emit", "ir"]);
    assert!(ok, "{err}");
    assert!(ir.starts_with("kernel rms_norm_fwd_bf16_wbf16(") && ir.contains("BLOCK_SIZE = 4096"), "{ir}");
    let (ok, mlir, err) = tritonite(&[
        "compile",
        "rmsnorm-bwd",
        "--dtype",
        "f32",
        "--n",
        "1000",
        "--set",
        "BLOCK_SIZE=256",
        "--emit",
        "mlir",
    ]);
    assert!(ok, "{err}");
    assert!(mlir.contains("gpu.module @tritonite") && mlir.contains("scf.for"), "{mlir}");
    let (ok, ptx, err) = tritonite(&["compile", "rmsnorm-fwd", "--n", "4096", "--set", "num_warps=8", "--emit", "ptx"]);
    assert!(ok, "{err}");
    assert!(ptx.contains(".maxntid 256, 1, 1") && ptx.contains("ld.global.v4"), "{ptx}");
}

#[test]
fn bad_input_is_named() {
    let (ok, _, err) = tritonite(&["compile", "layernorm"]);
    assert!(!ok && err.contains("argument `kernel`") && err.contains("rmsnorm-fwd"), "{err}");
    let (ok, _, err) = tritonite(&["compile", "rmsnorm-fwd", "--set", "BLOCK=4"]);
    assert!(!ok && err.contains("BLOCK_SIZE"), "{err}");
    let (ok, _, err) = tritonite(&["compile", "rmsnorm-fwd", "--set", "BLOCK_SIZE=100"]);
    assert!(!ok && err.contains("power of two"), "{err}");
    let (ok, _, err) = tritonite(&["compile", "rmsnorm-fwd", "--dtype", "f64"]);
    assert!(!ok && err.contains("--dtype"), "{err}");
}

#[test]
fn main_job_checks_against_the_reference_without_a_gpu() {
    let (ok, out, err) = tritonite(&["demo", "--m", "8", "--n", "300", "--dtype", "f32", "--block-size", "256"]);
    assert!(ok, "{err}");
    // On a GPU machine the demo takes the GPU path; here it must say why not and check on the CPU.
    if out.contains("No GPU here") {
        assert!(out.contains(".entry rms_norm_fwd_f32_wf32_rf32_of32"), "{out}");
        // y, rstd, residual_out, dx, dresidual, dw.
        assert_eq!(out.matches("relative error vs fp64").count(), 6, "{out}");
        assert!(!out.contains("FAIL"), "{out}");
    }
}

fn tritonite_in(cache_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tritonite"))
        .args(args)
        .env("TRITONITE_CACHE_DIR", cache_dir)
        .output()
        .expect("the CLI binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cache_lists_shows_exports_clears_and_imports() {
    use tritonite::kernels::rmsnorm::tuning::{Pass, Problem};
    use tritonite::kernels::rmsnorm::{RmsNormConfig, RmsNormSpec};
    use tritonite::kernels::tuning::{Cache, DeviceId, Entry, Outcome};
    use tritonite::lang::DType;

    let root = std::env::temp_dir().join(format!("tritonite-cli-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let device = DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "13.0");
    let problem = Problem {
        pass: Pass::Forward,
        spec: RmsNormSpec::new(DType::BF16, Some(DType::BF16)),
        dresidual_out: false,
        m: 4096,
        n: 8192,
    };
    let key = problem.key(&device);
    let fast =
        RmsNormConfig { block_size: 8192, num_warps: 8, programs: 264, rows: 1, cluster: 1, ..RmsNormConfig::PLAIN }
            .to_config();
    let slow = problem.heuristic(132).to_config();
    let entry = Entry::new(
        key.clone(),
        slow.clone(),
        vec![(slow, Outcome::from_samples(vec![0.030])), (fast.clone(), Outcome::from_samples(vec![0.025]))],
    );
    Cache::open(root.join("autotune")).with_device(device).record(entry).unwrap();

    let (ok, out, err) = tritonite_in(&root, &["cache", "list"]);
    assert!(
        ok && out.contains("1 tuned entries") && out.contains(key.id()) && out.contains(&fast.to_string()),
        "{out}{err}"
    );
    let (ok, out, err) = tritonite_in(&root, &["cache", "show", &key.id()[..6]]);
    assert!(ok && out.contains("winner: BLOCK_SIZE=8192") && out.contains("25.00 us"), "{out}{err}");
    let file = root.join("export.json");
    let (ok, out, err) = tritonite_in(&root, &["cache", "export", file.to_str().unwrap()]);
    assert!(ok && out.contains("exported 1"), "{out}{err}");
    let (ok, out, _) = tritonite_in(&root, &["cache", "clear"]);
    assert!(ok && out.contains("removed 1"), "{out}");
    let (_, out, _) = tritonite_in(&root, &["cache", "list"]);
    assert!(out.contains("0 tuned entries"), "{out}");
    let (ok, out, err) = tritonite_in(&root, &["cache", "import", file.to_str().unwrap()]);
    assert!(ok && out.contains("imported 1"), "{out}{err}");
    let (_, out, _) = tritonite_in(&root, &["cache", "list"]);
    assert!(out.contains("1 tuned entries"), "{out}");
    let (ok, _, err) = tritonite_in(&root, &["cache", "show", "zzzz"]);
    assert!(!ok && !err.is_empty(), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn autotune_rejects_bad_input_and_needs_a_gpu() {
    let (ok, _, err) = tritonite(&["autotune", "--kernel", "sparkle"]);
    assert!(!ok && err.contains("--kernel"), "{err}");
    let (ok, _, err) = tritonite(&["autotune", "--kernel", "softmax-fwd,layernorm-sideways"]);
    assert!(!ok && err.contains("layernorm-sideways"), "{err}");
    // A feature of another kernel is named, not ignored.
    let (ok, _, err) = tritonite(&["autotune", "--kernel", "softmax", "--features", "residual"]);
    assert!(!ok && err.contains("residual"), "{err}");
    let (ok, _, err) = tritonite(&["autotune", "--kernel", "cross-entropy-bwd", "--features", "sparkle"]);
    assert!(!ok && err.contains("sparkle"), "{err}");
    // Every kernel and its features are accepted: what stops these is the shape, parsed next.
    let accepted = [
        ("layernorm-fwd", "no-bias"),
        ("layernorm-bwd", "f32-weight"),
        ("softmax", "f32-out"),
        ("cross-entropy-fwd,cross-entropy-bwd", "i32-target,per-row"),
        ("all", "residual"),
    ];
    for (kernel, features) in accepted {
        let (ok, _, err) = tritonite(&["autotune", "--kernel", kernel, "--features", features, "--shapes", "64xq"]);
        assert!(!ok && err.contains("64xq") && !err.contains("--kernel"), "{kernel}: {err}");
    }
    let (ok, _, err) = tritonite(&["autotune", "--shapes", "4096x8192", "--dtype", "bf16", "--features", "sparkle"]);
    assert!(!ok && err.contains("sparkle"), "{err}");
    let (ok, _, err) = tritonite(&["autotune", "--shapes", "4096"]);
    assert!(!ok && err.contains("4096"), "{err}");
}
