//! Running launch plans on the CPU interpreter.

use std::collections::HashMap;

use tritonite_lang::interp::{self, Arg, Buffer};
use tritonite_lang::Lit;

use crate::error::KernelError;
use crate::plan::{Plan, PlanArg, Role};
use crate::rmsnorm;

/// Runs `plan` with the caller's `inputs` (by name); returns its outputs by name. Outputs start
/// poisoned with NaN, so an element no launch wrote shows up in any comparison.
pub fn execute(plan: &Plan, inputs: &[(&'static str, &Buffer)]) -> Result<HashMap<&'static str, Buffer>, KernelError> {
    for (name, b) in inputs {
        if plan.decl(name).is_some_and(|d| d.role != Role::Input) {
            return Err(KernelError::BadArgument {
                arg: name,
                expected: "an input".into(),
                got: "an output buffer".into(),
            });
        }
        plan.check_given(name, b.dtype(), b.len())?;
    }
    let names: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
    let mut owned: HashMap<&'static str, Buffer> =
        plan.to_allocate(&names)?.into_iter().map(|d| (d.name, Buffer::filled(d.dtype, d.len, f64::NAN))).collect();
    for launch in &plan.launches {
        let mut taken: Vec<(&'static str, Buffer)> = vec![];
        for a in &launch.args {
            if let PlanArg::Buffer(name) = a {
                if let Some(b) = owned.remove(name) {
                    taken.push((name, b));
                }
            }
        }
        {
            let mut by_name: HashMap<&str, &mut Buffer> = taken.iter_mut().map(|(n, b)| (*n, b)).collect();
            let mut args: Vec<Arg<'_>> = Vec::with_capacity(launch.args.len());
            for a in &launch.args {
                args.push(match a {
                    PlanArg::Buffer(name) => match by_name.remove(name) {
                        Some(b) => Arg::Out(b),
                        None => Arg::In(
                            inputs.iter().find(|(n, _)| n == name).map(|(_, b)| *b).expect("inputs were checked above"),
                        ),
                    },
                    PlanArg::I32(v) => Arg::Scalar(Lit::Int(*v as i64)),
                    PlanArg::I64(v) => Arg::Scalar(Lit::Int(*v)),
                    PlanArg::F32(v) => Arg::Scalar(Lit::Float(*v as f64)),
                });
            }
            interp::run(&launch.kernel, launch.grid, &mut args)?;
        }
        owned.extend(taken);
    }
    owned.retain(|name, _| plan.is_output(name));
    Ok(owned)
}

fn take(out: &mut HashMap<&'static str, Buffer>, name: &str) -> Buffer {
    out.remove(name).expect("the plan declares this output")
}

/// RMSNorm forward on the interpreter: `x` is `[m, n]` row-major; returns `(y, rstd)`.
pub fn rms_norm_forward(
    x: &Buffer,
    w: Option<&Buffer>,
    m: usize,
    n: usize,
    eps: f32,
    block_size: usize,
) -> Result<(Buffer, Buffer), KernelError> {
    let plan = rmsnorm::forward_plan(x.dtype(), w.map(Buffer::dtype), m, n, eps, block_size, 4)?;
    let mut inputs = vec![("x", x)];
    inputs.extend(w.map(|w| ("w", w)));
    let mut out = execute(&plan, &inputs)?;
    Ok((take(&mut out, "y"), take(&mut out, "rstd")))
}

/// RMSNorm backward on the interpreter with `programs` persistent programs: returns `(dx, dw)`
/// (`dw` only with a weight). `rstd` is what the forward returned.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    x: &Buffer,
    w: Option<&Buffer>,
    dy: &Buffer,
    rstd: &Buffer,
    m: usize,
    n: usize,
    block_size: usize,
    programs: usize,
) -> Result<(Buffer, Option<Buffer>), KernelError> {
    let plan = rmsnorm::backward_plan(x.dtype(), w.map(Buffer::dtype), m, n, block_size, 4, programs)?;
    let mut inputs = vec![("x", x), ("dy", dy), ("rstd", rstd)];
    inputs.extend(w.map(|w| ("w", w)));
    let mut out = execute(&plan, &inputs)?;
    Ok((take(&mut out, "dx"), out.remove("dw")))
}
