//! Running `ptxas` (when installed) for a resource report: registers, spills, stack.
//!
//! Found as `$TRITONITE_PTXAS`, else where `scripts/setup.sh` installs it, else on `PATH`.

use std::path::PathBuf;
use std::process::Command;

use crate::error::LowerError;

/// What ptxas reports for one kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtxasReport {
    /// Registers per thread.
    pub registers: u32,
    /// Bytes spilled to local memory (stores).
    pub spill_stores: u32,
    /// Bytes reloaded from spills.
    pub spill_loads: u32,
    /// Stack frame bytes.
    pub stack_frame: u32,
    /// The cubin ptxas produced.
    pub cubin: Vec<u8>,
}

/// The ptxas binary to use, if one exists.
pub fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRITONITE_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let toolkit = std::env::var_os("TRITONITE_TOOLKIT_DIR")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".local/share/tritonite/cuda-13.0")));
    if let Some(t) = toolkit {
        let p = t.join("nvidia/cu13/bin/ptxas");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("ptxas")).find(|p| p.is_file()))
}

fn number_before(text: &str, suffix: &str) -> Option<u32> {
    let i = text.find(suffix)?;
    text[..i].split_whitespace().last()?.parse().ok()
}

/// Assembles `ptx` for `chip` and returns the resource report.
pub fn assemble(ptx: &str, chip: &str) -> Result<PtxasReport, LowerError> {
    let ptxas = find_ptxas()
        .ok_or_else(|| LowerError::Ptxas("ptxas not found: run scripts/setup.sh or set TRITONITE_PTXAS".into()))?;
    let dir = std::env::temp_dir().join(format!(
        "tritonite-ptxas-{}-{:x}",
        std::process::id(),
        crate::cache::fnv1a(ptx.as_bytes())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| LowerError::Ptxas(format!("creating {}: {e}", dir.display())))?;
    let (src, out) = (dir.join("k.ptx"), dir.join("k.cubin"));
    std::fs::write(&src, ptx).map_err(|e| LowerError::Ptxas(format!("writing {}: {e}", src.display())))?;
    let result = Command::new(&ptxas).arg(format!("-arch={chip}")).arg("-v").arg(&src).arg("-o").arg(&out).output();
    let cleanup = || {
        let _ = std::fs::remove_dir_all(&dir);
    };
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            cleanup();
            return Err(LowerError::Ptxas(format!("running {}: {e}", ptxas.display())));
        }
    };
    let log = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        cleanup();
        return Err(LowerError::Ptxas(log));
    }
    let cubin = std::fs::read(&out).unwrap_or_default();
    cleanup();
    Ok(PtxasReport {
        registers: number_before(&log, "registers").unwrap_or(0),
        spill_stores: number_before(&log, "bytes spill stores").unwrap_or(0),
        spill_loads: number_before(&log, "bytes spill loads").unwrap_or(0),
        stack_frame: number_before(&log, "bytes stack frame").unwrap_or(0),
        cubin,
    })
}
