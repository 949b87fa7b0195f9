//! Running launch plans on a GPU: each kernel variant (kernel IR, compile options and alignment
//! facts) is taken from the disk cache or lowered through MLIR to PTX (with the `compiler`
//! feature), then loaded once and kept for the life of the executor.

use std::sync::{Arc, Mutex};

use tritonite_lang::DType;
use tritonite_lowering::cache::{compile_cached, Source};
use tritonite_lowering::{divisibility_of, CompileOptions, Target};
use tritonite_runtime::{Device, DeviceBuffer, GpuKernel, KernelArg, KernelMeta};

use crate::backend::{check_bindings, Backend, Binding};
use crate::error::KernelError;
use crate::plan::{FastMap, Launch, Plan, PlanArg};
use crate::tensor::Storage;
use crate::tuning::{Autotuner, DeviceId};

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

/// The kernels of a plan's launches, resolved by [`Backend::prepare`].
pub struct Prepared {
    kernels: Vec<Arc<GpuKernel>>,
}

/// A compiled kernel variant: the kernel's fingerprint, its warps, and what its arguments are
/// divisible by (`log2`, 3 bits per argument; arguments past the 42nd count as unknown, which only
/// costs vector width). Fixed-size, so finding the variant of a launch allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct VariantKey {
    fingerprint: u64,
    num_warps: u32,
    divisibility: u128,
}

impl VariantKey {
    /// Arguments whose divisibility the key records.
    const ARGS: usize = 128 / 3;

    /// The divisibility facts as [`CompileOptions::divisibility`] lists them.
    fn divisibility(&self) -> Vec<(usize, u64)> {
        (0..Self::ARGS).map(|i| (i, 1u64 << ((self.divisibility >> (3 * i)) & 7))).filter(|&(_, d)| d > 1).collect()
    }
}

/// Runs plans on one GPU, compiling each kernel variant on first use.
pub struct GpuExecutor {
    device: Device,
    target: Target,
    kernels: Mutex<FastMap<VariantKey, Arc<GpuKernel>>>,
    poison_outputs: bool,
    compiles: Mutex<usize>,
    sm_count: usize,
    autotuner: Autotuner,
}

impl GpuExecutor {
    /// An executor on `device` compiling for the device's own architecture, with the autotuning
    /// cache and mode of [`Autotuner::from_env`].
    pub fn new(device: Device) -> Result<GpuExecutor, KernelError> {
        let id = Self::device_id(&device)?;
        Self::with_autotuner(device, Autotuner::from_env(id))
    }

    /// An executor with the given autotuner.
    pub fn with_autotuner(device: Device, autotuner: Autotuner) -> Result<GpuExecutor, KernelError> {
        let (major, minor) = device.compute_capability()?;
        let target = Target { chip: format!("sm_{major}{minor}"), ..Target::default() };
        let sm_count = device.sm_count()? as usize;
        Ok(GpuExecutor {
            device,
            target,
            kernels: Mutex::new(FastMap::default()),
            poison_outputs: std::env::var_os("TRITONITE_POISON_OUTPUTS").is_some_and(|v| v != "0"),
            compiles: Mutex::new(0),
            sm_count,
            autotuner,
        })
    }

    /// What tuned results are keyed by: the device's name, architecture and driver.
    pub fn device_id(device: &Device) -> Result<DeviceId, KernelError> {
        let (major, minor) = device.compute_capability()?;
        Ok(DeviceId::new(device.name()?, format!("sm_{major}{minor}"), device.driver_version()?))
    }

    /// Fills every new output buffer with NaN before a launch writes it (off by default, or set
    /// `TRITONITE_POISON_OUTPUTS=1`): an element a kernel fails to write then shows up in tests.
    pub fn poison_outputs(mut self, on: bool) -> GpuExecutor {
        self.poison_outputs = on;
        self
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
        // Divisibility facts from the actual arguments pick the variant (Triton's specialization).
        let mut divisibility = 0u128;
        for (i, a) in launch.args.iter().enumerate().take(VariantKey::ARGS) {
            let d = match a {
                PlanArg::Buffer(name) => {
                    let b = Binding::find(bindings, name)?;
                    divisibility_of(b.buf.address() + (b.offset * b.buf.dtype().size_bytes()) as u64)
                }
                PlanArg::I32(v) => divisibility_of(*v as u64),
                PlanArg::I64(v) => divisibility_of(*v as u64),
                PlanArg::F32(_) => 1,
            };
            divisibility |= u128::from(d.trailing_zeros()) << (3 * i);
        }
        let key = VariantKey { fingerprint: launch.kernel.fingerprint(), num_warps: launch.num_warps, divisibility };
        if let Some(k) = self.kernels.lock().expect("kernel cache lock").get(&key) {
            return Ok(k.clone());
        }
        let opts = CompileOptions {
            num_warps: launch.num_warps,
            target: self.target.clone(),
            divisibility: key.divisibility(),
        };
        let (compiled, source) = compile_cached(&launch.kernel, &opts)?;
        let k = Arc::new(GpuKernel::load(
            &self.device,
            &compiled.ptx,
            compiled.cubin.as_deref(),
            &compiled.name,
            launch.kernel.params.clone(),
            KernelMeta {
                threads: compiled.threads,
                cluster: launch.kernel.cluster,
                shared_bytes: compiled.shared_bytes,
                waits_for_previous: launch.kernel.waits_for_previous_launch && self.target.overlaps_launches(),
            },
        )?);
        if source == Source::Compiled {
            *self.compiles.lock().expect("counter lock") += 1;
        }
        self.kernels.lock().expect("kernel cache lock").insert(key, k.clone());
        Ok(k)
    }
}

impl Backend for GpuExecutor {
    type Buffer = DeviceBuffer;

    fn alloc(&self, dtype: DType, len: usize) -> Result<DeviceBuffer, KernelError> {
        Ok(DeviceBuffer::filled(&self.device, dtype, len, f64::NAN)?)
    }

    fn alloc_output(&self, dtype: DType, len: usize) -> Result<DeviceBuffer, KernelError> {
        if self.poison_outputs {
            return self.alloc(dtype, len);
        }
        Ok(DeviceBuffer::uninit(&self.device, dtype, len)?)
    }

    fn upload(&self, host: &tritonite_lang::Buffer) -> Result<DeviceBuffer, KernelError> {
        Ok(DeviceBuffer::upload(&self.device, host)?)
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<tritonite_lang::Buffer, KernelError> {
        Ok(buf.download(&self.device)?)
    }

    type Prepared = Prepared;

    /// Checks the bindings ([`check_bindings`]): launches then trust them.
    fn prepare(&self, plan: &Plan, bindings: &[Binding<'_, DeviceBuffer>]) -> Result<Prepared, KernelError> {
        check_bindings(plan, bindings)?;
        let kernels = plan.launches.iter().map(|l| self.kernel_for(l, bindings)).collect::<Result<_, _>>()?;
        Ok(Prepared { kernels })
    }

    fn launch(
        &self,
        plan: &Plan,
        prepared: &Prepared,
        bindings: &[Binding<'_, DeviceBuffer>],
    ) -> Result<(), KernelError> {
        for (launch, kernel) in plan.launches.iter().zip(&prepared.kernels) {
            // On the stack: a launch allocates nothing.
            let mut args = [KernelArg::I32(0); 64];
            if launch.args.len() > args.len() {
                return Err(KernelError::BadArgument {
                    arg: "plan",
                    expected: format!("at most {} arguments per launch", args.len()),
                    got: launch.args.len().to_string(),
                });
            }
            for (slot, a) in args.iter_mut().zip(&launch.args) {
                *slot = match a {
                    PlanArg::Buffer(name) => {
                        let b = Binding::find(bindings, name)?;
                        KernelArg::Buffer(b.buf, b.offset)
                    }
                    PlanArg::I32(v) => KernelArg::I32(*v),
                    PlanArg::I64(v) => KernelArg::I64(*v),
                    PlanArg::F32(v) => KernelArg::F32(*v),
                };
            }
            kernel.launch(&self.device, launch.grid, &args[..launch.args.len()])?;
        }
        Ok(())
    }

    fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        work: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<Vec<f64>, KernelError> {
        let times = self.device.time_ms(warmup, reps, work)?;
        Ok(times.into_iter().map(f64::from).collect())
    }

    fn autotuner(&self) -> Option<&Autotuner> {
        Some(&self.autotuner)
    }

    fn sm_count(&self) -> usize {
        self.sm_count
    }
}
