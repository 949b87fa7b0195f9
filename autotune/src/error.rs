//! Typed errors: parsing configs and modes, and reading or writing the cache.

use std::path::PathBuf;

use crate::DeviceId;

/// Text that is not a valid [`Config`](crate::Config) or [`TuneMode`](crate::TuneMode).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An item of a config is not of the form `name=value`.
    #[error("`{item}` is not of the form name=value")]
    MissingEquals {
        /// The offending item.
        item: String,
    },
    /// A parameter name is empty or has characters other than ASCII letters, digits and `_`, or
    /// starts with a digit.
    #[error("`{name}` is not a parameter name (ASCII letters, digits and `_`, not starting with a digit)")]
    BadName {
        /// The offending name.
        name: String,
    },
    /// A parameter value is not a 64-bit signed integer.
    #[error("parameter `{name}`: `{value}` is not a 64-bit integer")]
    BadValue {
        /// The parameter.
        name: String,
        /// The text that should have been its value.
        value: String,
    },
    /// A parameter is given twice.
    #[error("parameter `{name}` is given twice")]
    Duplicate {
        /// The parameter.
        name: String,
    },
    /// Not one of `off`, `on-miss`, `force`.
    #[error("`{text}` is not an autotune mode (expected off, on-miss or force)")]
    BadMode {
        /// The offending text.
        text: String,
    },
}

/// A failure reading or writing the autotune cache. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file system refused an operation.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `write`, `rename`, ...).
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape (truncated, edited, another program's file).
    #[error("{}: corrupt: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the JSON parser found.
        source: serde_json::Error,
    },
    /// The file was written in another format version.
    #[error("{}: format version {found}, this build reads version {expected}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The file's format version.
        found: u64,
        /// The version this build reads and writes.
        expected: u64,
    },
    /// The file was written by another version of this crate.
    #[error("{}: written by tritonite-autotune {found}, this is {expected}", path.display())]
    CrateVersion {
        /// The file.
        path: PathBuf,
        /// The version that wrote it.
        found: String,
        /// This crate's version.
        expected: String,
    },
    /// The file holds results measured on another device.
    #[error("{}: results for device {found}, expected {expected}", path.display())]
    Device {
        /// The file.
        path: PathBuf,
        /// The device in the file.
        found: Box<DeviceId>,
        /// The device asked for.
        expected: Box<DeviceId>,
    },
    /// The file holds another key than its name says (a hash collision or a renamed file).
    #[error("{}: holds key `{found}`, expected `{expected}`", path.display())]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// The key in the file.
        found: String,
        /// The key asked for (or the one its name stands for).
        expected: String,
    },
    /// An entry to record has a timing that is not a finite, non-negative number.
    #[error("entry {key}: timing of `{config}` is not a finite, non-negative number")]
    BadTiming {
        /// The entry's key.
        key: String,
        /// The config with the bad timing.
        config: String,
    },
    /// No entry's id starts with the given prefix.
    #[error("no autotune entry matches `{prefix}`")]
    NotFound {
        /// The id or id prefix looked for.
        prefix: String,
    },
    /// Several entries' ids start with the given prefix.
    #[error("`{prefix}` matches {} autotune entries: {}", matches.len(), matches.join(", "))]
    Ambiguous {
        /// The id prefix looked for.
        prefix: String,
        /// The ids of the matching entries.
        matches: Vec<String>,
    },
}
