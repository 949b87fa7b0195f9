//! # tritonite-lowering
//!
//! Lowers the block IR of `tritonite-lang` to PTX:
//!
//! 1. **layout** — each block (rank 1 or 2) gets a [`layout::BlockedLayout`] (which thread owns which
//!    elements); 1-D blocks that meet 2-D ones are laid out as their rows or columns;
//! 2. **axis info** — contiguity/divisibility/constancy of offsets and masks decide vector widths;
//! 3. **emit** — a `gpu.module` in MLIR (gpu, arith, scf, vector, memref, llvm dialects), one thread's
//!    view of every block value as an MLIR vector; float adds, subtracts, multiplies and sums carry
//!    `fastmath<contract>`, so products fuse into multiply-adds (Triton's default);
//! 4. **pipeline** — MLIR passes through NVVM to PTX ([`pipeline::stages`]), with melior;
//! 5. **ptxas** — optional resource report (registers, spills) when ptxas is installed.
//!
//! Steps 1–3 need no LLVM; steps 4–5 sit behind the `compiler` feature.

pub mod axis_info;
pub mod cache;
mod emit;
pub mod error;
pub mod layout;
#[cfg(feature = "compiler")]
pub mod pipeline;
pub mod ptxas;

pub use error::LowerError;
use tritonite_lang::Kernel;

/// The GPU to compile for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// SM architecture, e.g. `sm_90`.
    pub chip: String,
    /// PTX ISA version times ten (`81` = PTX 8.1, the first with `st.async`, which cluster reductions
    /// use; the H100 machines' driver accepts ≤ 90).
    pub ptx_version: u32,
}

impl Target {
    /// The SM architecture's number (`sm_90a` → 90; 0 if `chip` is not of that form).
    pub fn sm(&self) -> u32 {
        let digits = self.chip.strip_prefix("sm_").unwrap_or("");
        digits.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
    }

    /// Whether launches of kernels for this target can overlap (programmatic dependent launch,
    /// sm_90 and later: [`Kernel::waits_for_previous_launch`] and the `release_next_launch` op).
    pub fn overlaps_launches(&self) -> bool {
        self.sm() >= 90
    }
}

impl Default for Target {
    fn default() -> Self {
        Target { chip: "sm_90".into(), ptx_version: 81 }
    }
}

/// Compile-time options of one kernel variant (beside the meta-parameters already in the IR).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompileOptions {
    /// Warps per program (1, 2, 4, 8, 16 or 32).
    pub num_warps: u32,
    /// The GPU.
    pub target: Target,
    /// What the launcher knows of its arguments (Triton's specialization): `(i, d)` says argument
    /// `i` is a multiple of `d`, a power of two ≤ 16 — a pointer's byte address, an integer's
    /// value. Arguments not listed are only as aligned as their dtype. The launcher checks this
    /// when it picks the variant ([`divisibility_of`]); the lowering uses it to vectorize.
    pub divisibility: Vec<(usize, u64)>,
}

/// The largest divisibility the lowering uses (16 bytes: the widest vector access).
pub const MAX_ARG_DIVISIBILITY: u64 = 16;

/// The divisibility a launcher records for an integer argument or a byte address: the largest
/// power of two ≤ [`MAX_ARG_DIVISIBILITY`] dividing `v` (0 is divisible by anything).
pub fn divisibility_of(v: u64) -> u64 {
    if v == 0 {
        MAX_ARG_DIVISIBILITY
    } else {
        (1u64 << v.trailing_zeros().min(63)).min(MAX_ARG_DIVISIBILITY)
    }
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { num_warps: 4, target: Target::default(), divisibility: vec![] }
    }
}

impl CompileOptions {
    fn check(&self) -> Result<(), LowerError> {
        if !self.num_warps.is_power_of_two() || self.num_warps > 32 {
            return Err(LowerError::BadOption {
                option: "num_warps",
                expected: "a power of two ≤ 32".into(),
                got: self.num_warps.to_string(),
            });
        }
        Ok(())
    }
}

/// The MLIR `gpu.module` for `kernel` (no LLVM needed).
pub fn emit_mlir(kernel: &Kernel, opts: &CompileOptions) -> Result<String, LowerError> {
    emit(kernel, opts).map(|e| e.mlir)
}

fn emit(kernel: &Kernel, opts: &CompileOptions) -> Result<emit::Emitted, LowerError> {
    opts.check()?;
    tritonite_lang::verify::verify(kernel)?;
    emit::emit_module(kernel, opts)
}

/// Bytes of dynamic shared memory a program of `kernel` needs (the buffers of its staged loads;
/// 0 without them): what a launch of a cached variant passes.
pub fn dynamic_shared_bytes(kernel: &Kernel, opts: &CompileOptions) -> Result<u32, LowerError> {
    if !emit::stages_loads(kernel) {
        return Ok(0);
    }
    Ok(emit(kernel, opts)?.shared_bytes as u32)
}

/// A kernel compiled to PTX.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The kernel's symbol in the PTX.
    pub name: String,
    /// The emitted MLIR.
    pub mlir: String,
    /// The PTX text.
    pub ptx: String,
    /// The cubin for the target, when ptxas assembled one.
    pub cubin: Option<Vec<u8>>,
    /// Threads per program.
    pub threads: u32,
    /// Bytes of dynamic shared memory a program needs (see [`dynamic_shared_bytes`]).
    pub shared_bytes: u32,
}

/// Compiles `kernel` to PTX through MLIR.
#[cfg(feature = "compiler")]
pub fn compile(kernel: &Kernel, opts: &CompileOptions) -> Result<Compiled, LowerError> {
    let emit::Emitted { mlir, shared_bytes } = emit(kernel, opts)?;
    let ptx = pipeline::mlir_to_ptx(&kernel.name, &mlir, &opts.target)?;
    let (threads, shared_bytes) = (opts.num_warps * 32, shared_bytes as u32);
    Ok(Compiled { name: kernel.name.clone(), mlir, ptx, cubin: None, threads, shared_bytes })
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn target_sm_reads_the_architecture_number() {
        let t = |chip: &str| Target { chip: chip.into(), ptx_version: 81 };
        assert_eq!(t("sm_90").sm(), 90);
        assert_eq!(t("sm_90a").sm(), 90);
        assert_eq!(t("sm_100").sm(), 100);
        assert_eq!(t("sm_80").sm(), 80);
        assert_eq!(t("gfx90a").sm(), 0);
        assert!(t("sm_90a").overlaps_launches() && !t("sm_86").overlaps_launches());
    }
}
