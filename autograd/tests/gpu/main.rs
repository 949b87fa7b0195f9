//! The framework adapters on a CUDA GPU, one test binary for both (`--features candle,burn`):
//! gradient checks against each framework's own RMSNorm, gradients that must flow, and the
//! examples' training runs. Each test skips, saying so, without a CUDA GPU.

#[cfg(feature = "burn")]
mod burn;
#[cfg(feature = "candle")]
mod candle;

/// Random values in [-1, 1) from a seed (xorshift; the same in both frameworks' tests).
#[cfg(any(feature = "candle", feature = "burn"))]
pub fn random_values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
