//! The cache: an in-process map over a directory of one JSON file per key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::{CacheError, Config, DeviceId, Entry, Key};

/// The version of the file format this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Prints `tritonite autotune: warning: {message}` on stderr.
pub(crate) fn warn(message: &str) {
    eprintln!("tritonite autotune: warning: {message}");
}

/// One key's file.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    format: u64,
    crate_version: String,
    device: DeviceId,
    entry: Entry,
}

/// An export: every entry in one file.
#[derive(Serialize, Deserialize)]
struct ExportFile {
    format: u64,
    crate_version: String,
    entries: Vec<Entry>,
}

/// What the map knows of a key: its entry, or that there is none on disk.
type Slot = Option<Entry>;

/// Tuned results by key: an in-process map over a persistent store of one JSON file per key.
///
/// **Files.** The store is a directory (by default `autotune/` under the tritonite cache
/// directory, see [`Cache::default_dir`]) of files `<key id>.json`, each holding the format
/// version, the version of this crate, the device and the key's [`Entry`]. Writes go to a unique
/// temporary file in the same directory renamed into place, so readers never see half a file and
/// processes writing different keys never lose each other's entries (two processes writing the
/// *same* key at once: the last rename wins). A file that is corrupt, of another format or crate
/// version, for another device or another key is ignored with a warning on stderr (prefix
/// `tritonite autotune: warning:`) and replaced by the next [`record`](Cache::record) of its key.
/// When the directory cannot be created or written, the cache warns once and keeps working in
/// memory only.
///
/// **Lookups.** A key not yet in the map is looked for on disk once; an entry found is kept, and
/// so is a miss, so a repeated lookup — hit or miss — is a hash-map probe on the key's
/// precomputed id, with no allocation. Entries another process writes later are not seen by a
/// key already looked up (they are by [`list`](Cache::list)).
///
/// **Threads.** Methods that may read files take `&mut self`; `Cache` is `Send + Sync`, so share
/// one as `Mutex<Cache>` (or `RwLock<Cache>`, reading with [`peek`](Cache::peek) under the read
/// lock once a key has been looked up).
#[derive(Debug)]
pub struct Cache {
    dir: Option<PathBuf>,
    writable: bool,
    device: Option<DeviceId>,
    slots: HashMap<String, Slot>,
    warnings: Vec<String>,
}

impl Cache {
    /// A cache over the store in `dir` (created if missing; if it cannot be, the cache warns and
    /// keeps results in memory only).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let mut cache =
            Cache { dir: Some(dir.clone()), writable: true, device: None, slots: HashMap::new(), warnings: Vec::new() };
        if let Err(source) = std::fs::create_dir_all(&dir) {
            cache.go_memory_only(CacheError::Io { path: dir, what: "create directory", source });
        }
        cache
    }

    /// A cache over the store in [`Cache::default_dir`], or in memory when there is no home
    /// directory to put it in.
    pub fn open_default() -> Self {
        match Self::default_dir() {
            Some(dir) => Self::open(dir),
            None => Self::in_memory(),
        }
    }

    /// A cache that never touches the disk.
    pub fn in_memory() -> Self {
        Cache { dir: None, writable: false, device: None, slots: HashMap::new(), warnings: Vec::new() }
    }

    /// This cache restricted to `device`: [`list`](Cache::list), [`show`](Cache::show) and
    /// [`export`](Cache::export) see only its entries. Lookups are by key, which names its device.
    pub fn with_device(mut self, device: DeviceId) -> Self {
        self.device = Some(device);
        self
    }

    /// The store's default directory: `autotune/` under `$TRITONITE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/tritonite`, else `$HOME/.cache/tritonite` (`None` when none is set).
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        cache_root(var("TRITONITE_CACHE_DIR"), var("XDG_CACHE_HOME"), var("HOME")).map(|root| root.join("autotune"))
    }

    /// The store's directory (`None` for an in-memory cache).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether recorded entries reach the disk: false for an in-memory cache and after a write
    /// failed.
    pub fn is_persistent(&self) -> bool {
        self.dir.is_some() && self.writable
    }

    /// The warnings this cache has printed, oldest first.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The winner for `key`, from the map or, the first time the key is asked for, from its file.
    pub fn lookup(&mut self, key: &Key) -> Option<&Config> {
        self.entry(key).map(|e| &e.winner)
    }

    /// The entry for `key`, from the map or, the first time the key is asked for, from its file.
    pub fn entry(&mut self, key: &Key) -> Option<&Entry> {
        if !self.slots.contains_key(key.id()) {
            let slot = self.load(key);
            self.slots.insert(key.id().to_owned(), slot);
        }
        self.slots.get(key.id()).and_then(Option::as_ref)
    }

    /// The winner for `key` if the map already holds it; never reads a file.
    pub fn peek(&self, key: &Key) -> Option<&Config> {
        self.slots.get(key.id()).and_then(Option::as_ref).map(|e| &e.winner)
    }

    /// Records `entry`, merging it into the key's existing entry (results for other configs are
    /// kept, see [`Entry::merge`]), and writes the key's file. A failed write is warned about once
    /// and the cache goes on in memory only; the error returned is for an entry that cannot be
    /// stored at all (a timing that is not a finite, non-negative number).
    pub fn record(&mut self, entry: Entry) -> Result<(), CacheError> {
        if let Some((config, _)) = entry.results.iter().find(|(_, o)| !o.is_valid()) {
            return Err(CacheError::BadTiming { key: entry.key.to_string(), config: config.to_string() });
        }
        let key = entry.key.clone();
        self.entry(&key);
        let slot = self.slots.get_mut(key.id()).expect("entry() filled the slot");
        match slot {
            Some(existing) => existing.merge(entry),
            None => *slot = Some(entry),
        }
        let Some(merged) = slot.as_ref() else { return Ok(()) };
        if let (Some(dir), true) = (&self.dir, self.writable) {
            let file = EntryFile {
                format: FORMAT_VERSION,
                crate_version: CRATE_VERSION.into(),
                device: key.device().clone(),
                entry: merged.clone(),
            };
            let json = serde_json::to_vec_pretty(&file).expect("entries serialize");
            if let Err(e) = write_atomic(&dir.join(format!("{}.json", key.id())), &json) {
                self.go_memory_only(e);
            }
        }
        Ok(())
    }

    /// Every entry (of this cache's device, if set): the map's, and every valid file's not yet in
    /// the map, in id order. Invalid files are warned about and skipped.
    pub fn list(&mut self) -> Vec<&Entry> {
        for (id, path) in self.files() {
            if matches!(self.slots.get(&id), Some(Some(_))) {
                continue;
            }
            match read_entry(&path, None) {
                Ok(entry) => {
                    self.slots.insert(id, Some(entry));
                }
                Err(e) => self.warn(&format!("{e}; ignored")),
            }
        }
        let mut entries: Vec<&Entry> = self
            .slots
            .values()
            .flatten()
            .filter(|e| self.device.as_ref().is_none_or(|d| d == e.key.device()))
            .collect();
        entries.sort_by(|a, b| a.key.id().cmp(b.key.id()));
        entries
    }

    /// The entry whose id is `id_or_prefix` or the only one starting with it.
    pub fn show(&mut self, id_or_prefix: &str) -> Result<&Entry, CacheError> {
        let prefix = id_or_prefix.trim();
        let mut matches: Vec<&Entry> = self.list().into_iter().filter(|e| e.key.id().starts_with(prefix)).collect();
        if let Some(i) = matches.iter().position(|e| e.key.id() == prefix) {
            return Ok(matches.swap_remove(i));
        }
        match matches.len() {
            0 => Err(CacheError::NotFound { prefix: prefix.into() }),
            1 => Ok(matches[0]),
            _ => Err(CacheError::Ambiguous {
                prefix: prefix.into(),
                matches: matches.iter().map(|e| e.key.id().to_owned()).collect(),
            }),
        }
    }

    /// Forgets every entry and removes every entry file (of every device) and leftover temporary
    /// file from the store; returns how many entry files were removed.
    pub fn clear(&mut self) -> Result<usize, CacheError> {
        self.slots.clear();
        let Some(dir) = &self.dir else { return Ok(0) };
        let mut removed = 0;
        for item in read_dir(dir)? {
            let name = item.file_name().to_string_lossy().into_owned();
            let is_entry = name.ends_with(".json") && !name.starts_with('.');
            if is_entry || (name.starts_with('.') && name.ends_with(".tmp")) {
                let path = item.path();
                std::fs::remove_file(&path).map_err(|source| CacheError::Io { path, what: "remove", source })?;
                removed += usize::from(is_entry);
            }
        }
        Ok(removed)
    }

    /// Writes every entry [`list`](Cache::list) returns to one JSON file at `path`; returns how
    /// many.
    pub fn export(&mut self, path: &Path) -> Result<usize, CacheError> {
        let entries: Vec<Entry> = self.list().into_iter().cloned().collect();
        let count = entries.len();
        let file = ExportFile { format: FORMAT_VERSION, crate_version: CRATE_VERSION.into(), entries };
        write_atomic(path, &serde_json::to_vec_pretty(&file).expect("entries serialize"))?;
        Ok(count)
    }

    /// Records (merging) every entry of an export file; returns how many. The whole file is
    /// checked first, so a bad file imports nothing.
    pub fn import(&mut self, path: &Path) -> Result<usize, CacheError> {
        let bytes = std::fs::read(path).map_err(|source| CacheError::Io { path: path.into(), what: "read", source })?;
        let value = parse(path, &bytes)?;
        check_header(path, &value)?;
        let file: ExportFile =
            serde_json::from_value(value).map_err(|source| CacheError::Corrupt { path: path.into(), source })?;
        if let Some((entry, (config, _))) =
            file.entries.iter().find_map(|e| Some((e, e.results.iter().find(|(_, o)| !o.is_valid())?)))
        {
            return Err(CacheError::BadTiming { key: entry.key.to_string(), config: config.to_string() });
        }
        let count = file.entries.len();
        for entry in file.entries {
            self.record(entry)?;
        }
        Ok(count)
    }

    /// The entry in `key`'s file, or `None` (with a warning when the file exists but is invalid).
    fn load(&mut self, key: &Key) -> Slot {
        let path = self.dir.as_ref()?.join(format!("{}.json", key.id()));
        match read_entry(&path, Some(key)) {
            Ok(entry) => Some(entry),
            Err(CacheError::Io { source, .. }) if is_absent(&source) => None,
            Err(e) => {
                self.warn(&format!("{e}; ignored (rebuilt on the next record)"));
                None
            }
        }
    }

    /// The entry files in the store, by id.
    fn files(&mut self) -> Vec<(String, PathBuf)> {
        let Some(dir) = &self.dir else { return Vec::new() };
        match read_dir(dir) {
            Ok(items) => items
                .into_iter()
                .filter_map(|item| {
                    let name = item.file_name().into_string().ok()?;
                    let id = name.strip_suffix(".json").filter(|id| !id.starts_with('.'))?;
                    Some((id.to_owned(), item.path()))
                })
                .collect(),
            Err(CacheError::Io { source, .. }) if is_absent(&source) => Vec::new(),
            Err(e) => {
                self.warn(&e.to_string());
                Vec::new()
            }
        }
    }

    fn go_memory_only(&mut self, error: CacheError) {
        if self.writable {
            self.writable = false;
            self.warn(&format!("{error}; autotune results are kept in memory only"));
        }
    }

    fn warn(&mut self, message: &str) {
        warn(message);
        self.warnings.push(message.to_owned());
    }
}

/// The tritonite cache root from the values of `$TRITONITE_CACHE_DIR`, `$XDG_CACHE_HOME`, `$HOME`.
fn cache_root(tritonite: Option<PathBuf>, xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    tritonite.or_else(|| xdg.map(|d| d.join("tritonite"))).or_else(|| home.map(|h| h.join(".cache").join("tritonite")))
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, CacheError> {
    let io = |source| CacheError::Io { path: dir.into(), what: "read directory", source };
    std::fs::read_dir(dir).map_err(io)?.collect::<Result<_, _>>().map_err(io)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<serde_json::Value, CacheError> {
    serde_json::from_slice(bytes).map_err(|source| CacheError::Corrupt { path: path.into(), source })
}

/// Checks the format and crate version of a parsed file.
fn check_header(path: &Path, value: &serde_json::Value) -> Result<(), CacheError> {
    let found = value.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if found != FORMAT_VERSION {
        return Err(CacheError::Format { path: path.into(), found, expected: FORMAT_VERSION });
    }
    let version = value.get("crate_version").and_then(serde_json::Value::as_str).unwrap_or("?");
    if version != CRATE_VERSION {
        return Err(CacheError::CrateVersion {
            path: path.into(),
            found: version.into(),
            expected: CRATE_VERSION.into(),
        });
    }
    Ok(())
}

/// Reads and checks one entry file; with `expected`, its entry must be that key's.
fn read_entry(path: &Path, expected: Option<&Key>) -> Result<Entry, CacheError> {
    let bytes = std::fs::read(path).map_err(|source| CacheError::Io { path: path.into(), what: "read", source })?;
    let value = parse(path, &bytes)?;
    check_header(path, &value)?;
    let file: EntryFile =
        serde_json::from_value(value).map_err(|source| CacheError::Corrupt { path: path.into(), source })?;
    let entry = file.entry;
    let device = expected.map_or(&file.device, Key::device);
    if let Some(found) = [&file.device, entry.key.device()].into_iter().find(|d| *d != device) {
        let (found, expected) = (Box::new(found.clone()), Box::new(device.clone()));
        return Err(CacheError::Device { path: path.into(), found, expected });
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mismatch = match expected {
        Some(key) => (&entry.key != key).then(|| key.to_string()),
        None => (entry.key.id() != stem).then(|| format!("a key with id {stem}")),
    };
    if let Some(expected) = mismatch {
        return Err(CacheError::KeyMismatch { path: path.into(), found: entry.key.to_string(), expected });
    }
    Ok(entry)
}

/// Writes `bytes` to `path` through a unique temporary file in the same directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|source| CacheError::Io { path: tmp.clone(), what: "write", source })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CacheError::Io { path: path.into(), what: "rename into place", source }
    })
}

#[cfg(test)]
mod tests {
    use super::cache_root;
    use std::path::PathBuf;

    #[test]
    fn cache_root_prefers_tritonite_then_xdg_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(cache_root(p("/t"), p("/x"), p("/h")), p("/t"));
        assert_eq!(cache_root(None, p("/x"), p("/h")), p("/x/tritonite"));
        assert_eq!(cache_root(None, None, p("/h")), p("/h/.cache/tritonite"));
        assert_eq!(cache_root(None, None, None), None);
    }
}
