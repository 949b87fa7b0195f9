//! The kernels by name, with their meta-parameters: what the CLI lists and builds.

use tritonite_lang::ir::ParamKind;
use tritonite_lang::{DType, Kernel};

use crate::error::KernelError;
use crate::rmsnorm::{self, RmsNormSpec};

/// A meta-parameter a kernel can be built with.
#[derive(Clone, Copy, Debug)]
pub struct MetaParam {
    /// Its name on the command line (`--set NAME=VALUE`).
    pub name: &'static str,
    /// What it means.
    pub doc: &'static str,
}

/// A kernel the registry can build.
#[derive(Clone, Copy, Debug)]
pub struct KernelInfo {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line on what it computes.
    pub about: &'static str,
    /// Its meta-parameters (`num_warps` is accepted by every kernel).
    pub meta: &'static [MetaParam],
}

const BLOCK: MetaParam = MetaParam {
    name: "BLOCK_SIZE",
    doc: "columns per step, a power of two (default: N rounded up to a power of two, at most 4096)",
};
const WEIGHT: MetaParam = MetaParam { name: "WEIGHT", doc: "1 to multiply by a weight vector, 0 for none (default 1)" };
const BIAS: MetaParam = MetaParam { name: "BIAS", doc: "1 to add a bias vector, 0 for none (default 0)" };
const RESIDUAL: MetaParam =
    MetaParam { name: "RESIDUAL", doc: "1 to add a residual first and return the sum, 0 for none (default 0)" };
const ROWS: MetaParam = MetaParam {
    name: "ROWS",
    doc: "rows per tile (each program step handles ROWS × BLOCK_SIZE elements), a power of two ≤ 64 (default 1)",
};
const CLUSTER: MetaParam = MetaParam {
    name: "CLUSTER",
    doc: "programs each row is split over (a cluster of 1 to 16; rows of up to CLUSTER × BLOCK_SIZE are held) (default 1)",
};
const PREFETCH: MetaParam = MetaParam {
    name: "PREFETCH",
    doc: "1: persistent programs that load their next tile of held rows before reducing this one, 0: none (default 0)",
};
const STAGED: MetaParam = MetaParam {
    name: "STAGED",
    doc: "1: held rows' tiles are copied into shared memory and read there, 0: held in registers (default 0)",
};
const WARPS: MetaParam =
    MetaParam { name: "num_warps", doc: "warps per program (default: BLOCK_SIZE / 256, between 1 and 16)" };

/// Every kernel the registry knows.
pub const KERNELS: &[KernelInfo] = &[
    KernelInfo {
        name: "rmsnorm-fwd",
        about: "RMSNorm forward: y = h · rstd · (w + offset) + bias, h = x + residual, rstd = 1/sqrt(mean(h²) + eps)",
        meta: &[BLOCK, ROWS, CLUSTER, PREFETCH, STAGED, WEIGHT, BIAS, RESIDUAL, WARPS],
    },
    KernelInfo {
        name: "rmsnorm-bwd",
        about: "RMSNorm backward: dx (and dresidual), and per-program dw and dbias partials",
        meta: &[BLOCK, ROWS, CLUSTER, PREFETCH, STAGED, WEIGHT, BIAS, RESIDUAL, WARPS],
    },
    KernelInfo {
        name: "rmsnorm-sum-partials",
        about: "RMSNorm backward, second stage: dw (or dbias) = Σ partials",
        meta: &[BLOCK, WARPS],
    },
];

/// A kernel built from the registry, with the warps to compile it for.
pub struct Built {
    /// The kernel.
    pub kernel: Kernel,
    /// Warps per program.
    pub num_warps: u32,
}

/// Builds kernel `name` for rows of `n` elements of `dtype`, with `settings` overriding defaults.
pub fn build(name: &str, dtype: DType, n: usize, settings: &[(String, i64)]) -> Result<Built, KernelError> {
    let info = KERNELS.iter().find(|k| k.name == name).ok_or_else(|| KernelError::BadArgument {
        arg: "kernel",
        expected: format!("one of {}", KERNELS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")),
        got: name.to_string(),
    })?;
    for (key, _) in settings {
        if !info.meta.iter().any(|m| m.name == key) {
            return Err(KernelError::BadArgument {
                arg: "set",
                expected: format!(
                    "one of {} for {name}",
                    info.meta.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
                ),
                got: key.clone(),
            });
        }
    }
    let get = |key: &str| settings.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v);
    let default_block = n.next_power_of_two().clamp(16, 4096) as i64;
    let block = get("BLOCK_SIZE").unwrap_or(if name == "rmsnorm-sum-partials" {
        crate::partials::SUM_PARTIALS_BLOCK as i64
    } else {
        default_block
    });
    if block <= 0 || !(block as u64).is_power_of_two() || block > 1 << 16 {
        return Err(KernelError::BadArgument {
            arg: "BLOCK_SIZE",
            expected: "a power of two ≤ 65536".into(),
            got: block.to_string(),
        });
    }
    let block = block as usize;
    let num_warps = get("num_warps").unwrap_or((block as i64 / 256).clamp(1, 16));
    if num_warps <= 0 || !(num_warps as u64).is_power_of_two() || num_warps > 32 {
        return Err(KernelError::BadArgument {
            arg: "num_warps",
            expected: "a power of two ≤ 32".into(),
            got: num_warps.to_string(),
        });
    }
    let flag = |arg: &'static str, default: i64| match get(arg).unwrap_or(default) {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(KernelError::BadArgument { arg, expected: "0 or 1".into(), got: other.to_string() }),
    };
    let rows = get("ROWS").unwrap_or(1);
    if rows <= 0 || !(rows as u64).is_power_of_two() || rows > 64 {
        return Err(KernelError::BadArgument {
            arg: "ROWS",
            expected: "a power of two ≤ 64".into(),
            got: rows.to_string(),
        });
    }
    let rows = rows as usize;
    let cluster = get("CLUSTER").unwrap_or(1);
    if !(1..=16).contains(&cluster) {
        return Err(KernelError::BadArgument { arg: "CLUSTER", expected: "1 to 16".into(), got: cluster.to_string() });
    }
    let cfg = rmsnorm::RmsNormConfig {
        block_size: block,
        num_warps: num_warps as u32,
        programs: 1,
        rows,
        cluster: cluster as usize,
        prefetch: rmsnorm::flag_from_meta("PREFETCH", get("PREFETCH").unwrap_or(0))?,
        staged: rmsnorm::flag_from_meta("STAGED", get("STAGED").unwrap_or(0))?,
    };
    let tiling = rmsnorm::plan::tiling(&cfg, n)?;
    let param = |on: bool| on.then_some(dtype);
    let residual = param(flag("RESIDUAL", 0)?);
    let spec = RmsNormSpec {
        x: dtype,
        weight: param(flag("WEIGHT", 1)?),
        bias: param(flag("BIAS", 0)?),
        residual,
        residual_out: residual,
        out: dtype,
    };
    let kernel = match name {
        "rmsnorm-fwd" => rmsnorm::forward(&spec, &tiling, rmsnorm::plan::weight_early(&cfg, &tiling))?,
        "rmsnorm-bwd" => rmsnorm::backward(&spec, false, &tiling)?,
        _ => crate::partials::sum_partials(dtype, block)?,
    };
    Ok(Built { kernel, num_warps: num_warps as u32 })
}

/// What a launch on contiguous rows of `n` elements knows of its arguments' divisibility (see
/// `tritonite_lowering::CompileOptions::divisibility`): every pointer is 16-byte aligned (device
/// allocations are), and the integer `n` and the strides are multiples of the largest power of two
/// ≤ 16 dividing `n`.
pub fn arg_divisibility(kernel: &Kernel, n: usize) -> Vec<(usize, u64)> {
    let of_n = if n == 0 { 16 } else { (1u64 << n.trailing_zeros().min(4)).min(16) };
    kernel
        .params
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p.kind {
            ParamKind::Ptr(_) | ParamKind::MutPtr(_) => Some((i, 16)),
            ParamKind::Scalar(d) if d.is_int() && (p.name == "n" || p.name.starts_with("stride")) && of_n > 1 => {
                Some((i, of_n))
            }
            ParamKind::Scalar(_) => None,
        })
        .collect()
}
