//! Launch plans: the host side of a kernel (its buffers, launches, grids and arguments) as data,
//! so one description runs on any executor — the CPU interpreter ([`crate::cpu`]) or a GPU.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tritonite_lang::{DType, Kernel, LangError};

use crate::error::KernelError;

/// What a buffer of a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Provided by the caller.
    Input,
    /// Written by the plan and returned to the caller.
    Output,
    /// Written and read by the plan for intermediate results (e.g. per-program partial sums).
    Scratch,
}

/// A buffer a plan reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferDecl {
    /// Name, as the caller passes or receives it.
    pub name: &'static str,
    /// Element dtype.
    pub dtype: DType,
    /// Length in elements.
    pub len: usize,
    /// Input, output or scratch.
    pub role: Role,
}

/// One kernel argument of a launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlanArg {
    /// The buffer of this name.
    Buffer(&'static str),
    /// An `i32` scalar.
    I32(i32),
    /// An `i64` scalar.
    I64(i64),
    /// An `f32` scalar.
    F32(f32),
}

/// A built kernel, shared between plans, with a fingerprint of its IR: what executors key their
/// compiled variants by, so a launch never formats or compares whole kernels.
#[derive(Clone, Debug)]
pub struct SharedKernel {
    kernel: Arc<Kernel>,
    fingerprint: u64,
}

impl SharedKernel {
    /// Shares `kernel` (hashes its printed IR once).
    pub fn new(kernel: Kernel) -> SharedKernel {
        let fingerprint = tritonite_autotune::fnv1a(kernel.to_string().as_bytes());
        SharedKernel { kernel: Arc::new(kernel), fingerprint }
    }

    /// A hash of the kernel's IR (its name, meta-parameters, parameters and body).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl std::ops::Deref for SharedKernel {
    type Target = Kernel;

    fn deref(&self) -> &Kernel {
        &self.kernel
    }
}

impl From<Kernel> for SharedKernel {
    fn from(kernel: Kernel) -> SharedKernel {
        SharedKernel::new(kernel)
    }
}

/// Values built once per key and shared: what [`KernelMemo`] and [`PlanMemo`] keep. Holds at
/// most `capacity` values (it starts over when full).
struct Memo<K, V> {
    map: Mutex<FastMap<K, V>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    fn new(capacity: usize) -> Memo<K, V> {
        Memo { map: Mutex::new(FastMap::default()), capacity }
    }

    /// The value of `key`, built by `build` the first time (the lock is not held while building).
    fn get<E>(&self, key: &K, build: impl FnOnce() -> Result<V, E>) -> Result<V, E>
    where
        K: Clone,
    {
        if let Some(v) = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(v.clone());
        }
        let v = build()?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key.clone(), v.clone());
        Ok(v)
    }
}

/// Kernels built once per process: tracing a kernel costs far more than launching it, and the
/// same few variants run over and over. `K` names a variant exactly (its builder's arguments).
pub struct KernelMemo<K>(Memo<K, SharedKernel>);

impl<K: Hash + Eq + Clone> KernelMemo<K> {
    /// An empty memo.
    pub fn new() -> KernelMemo<K> {
        KernelMemo(Memo::new(usize::MAX))
    }

    /// The kernel for `key`, built by `build` the first time.
    pub fn get(&self, key: &K, build: impl FnOnce() -> Result<Kernel, LangError>) -> Result<SharedKernel, KernelError> {
        self.0.get(key, || Ok(SharedKernel::new(build()?)))
    }
}

impl<K: Hash + Eq + Clone> Default for KernelMemo<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Plans built once per distinct call (problem, strides, scalars and config), for the typed entry
/// points: a repeated call reuses its plan instead of building it again. Holds at most
/// [`PlanMemo::CAPACITY`] plans (it starts over when full).
pub struct PlanMemo<K>(Memo<K, Arc<Plan>>);

impl<K: Hash + Eq + Clone> PlanMemo<K> {
    /// Plans kept at most.
    pub const CAPACITY: usize = 256;

    /// An empty memo.
    pub fn new() -> PlanMemo<K> {
        PlanMemo(Memo::new(Self::CAPACITY))
    }

    /// The plan of `key`, built by `build` the first time.
    pub fn get(&self, key: K, build: impl FnOnce() -> Result<Plan, KernelError>) -> Result<Arc<Plan>, KernelError> {
        self.0.get(&key, || Ok(Arc::new(build()?)))
    }
}

impl<K: Hash + Eq + Clone> Default for PlanMemo<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// The hasher of the per-call maps (plans, kernels, remembered configs): FxHash's multiply-rotate
/// over 8-byte words. Their keys are small and come from this process, not from an adversary, so a
/// call need not pay for SipHash.
#[derive(Clone, Copy, Default)]
pub struct FastHash(u64);

impl FastHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.add(v.into());
    }

    fn write_u32(&mut self, v: u32) {
        self.add(v.into());
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

/// A map hashed with [`FastHash`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHash>>;

/// One kernel launch.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The kernel.
    pub kernel: SharedKernel,
    /// Programs along each grid axis.
    pub grid: [u32; 3],
    /// Arguments, one per kernel parameter.
    pub args: Vec<PlanArg>,
    /// Warps per program when run on a GPU.
    pub num_warps: u32,
}

/// Buffers and launches, in order.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Every buffer the launches use.
    pub buffers: Vec<BufferDecl>,
    /// The launches, run in order.
    pub launches: Vec<Launch>,
}

impl Plan {
    /// Declares a buffer.
    pub fn buffer(&mut self, name: &'static str, dtype: DType, len: usize, role: Role) {
        self.buffers.push(BufferDecl { name, dtype, len, role });
    }

    /// The declaration of buffer `name`.
    pub fn decl(&self, name: &str) -> Option<&BufferDecl> {
        self.buffers.iter().find(|b| same_name(b.name, name))
    }

    /// Checks a buffer bound to `name` from element `offset` on: its dtype, and that it holds the
    /// elements the plan reaches from there.
    pub fn check_given(&self, name: &'static str, dtype: DType, len: usize, offset: usize) -> Result<(), KernelError> {
        let decl = self.decl(name).ok_or_else(|| KernelError::BadArgument {
            arg: name,
            expected: "no such buffer in this plan".into(),
            got: "a buffer".into(),
        })?;
        if decl.dtype != dtype || len.saturating_sub(offset) < decl.len {
            return Err(KernelError::BadArgument {
                arg: name,
                expected: format!("{} elements of {}", decl.len, decl.dtype),
                got: format!("{} elements of {dtype}", len.saturating_sub(offset)),
            });
        }
        Ok(())
    }
}

/// The elements `m` rows of `n` columns reach with row stride `stride`: `(m − 1) · stride + n`,
/// or 0 without rows.
pub fn span(m: usize, n: usize, stride: usize) -> usize {
    if m == 0 {
        0
    } else {
        (m - 1) * stride + n
    }
}

/// Whether two buffer names are equal. Names are short literals, usually the same one: the
/// address is compared first, then the bytes inline (a call's lookups would otherwise each call
/// `memcmp`).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a.bytes().zip(b.bytes()).all(|(x, y)| x == y))
}

/// Checks a `[m, n]` problem: `1 ≤ n < 2^31`, `m < 2^31`.
pub fn check_shape(m: usize, n: usize) -> Result<(), KernelError> {
    if n == 0 || n > i32::MAX as usize || m > i32::MAX as usize {
        return Err(KernelError::BadArgument {
            arg: "shape",
            expected: "1 ≤ n < 2^31 and m < 2^31".into(),
            got: format!("[{m}, {n}]"),
        });
    }
    Ok(())
}

/// Checks that every named dimension fits the kernels' `i32` sizes (`< 2^31`; 0 allowed).
pub fn check_i32_dims(dims: &[(&'static str, usize)]) -> Result<(), KernelError> {
    match dims.iter().find(|(_, v)| *v > i32::MAX as usize) {
        Some(&(arg, v)) => {
            Err(KernelError::BadArgument { arg, expected: "at most i32::MAX".into(), got: v.to_string() })
        }
        None => Ok(()),
    }
}
