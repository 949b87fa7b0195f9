//! The typed matmul entry point, over any [`Backend`]: every argument is validated before anything
//! is allocated or launched, so a bad call writes nothing.

use tritonite_lang::DType;

use super::plan::{matmul_plan, MatmulShape};
use super::tuning::{DotKernel, Problem};
use super::{MatmulConfig, MatmulSpec};
use crate::backend::{alloc_scratch, Backend, Binding};
use crate::error::KernelError;
use crate::tensor::{Rows, Storage};
use crate::tuning::config_for;

/// The operands of [`matmul`].
#[derive(Debug)]
pub struct MatmulArgs<'a, S> {
    /// `[m, k]`, f16 or bf16.
    pub a: Rows<'a, S>,
    /// `[k, n]`, or `[n, k]` when `b_transposed` (a Linear layer's weight); `a`'s dtype.
    pub b: Rows<'a, S>,
    /// `b` holds `[n, k]`: compute `a · bᵀ`.
    pub b_transposed: bool,
    /// Dtype of `c`; default `a`'s.
    pub out_dtype: Option<DType>,
    /// Kernel config; default: the backend's cached (or tuned) config, else
    /// [`MatmulConfig::heuristic`].
    pub config: Option<MatmulConfig>,
}

impl<'a, S> MatmulArgs<'a, S> {
    /// `a · b` with the defaults.
    pub fn new(a: Rows<'a, S>, b: Rows<'a, S>) -> MatmulArgs<'a, S> {
        MatmulArgs { a, b, b_transposed: false, out_dtype: None, config: None }
    }

    /// `a · bᵀ` for `b` stored `[n, k]`, with the defaults.
    pub fn linear(a: Rows<'a, S>, weight: Rows<'a, S>) -> MatmulArgs<'a, S> {
        MatmulArgs { b_transposed: true, ..MatmulArgs::new(a, weight) }
    }
}

/// What [`matmul`] returns.
#[derive(Debug)]
pub struct MatmulOutput<B> {
    /// `c`, a new contiguous `[m, n]` buffer.
    pub c: B,
    /// The kernel config that ran.
    pub config: MatmulConfig,
}

/// `c = a · b` (or `a · bᵀ`) on the tensor cores, accumulated in f32.
pub fn matmul<B: Backend>(
    backend: &B,
    args: &MatmulArgs<'_, B::Buffer>,
) -> Result<MatmulOutput<B::Buffer>, KernelError> {
    let (a, b) = (&args.a, &args.b);
    let spec = MatmulSpec {
        dtype: a.buf.dtype(),
        out: args.out_dtype.unwrap_or(a.buf.dtype()),
        b_transposed: args.b_transposed,
    };
    spec.check()?;
    let (m, k) = (a.rows, a.cols);
    let n = if args.b_transposed { b.rows } else { b.cols };
    a.check("a", spec.dtype, m, k)?;
    if args.b_transposed {
        b.check("b", spec.dtype, n, k)?;
    } else {
        b.check("b", spec.dtype, k, n)?;
    }
    let problem = Problem {
        kernel: DotKernel::Matmul { b_transposed: args.b_transposed },
        dtype: spec.dtype,
        out: spec.out,
        m,
        n,
        k,
    };
    let cfg = config_for(backend, args.config, &problem)?;
    let shape = MatmulShape { m, n, k, stride_a: a.row_stride, stride_b: b.row_stride, stride_c: n };
    let plan = matmul_plan(&spec, &shape, &cfg)?;
    let c = backend.alloc_output(spec.out, m * n)?;
    let scratch = alloc_scratch(backend, &plan)?;
    let mut bindings = vec![
        Binding { name: "a", buf: a.buf, offset: a.offset },
        Binding { name: "b", buf: b.buf, offset: b.offset },
        Binding::whole("c", &c),
    ];
    bindings.extend(scratch.iter().map(|(name, b)| Binding::whole(name, b)));
    backend.run(&plan, &bindings)?;
    Ok(MatmulOutput { c, config: cfg })
}
