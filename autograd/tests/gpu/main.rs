//! The framework adapters on a CUDA GPU, one test binary for both (`--features candle,burn`):
//! gradient checks against each framework's own RMSNorm, gradients that must flow, and the
//! examples' training runs. Each test skips, saying so, without a CUDA GPU.

#[cfg(feature = "burn")]
mod burn;
#[cfg(feature = "candle")]
mod candle;
