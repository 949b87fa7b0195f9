//! Configs, keys and modes: text forms, bucketing, id stability.

use tritonite_autotune::{bucket_pow2, fnv1a, Config, ConfigSpace, DeviceId, Key, ParseError, TuneMode};

fn h100() -> DeviceId {
    DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "13.0")
}

fn key(m: u64) -> Key {
    Key::new("rmsnorm_fwd", 0x1234_5678_9abc_def0, "0.1.0", h100())
        .with_feature("dtype", "f16")
        .with_shape("M", bucket_pow2(m))
        .with_shape("N", 1024)
}

#[test]
fn bucket_pow2_edges() {
    let cases = [(0, 0), (1, 1), (2, 2), (3, 4), (1023, 1024), (1024, 1024), (1025, 2048), (1 << 63, 1 << 63)];
    for (m, bucket) in cases {
        assert_eq!(bucket_pow2(m), bucket, "bucket_pow2({m})");
    }
    assert_eq!(bucket_pow2((1 << 63) + 1), u64::MAX);
    assert_eq!(bucket_pow2(u64::MAX), u64::MAX);
}

#[test]
fn nearby_shapes_share_a_bucket_and_key() {
    assert_eq!(key(3000), key(4000));
    assert_eq!(key(3000).id(), key(4000).id());
    assert_ne!(key(4000).id(), key(5000).id());
    assert_eq!(key(5000).shape()["M"], 8192);
}

#[test]
fn key_id_is_stable() {
    // A golden value: if this changes, every cache file on every machine is orphaned. Change it
    // only together with the canonical text's version line.
    let k = key(3000);
    assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
    assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    assert_eq!(
        k.canonical(),
        "tritonite-autotune key 1\nkernel 11:rmsnorm_fwd\nhash 123456789abcdef0\nversion 5:0.1.0\n\
         feature 5:dtype 3:f16\nshape 1:M 4096\nshape 1:N 1024\ndevice 21:NVIDIA H100 80GB HBM3 5:sm_90 4:13.0\n"
    );
    assert_eq!(k.id(), "c31cdef4fe42de73");
    assert_eq!(k.id().len(), 16);
}

#[test]
fn every_key_field_changes_the_id() {
    let base = key(4096);
    let variants = [
        Key::new("rmsnorm_bwd", 0x1234_5678_9abc_def0, "0.1.0", h100()),
        Key::new("rmsnorm_fwd", 1, "0.1.0", h100()),
        Key::new("rmsnorm_fwd", 0x1234_5678_9abc_def0, "0.2.0", h100()),
        Key::new(
            "rmsnorm_fwd",
            0x1234_5678_9abc_def0,
            "0.1.0",
            DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "12.8"),
        ),
    ]
    .map(|k| k.with_feature("dtype", "f16").with_shape("M", 4096).with_shape("N", 1024));
    let mut ids: Vec<&str> = variants.iter().map(Key::id).collect();
    let other_dtype = key(4096).with_feature("dtype", "bf16");
    let other_n = key(4096).with_shape("N", 2048);
    ids.extend([base.id(), other_dtype.id(), other_n.id()]);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    // Length prefixes keep field boundaries apart.
    let a = Key::new("k", 0, "1", h100()).with_feature("a b", "c");
    let b = Key::new("k", 0, "1", h100()).with_feature("a", "b c");
    assert_ne!(a.id(), b.id());
}

#[test]
fn key_display_is_readable() {
    assert_eq!(
        key(3000).to_string(),
        "rmsnorm_fwd #123456789abcdef0 v0.1.0 [dtype=f16] M=4096 N=1024 on NVIDIA H100 80GB HBM3 (sm_90, driver 13.0)"
    );
}

#[test]
fn key_json_round_trip_keeps_the_id() {
    let k = key(3000);
    let back: Key = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
    assert_eq!(back, k);
    assert_eq!(back.id(), k.id());
}

#[test]
fn config_text_round_trip() {
    let c = Config::new().with("num_warps", 4).with("BLOCK_SIZE", 1024).with("VEC", -2);
    assert_eq!(c.to_string(), "BLOCK_SIZE=1024 VEC=-2 num_warps=4");
    assert_eq!(c.to_string().parse::<Config>().unwrap(), c);
    assert_eq!("  num_warps=4\tBLOCK_SIZE=1024 VEC=-2 ".parse::<Config>().unwrap(), c);
    assert_eq!(c.get("BLOCK_SIZE"), Some(1024));
    assert_eq!(c.get("ROWS"), None);
    assert_eq!("".parse::<Config>().unwrap(), Config::new());
    assert_eq!(Config::new().to_string(), "");
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, r#"{"BLOCK_SIZE":1024,"VEC":-2,"num_warps":4}"#);
    assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), c);
}

#[test]
fn config_parse_errors_are_typed() {
    let err = |text: &str| text.parse::<Config>().unwrap_err();
    assert_eq!(err("BLOCK_SIZE"), ParseError::MissingEquals { item: "BLOCK_SIZE".into() });
    assert_eq!(err("=4"), ParseError::BadName { name: "".into() });
    assert_eq!(err("1X=4"), ParseError::BadName { name: "1X".into() });
    assert_eq!(err("A-B=4"), ParseError::BadName { name: "A-B".into() });
    assert_eq!(err("A=four"), ParseError::BadValue { name: "A".into(), value: "four".into() });
    assert_eq!(
        err("A=99999999999999999999"),
        ParseError::BadValue { name: "A".into(), value: "99999999999999999999".into() }
    );
    assert_eq!(err("A=1 A=2"), ParseError::Duplicate { name: "A".into() });
    assert!(err("A=x").to_string().contains("`x` is not a 64-bit integer"));
    assert!(serde_json::from_str::<Config>(r#"{"bad name":1}"#).is_err());
    let mut c = Config::new();
    assert!(c.try_set("ok_1", 1).is_ok() && c.try_set("not ok", 1).is_err());
}

#[test]
fn config_space_prunes_before_measuring() {
    let space = ConfigSpace::grid(&[("BLOCK_SIZE", &[256, 512, 1024]), ("num_warps", &[4, 8])])
        .retain(|c| c.get("BLOCK_SIZE").unwrap() / c.get("num_warps").unwrap() >= 64)
        .retain(|c| c.get("BLOCK_SIZE") != Some(512));
    let got: Vec<String> = space.configs().iter().map(Config::to_string).collect();
    assert_eq!(got, ["BLOCK_SIZE=256 num_warps=4", "BLOCK_SIZE=1024 num_warps=4", "BLOCK_SIZE=1024 num_warps=8"]);
    let dup = Config::new().with("A", 1);
    assert_eq!(ConfigSpace::new([dup.clone(), dup.clone()]).configs(), [dup]);
}

#[test]
fn tune_mode_parses() {
    assert_eq!("off".parse(), Ok(TuneMode::Off));
    assert_eq!("on-miss".parse(), Ok(TuneMode::OnMiss));
    assert_eq!(" Force ".parse(), Ok(TuneMode::Force));
    assert_eq!("always".parse::<TuneMode>(), Err(ParseError::BadMode { text: "always".into() }));
    for mode in [TuneMode::Off, TuneMode::OnMiss, TuneMode::Force] {
        assert_eq!(mode.to_string().parse(), Ok(mode));
    }
    assert_eq!(TuneMode::default(), TuneMode::Off);
    // The variable is not set in CI; an unset variable means off.
    if std::env::var_os(TuneMode::ENV).is_none() {
        assert_eq!(TuneMode::from_env(), TuneMode::Off);
    }
}
