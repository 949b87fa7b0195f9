//! The tuner with deterministic fake measurements, and cache-aware selection.

use std::collections::HashMap;

use tritonite_autotune::{tune, Cache, Config, DeviceId, Failure, Key, Outcome, Phase, Source, TuneMode, Tuner};

fn key() -> Key {
    Key::new("add", 7, "0.1.0", DeviceId::new("fake", "sm_90", "13.0")).with_shape("N", 4096)
}

fn block(b: i64) -> Config {
    Config::new().with("BLOCK_SIZE", b)
}

/// A fake device: BLOCK_SIZE b takes `times[b]` ms; `fail` lists blocks that fail to compile.
fn fake(times: &[(i64, f64)], fail: &[i64]) -> impl FnMut(&Config) -> Result<Vec<f64>, Failure> {
    let times: HashMap<i64, f64> = times.iter().copied().collect();
    let fail = fail.to_vec();
    move |c| {
        let b = c.get("BLOCK_SIZE").unwrap();
        if fail.contains(&b) {
            return Err(Failure::new("compile", format!("BLOCK_SIZE={b} needs too many registers")));
        }
        let t = times[&b];
        Ok(vec![t * 1.1, t, t * 0.95])
    }
}

#[test]
fn the_fastest_wins_and_failures_are_recorded() {
    let candidates = [block(128), block(256), block(512), block(1024)];
    let mut seen = Vec::new();
    let entry = tune(key(), &candidates, &block(128), fake(&[(128, 4.0), (256, 2.0), (512, 1.0)], &[1024]), |p| {
        seen.push((p.phase, p.index, p.total, p.config.to_string(), p.outcome.median_ms().is_some()))
    });
    assert_eq!(entry.winner, block(512));
    assert!(!entry.fell_back());
    assert_eq!(entry.winner_ms(), Some(1.0));
    assert_eq!(entry.results.len(), 4);
    assert_eq!(
        entry.result(&block(1024)),
        Some(&Outcome::Failed(Failure::new("compile", "BLOCK_SIZE=1024 needs too many registers")))
    );
    assert_eq!(entry.result(&block(128)).and_then(Outcome::median_ms), Some(4.0));
    // Four sweep measurements, then three rounds of two.
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().enumerate().all(|(i, s)| s.1 == i && s.2 == 10));
    assert_eq!(seen[3].0, Phase::Sweep);
    assert!(!seen[3].4, "the failure is reported");
    let finals: Vec<&str> = seen[4..].iter().map(|s| s.3.as_str()).collect();
    assert!(seen[4..].iter().all(|s| s.0 == Phase::HeadToHead));
    assert_eq!(
        finals,
        ["BLOCK_SIZE=512", "BLOCK_SIZE=256", "BLOCK_SIZE=256", "BLOCK_SIZE=512", "BLOCK_SIZE=512", "BLOCK_SIZE=256"]
    );
    // The finalists' results are the head-to-head's nine samples.
    let Some(Outcome::Timed { samples, .. }) = entry.result(&block(512)) else { panic!() };
    assert_eq!(samples.len(), 9);
}

#[test]
fn all_failed_falls_back_to_the_default() {
    let candidates = [block(128), block(256)];
    let entry = tune(key(), &candidates, &block(64), fake(&[], &[128, 256]), |_| {});
    assert!(entry.fell_back());
    assert_eq!(entry.winner, block(64));
    assert_eq!(entry.winner_ms(), None);
    assert_eq!(entry.results.len(), 2);
    let empty = tune(key(), &[], &block(64), fake(&[], &[]), |_| {});
    assert!(empty.fell_back() && empty.results.is_empty() && empty.winner == block(64));
}

#[test]
fn bad_samples_are_failures_not_panics() {
    let mut calls = 0;
    let entry = tune(
        key(),
        &[block(1), block(2), block(3)],
        &block(1),
        |c| {
            calls += 1;
            match c.get("BLOCK_SIZE") {
                Some(1) => Ok(vec![]),
                Some(2) => Ok(vec![1.0, f64::NAN]),
                _ => Ok(vec![3.0]),
            }
        },
        |_| {},
    );
    assert_eq!(calls, 3, "one timed candidate: no head-to-head");
    assert_eq!(entry.winner, block(3));
    assert!(matches!(entry.result(&block(1)), Some(Outcome::Failed(f)) if f.stage == "measure"));
    assert!(matches!(entry.result(&block(2)), Some(Outcome::Failed(f)) if f.stage == "measure"));
}

#[test]
fn head_to_head_picks_the_lower_of_the_best_two() {
    // A is lucky in the sweep (1.0 once, 3.0 after); B is a steady 2.0; C a steady 2.5.
    let mut a_calls = 0;
    let measure = |c: &Config| -> Result<Vec<f64>, Failure> {
        Ok(match c.get("BLOCK_SIZE").unwrap() {
            1 => {
                a_calls += 1;
                vec![if a_calls == 1 { 1.0 } else { 3.0 }; 3]
            }
            2 => vec![2.0; 3],
            _ => vec![2.5; 3],
        })
    };
    let entry = tune(key(), &[block(1), block(2), block(3)], &block(3), measure, |_| {});
    assert_eq!(entry.winner, block(2));
    assert_eq!(entry.result(&block(1)).and_then(Outcome::median_ms), Some(3.0));
    assert_eq!(entry.result(&block(3)).and_then(Outcome::median_ms), Some(2.5));

    // Without the head-to-head the lucky sweep would have won.
    let mut a_calls = 0;
    let no_h2h = Tuner { head_to_head_rounds: 0 }.tune(
        key(),
        &[block(1), block(2)],
        &block(2),
        |c| {
            a_calls += 1;
            Ok(vec![if c.get("BLOCK_SIZE") == Some(1) && a_calls == 1 { 1.0 } else { 2.0 }])
        },
        |_| {},
    );
    assert_eq!(no_h2h.winner, block(1));
}

#[test]
fn a_finalist_failing_in_the_head_to_head_loses() {
    let mut a_calls = 0;
    let entry = tune(
        key(),
        &[block(1), block(2)],
        &block(2),
        |c| {
            if c.get("BLOCK_SIZE") == Some(1) {
                a_calls += 1;
                if a_calls > 1 {
                    return Err(Failure::new("check", "output differs from the default's"));
                }
                return Ok(vec![1.0]);
            }
            Ok(vec![2.0])
        },
        |_| {},
    );
    assert_eq!(entry.winner, block(2));
    assert!(matches!(entry.result(&block(1)), Some(Outcome::Failed(f)) if f.stage == "check"));
}

#[test]
fn duplicates_are_measured_once() {
    let mut calls = 0;
    let entry = Tuner { head_to_head_rounds: 0 }.tune(
        key(),
        &[block(1), block(1), block(2)],
        &block(1),
        |_| {
            calls += 1;
            Ok(vec![1.0])
        },
        |_| {},
    );
    assert_eq!((calls, entry.results.len()), (2, 2));
    assert_eq!(entry.winner, block(1), "ties go to the first");
}

#[test]
fn select_follows_the_mode() {
    let tuner = Tuner::default();
    let mut cache = Cache::in_memory();
    let (k, default) = (key(), block(128));
    let candidates = [block(128), block(256)];
    let times = [(128, 2.0), (256, 1.0), (512, 0.5)];
    let mut measured = 0;
    let mut count = |_: tritonite_autotune::Progress<'_>| measured += 1;

    let off = tuner.select(&mut cache, TuneMode::Off, &k, &default, &candidates, fake(&times, &[]), &mut count);
    assert_eq!((off.config, off.source), (block(128), Source::Default));

    let miss = tuner.select(&mut cache, TuneMode::OnMiss, &k, &default, &candidates, fake(&times, &[]), &mut count);
    assert_eq!((miss.config, miss.source), (block(256), Source::Tuned));
    let hit = tuner.select(&mut cache, TuneMode::OnMiss, &k, &default, &candidates, fake(&times, &[]), &mut count);
    assert_eq!((hit.config, hit.source), (block(256), Source::Cache));
    let off = tuner.select(&mut cache, TuneMode::Off, &k, &default, &candidates, fake(&times, &[]), &mut count);
    assert_eq!((off.config, off.source), (block(256), Source::Cache));
    assert_eq!(measured, 2 + 6);

    // A new candidate: on-miss measures it against the cached winner, keeping the old results.
    let more = [block(128), block(256), block(512)];
    let grown = tuner.select(&mut cache, TuneMode::OnMiss, &k, &default, &more, fake(&times, &[]), |_| {});
    assert_eq!((grown.config, grown.source), (block(512), Source::Tuned));
    let entry = cache.entry(&k).unwrap();
    assert_eq!(entry.results.len(), 3);
    assert_eq!(entry.result(&block(128)).and_then(Outcome::median_ms), Some(2.0));

    let forced = tuner.select(&mut cache, TuneMode::Force, &k, &default, &candidates, fake(&times, &[256]), |_| {});
    assert_eq!((forced.config, forced.source), (block(512), Source::Tuned), "512 is kept from before");
    assert!(matches!(cache.entry(&k).unwrap().result(&block(256)), Some(Outcome::Failed(_))));
}
