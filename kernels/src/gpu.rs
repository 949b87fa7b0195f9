//! Running launch plans on a GPU: each kernel variant (kernel IR, compile options and alignment
//! facts) is taken from the disk cache or lowered through MLIR to PTX (with the `compiler`
//! feature), then loaded once and kept for the life of the executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tritonite_lowering::cache::{compile_cached, Source};
use tritonite_lowering::{CompileOptions, Target};
use tritonite_runtime::{Device, DeviceBuffer, GpuKernel, KernelArg};

use crate::error::KernelError;
use crate::plan::{Launch, Plan, PlanArg};
use crate::rmsnorm;

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
}

impl GpuExecutor {
    /// An executor on `device` compiling for the device's own architecture.
    pub fn new(device: Device) -> Result<GpuExecutor, KernelError> {
        let (major, minor) = device.compute_capability()?;
        let target = Target { chip: format!("sm_{major}{minor}"), ..Target::default() };
        Ok(GpuExecutor { device, target, kernels: Mutex::new(HashMap::new()), compiles: Mutex::new(0) })
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
        buffers: &HashMap<&str, &DeviceBuffer>,
    ) -> Result<Arc<GpuKernel>, KernelError> {
        // Alignment facts from the actual arguments pick the variant (Triton's specialization).
        let divisible_by_16: Vec<usize> = launch
            .args
            .iter()
            .enumerate()
            .filter(|(_, a)| match a {
                PlanArg::Buffer(name) => {
                    buffers.get(name).is_some_and(|b| b.device_address(&self.device).is_multiple_of(16))
                }
                PlanArg::I32(v) => v % 16 == 0,
                PlanArg::I64(v) => v % 16 == 0,
                PlanArg::F32(_) => false,
            })
            .map(|(i, _)| i)
            .collect();
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

    /// Runs `plan` with the caller's buffers: every input, and any outputs or scratch buffers to
    /// use in place. The others are allocated (outputs poisoned with NaN) and returned by name.
    pub fn execute(
        &self,
        plan: &Plan,
        given: &[(&'static str, &DeviceBuffer)],
    ) -> Result<HashMap<&'static str, DeviceBuffer>, KernelError> {
        for (name, b) in given {
            plan.check_given(name, b.dtype(), b.len())?;
        }
        let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
        let mut owned: HashMap<&'static str, DeviceBuffer> = HashMap::new();
        for d in plan.to_allocate(&names)? {
            owned.insert(d.name, DeviceBuffer::filled(&self.device, d.dtype, d.len, f64::NAN)?);
        }
        {
            let all: Vec<(&'static str, &DeviceBuffer)> =
                given.iter().copied().chain(owned.iter().map(|(n, b)| (*n, b))).collect();
            let prepared = self.prepare(plan, &all)?;
            self.launch(plan, &prepared, &all)?;
        }
        owned.retain(|name, _| plan.is_output(name));
        Ok(owned)
    }

    /// Resolves the kernel of every launch of `plan` for these buffers (which must include every
    /// buffer the plan declares): compiled or loaded once, then launched any number of times with
    /// [`GpuExecutor::launch`] and no further lookups.
    pub fn prepare(&self, plan: &Plan, buffers: &[(&'static str, &DeviceBuffer)]) -> Result<Prepared, KernelError> {
        let by_name: HashMap<&str, &DeviceBuffer> = buffers.iter().map(|(n, b)| (*n, *b)).collect();
        let kernels = plan.launches.iter().map(|l| self.kernel_for(l, &by_name)).collect::<Result<_, _>>()?;
        Ok(Prepared { kernels })
    }

    /// Launches a prepared plan on `buffers` (all of the plan's buffers, by name).
    pub fn launch(
        &self,
        plan: &Plan,
        prepared: &Prepared,
        buffers: &[(&'static str, &DeviceBuffer)],
    ) -> Result<(), KernelError> {
        let find = |name: &str| {
            buffers.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).ok_or(KernelError::BadArgument {
                arg: "buffers",
                expected: format!("a buffer named `{name}`"),
                got: "none".into(),
            })
        };
        for (launch, kernel) in plan.launches.iter().zip(&prepared.kernels) {
            let args = launch
                .args
                .iter()
                .map(|a| {
                    Ok(match a {
                        PlanArg::Buffer(name) => KernelArg::Buffer(find(name)?),
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

    /// RMSNorm forward on the GPU; returns `(y, rstd)`.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm_forward(
        &self,
        x: &DeviceBuffer,
        w: Option<&DeviceBuffer>,
        m: usize,
        n: usize,
        eps: f32,
        block_size: usize,
        num_warps: u32,
    ) -> Result<(DeviceBuffer, DeviceBuffer), KernelError> {
        let plan = rmsnorm::forward_plan(x.dtype(), w.map(DeviceBuffer::dtype), m, n, eps, block_size, num_warps)?;
        let mut inputs = vec![("x", x)];
        inputs.extend(w.map(|w| ("w", w)));
        let mut out = self.execute(&plan, &inputs)?;
        Ok((out.remove("y").expect("declared"), out.remove("rstd").expect("declared")))
    }

    /// RMSNorm backward on the GPU; returns `(dx, dw)` (`dw` with a weight).
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm_backward(
        &self,
        x: &DeviceBuffer,
        w: Option<&DeviceBuffer>,
        dy: &DeviceBuffer,
        rstd: &DeviceBuffer,
        m: usize,
        n: usize,
        block_size: usize,
        num_warps: u32,
        programs: usize,
    ) -> Result<(DeviceBuffer, Option<DeviceBuffer>), KernelError> {
        let plan =
            rmsnorm::backward_plan(x.dtype(), w.map(DeviceBuffer::dtype), m, n, block_size, num_warps, programs)?;
        let mut inputs = vec![("x", x), ("dy", dy), ("rstd", rstd)];
        inputs.extend(w.map(|w| ("w", w)));
        let mut out = self.execute(&plan, &inputs)?;
        Ok((out.remove("dx").expect("declared"), out.remove("dw")))
    }
}
