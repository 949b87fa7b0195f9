//! What is known at compile time about the integer and pointer values of a kernel, in the spirit of
//! Triton's AxisInfo: along the last dimension of a block, runs of consecutive values (contiguity),
//! runs of equal values (constancy), and the largest power of two dividing the first value of each
//! run (divisibility).
//! The lowering uses it to emit 16-byte vector loads and stores only where they are valid.

use std::collections::HashMap;

use tritonite_lang::ir::{BinOp, Kernel, OpKind, ParamKind, Region, ValueId};
use tritonite_lang::{Elem, Lit};

/// The largest divisibility tracked (a value known to be 0 is divisible by anything).
pub const MAX_DIV: u64 = 1 << 30;

/// Facts about one value (for a scalar, contiguity and constancy are 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisInfo {
    /// Length of aligned runs of values increasing by one.
    pub contiguity: u64,
    /// Length of aligned runs of equal values.
    pub constancy: u64,
    /// A power of two dividing the first value of every run (in bytes for pointers).
    pub divisibility: u64,
}

impl AxisInfo {
    const UNKNOWN: AxisInfo = AxisInfo { contiguity: 1, constancy: 1, divisibility: 1 };
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The divisibility of `x` at the starts of runs of length `l` (the runs of a result): within one
/// of `x`'s runs of consecutive values, only every `l`-th value keeps a factor of `l`.
fn at_runs(x: AxisInfo, l: u64) -> u64 {
    if x.contiguity > l {
        gcd(x.divisibility, l)
    } else {
        x.divisibility
    }
}

fn pow2_dividing(v: i64) -> u64 {
    if v == 0 {
        MAX_DIV
    } else {
        (1u64 << v.unsigned_abs().trailing_zeros()).min(MAX_DIV)
    }
}

/// Computes [`AxisInfo`] for every value. `divisibility[i]` is what argument `i` is known to be a
/// multiple of: a pointer's byte address, an integer's value (1: nothing known).
pub fn analyze(kernel: &Kernel, divisibility: &[u64]) -> HashMap<ValueId, AxisInfo> {
    let mut info = HashMap::new();
    region(kernel, &kernel.body, divisibility, &mut info);
    info
}

fn region(kernel: &Kernel, r: &Region, spec: &[u64], info: &mut HashMap<ValueId, AxisInfo>) {
    for op in &r.ops {
        let get = |info: &HashMap<ValueId, AxisInfo>, v: &ValueId| info.get(v).copied().unwrap_or(AxisInfo::UNKNOWN);
        // Runs never cross rows: they are bounded by the last dimension.
        let len = |v: &ValueId| kernel.ty(*v).shape.last().map_or(1, |&n| n as u64);
        let result = match &op.kind {
            OpKind::Param(i) => {
                let p = &kernel.params[*i];
                let known = spec.get(*i).copied().unwrap_or(1).max(1);
                let div = match p.kind {
                    ParamKind::Ptr(d) | ParamKind::MutPtr(d) => known.max(d.size_bytes() as u64),
                    ParamKind::Scalar(_) => known,
                };
                Some(AxisInfo { contiguity: 1, constancy: 1, divisibility: div })
            }
            OpKind::Const(l) => Some(AxisInfo {
                contiguity: 1,
                constancy: 1,
                divisibility: match l {
                    Lit::Int(v) => pow2_dividing(*v),
                    _ => 1,
                },
            }),
            OpKind::Arange { start, end } => {
                Some(AxisInfo { contiguity: (end - start) as u64, constancy: 1, divisibility: pow2_dividing(*start) })
            }
            OpKind::Splat(v) => Some(AxisInfo {
                contiguity: 1,
                constancy: len(&op.results[0]),
                divisibility: get(info, v).divisibility,
            }),
            // Repeating a last dimension of 1 makes rows constant; otherwise rows are copied whole.
            OpKind::Broadcast(v) if len(v) == 1 => Some(AxisInfo {
                contiguity: 1,
                constancy: len(&op.results[0]),
                divisibility: get(info, v).divisibility,
            }),
            OpKind::Broadcast(v) => Some(get(info, v)),
            // A new last dimension of 1: every element is a run of its own, divisible as a run's
            // first value only when no run had more than one value.
            OpKind::ExpandDims(v, axis) if *axis == kernel.ty(*v).shape.len() && !kernel.ty(*v).is_scalar() => {
                let s = get(info, v);
                Some(AxisInfo {
                    contiguity: 1,
                    constancy: 1,
                    divisibility: if s.contiguity > 1 { 1 } else { s.divisibility },
                })
            }
            OpKind::ExpandDims(v, _) => Some(get(info, v)),
            OpKind::Cast(v) => kernel.ty(op.results[0]).dtype().filter(|d| d.is_int()).map(|_| get(info, v)),
            OpKind::Binary(b, x, y) => {
                let (a, c) = (get(info, x), get(info, y));
                Some(match b {
                    BinOp::Add => {
                        let l = gcd(a.contiguity, c.constancy).max(gcd(a.constancy, c.contiguity));
                        AxisInfo {
                            contiguity: l,
                            constancy: gcd(a.constancy, c.constancy),
                            divisibility: gcd(at_runs(a, l), at_runs(c, l)),
                        }
                    }
                    BinOp::Sub => {
                        let l = gcd(a.contiguity, c.constancy);
                        AxisInfo {
                            contiguity: l,
                            constancy: gcd(a.constancy, c.constancy),
                            divisibility: gcd(at_runs(a, l), at_runs(c, l)),
                        }
                    }
                    // Every element is a run of its own: consecutive values keep no common factor.
                    BinOp::Mul => AxisInfo {
                        contiguity: 1,
                        constancy: gcd(a.constancy, c.constancy),
                        divisibility: (at_runs(a, 1).saturating_mul(at_runs(c, 1))).min(MAX_DIV),
                    },
                    _ => AxisInfo { constancy: gcd(a.constancy, c.constancy), ..AxisInfo::UNKNOWN },
                })
            }
            OpKind::AddPtr(p, o) => {
                let (a, c) = (get(info, p), get(info, o));
                let elem = match kernel.ty(*p).elem {
                    Elem::Ptr(d) => d.size_bytes() as u64,
                    Elem::Scalar(_) => 1,
                };
                // A constant pointer plus consecutive offsets, or consecutive pointers plus a
                // constant offset.
                let l = gcd(a.constancy, c.contiguity).max(gcd(a.contiguity, c.constancy)).max(1);
                Some(AxisInfo {
                    contiguity: l,
                    constancy: gcd(a.constancy, c.constancy),
                    divisibility: gcd(at_runs(a, l), at_runs(c, l).saturating_mul(elem).min(MAX_DIV)),
                })
            }
            OpKind::Cmp(_, x, y) => {
                let (a, c) = (get(info, x), get(info, y));
                // A run of consecutive values starting at a multiple of g, against a bound constant
                // over the run and divisible by g, lies wholly on one side of the bound.
                let side = |run: AxisInfo, bound: AxisInfo| {
                    gcd(gcd(run.contiguity, run.divisibility), gcd(bound.divisibility, bound.constancy))
                };
                let cst = gcd(a.constancy, c.constancy).max(side(a, c)).max(side(c, a));
                Some(AxisInfo { contiguity: 1, constancy: cst, divisibility: 1 })
            }
            OpKind::Select(c, x, y) => {
                let (m, a, b) = (get(info, c), get(info, x), get(info, y));
                Some(AxisInfo {
                    contiguity: 1,
                    constancy: gcd(m.constancy, gcd(a.constancy, b.constancy)),
                    divisibility: 1,
                })
            }
            OpKind::For { lo, step, body, .. } => {
                let div = gcd(get(info, lo).divisibility, get(info, step).divisibility);
                info.insert(body.args[0], AxisInfo { contiguity: 1, constancy: 1, divisibility: div });
                region(kernel, body, spec, info);
                None
            }
            OpKind::While { cond, body, .. } => {
                region(kernel, cond, spec, info);
                region(kernel, body, spec, info);
                None
            }
            _ => None,
        };
        if let Some(mut i) = result {
            let n = op.results.first().map_or(1, len);
            i.contiguity = i.contiguity.min(n).max(1);
            i.constancy = i.constancy.min(n).max(1);
            info.insert(op.results[0], i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tritonite_lang::{build_kernel, DType};

    /// The info of the value the kernel stores (its last store's value).
    fn stored(k: &Kernel, spec: &[u64]) -> AxisInfo {
        let info = analyze(k, spec);
        let v = k
            .body
            .ops
            .iter()
            .rev()
            .find_map(|op| match &op.kind {
                OpKind::Store { value, .. } => Some(*value),
                _ => None,
            })
            .expect("a store");
        info[&v]
    }

    #[test]
    fn products_of_consecutive_values_keep_only_the_factors_of_each_element() {
        // (pid·4 + [0, 1, 2, 3]) · stride, stride a multiple of 16: 16 | every element, not 64.
        let k = build_kernel("rows_times_stride", |k| {
            let out = k.mut_ptr_arg("out", DType::I32);
            let stride = k.scalar_arg("stride", DType::I32);
            let rows = k.program_id(0) * 4 + k.arange(0, 4);
            k.store(out + k.arange(0, 4), rows * stride);
        })
        .unwrap();
        let i = stored(&k, &[16, 16]);
        assert_eq!((i.contiguity, i.divisibility), (1, 16));
    }

    #[test]
    fn sums_of_two_ranges_are_not_divisible_like_their_starts() {
        // [0, 1, 2, 3] + [0, 1, 2, 3] = [0, 2, 4, 6]: no run, and only 2 divides every element.
        let k = build_kernel("range_plus_range", |k| {
            let out = k.mut_ptr_arg("out", DType::I32);
            let r = k.arange(0, 4);
            k.store(out + r, r + r);
        })
        .unwrap();
        let i = stored(&k, &[16]);
        assert_eq!(i.contiguity, 1);
        assert!(i.divisibility <= 2, "{i:?}");
    }

    #[test]
    fn a_range_plus_a_multiple_of_16_stays_a_run() {
        let k = build_kernel("range_plus_offset", |k| {
            let out = k.mut_ptr_arg("out", DType::I32);
            let n = k.scalar_arg("n", DType::I32);
            let r = k.arange(0, 64);
            k.store(out + r, k.program_id(0) * n + r);
        })
        .unwrap();
        let i = stored(&k, &[16, 16]);
        assert_eq!((i.contiguity, i.divisibility), (64, 16));
    }

    #[test]
    fn a_bound_divisible_by_8_masks_runs_of_8() {
        // [0, 64) < n with 8 | n: every aligned group of 8 lies wholly on one side of n.
        let k = build_kernel("masked_by_n", |k| {
            let out = k.mut_ptr_arg("out", DType::I32);
            let n = k.scalar_arg("n", DType::I32);
            let r = k.arange(0, 64);
            k.store(out + r, r.lt(n).cast(DType::I32));
        })
        .unwrap();
        let mask_of = |div_n| {
            let info = analyze(&k, &[16, div_n]);
            let mask = k.body.ops.iter().find(|op| matches!(op.kind, OpKind::Cmp(..))).expect("a compare").results[0];
            info[&mask].constancy
        };
        assert_eq!(mask_of(8), 8);
        assert_eq!(mask_of(1), 1);
    }
}
