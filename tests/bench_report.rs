//! `tritonite bench report`: a saved bench.json merged with a peers.py peers.json, without a GPU —
//! the merged Markdown carries the right ratios and marks, and a PNG plot is written.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tritonite-bench-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tritonite(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tritonite")).args(args).output().expect("the CLI binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Ours: 2048x8192 f32 fwd 2400 / bwd 1500, 4096x65536 bf16 fwd 2900 / bwd 2100; copy 3000.
const BENCH_JSON: &str = r#"{
  "device": "NVIDIA H100 80GB HBM3",
  "sm_count": 132,
  "copy_gbs": 3000.0,
  "date": "2026-11-21 12:00 UTC",
  "rows": [
    {"m": 2048, "n": 8192, "dtype": "f32",
     "fwd": {"config": "BLOCK_SIZE=8192 num_warps=16 PROGRAMS=264", "tuned": true, "median_us": 56.0, "gbs": 2400.0, "ratio_to_copy": 0.8},
     "bwd": {"config": "BLOCK_SIZE=8192 num_warps=16 PROGRAMS=132", "tuned": false, "median_us": 134.3, "gbs": 1500.0, "ratio_to_copy": 0.5}},
    {"m": 4096, "n": 65536, "dtype": "bf16",
     "fwd": {"config": "BLOCK_SIZE=16384 num_warps=16 PROGRAMS=264", "tuned": false, "median_us": 370.3, "gbs": 2900.0, "ratio_to_copy": 0.9667},
     "bwd": {"config": "BLOCK_SIZE=16384 num_warps=16 PROGRAMS=132", "tuned": false, "median_us": 767.0, "gbs": 2100.0, "ratio_to_copy": 0.7}}
  ]
}"#;

/// As peers.py writes it: fp32 names, a failed row (error, no GB/s), a shape we did not run.
const PEERS_JSON: &str = r#"{
 "device": "NVIDIA H100 80GB HBM3",
 "copy_GBs": 3001.8,
 "rows": [
  {"peer": "torch", "M": 2048, "N": 8192, "dtype": "fp32", "rel_err": 5e-08, "fwd_ms": 0.075, "fwd_GBs": 1788.7, "bwd_ms": 0.176, "bwd_GBs": 1142.6},
  {"peer": "torch.compile", "M": 2048, "N": 8192, "dtype": "fp32", "rel_err": 5e-08, "fwd_ms": 0.05, "fwd_GBs": 2679.0, "bwd_ms": 0.22, "bwd_GBs": 916.2},
  {"peer": "quack", "M": 2048, "N": 8192, "dtype": "fp32", "fwd_GBs": 2647.0, "bwd_GBs": 436.0},
  {"peer": "torch", "M": 4096, "N": 65536, "dtype": "bf16", "fwd_GBs": 1871.0, "bwd_GBs": 1140.0},
  {"peer": "torch.compile", "M": 4096, "N": 65536, "dtype": "bf16", "fwd_GBs": 2071.0, "bwd_GBs": 1270.0},
  {"peer": "quack", "M": 4096, "N": 65536, "dtype": "bf16", "fwd_GBs": 2957.0, "bwd_GBs": 2094.0},
  {"peer": "liger", "M": 4096, "N": 65536, "dtype": "bf16", "error": "RuntimeError('n exceeds the blocksize')"},
  {"peer": "torch", "M": 32768, "N": 256, "dtype": "bf16", "fwd_GBs": 1211.0, "bwd_GBs": 371.0}
 ]
}"#;

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
}

#[test]
fn report_merges_peers_and_writes_markdown_and_png() {
    let dir = scratch("merge");
    let (bench, peers, out) = (dir.join("bench.json"), dir.join("peers.json"), dir.join("out"));
    std::fs::write(&bench, BENCH_JSON).unwrap();
    std::fs::write(&peers, PEERS_JSON).unwrap();
    let (ok, stdout, err) = tritonite(&[
        "bench",
        "report",
        "--from",
        bench.to_str().unwrap(),
        "--peers",
        peers.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{err}");
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert!(stdout.contains(&md), "stdout lacks the Markdown:\n{stdout}");
    // Our own table, with tuned/heuristic and ratios to our copy.
    assert!(
        md.contains("| 2048x8192 | f32 | fwd tuned BLOCK_SIZE=8192 num_warps=16 PROGRAMS=264; bwd heuristic"),
        "{md}"
    );
    // Both copy ceilings.
    assert!(md.contains("ours 3000 GB/s (in-process), peers.py 3002 GB/s"), "{md}");
    // Peers in order of appearance.
    assert!(md.contains("| shape | dtype | ours | torch | torch.compile | quack | liger | best fwd |"), "{md}");
    // 2048x8192: 2400 / 2679 = 0.90 fwd (below), 1500 / 1142.6 = 1.31 bwd (above); 0.80 and 0.50 of copy.
    assert!(
        md.contains(
            "| 2048x8192 | f32 | 2400 / **1500** | 1789 / 1143 | 2679 / 916 | 2647 / 436 | — | 2679 torch.compile | \
             1143 torch | 0.90 | 1.31 | 0.80 | 0.50 | bwd |"
        ),
        "{md}"
    );
    // 4096x65536: 2900 / 2957 = 0.98, 2100 / 2094 = 1.00 (above); liger failed there.
    assert!(
        md.contains(
            "| 4096x65536 | bf16 | 2900 / **2100** | 1871 / 1140 | 2071 / 1270 | 2957 / 2094 | error | 2957 quack | \
             2094 quack | 0.98 | 1.00 | 0.97 | 0.70 | bwd |"
        ),
        "{md}"
    );
    assert!(md.contains("forward on 0 of 2 shapes, backward on 2 of 2"), "{md}");
    assert!(md.contains("(1 peer rows are on shapes we did not run"), "{md}");
    assert_png(&out.join("bench.png"));
    // bench.json is rewritten beside them and reads back the same.
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(again["rows"][1]["bwd"]["gbs"], 2100.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_without_peers_and_bad_input() {
    let dir = scratch("plain");
    let bench = dir.join("bench.json");
    std::fs::write(&bench, BENCH_JSON).unwrap();
    let (ok, stdout, err) = tritonite(&["bench", "report", "--from", bench.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("| 4096x65536 | bf16 |") && !stdout.contains("Against the peers"), "{stdout}");
    let (ok, _, err) = tritonite(&["bench", "report", "--from", dir.join("missing.json").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.json"), "{err}");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"rows\": 3}").unwrap();
    let (ok, _, err) =
        tritonite(&["bench", "report", "--from", bench.to_str().unwrap(), "--peers", junk.to_str().unwrap()]);
    assert!(!ok && err.contains("peers.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
