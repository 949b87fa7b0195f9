//! What a backend's autotuning needs: its results cache, its tuning mode and the identity of the
//! device the results belong to. Each kernel declares its own config space, heuristic and key
//! (for RMSNorm: [`crate::rmsnorm::tuning`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

pub use tritonite_autotune::{
    Cache, Config, DeviceId, Entry, Failure, Key, Outcome, Phase, Progress, Selection, Source, TuneMode, Tuner,
};

/// A results cache and a tuning mode, shared by every call on one backend.
#[derive(Debug)]
pub struct Autotuner {
    cache: Mutex<Cache>,
    mode: Mutex<TuneMode>,
    device: DeviceId,
    /// What lookups found, by a hash of the problem: a call's config without building its key.
    remembered: Mutex<HashMap<u64, (Config, Source)>>,
}

impl Autotuner {
    /// An autotuner for `device` with `cache` (its results for other devices are ignored), tuning
    /// per `mode`.
    pub fn new(cache: Cache, mode: TuneMode, device: DeviceId) -> Autotuner {
        Autotuner {
            cache: Mutex::new(cache.with_device(device.clone())),
            mode: Mutex::new(mode),
            device,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// The persistent cache under the user cache dir (`TRITONITE_CACHE_DIR` overrides) and the
    /// mode from `TRITONITE_AUTOTUNE` (off unless set: no surprise tuning).
    pub fn from_env(device: DeviceId) -> Autotuner {
        Autotuner::new(Cache::open_default(), TuneMode::from_env(), device)
    }

    /// The device results are kept for.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Whether a call without a cached config measures candidates.
    pub fn mode(&self) -> TuneMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the tuning mode (and forgets remembered lookups).
    pub fn set_mode(&self, mode: TuneMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The config a lookup found for the problem hashing to `problem`, when one was remembered.
    pub fn remembered(&self, problem: u64) -> Option<(Config, Source)> {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).get(&problem).cloned()
    }

    /// Remembers what a lookup found for the problem hashing to `problem` (only lookups that
    /// cannot change: with tuning off).
    pub fn remember(&self, problem: u64, found: (Config, Source)) {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).insert(problem, found);
    }

    /// The cache, locked.
    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
