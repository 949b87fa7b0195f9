//! Running launch plans on a GPU: each kernel variant (kernel IR, compile options and alignment
//! facts) is taken from the disk cache or lowered through MLIR to PTX (with the `compiler`
//! feature), then loaded once and kept for the life of the executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tritonite_lang::DType;
use tritonite_lowering::cache::{compile_cached, Source};
use tritonite_lowering::{CompileOptions, Target};
use tritonite_runtime::{Device, DeviceBuffer, GpuKernel, KernelArg};

use crate::backend::{Backend, Binding};
use crate::error::KernelError;
use crate::plan::{Launch, Plan, PlanArg};
use crate::tensor::Storage;

impl Storage for DeviceBuffer {
    fn dtype(&self) -> DType {
        DeviceBuffer::dtype(self)
    }

    fn len(&self) -> usize {
        DeviceBuffer::len(self)
    }

    fn address(&self) -> u64 {
        DeviceBuffer::address(self)
    }
}

/// The kernels of a plan's launches, resolved by [`GpuExecutor::prepare`].
pub struct Prepared {
    kernels: Vec<Arc<GpuKernel>>,
}

/// Runs plans on one GPU, compiling each kernel variant on first use.
pub struct GpuExecutor {
    device: Device,
    target: Target,
    kernels: Mutex<HashMap<String, Arc<GpuKernel>>>,
    compiles: Mutex<usize>,
    sm_count: usize,
}

fn find<'a, 'b>(
    bindings: &'b [Binding<'a, DeviceBuffer>],
    name: &str,
) -> Result<&'b Binding<'a, DeviceBuffer>, KernelError> {
    bindings.iter().find(|b| b.name == name).ok_or_else(|| KernelError::BadArgument {
        arg: "bindings",
        expected: format!("a buffer bound to `{name}`"),
        got: "none".into(),
    })
}

impl GpuExecutor {
    /// An executor on `device` compiling for the device's own architecture.
    pub fn new(device: Device) -> Result<GpuExecutor, KernelError> {
        let (major, minor) = device.compute_capability()?;
        let target = Target { chip: format!("sm_{major}{minor}"), ..Target::default() };
        let sm_count = device.sm_count()? as usize;
        Ok(GpuExecutor { device, target, kernels: Mutex::new(HashMap::new()), compiles: Mutex::new(0), sm_count })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How many kernel variants this executor compiled (rather than found in the disk cache).
    pub fn compile_count(&self) -> usize {
        *self.compiles.lock().expect("counter lock")
    }

    fn kernel_for(
        &self,
        launch: &Launch,
        bindings: &[Binding<'_, DeviceBuffer>],
    ) -> Result<Arc<GpuKernel>, KernelError> {
        // Alignment facts from the actual arguments pick the variant (Triton's specialization).
        let mut divisible_by_16 = vec![];
        for (i, a) in launch.args.iter().enumerate() {
            let aligned = match a {
                PlanArg::Buffer(name) => {
                    let b = find(bindings, name)?;
                    (b.buf.address() + (b.offset * b.buf.dtype().size_bytes()) as u64).is_multiple_of(16)
                }
                PlanArg::I32(v) => v % 16 == 0,
                PlanArg::I64(v) => v % 16 == 0,
                PlanArg::F32(_) => false,
            };
            if aligned {
                divisible_by_16.push(i);
            }
        }
        let opts = CompileOptions { num_warps: launch.num_warps, target: self.target.clone(), divisible_by_16 };
        let key = format!("{opts:?}\n{}", launch.kernel);
        if let Some(k) = self.kernels.lock().expect("kernel cache lock").get(&key) {
            return Ok(k.clone());
        }
        let (compiled, source) = compile_cached(&launch.kernel, &opts)?;
        let k = Arc::new(GpuKernel::load(
            &self.device,
            &compiled.ptx,
            compiled.cubin.as_deref(),
            &compiled.name,
            launch.kernel.params.clone(),
            compiled.threads,
        )?);
        if source == Source::Compiled {
            *self.compiles.lock().expect("counter lock") += 1;
        }
        self.kernels.lock().expect("kernel cache lock").insert(key, k.clone());
        Ok(k)
    }

    /// Resolves the kernel of every launch of `plan` for these bindings (every buffer the plan
    /// declares): compiled or loaded once, then launched any number of times with
    /// [`GpuExecutor::launch`] and no further lookups.
    pub fn prepare(&self, plan: &Plan, bindings: &[Binding<'_, DeviceBuffer>]) -> Result<Prepared, KernelError> {
        let kernels = plan.launches.iter().map(|l| self.kernel_for(l, bindings)).collect::<Result<_, _>>()?;
        Ok(Prepared { kernels })
    }

    /// Launches a prepared plan on `bindings` (every buffer the plan declares).
    pub fn launch(
        &self,
        plan: &Plan,
        prepared: &Prepared,
        bindings: &[Binding<'_, DeviceBuffer>],
    ) -> Result<(), KernelError> {
        for (launch, kernel) in plan.launches.iter().zip(&prepared.kernels) {
            let args = launch
                .args
                .iter()
                .map(|a| {
                    Ok(match a {
                        PlanArg::Buffer(name) => {
                            let b = find(bindings, name)?;
                            KernelArg::Buffer(b.buf, b.offset)
                        }
                        PlanArg::I32(v) => KernelArg::I32(*v),
                        PlanArg::I64(v) => KernelArg::I64(*v),
                        PlanArg::F32(v) => KernelArg::F32(*v),
                    })
                })
                .collect::<Result<Vec<_>, KernelError>>()?;
            kernel.launch(&self.device, launch.grid, &args)?;
        }
        Ok(())
    }
}

impl Backend for GpuExecutor {
    type Buffer = DeviceBuffer;

    fn alloc(&self, dtype: DType, len: usize) -> Result<DeviceBuffer, KernelError> {
        Ok(DeviceBuffer::filled(&self.device, dtype, len, f64::NAN)?)
    }

    fn upload(&self, host: &tritonite_lang::Buffer) -> Result<DeviceBuffer, KernelError> {
        Ok(DeviceBuffer::upload(&self.device, host)?)
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<tritonite_lang::Buffer, KernelError> {
        Ok(buf.download(&self.device)?)
    }

    fn run(&self, plan: &Plan, bindings: &[Binding<'_, DeviceBuffer>]) -> Result<(), KernelError> {
        for d in &plan.buffers {
            let b = find(bindings, d.name)?;
            plan.check_given(d.name, b.buf.dtype(), b.buf.len(), b.offset)?;
        }
        let prepared = self.prepare(plan, bindings)?;
        self.launch(plan, &prepared, bindings)
    }

    fn sm_count(&self) -> usize {
        self.sm_count
    }
}
