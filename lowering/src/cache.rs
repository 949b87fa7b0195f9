//! The on-disk kernel cache: compile once, reuse forever.
//!
//! A variant's identity is its key text — the kernel's IR, the compile options (with the alignment
//! facts and the target) and the toolchain (this crate's version, LLVM 22) — hashed into the file
//! name. An entry (PTX, and a cubin when ptxas is installed) stores the full key and a checksum; an entry whose key or checksum does
//! not match is a miss, never trusted. Writes go to a temporary file renamed into place, so
//! concurrent processes never see half an entry.
//!
//! The directory is `$TRITONITE_CACHE_DIR`, else `$XDG_CACHE_HOME/tritonite`, else
//! `~/.cache/tritonite`; entries live under `kernels/`. A build without the `compiler` feature runs
//! from entries alone.

use std::path::{Path, PathBuf};

use tritonite_lang::Kernel;

use crate::{CompileOptions, Compiled};

const MAGIC: &str = "tritonite-kernel-cache 1";

/// A stable 64-bit FNV-1a hash (std's hasher may change between Rust releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// The cache's root directory.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TRITONITE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("tritonite"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("tritonite"))
}

/// Everything that changes the compiled code of a variant.
pub fn key(kernel: &Kernel, opts: &CompileOptions) -> String {
    format!("tritonite-lowering {} / llvm 22\n{opts:?}\n{kernel}", env!("CARGO_PKG_VERSION"))
}

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// PTX text.
    Ptx,
    /// A cubin assembled by ptxas for the key's target.
    Cubin,
}

impl Artifact {
    fn extension(self) -> &'static str {
        match self {
            Artifact::Ptx => "ptx",
            Artifact::Cubin => "cubin",
        }
    }
}

fn entry_path(dir: &Path, key: &str, what: Artifact) -> PathBuf {
    dir.join("kernels").join(format!("{:016x}.{}", fnv1a(key.as_bytes()), what.extension()))
}

/// The cached artifact for `key` in `dir`, if a valid entry exists.
pub fn load(dir: &Path, key: &str, what: Artifact) -> Option<Vec<u8>> {
    let bytes = std::fs::read(entry_path(dir, key, what)).ok()?;
    let header = format!("{MAGIC}\nkey {}\n{key}\n", key.len());
    let rest = bytes.strip_prefix(header.as_bytes())?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&rest[..nl]).ok()?;
    let mut parts = line.strip_prefix(what.extension())?.trim_start().split(' ');
    let (len, sum): (usize, u64) = (parts.next()?.parse().ok()?, u64::from_str_radix(parts.next()?, 16).ok()?);
    let payload = &rest[nl + 1..];
    (payload.len() == len && fnv1a(payload) == sum).then(|| payload.to_vec())
}

/// Stores an artifact for `key` in `dir` atomically; failures (read-only dir, full disk) are
/// returned for the caller to report, and leave no partial entry.
pub fn store(dir: &Path, key: &str, what: Artifact, payload: &[u8]) -> std::io::Result<()> {
    let path = entry_path(dir, key, what);
    let parent = path.parent().expect("entries live in a folder");
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".{}.{:016x}.tmp", std::process::id(), fnv1a(payload)));
    let mut body =
        format!("{MAGIC}\nkey {}\n{key}\n{} {} {:016x}\n", key.len(), what.extension(), payload.len(), fnv1a(payload))
            .into_bytes();
    body.extend_from_slice(payload);
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Where a compiled kernel came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from the disk cache.
    Cache,
    /// Compiled now (and stored, when the cache is writable).
    Compiled,
}

/// The PTX of `kernel` from the cache, or compiled and stored. Without the `compiler` feature a
/// miss is an error.
pub fn compile_cached(kernel: &Kernel, opts: &CompileOptions) -> Result<(Compiled, Source), crate::LowerError> {
    let key = key(kernel, opts);
    let dir = cache_dir();
    let threads = opts.num_warps * 32;
    if let Some(ptx) = dir.as_deref().and_then(|d| load(d, &key, Artifact::Ptx)) {
        if let Ok(ptx) = String::from_utf8(ptx) {
            let cubin = dir.as_deref().and_then(|d| load(d, &key, Artifact::Cubin));
            let shared_bytes = crate::dynamic_shared_bytes(kernel, opts)?;
            return Ok((
                Compiled { name: kernel.name.clone(), mlir: String::new(), ptx, cubin, threads, shared_bytes },
                Source::Cache,
            ));
        }
    }
    #[cfg(feature = "compiler")]
    {
        let mut compiled = crate::compile(kernel, opts)?;
        // A cubin spares the driver its PTX JIT at load time; without ptxas the PTX is enough.
        if crate::ptxas::find_ptxas().is_some() {
            compiled.cubin = crate::ptxas::assemble(&compiled.ptx, &opts.target.chip).ok().map(|r| r.cubin);
        }
        if let Some(d) = dir {
            let stored = store(&d, &key, Artifact::Ptx, compiled.ptx.as_bytes())
                .and_then(|_| compiled.cubin.as_ref().map_or(Ok(()), |c| store(&d, &key, Artifact::Cubin, c)));
            if let Err(e) = stored {
                eprintln!(
                    "tritonite: warning: kernel cache {} is not writable ({e}); continuing without it",
                    d.display()
                );
            }
        }
        Ok((compiled, Source::Compiled))
    }
    #[cfg(not(feature = "compiler"))]
    Err(crate::LowerError::NotCached {
        kernel: kernel.name.clone(),
        dir: dir.map(|d| d.display().to_string()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tritonite-cache-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tmpdir("rt");
        let key = "kernel k\nopts";
        let ptx: &[u8] = b".version 8.0\n.entry k {}\n";
        assert_eq!(load(&dir, key, Artifact::Ptx), None);
        store(&dir, key, Artifact::Ptx, ptx).unwrap();
        store(&dir, key, Artifact::Cubin, &[0, 159, 10, 255]).unwrap();
        assert_eq!(load(&dir, key, Artifact::Ptx).as_deref(), Some(ptx));
        assert_eq!(load(&dir, key, Artifact::Cubin).as_deref(), Some(&[0u8, 159, 10, 255][..]));
        assert_eq!(load(&dir, "another key", Artifact::Ptx), None);
        // Flip one byte of the PTX: the checksum no longer matches.
        let path = entry_path(&dir, key, Artifact::Ptx);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&dir, key, Artifact::Ptx), None);
        // Truncated or foreign files are misses too.
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(load(&dir, key, Artifact::Ptx), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
