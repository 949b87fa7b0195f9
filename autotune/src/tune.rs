//! Measuring candidates: the tuning mode, the tuner and the cache-aware selection.

use std::fmt;
use std::str::FromStr;

use crate::{Cache, Config, Entry, Failure, Key, Outcome, ParseError};

/// When to measure. The default is [`TuneMode::Off`]: nothing is ever measured unless asked for,
/// so a long job never stops to tune.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TuneMode {
    /// Use the cached winner, else the heuristic default; never measure.
    #[default]
    Off,
    /// Measure candidates that have no cached result; use the cache otherwise.
    OnMiss,
    /// Measure every candidate again, even if cached.
    Force,
}

impl TuneMode {
    /// The environment variable [`TuneMode::from_env`] reads.
    pub const ENV: &'static str = "TRITONITE_AUTOTUNE";

    /// The mode named by `$TRITONITE_AUTOTUNE`; [`TuneMode::Off`] when it is unset or empty, and
    /// (with a warning on stderr) when it is not a mode.
    pub fn from_env() -> Self {
        let Some(value) = std::env::var_os(Self::ENV) else { return TuneMode::Off };
        let text = value.to_string_lossy();
        if text.trim().is_empty() {
            return TuneMode::Off;
        }
        text.parse().unwrap_or_else(|e| {
            crate::store::warn(&format!("{}: {e}; autotuning is off", Self::ENV));
            TuneMode::Off
        })
    }
}

/// `off`, `on-miss` or `force` (ASCII case and surrounding whitespace ignored; `on_miss` accepted).
impl FromStr for TuneMode {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(TuneMode::Off),
            "on-miss" | "on_miss" => Ok(TuneMode::OnMiss),
            "force" => Ok(TuneMode::Force),
            _ => Err(ParseError::BadMode { text: text.to_owned() }),
        }
    }
}

impl fmt::Display for TuneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TuneMode::Off => "off",
            TuneMode::OnMiss => "on-miss",
            TuneMode::Force => "force",
        })
    }
}

/// Which part of a tuning run a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The first pass over every candidate.
    Sweep,
    /// The final head-to-head of the best two.
    HeadToHead,
}

/// One finished measurement, for drawing progress. `index` counts from 0 to `total - 1` over the
/// whole run (the sweep, then the head-to-head).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// The phase.
    pub phase: Phase,
    /// This measurement's number, from 0.
    pub index: usize,
    /// How many measurements the run makes (the head-to-head's are included up front; a run with
    /// fewer than two timed candidates skips them and ends early).
    pub total: usize,
    /// The config measured.
    pub config: &'a Config,
    /// What measuring it gave.
    pub outcome: &'a Outcome,
}

/// Measures candidates and picks a winner.
///
/// Each candidate is measured once (the sweep); failures are recorded, never fatal. Then the best
/// two are measured again, alternating (`a b`, `b a`, ... for [`Tuner::head_to_head_rounds`]
/// rounds) so slow drift of the device hits both alike, and their head-to-head results replace
/// their sweep results; the winner is the lowest median over all results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuner {
    /// Rounds of the head-to-head; each round measures both finalists once. 0 skips it.
    pub head_to_head_rounds: usize,
}

impl Default for Tuner {
    fn default() -> Self {
        Self { head_to_head_rounds: 3 }
    }
}

impl Tuner {
    /// Measures every candidate (duplicates once) with `measure` and returns the entry for `key`.
    ///
    /// `measure` runs one config — compile, launch, check its output against the default's, time
    /// it — and returns the samples in milliseconds, or the [`Failure`] of the stage that failed.
    /// `default` is the winner when every candidate fails; put it among the candidates to be sure
    /// the winner is never slower than it.
    pub fn tune(
        &self,
        key: Key,
        candidates: &[Config],
        default: &Config,
        mut measure: impl FnMut(&Config) -> Result<Vec<f64>, Failure>,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Entry {
        let mut unique: Vec<&Config> = Vec::new();
        for c in candidates {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        let total = unique.len() + if unique.len() >= 2 { 2 * self.head_to_head_rounds } else { 0 };
        let mut index = 0;
        let mut run = |phase, config: &Config| {
            let outcome = measure(config).map_or_else(Outcome::Failed, Outcome::from_samples);
            progress(Progress { phase, index, total, config, outcome: &outcome });
            index += 1;
            outcome
        };

        let mut results: Vec<(Config, Outcome)> = unique.iter().map(|c| ((*c).clone(), run(Phase::Sweep, c))).collect();

        let mut timed: Vec<(usize, f64)> =
            results.iter().enumerate().filter_map(|(i, (_, o))| Some((i, o.median_ms()?))).collect();
        timed.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        if let ([(a, _), (b, _), ..], true) = (timed.as_slice(), self.head_to_head_rounds > 0) {
            let (a, b) = (*a, *b);
            let mut samples = [Vec::new(), Vec::new()];
            let mut failed: [Option<Failure>; 2] = [None, None];
            for round in 0..self.head_to_head_rounds {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for slot in order {
                    let config = results[[a, b][slot]].0.clone();
                    match run(Phase::HeadToHead, &config) {
                        Outcome::Timed { samples: s, .. } => samples[slot].extend(s),
                        Outcome::Failed(f) => {
                            failed[slot].get_or_insert(f);
                        }
                    }
                }
            }
            for (slot, i) in [a, b].into_iter().enumerate() {
                results[i].1 = match failed[slot].take() {
                    Some(f) => Outcome::Failed(f),
                    None => Outcome::from_samples(std::mem::take(&mut samples[slot])),
                };
            }
        }
        Entry::new(key, default.clone(), results)
    }

    /// The config to run for `key` under `mode`, measuring (and recording in `cache`) as the mode
    /// allows:
    ///
    /// - [`TuneMode::Off`]: the cached winner, else `default` (the heuristic).
    /// - [`TuneMode::OnMiss`]: the cached winner if every candidate has a cached result; else the
    ///   candidates without one are measured (with the cached winner, for a fair head-to-head)
    ///   and merged into the entry, keeping the other results.
    /// - [`TuneMode::Force`]: every candidate is measured again and merged into the entry.
    ///
    /// A cache write failure is warned about (see [`Cache`]) and does not change the selection.
    #[allow(clippy::too_many_arguments)]
    pub fn select(
        &self,
        cache: &mut Cache,
        mode: TuneMode,
        key: &Key,
        default: &Config,
        candidates: &[Config],
        measure: impl FnMut(&Config) -> Result<Vec<f64>, Failure>,
        progress: impl FnMut(Progress<'_>),
    ) -> Selection {
        let cached = cache.entry(key);
        let to_measure: Vec<Config> = match (mode, cached) {
            (TuneMode::Off, None) => return Selection { config: default.clone(), source: Source::Default },
            (TuneMode::Off, Some(e)) => return Selection { config: e.winner.clone(), source: Source::Cache },
            (TuneMode::OnMiss, Some(e)) => {
                let missing: Vec<Config> = candidates.iter().filter(|c| e.result(c).is_none()).cloned().collect();
                if missing.is_empty() {
                    return Selection { config: e.winner.clone(), source: Source::Cache };
                }
                e.winner_ms().map(|_| e.winner.clone()).into_iter().chain(missing).collect()
            }
            (TuneMode::OnMiss, None) | (TuneMode::Force, _) => candidates.to_vec(),
        };
        let entry = self.tune(key.clone(), &to_measure, default, measure, progress);
        let fallback = entry.clone();
        if let Err(e) = cache.record(entry) {
            crate::store::warn(&format!("{e}; results not cached"));
        }
        let config = cache.lookup(key).cloned().unwrap_or(fallback.winner);
        Selection { config, source: Source::Tuned }
    }
}

/// [`Tuner::tune`] with the default tuner (three head-to-head rounds).
pub fn tune(
    key: Key,
    candidates: &[Config],
    default: &Config,
    measure: impl FnMut(&Config) -> Result<Vec<f64>, Failure>,
    progress: impl FnMut(Progress<'_>),
) -> Entry {
    Tuner::default().tune(key, candidates, default, measure, progress)
}

/// Where a [`Selection`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cache's winner.
    Cache,
    /// The default config: nothing cached and tuning off.
    Default,
    /// Measured now.
    Tuned,
}

/// The config [`Tuner::select`] chose, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The config to run.
    pub config: Config,
    /// Where it came from.
    pub source: Source,
}
