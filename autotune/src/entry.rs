//! Measurement records: per-config outcomes and the entry that holds a key's results.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Config, Key};

/// Why a config could not be measured: the stage that failed and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The stage: `compile`, `launch`, `check` (output differs from the default config's), ...
    pub stage: String,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure of `stage` with `message`.
    pub fn new(stage: impl Into<String>, message: impl Into<String>) -> Self {
        Self { stage: stage.into(), message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.stage, self.message)
    }
}

impl std::error::Error for Failure {}

/// What measuring one config gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The config ran and passed its check.
    Timed {
        /// The median of the samples, in milliseconds.
        median_ms: f64,
        /// Every sample, in milliseconds, in the order measured.
        samples: Vec<f64>,
    },
    /// The config could not be measured.
    Failed(Failure),
}

impl Outcome {
    /// The outcome of a measurement: its median when there is at least one sample and every
    /// sample is finite and non-negative, otherwise a failure of stage `measure`.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Outcome::Failed(Failure::new("measure", "no samples"));
        }
        if let Some(bad) = samples.iter().find(|s| !s.is_finite() || **s < 0.0) {
            return Outcome::Failed(Failure::new("measure", format!("sample {bad} is not a time in ms")));
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median_ms = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Outcome::Timed { median_ms, samples }
    }

    /// The median in milliseconds, if timed.
    pub fn median_ms(&self) -> Option<f64> {
        match self {
            Outcome::Timed { median_ms, .. } => Some(*median_ms),
            Outcome::Failed(_) => None,
        }
    }

    /// Whether the median and every sample are finite and non-negative (always true of failures).
    pub fn is_valid(&self) -> bool {
        match self {
            Outcome::Timed { median_ms, samples } => {
                std::iter::once(median_ms).chain(samples).all(|t| t.is_finite() && *t >= 0.0)
            }
            Outcome::Failed(_) => true,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Timed { median_ms, samples } => write!(f, "{median_ms:.4} ms (median of {})", samples.len()),
            Outcome::Failed(failure) => failure.fmt(f),
        }
    }
}

/// Everything known about one key: every measured config's outcome, the winner and the default.
///
/// The winner is the timed config with the lowest median (the first in `results` on a tie), or
/// the default when no config was timed ([`Entry::fell_back`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What the results are valid for.
    pub key: Key,
    /// Each measured config with its outcome, one per config.
    pub results: Vec<(Config, Outcome)>,
    /// The config to run.
    pub winner: Config,
    /// The config used without tuning, and the reference the measured configs were checked against.
    pub default: Config,
    /// When the results were last recorded, in seconds since the Unix epoch.
    pub tuned_at: u64,
}

impl Entry {
    /// An entry of `results` (a later result for a config replaces an earlier one), stamped now.
    pub fn new(key: Key, default: Config, results: Vec<(Config, Outcome)>) -> Self {
        let mut entry = Entry { key, results: Vec::new(), winner: default.clone(), default, tuned_at: now() };
        for (config, outcome) in results {
            entry.put(config, outcome);
        }
        entry.pick_winner();
        entry
    }

    /// The outcome recorded for `config`.
    pub fn result(&self, config: &Config) -> Option<&Outcome> {
        self.results.iter().find(|(c, _)| c == config).map(|(_, o)| o)
    }

    /// Whether no config was timed, so the winner is the default.
    pub fn fell_back(&self) -> bool {
        self.results.iter().all(|(_, o)| o.median_ms().is_none())
    }

    /// The winner's median in milliseconds (`None` when the entry fell back to the default).
    pub fn winner_ms(&self) -> Option<f64> {
        self.result(&self.winner).and_then(Outcome::median_ms)
    }

    /// Merges `newer` (results for the same key) into this entry: its results replace this
    /// entry's for the same configs, results for other configs are kept, the default and the
    /// timestamp are `newer`'s, and the winner is picked again over all results.
    pub fn merge(&mut self, newer: Entry) {
        for (config, outcome) in newer.results {
            self.put(config, outcome);
        }
        self.key = newer.key;
        self.default = newer.default;
        self.tuned_at = newer.tuned_at;
        self.pick_winner();
    }

    fn put(&mut self, config: Config, outcome: Outcome) {
        match self.results.iter_mut().find(|(c, _)| *c == config) {
            Some(slot) => slot.1 = outcome,
            None => self.results.push((config, outcome)),
        }
    }

    fn pick_winner(&mut self) {
        let mut best: Option<(&Config, f64)> = None;
        for (config, outcome) in &self.results {
            if let Some(ms) = outcome.median_ms() {
                if best.is_none_or(|(_, b)| ms < b) {
                    best = Some((config, ms));
                }
            }
        }
        self.winner = best.map_or_else(|| self.default.clone(), |(c, _)| c.clone());
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
