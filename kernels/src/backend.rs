//! Executors of launch plans: the CPU interpreter ([`crate::cpu::Cpu`]) and, with the `gpu`
//! feature, a GPU (`crate::gpu::GpuExecutor`). The typed entry points are written once against
//! [`Backend`].

use tritonite_lang::{Buffer, DType};

use crate::error::KernelError;
use crate::plan::Plan;
use crate::tensor::Storage;

/// A buffer bound to one of a plan's buffer names, from element `offset` on.
#[derive(Debug)]
pub struct Binding<'a, S> {
    /// The plan's name for it.
    pub name: &'static str,
    /// The buffer.
    pub buf: &'a S,
    /// Element the plan's index 0 is.
    pub offset: usize,
}

impl<S> Clone for Binding<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Binding<'_, S> {}

impl<'a, S> Binding<'a, S> {
    /// `buf` as a whole, bound to `name`.
    pub fn whole(name: &'static str, buf: &'a S) -> Binding<'a, S> {
        Binding { name, buf, offset: 0 }
    }

    /// The binding of `name` in `bindings`, or an error naming the unbound buffer.
    pub fn find<'b>(bindings: &'b [Binding<'a, S>], name: &str) -> Result<&'b Binding<'a, S>, KernelError> {
        bindings.iter().find(|b| crate::plan::same_name(b.name, name)).ok_or_else(|| unbound(name))
    }
}

/// The error for a plan buffer nothing is bound to.
pub(crate) fn unbound(name: &str) -> KernelError {
    KernelError::BadArgument { arg: "bindings", expected: format!("a buffer bound to `{name}`"), got: "none".into() }
}

/// Something that runs plans on its own kind of buffer.
pub trait Backend {
    /// The buffers it runs on.
    type Buffer: Storage;

    /// A new buffer of `len` elements, every one NaN (an element no launch writes stays visible).
    fn alloc(&self, dtype: DType, len: usize) -> Result<Self::Buffer, KernelError>;

    /// A new buffer for an output a plan writes whole (what the typed entry points allocate):
    /// contents unspecified, so a backend may skip the fill. Defaults to [`Backend::alloc`].
    fn alloc_output(&self, dtype: DType, len: usize) -> Result<Self::Buffer, KernelError> {
        self.alloc(dtype, len)
    }

    /// A copy of a host buffer on this backend.
    fn upload(&self, host: &Buffer) -> Result<Self::Buffer, KernelError>;

    /// A host copy of a buffer.
    fn download(&self, buf: &Self::Buffer) -> Result<Buffer, KernelError>;

    /// A plan made ready to launch any number of times (its kernels compiled and loaded).
    type Prepared;

    /// Readies the launches of `plan` for these bindings (every buffer the plan declares). An
    /// executor checks the bindings ([`check_bindings`]) here or in [`Backend::launch`], before
    /// anything runs: a short buffer would otherwise be written out of bounds.
    fn prepare(&self, plan: &Plan, bindings: &[Binding<'_, Self::Buffer>]) -> Result<Self::Prepared, KernelError>;

    /// Runs the prepared launches of `plan` in order on `bindings`. Outputs are written through
    /// the shared references (device memory, or host buffers with interior mutability).
    fn launch(
        &self,
        plan: &Plan,
        prepared: &Self::Prepared,
        bindings: &[Binding<'_, Self::Buffer>],
    ) -> Result<(), KernelError>;

    /// Prepares and launches `plan` (the executor checks the bindings: [`check_bindings`]).
    fn run(&self, plan: &Plan, bindings: &[Binding<'_, Self::Buffer>]) -> Result<(), KernelError> {
        let prepared = self.prepare(plan, bindings)?;
        self.launch(plan, &prepared, bindings)
    }

    /// Times `work`: `warmup` untimed runs, then `reps` timed ones; each run's milliseconds (CUDA
    /// events on a GPU, the wall clock on the CPU).
    fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        work: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError>;

    /// Streaming multiprocessors (or their stand-in): sizes persistent grids.
    fn sm_count(&self) -> usize;

    /// The autotuner whose cache picks configs for this backend, if it has one.
    fn autotuner(&self) -> Option<&crate::tuning::Autotuner> {
        None
    }
}

/// New buffers for every scratch buffer of `plan` (per-program partials), by plan name, for a
/// typed entry point to bind beside its operands.
pub fn alloc_scratch<B: Backend>(backend: &B, plan: &Plan) -> Result<Vec<(&'static str, B::Buffer)>, KernelError> {
    plan.buffers
        .iter()
        .filter(|d| d.role == crate::plan::Role::Scratch)
        .map(|d| Ok((d.name, backend.alloc_output(d.dtype, d.len)?)))
        .collect()
}

/// Checks that every buffer `plan` declares is bound, with its dtype and the elements the plan
/// reaches from the binding's offset.
pub fn check_bindings<S: Storage>(plan: &Plan, bindings: &[Binding<'_, S>]) -> Result<(), KernelError> {
    for d in &plan.buffers {
        let b = Binding::find(bindings, d.name)?;
        plan.check_given(d.name, b.buf.dtype(), b.buf.len(), b.offset)?;
    }
    Ok(())
}
