//! # tritonite-autotune
//!
//! Picks the fastest configuration of a kernel's meta-parameters and remembers it, in the manner
//! of Triton's `@autotune` (candidate configs, a key, pruning, results on disk) and CubeCL's tune
//! module (a typed, bucketed key; a persistent per-device cache).
//!
//! - [`Config`]: named integer meta-parameters (`BLOCK_SIZE=1024 num_warps=4`);
//!   [`ConfigSpace`]: candidates with pruning predicates.
//! - [`Key`]: what a result is valid for — kernel, kernel hash, crate version, features, bucketed
//!   shape ([`bucket_pow2`]) and [`DeviceId`] — with a stable id.
//! - [`tune`] / [`Tuner`]: measures every candidate through the caller's closure, records
//!   failures, and settles the best two in a head-to-head; [`Entry`] keeps every config's
//!   [`Outcome`].
//! - [`Cache`]: an in-process map over one JSON file per key, merged per config, never trusting
//!   a file of another format, crate version or device.
//! - [`TuneMode`] (from `$TRITONITE_AUTOTUNE`, off by default) and [`Tuner::select`]: whether a
//!   miss is measured or answered with the heuristic default.
//!
//! The crate knows nothing of GPUs: the caller's `measure` closure compiles, checks and times.
//!
//! ```
//! use tritonite_autotune::{tune, Cache, Config, ConfigSpace, DeviceId, Key};
//!
//! let space = ConfigSpace::grid(&[("BLOCK_SIZE", &[256, 512, 1024]), ("num_warps", &[4, 8])])
//!     .retain(|c| c.get("BLOCK_SIZE").unwrap() / c.get("num_warps").unwrap() >= 64);
//! let default = Config::new().with("BLOCK_SIZE", 256).with("num_warps", 4);
//! let key = Key::new("add", 42, "0.1.0", DeviceId::new("fake", "sm_90", "13.0")).with_shape("N", 4096);
//! let entry = tune(key.clone(), &space.configs(), &default, |c| Ok(vec![1.0 / c.get("BLOCK_SIZE").unwrap() as f64]), |_| {});
//!
//! let mut cache = Cache::in_memory();
//! cache.record(entry).unwrap();
//! assert_eq!(cache.lookup(&key).unwrap().to_string(), "BLOCK_SIZE=1024 num_warps=4");
//! ```

#![warn(missing_docs)]

mod config;
mod entry;
mod error;
mod key;
mod store;
mod tune;

pub use config::{Config, ConfigSpace};
pub use entry::{Entry, Failure, Outcome};
pub use error::{CacheError, ParseError};
pub use key::{bucket_pow2, fnv1a, DeviceId, Key};
pub use store::{Cache, FORMAT_VERSION};
pub use tune::{tune, Phase, Progress, Selection, Source, TuneMode, Tuner};
