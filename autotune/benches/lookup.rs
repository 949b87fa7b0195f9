//! `Cache::lookup` on a warm cache of 1000 entries: a hit, a remembered miss, and `peek`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tritonite_autotune::{bucket_pow2, Cache, Config, DeviceId, Entry, Key, Outcome};

fn key(m: u64) -> Key {
    Key::new("rmsnorm_fwd", 0x5eed, "0.1.0", DeviceId::new("NVIDIA H100 80GB HBM3", "sm_90", "13.0"))
        .with_feature("dtype", "f16")
        .with_shape("M", m)
        .with_shape("N", bucket_pow2(4096))
}

fn lookup(c: &mut Criterion) {
    let mut cache = Cache::in_memory();
    for m in 0..1000 {
        let config = Config::new().with("BLOCK_SIZE", 1024).with("num_warps", 4);
        let results = vec![(config.clone(), Outcome::from_samples(vec![0.01, 0.011, 0.012]))];
        cache.record(Entry::new(key(m), config, results)).unwrap();
    }
    let (hit, miss) = (key(500), key(5000));
    assert!(cache.lookup(&hit).is_some() && cache.lookup(&miss).is_none());

    c.bench_function("lookup hit (1000 entries)", |b| b.iter(|| black_box(cache.lookup(black_box(&hit)).is_some())));
    c.bench_function("lookup miss (1000 entries)", |b| b.iter(|| black_box(cache.lookup(black_box(&miss)).is_some())));
    c.bench_function("peek hit (1000 entries)", |b| b.iter(|| black_box(cache.peek(black_box(&hit)).is_some())));
}

criterion_group!(benches, lookup);
criterion_main!(benches);
