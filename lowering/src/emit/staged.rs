//! Staged loads: a block copied from global into shared memory with `cp.async`, and read back
//! from there at each use, so that a block in flight — or carried by a loop to its next
//! iteration — holds no registers (what Triton's pipeliner and Quack's prefetch do with shared
//! memory).
//!
//! Every thread copies and reads only its own elements, so no barrier is needed: a thread's
//! `cp.async.wait_group` covers its own copies. A thread's elements sit in chunks of `width`
//! contiguous elements (up to 16 bytes), and chunk `c` of thread `t` is at
//! `(c · threads + t) · width` elements from the buffer's start: a warp's chunks are adjacent, so
//! its accesses are free of bank conflicts.
//!
//! Waits count groups: each staged load commits one group of copies, and a use waits until at
//! most the groups committed since the value's own (in program order) are pending; where that
//! count is unknown (after a loop that commits, for a loop's results) it waits for all.
//!
//! A loop that carries a staged block from one iteration to the next (the init a staged load
//! before the loop, the yield a staged load in its body) carries its shared-memory address: the
//! body's load writes alternately its own buffer and the init's, so it never overwrites the block
//! the iteration reads. The buffers live in dynamic shared memory; the kernel reports their size
//! ([`super::Emitted::shared_bytes`]) for its launches.

use std::collections::HashMap;

use tritonite_lang::ir::{Eviction, Kernel, OpKind, Region, ValueId};

use super::{mlir_type, Emitter, Lowered};
use crate::error::LowerError;

/// Commits that make a wait count unknown: added after a loop whose body commits.
const UNKNOWN_COMMITS: usize = 1 << 20;

/// The largest group count `cp.async.wait_group` is given; beyond it a use waits for all.
const MAX_WAIT_GROUPS: usize = 7;

/// The symbol of the dynamic shared memory: an external array of no size (`.extern .shared`
/// in PTX), which starts after the static shared memory and is as long as the launch says.
const DYNAMIC_SHARED: &str = "tritonite_staging";

/// Shared memory a program may use in all on sm_90 (static and dynamic), in bytes.
pub(crate) const MAX_SHARED: usize = 227 * 1024;

/// Whether `k` has a staged load (and so needs dynamic shared memory).
pub(crate) fn stages_loads(k: &Kernel) -> bool {
    let mut stages = false;
    tritonite_lang::ir::walk_ops(&k.body, &mut |op| {
        stages |= matches!(op.kind, OpKind::Load { staged: true, .. });
    });
    stages
}

/// The staging state of one kernel's emission.
#[derive(Default)]
pub(crate) struct Staging {
    /// The dynamic shared memory's start (`!llvm.ptr<3>`), when the kernel stages loads.
    base: Option<String>,
    /// Bytes of dynamic shared memory the buffers take so far.
    pub bytes: usize,
    /// Groups of copies committed so far in program order (see [`UNKNOWN_COMMITS`]).
    commits: usize,
    /// A loop's carried staged load → the address of the buffer it alternates with (the init's).
    partner: HashMap<ValueId, String>,
    /// The innermost carrying loop's iteration parity (`i1`): its staged loads write the partner's
    /// buffer when true.
    parity: Option<String>,
}

/// How a block of one layout and dtype sits in shared memory (see the module docs).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Elements a chunk.
    width: usize,
    /// Chunks a thread.
    chunks: usize,
    threads: usize,
    esize: usize,
}

impl Geometry {
    /// Bytes between a thread's consecutive chunks.
    fn chunk_stride(&self) -> usize {
        self.threads * self.width * self.esize
    }

    /// Bytes of the whole buffer.
    fn bytes(&self) -> usize {
        self.chunks * self.chunk_stride()
    }
}

impl Emitter<'_> {
    /// The staging geometry of block `v`; `None` when a chunk would be under 4 bytes (the
    /// smallest copy), and the block is then loaded into registers as usual.
    fn geometry(&self, v: ValueId) -> Option<Geometry> {
        let l = self.layouts.get(v)?;
        let esize = self.ty(v).dtype()?.size_bytes();
        let width = l.size_per_thread[1].min(16 / esize);
        (width * esize >= 4).then(|| Geometry {
            width,
            chunks: l.elems_per_thread() / width,
            threads: l.num_threads(),
            esize,
        })
    }

    /// When the kernel stages loads: the dynamic shared memory's start, at the kernel's entry.
    pub(crate) fn staging_prologue(&mut self) {
        if !stages_loads(self.k) {
            return;
        }
        self.staging.base = Some(self.assign(&format!("llvm.mlir.addressof @{DYNAMIC_SHARED} : !llvm.ptr<3>")));
    }

    /// The module-level declaration of the dynamic shared memory, when the kernel stages loads.
    pub(crate) fn staging_global(&self) -> Option<String> {
        self.staging.base.as_ref().map(|_| {
            format!(
                "llvm.mlir.global external @{DYNAMIC_SHARED}() {{addr_space = 3 : i32, alignment = 16 : i64}} : !llvm.array<0 x i8>"
            )
        })
    }

    /// `ptr` plus `bytes` (an `i32` SSA value or a constant), as `!llvm.ptr<3>`.
    fn shared_offset(&mut self, ptr: &str, bytes: impl std::fmt::Display) -> String {
        let b = bytes.to_string();
        let index_ty = if b.starts_with('%') { ", i32" } else { "" };
        self.assign(&format!("llvm.getelementptr {ptr}[{b}] : (!llvm.ptr<3>{index_ty}) -> !llvm.ptr<3>, i8"))
    }

    /// A new staging buffer of `geo`: this thread's first chunk in it.
    fn staging_buffer(&mut self, geo: &Geometry) -> String {
        let start = self.staging.bytes.next_multiple_of(16);
        self.staging.bytes = start + geo.bytes();
        let base = self.staging.base.clone().expect("the prologue finds every staged load");
        let chunk = self.const_i32((geo.width * geo.esize) as i64);
        let tid = self.tid.clone();
        let mine = self.assign(&format!("arith.muli {tid}, {chunk} : i32"));
        let at = self.shared_offset(&base, start);
        self.shared_offset(&at, mine)
    }

    /// Lowers a staged load of block pointer `ptr` under `mask` (zeros elsewhere) with result `r`.
    pub(crate) fn staged_load(
        &mut self,
        ptr: ValueId,
        mask: Option<ValueId>,
        r: ValueId,
    ) -> Result<Lowered, LowerError> {
        let Some(geo) = self.geometry(r) else {
            return Ok(Lowered::Block(self.load(ptr, mask, None, Eviction::Normal, r)?));
        };
        let own = self.staging_buffer(&geo);
        let dst = match (self.staging.partner.get(&r).cloned(), self.staging.parity.clone()) {
            (Some(partner), Some(parity)) => {
                self.assign(&format!("llvm.select {parity}, {partner}, {own} : i1, !llvm.ptr<3>"))
            }
            _ => own,
        };
        let Lowered::PtrBlock { base, offs } = self.get(ptr).clone() else {
            unreachable!("the verifier gives staged loads a block of pointers")
        };
        let elem = self.pointee(ptr);
        let n = self.elems(ptr);
        let w = self.group_width(ptr, mask);
        let mask_name = mask.map(|m| self.num(m));
        let bytes = w * geo.esize;
        let zero = self.const_i32(0);
        let full = self.const_i32(bytes as i64);
        for g in 0..n / w {
            let e = g * w;
            let at = (e / geo.width) * geo.chunk_stride() + (e % geo.width) * geo.esize;
            let to = self.shared_offset(&dst, at);
            let src = self.element_address(&base, &offs, e, n, elem);
            let bit = mask_name.as_ref().map(|m| self.slice(m, e, 1, n, "i1"));
            if bytes >= 4 {
                // Masked-off groups copy 0 bytes and fill with zeros.
                let size = match &bit {
                    Some(b) => self.assign(&format!("arith.select {b}, {full}, {zero} : i32")),
                    None => full.clone(),
                };
                let to32 = self.assign(&format!("llvm.ptrtoint {to} : !llvm.ptr<3> to i32"));
                let src64 = self.assign(&format!("llvm.ptrtoint {src} : !llvm.ptr<1> to i64"));
                // 16-byte copies bypass L1 (`cg`); smaller ones may only go through it.
                let cache = if bytes == 16 { "cg" } else { "ca" };
                self.asm_void(
                    &format!("cp.async.{cache}.shared.global [$0], [$1], {bytes}, $2;"),
                    "r,l,r",
                    &[to32, src64, size],
                    "i32, i64, i32",
                );
            } else {
                // A 2-byte element: through registers.
                let gt = elem.to_string();
                let load = format!("llvm.load {src} {{alignment = {bytes} : i64}} : !llvm.ptr<1> -> {gt}");
                let v = match &bit {
                    Some(b) => {
                        let z = self.constant(self.ty(r).dtype().expect("loads yield numbers"), 0.0, &gt);
                        self.predicated_value(b, &load, &z, &gt)
                    }
                    None => self.assign(&load),
                };
                self.line(&format!("llvm.store {v}, {to} {{alignment = {bytes} : i64}} : {gt}, !llvm.ptr<3>"));
            }
        }
        self.asm_void("cp.async.commit_group;", "", &[], "");
        self.staging.commits += 1;
        Ok(Lowered::Staged { ptr: dst, issued: Some(self.staging.commits) })
    }

    /// Block `v`'s staged values in registers: waits for its copies, then reads this thread's
    /// chunks.
    fn read_staged(&mut self, v: ValueId, ptr: &str, issued: Option<usize>) -> String {
        let geo = self.geometry(v).expect("staged blocks have a geometry");
        let pending = issued.map_or(0, |i| self.staging.commits - i);
        let groups = if pending > MAX_WAIT_GROUPS { 0 } else { pending };
        self.asm_void(&format!("cp.async.wait_group {groups};"), "", &[], "");
        let elem = mlir_type(self.ty(v).dtype().expect("staged blocks are numbers"));
        let n = geo.chunks * geo.width;
        let w = geo.width;
        let mut acc = self.constant(self.ty(v).dtype().expect("numbers"), 0.0, &format!("vector<{n}x{elem}>"));
        for c in 0..geo.chunks {
            let at = self.shared_offset(ptr, c * geo.chunk_stride());
            let part = self.assign(&format!(
                "llvm.load {at} {{alignment = {} : i64}} : !llvm.ptr<3> -> vector<{w}x{elem}>",
                w * geo.esize
            ));
            acc = if w == n {
                part
            } else {
                self.assign(&format!("vector.insert_strided_slice {part}, {acc} {{offsets = [{}], strides = [1]}} : vector<{w}x{elem}> into vector<{n}x{elem}>", c * w))
            };
        }
        acc
    }

    /// Reads every staged operand of an op into registers for the op's emission; returns what
    /// to restore after it (a staged block is read again at each use). A loop's initial values
    /// are left to the loop's lowering.
    pub(crate) fn read_staged_operands(&mut self, kind: &OpKind) -> Vec<(ValueId, Lowered)> {
        let operands = match kind {
            OpKind::For { lo, hi, step, .. } => vec![*lo, *hi, *step],
            OpKind::While { .. } | OpKind::Yield(_) => vec![],
            other => other.operands(),
        };
        let mut restore = vec![];
        for v in operands {
            // A value used twice by the op is in registers by its second use.
            if let Some(Lowered::Staged { ptr, issued }) = self.vals.get(&v).cloned() {
                let regs = self.read_staged(v, &ptr, issued);
                restore.push((v, self.vals.insert(v, Lowered::Block(regs)).expect("staged values are lowered")));
            }
        }
        restore
    }

    /// Value `v` in registers (read from shared memory when staged), for a loop's initial or
    /// yielded value.
    pub(crate) fn in_registers(&mut self, v: ValueId) -> String {
        match self.vals.get(&v).cloned() {
            Some(Lowered::Staged { ptr, issued }) => self.read_staged(v, &ptr, issued),
            _ => self.num(v),
        }
    }

    /// Which of a loop's carried values stay staged: the initial value staged and the yielded
    /// one a staged load of the body itself. Records each such load's partner buffer.
    pub(crate) fn staged_carries(&mut self, init: &[ValueId], body: &Region) -> Vec<bool> {
        let yields = match body.ops.last().map(|o| &o.kind) {
            Some(OpKind::Yield(vs)) => vs.clone(),
            _ => vec![],
        };
        let staged_in_body = |y: ValueId| {
            body.ops.iter().any(|op| matches!(op.kind, OpKind::Load { staged: true, .. }) && op.results[0] == y)
        };
        let mut carries = vec![];
        for (i, v) in init.iter().enumerate() {
            let carried = match (self.vals.get(v), yields.get(i)) {
                (Some(Lowered::Staged { ptr, .. }), Some(&y)) if staged_in_body(y) && self.geometry(y).is_some() => {
                    self.staging.partner.insert(y, ptr.clone());
                    true
                }
                _ => false,
            };
            carries.push(carried);
        }
        carries
    }

    /// Enters a loop body: the parity its carried staged loads alternate by (when it has any);
    /// returns the enclosing one and the commit count at the body's start.
    pub(crate) fn enter_staged_body(&mut self, parity: Option<String>) -> (Option<String>, usize) {
        let outer = std::mem::replace(&mut self.staging.parity, parity);
        (outer, self.staging.commits)
    }

    /// Leaves a loop body: restores the enclosing parity; after a body that committed copies,
    /// the counts of older values are unknown.
    pub(crate) fn leave_staged_body(&mut self, outer: Option<String>, start: usize) {
        self.staging.parity = outer;
        if self.staging.commits != start {
            self.staging.commits += UNKNOWN_COMMITS;
        }
    }
}
