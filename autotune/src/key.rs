//! Tuning keys: what a tuned result is valid for, with a stable id.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// A stable 64-bit FNV-1a hash (std's hasher may change between Rust releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// The shape bucket of `m`: the next power of two at or above it (`0 → 0`, `3000 → 4096`,
/// `4096 → 4096`, `5000 → 8192`). Values above 2⁶³ share the bucket `u64::MAX`.
pub fn bucket_pow2(m: u64) -> u64 {
    match m {
        0 => 0,
        _ => m.checked_next_power_of_two().unwrap_or(u64::MAX),
    }
}

/// The device results were measured on. Results never carry over between devices.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceId {
    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// The compute capability as a target name, e.g. `sm_90`.
    pub arch: String,
    /// The driver version, e.g. `13.0`.
    pub driver: String,
}

impl DeviceId {
    /// A device id from its parts.
    pub fn new(name: impl Into<String>, arch: impl Into<String>, driver: impl Into<String>) -> Self {
        Self { name: name.into(), arch: arch.into(), driver: driver.into() }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, driver {})", self.name, self.arch, self.driver)
    }
}

/// What a tuned config is valid for: a kernel (by name and a hash of its source or IR), the
/// version of the crate that built it, feature flags and dtypes, bucketed shape features and the
/// device.
///
/// The key's [`id`](Key::id) — 16 hex digits of an FNV-1a hash over a canonical text of every
/// field — is computed when the key is built and kept, so looking a key up hashes nothing but that
/// short string. The id is stable across processes, platforms and Rust versions; it names the
/// key's file in the cache.
///
/// ```
/// use tritonite_autotune::{bucket_pow2, DeviceId, Key};
/// let device = DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "13.0");
/// let key = Key::new("rmsnorm_fwd", 0x1234, "0.1.0", device)
///     .with_feature("dtype", "f16")
///     .with_shape("M", bucket_pow2(3000))
///     .with_shape("N", 1024);
/// assert_eq!(key.shape().get("M"), Some(&4096));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "KeyFields", into = "KeyFields")]
pub struct Key {
    fields: KeyFields,
    id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct KeyFields {
    kernel: String,
    kernel_hash: u64,
    crate_version: String,
    features: BTreeMap<String, String>,
    shape: BTreeMap<String, u64>,
    device: DeviceId,
}

impl Key {
    /// A key with no features and no shape; `kernel_hash` is the caller's stable hash of the
    /// kernel's source or IR, `crate_version` the version of the crate that holds the kernel.
    pub fn new(
        kernel: impl Into<String>,
        kernel_hash: u64,
        crate_version: impl Into<String>,
        device: DeviceId,
    ) -> Self {
        let fields = KeyFields {
            kernel: kernel.into(),
            kernel_hash,
            crate_version: crate_version.into(),
            features: BTreeMap::new(),
            shape: BTreeMap::new(),
            device,
        };
        fields.into()
    }

    /// This key with the feature flag or dtype `name` set to `value` (e.g. `dtype=f16`).
    pub fn with_feature(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.features.insert(name.into(), value.into());
        self.fields.into()
    }

    /// This key with the shape feature `name` set to `value`. Pass the value through a bucketing
    /// helper such as [`bucket_pow2`] first unless every distinct value deserves its own tuning.
    pub fn with_shape(mut self, name: impl Into<String>, value: u64) -> Self {
        self.fields.shape.insert(name.into(), value);
        self.fields.into()
    }

    /// The stable id: 16 lowercase hex digits.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kernel's name.
    pub fn kernel(&self) -> &str {
        &self.fields.kernel
    }

    /// The caller's hash of the kernel's source or IR.
    pub fn kernel_hash(&self) -> u64 {
        self.fields.kernel_hash
    }

    /// The version of the crate that holds the kernel.
    pub fn crate_version(&self) -> &str {
        &self.fields.crate_version
    }

    /// Feature flags and dtypes, by name.
    pub fn features(&self) -> &BTreeMap<String, String> {
        &self.fields.features
    }

    /// Shape features (bucketed by the caller), by name.
    pub fn shape(&self) -> &BTreeMap<String, u64> {
        &self.fields.shape
    }

    /// The device.
    pub fn device(&self) -> &DeviceId {
        &self.fields.device
    }

    /// The canonical text the id hashes: one field per line, every string length-prefixed so no
    /// two keys share a text. Changing it changes every id (and so orphans every cache file).
    pub fn canonical(&self) -> String {
        self.fields.canonical()
    }
}

impl KeyFields {
    fn canonical(&self) -> String {
        fn s(out: &mut String, text: &str) {
            let _ = write!(out, "{}:{text}", text.len());
        }
        let mut out = String::from("tritonite-autotune key 1\nkernel ");
        s(&mut out, &self.kernel);
        let _ = write!(out, "\nhash {:016x}\nversion ", self.kernel_hash);
        s(&mut out, &self.crate_version);
        for (name, value) in &self.features {
            out.push_str("\nfeature ");
            s(&mut out, name);
            out.push(' ');
            s(&mut out, value);
        }
        for (name, value) in &self.shape {
            out.push_str("\nshape ");
            s(&mut out, name);
            let _ = write!(out, " {value}");
        }
        out.push_str("\ndevice ");
        s(&mut out, &self.device.name);
        out.push(' ');
        s(&mut out, &self.device.arch);
        out.push(' ');
        s(&mut out, &self.device.driver);
        out.push('\n');
        out
    }
}

impl From<KeyFields> for Key {
    fn from(fields: KeyFields) -> Self {
        let id = format!("{:016x}", fnv1a(fields.canonical().as_bytes()));
        Key { fields, id }
    }
}

impl From<Key> for KeyFields {
    fn from(key: Key) -> Self {
        key.fields
    }
}

/// `kernel #hash vX [features] shape on device`, e.g.
/// `rmsnorm_fwd #0000000000001234 v0.1.0 [dtype=f16] M=4096 N=1024 on NVIDIA H100 80GB HBM3 (sm_90, driver 13.0)`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.fields;
        write!(f, "{} #{:016x} v{}", k.kernel, k.kernel_hash, k.crate_version)?;
        if !k.features.is_empty() {
            let features: Vec<String> = k.features.iter().map(|(n, v)| format!("{n}={v}")).collect();
            write!(f, " [{}]", features.join(" "))?;
        }
        for (name, value) in &k.shape {
            write!(f, " {name}={value}")?;
        }
        write!(f, " on {}", k.device)
    }
}
