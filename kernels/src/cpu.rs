//! Running launch plans on the CPU interpreter: [`Cpu`], a [`Backend`] over [`HostBuffer`]s.

use std::cell::RefCell;
use std::collections::HashMap;

use tritonite_lang::interp::{self, Arg, Buffer};
use tritonite_lang::ir::ParamKind;
use tritonite_lang::{DType, Lit};

use crate::backend::{check_bindings, unbound, Backend, Binding};
use crate::error::KernelError;
use crate::plan::{Plan, PlanArg, Role};
use crate::tensor::Storage;

/// A host buffer the interpreter writes through a shared reference, as kernels write device memory.
#[derive(Debug)]
pub struct HostBuffer(RefCell<Buffer>);

impl HostBuffer {
    /// Wraps a buffer.
    pub fn new(buf: Buffer) -> HostBuffer {
        HostBuffer(RefCell::new(buf))
    }

    /// A copy of the contents.
    pub fn to_buffer(&self) -> Buffer {
        self.0.borrow().clone()
    }

    /// The contents.
    pub fn into_inner(self) -> Buffer {
        self.0.into_inner()
    }

    /// The contents as `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        self.0.borrow().to_f64()
    }
}

impl From<Buffer> for HostBuffer {
    fn from(buf: Buffer) -> HostBuffer {
        HostBuffer::new(buf)
    }
}

impl Storage for HostBuffer {
    fn dtype(&self) -> DType {
        self.0.borrow().dtype()
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    fn address(&self) -> u64 {
        self.0.borrow().address()
    }
}

/// The CPU interpreter as an executor: exact reference semantics, for tests and machines without a
/// GPU. A plan either runs to the end or writes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Buffer = HostBuffer;

    fn alloc(&self, dtype: DType, len: usize) -> Result<HostBuffer, KernelError> {
        Ok(HostBuffer::new(Buffer::filled(dtype, len, f64::NAN)))
    }

    fn upload(&self, host: &Buffer) -> Result<HostBuffer, KernelError> {
        Ok(HostBuffer::new(host.clone()))
    }

    fn download(&self, buf: &HostBuffer) -> Result<Buffer, KernelError> {
        Ok(buf.to_buffer())
    }

    fn sm_count(&self) -> usize {
        4
    }

    type Prepared = ();

    fn prepare(&self, _: &Plan, _: &[Binding<'_, HostBuffer>]) -> Result<(), KernelError> {
        Ok(())
    }

    fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        work: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        for _ in 0..warmup {
            work()?;
        }
        (0..reps)
            .map(|_| {
                let start = std::time::Instant::now();
                work()?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            })
            .collect()
    }

    fn launch(&self, plan: &Plan, _: &(), bindings: &[Binding<'_, HostBuffer>]) -> Result<(), KernelError> {
        // Every launch works on copies of the bound ranges; they are written back only after the
        // last launch succeeded.
        check_bindings(plan, bindings)?;
        let mut copies: HashMap<&'static str, Buffer> = HashMap::new();
        for d in &plan.buffers {
            let b = Binding::find(bindings, d.name)?;
            copies.insert(d.name, b.buf.0.borrow().slice(b.offset, d.len));
        }
        for launch in &plan.launches {
            // Writable parameters take their copy out of the map for the launch.
            let mut written: Vec<(&'static str, Buffer)> = vec![];
            for (a, p) in launch.args.iter().zip(&launch.kernel.params) {
                if let (PlanArg::Buffer(name), ParamKind::MutPtr(_)) = (a, p.kind) {
                    written.push((name, copies.remove(name).ok_or_else(|| unbound(name))?));
                }
            }
            {
                let mut outs: HashMap<&str, &mut Buffer> = written.iter_mut().map(|(n, b)| (*n, b)).collect();
                let mut args: Vec<Arg<'_>> = Vec::with_capacity(launch.args.len());
                for a in &launch.args {
                    args.push(match a {
                        PlanArg::Buffer(name) => match outs.remove(name) {
                            Some(b) => Arg::Out(b),
                            None => Arg::In(copies.get(name).ok_or_else(|| unbound(name))?),
                        },
                        PlanArg::I32(v) => Arg::Scalar(Lit::Int(*v as i64)),
                        PlanArg::I64(v) => Arg::Scalar(Lit::Int(*v)),
                        PlanArg::F32(v) => Arg::Scalar(Lit::Float(*v as f64)),
                    });
                }
                interp::run(&launch.kernel, launch.grid, &mut args)?;
            }
            copies.extend(written);
        }
        for d in plan.buffers.iter().filter(|d| d.role != Role::Input) {
            let b = Binding::find(bindings, d.name)?;
            b.buf.0.borrow_mut().write_at(b.offset, &copies[d.name]);
        }
        Ok(())
    }
}
