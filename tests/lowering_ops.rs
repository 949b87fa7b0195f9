//! Every elementwise unary op lowers through MLIR to PTX (and assembles for sm_90 where ptxas is
//! installed) for every float dtype, on blocks and on scalars: an op the NVVM conversion rejects
//! shows up here, not in a kernel's GPU suite.

use tritonite::lang::{build_kernel, DType, Kernel, Value};
use tritonite::lowering::{compile, ptxas, CompileOptions};

type Unary = fn(Value<'_>) -> Value<'_>;

const OPS: [(&str, Unary); 6] = [
    ("neg", |v| -v),
    ("abs", |v| v.abs()),
    ("sqrt", |v| v.sqrt()),
    ("rsqrt", |v| v.rsqrt()),
    ("exp", |v| v.exp()),
    ("log", |v| v.log()),
];

fn kernel(name: &str, dtype: DType, block: Option<i64>, op: Unary) -> Kernel {
    build_kernel(&format!("{name}_{}", dtype.name()), |k| {
        let x = k.ptr_arg("x", dtype);
        let y = k.mut_ptr_arg("y", dtype);
        match block {
            Some(b) => {
                let offs = k.arange(0, b);
                k.store(y + offs, op(k.load(x + offs)));
            }
            None => k.store(y, op(k.load(x))),
        }
    })
    .unwrap()
}

#[test]
fn unary_ops_lower_for_every_float_dtype() {
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (name, op) in OPS {
            for block in [Some(256), None] {
                let k = kernel(name, dtype, block, op);
                let compiled = compile(&k, &CompileOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", k.name));
                assert!(compiled.ptx.contains(&format!(".entry {}", k.name)), "{}: no entry", k.name);
                if ptxas::find_ptxas().is_some() {
                    ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", k.name));
                }
            }
        }
    }
}

/// Bool constants lower, as a scalar and as a block (a mask known to be all true).
#[test]
fn bool_constants_lower() {
    let k = build_kernel("bool_constants", |k| {
        let x = k.ptr_arg("x", DType::F32);
        let y = k.mut_ptr_arg("y", DType::F32);
        let offs = k.arange(0, 128);
        let all = k.full(&[128], true, DType::Bool);
        let v = k.load_masked(x + offs, all, 0.0);
        k.store_masked(y + offs, v, all & offs.lt(100));
        let yes = k.constant(true, DType::Bool);
        k.store_masked(y, k.load_masked(x, yes, 0.0) * 2.0, yes);
    })
    .unwrap();
    let compiled = compile(&k, &CompileOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", k.name));
    if ptxas::find_ptxas().is_some() {
        ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", k.name));
    }
}
