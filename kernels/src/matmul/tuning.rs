//! Autotuning of the tensor-core kernels, which share [`MatmulConfig`]: the matmul (`matmul`,
//! `c = a · b` or `a · bᵀ`) and the fused RMSNorm → Linear (`rmsnorm-linear`). Each declares its
//! config space, heuristic and cache key here; the selection and the measurement of one config
//! are [`crate::tuning`]'s.

use std::sync::OnceLock;

use tritonite_autotune::{bucket_pow2, fnv1a, Config, DeviceId, Key};

use super::plan::{matmul_plan, MatmulShape};
use super::{MatmulConfig, MatmulSpec};
use crate::error::KernelError;
use crate::plan::Plan;
use crate::rmsnorm_linear::api::{rms_norm_linear_plan, RmsNormLinearShape};
use crate::rmsnorm_linear::{heuristic as fused_heuristic, RmsNormLinearSpec};
use crate::tuning::{Knobs, Tunable};

impl Knobs for MatmulConfig {
    /// `BLOCK_M`, `BLOCK_N`, `BLOCK_K`, `GROUP_M`, `num_warps`, `PREFETCH` (0 or 1) and `SPLIT_K`.
    fn to_config(&self) -> Config {
        Config::new()
            .with("BLOCK_M", self.block_m as i64)
            .with("BLOCK_N", self.block_n as i64)
            .with("BLOCK_K", self.block_k as i64)
            .with("GROUP_M", self.group_m as i64)
            .with("num_warps", self.num_warps as i64)
            .with("PREFETCH", self.prefetch as i64)
            .with("SPLIT_K", self.split_k as i64)
    }

    /// Every one present and passing [`MatmulConfig::check`].
    fn from_config(c: &Config) -> Result<MatmulConfig, KernelError> {
        let get = |arg: &'static str, least: i64| {
            c.get(arg).filter(|v| *v >= least).ok_or_else(|| KernelError::BadArgument {
                arg,
                expected: format!("a value ≥ {least} in the tuned config"),
                got: c.to_string(),
            })
        };
        let cfg = MatmulConfig {
            block_m: get("BLOCK_M", 1)? as usize,
            block_n: get("BLOCK_N", 1)? as usize,
            block_k: get("BLOCK_K", 1)? as usize,
            group_m: get("GROUP_M", 1)? as usize,
            num_warps: u32::try_from(get("num_warps", 1)?).unwrap_or(u32::MAX),
            prefetch: get("PREFETCH", 0)? != 0,
            split_k: get("SPLIT_K", 1)? as usize,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// Which tensor-core kernel is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DotKernel {
    /// `matmul`: `c = a · b`, or `a · bᵀ` when `b_transposed`.
    Matmul {
        /// `b` is stored `[n, k]`.
        b_transposed: bool,
    },
    /// `rmsnorm-linear`: `y = rmsnorm(x; g) · Wᵀ`.
    RmsNormLinear,
}

/// One problem of a tensor-core kernel as the tuner sees it: the kernel, dtypes and shape
/// (contiguous operands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// The kernel.
    pub kernel: DotKernel,
    /// Dtype of the operands (f16 or bf16).
    pub dtype: tritonite_lang::DType,
    /// Dtype of the output.
    pub out: tritonite_lang::DType,
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
}

/// A hash of the kernels' source (and of the split-K sum): a tuned result never outlives a change.
fn kernel_hash(kernel: DotKernel) -> u64 {
    static MATMUL: OnceLock<u64> = OnceLock::new();
    static FUSED: OnceLock<u64> = OnceLock::new();
    let split = include_str!("../split_k.rs");
    match kernel {
        DotKernel::Matmul { .. } => {
            *MATMUL.get_or_init(|| fnv1a((include_str!("kernels.rs").to_owned() + split).as_bytes()))
        }
        DotKernel::RmsNormLinear => {
            *FUSED.get_or_init(|| fnv1a((include_str!("../rmsnorm_linear/kernels.rs").to_owned() + split).as_bytes()))
        }
    }
}

impl Problem {
    /// The FLOPs of one call (`2 m n k`): what TFLOP/s figures divide by.
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64
    }
}

impl Tunable for Problem {
    type Knobs = MatmulConfig;

    fn kernel(&self) -> &'static str {
        match self.kernel {
            DotKernel::Matmul { .. } => "matmul",
            DotKernel::RmsNormLinear => "rmsnorm-linear",
        }
    }

    fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    fn heuristic(&self, sm_count: usize) -> MatmulConfig {
        match self.kernel {
            DotKernel::Matmul { .. } => MatmulConfig::heuristic(self.m, self.n, self.k, sm_count),
            DotKernel::RmsNormLinear => fused_heuristic(self.m, self.n, self.k, sm_count),
        }
    }

    /// The heuristic first, then: for a decode step (`m ≤ 64`) one tile of rows, 32–128 columns,
    /// steps of 64 or 128 and `k` whole or split in 2–16 (slices of two steps at least); otherwise tiles from 64 × 64 to 128 × 128,
    /// steps of 32 or 64, 4 or 8 warps, with and without prefetch. Invalid tilings (shared memory,
    /// warps) are dropped.
    fn candidates(&self, sm_count: usize) -> Vec<MatmulConfig> {
        let heuristic = self.heuristic(sm_count);
        let base = MatmulConfig { group_m: 8, num_warps: 4, prefetch: true, split_k: 1, ..heuristic };
        let mut out = vec![heuristic];
        if self.m <= 64 {
            let block_m = self.m.next_power_of_two().clamp(16, 64);
            for block_n in [32, 64, 128] {
                for block_k in [64, 128] {
                    // Each slice at least two steps of k.
                    for split_k in [1, 2, 4, 8, 16].into_iter().filter(|s| *s == 1 || self.k >= 2 * s * block_k) {
                        out.push(MatmulConfig { block_m, block_n, block_k, split_k, ..base });
                    }
                }
            }
        } else {
            for (block_m, block_n) in [(128, 128), (128, 64), (64, 128), (64, 64)] {
                for block_k in [32, 64] {
                    for num_warps in [4, 8] {
                        for prefetch in [true, false] {
                            out.push(MatmulConfig { block_m, block_n, block_k, num_warps, prefetch, ..base });
                        }
                    }
                }
            }
        }
        let mut seen = vec![];
        out.retain(|c| {
            c.check().is_ok() && !seen.contains(c) && {
                seen.push(*c);
                true
            }
        });
        out
    }

    /// Kernel, source hash, crate version, device, dtypes (and `b`'s storage), `N` and `K` exactly,
    /// `M` bucketed to a power of two.
    fn key(&self, device: &DeviceId) -> Key {
        let mut key = Key::new(self.kernel(), kernel_hash(self.kernel), env!("CARGO_PKG_VERSION"), device.clone())
            .with_feature("dtype", self.dtype.name())
            .with_feature("out", self.out.name());
        if let DotKernel::Matmul { b_transposed } = self.kernel {
            key = key.with_feature("b", if b_transposed { "nk" } else { "kn" });
        }
        key.with_shape("N", self.n as u64).with_shape("K", self.k as u64).with_shape("M", bucket_pow2(self.m as u64))
    }

    fn plan(&self, cfg: &MatmulConfig) -> Result<Plan, KernelError> {
        let (m, n, k) = (self.m, self.n, self.k);
        match self.kernel {
            DotKernel::Matmul { b_transposed } => {
                let spec = MatmulSpec { dtype: self.dtype, out: self.out, b_transposed };
                matmul_plan(&spec, &MatmulShape::contiguous(m, n, k, b_transposed), cfg)
            }
            DotKernel::RmsNormLinear => {
                let spec = RmsNormLinearSpec { dtype: self.dtype, out: self.out };
                let shape = RmsNormLinearShape { m, n, k, stride_x: k, stride_w: k, eps: 1e-6 };
                rms_norm_linear_plan(&spec, &shape, cfg)
            }
        }
    }

    /// `c` or `y`.
    fn checked(&self) -> &'static [&'static str] {
        match self.kernel {
            DotKernel::Matmul { .. } => &["c"],
            DotKernel::RmsNormLinear => &["y"],
        }
    }
}
