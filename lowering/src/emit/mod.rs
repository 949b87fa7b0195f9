//! Emission of one kernel as an MLIR `gpu.module` (text), from the block IR and the chosen layouts.
//!
//! Each block value becomes, in every thread, an MLIR vector of the elements that thread owns (see
//! [`crate::layout`]); scalars stay scalars; pointer blocks are a scalar base pointer plus a vector
//! of element offsets. Op families live in their own files: [`elementwise`], [`memory`], [`reduce`].

mod dot;
mod elementwise;
mod memory;
mod reduce;
mod staged;

pub(crate) use staged::stages_loads;

use std::collections::HashMap;
use std::fmt::Write as _;

use tritonite_lang::ir::{Kernel, OpKind, ParamKind, Region, ValueId};
use tritonite_lang::{DType, Elem, Type};

use crate::axis_info::{self, AxisInfo};
use crate::error::LowerError;
use crate::layout::{self, BlockedLayout, Layouts, WARP_SIZE};
use crate::CompileOptions;

/// How a block-IR value exists in every thread.
#[derive(Clone, Debug)]
pub(crate) enum Lowered {
    /// A scalar number, the same in every thread.
    Scalar(String),
    /// A block of numbers: this thread's elements as one vector.
    Block(String),
    /// A scalar pointer.
    Ptr(String),
    /// A block of pointers: a base pointer plus per-element offsets (`None`: all zero).
    PtrBlock { base: String, offs: Option<(String, DType)> },
    /// A staged block in shared memory (see [`staged`]): this thread's first chunk (an
    /// `!llvm.ptr<3>`), and the commit count right after its copies (`None`: unknown).
    Staged { ptr: String, issued: Option<usize> },
}

/// The MLIR spelling of a dtype.
pub(crate) fn mlir_type(d: DType) -> &'static str {
    match d {
        DType::Bool => "i1",
        DType::I32 => "i32",
        DType::I64 => "i64",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F32 => "f32",
    }
}

/// The bit pattern of a float constant, which MLIR reads exactly (`0x3F800000 : f32`).
pub(crate) fn float_bits(d: DType, v: f64) -> String {
    match d {
        DType::F32 => format!("0x{:08X}", (v as f32).to_bits()),
        DType::F16 => format!("0x{:04X}", half::f16::from_f32(v as f32).to_bits()),
        DType::BF16 => format!("0x{:04X}", half::bf16::from_f32(v as f32).to_bits()),
        _ => unreachable!("float_bits takes float dtypes"),
    }
}

pub(crate) struct Emitter<'a> {
    pub k: &'a Kernel,
    /// The layout of every block value.
    pub layouts: Layouts,
    pub info: HashMap<ValueId, AxisInfo>,
    pub vals: HashMap<ValueId, Lowered>,
    body: String,
    indent: usize,
    next: usize,
    /// Shared-memory buffers: (name, element dtype, length).
    pub smem: Vec<(String, DType, usize)>,
    /// The thread index as `i32`.
    pub tid: String,
    /// `trans` results (which only feed dots) and the blocks they transpose.
    pub trans_of: HashMap<ValueId, ValueId>,
    /// Each cluster reduction's mbarriers and use counter, by its result (see `reduce`).
    pub cluster_sites: HashMap<ValueId, reduce::ClusterSite>,
    /// Whether the cluster barrier the prologue arrived at is still to be waited at, before the
    /// first top-level op that holds a cluster reduction.
    pub cluster_wait_pending: bool,
    /// Block reductions that run as one exchange with the cluster reduction of their result, by
    /// the block reduction's result → the cluster reduction's ([`reduce::fused_reductions`]).
    pub fused_reductions: HashMap<ValueId, ValueId>,
    /// Staged loads' buffers and copy groups.
    staging: staged::Staging,
    /// Whether the target overlaps launches ([`crate::Target::overlaps_launches`]).
    overlaps_launches: bool,
}

impl<'a> Emitter<'a> {
    /// A fresh SSA name.
    pub fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    /// Appends one line of MLIR at the current indentation.
    pub fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.body.push_str("  ");
        }
        self.body.push_str(text);
        self.body.push('\n');
    }

    /// Emits `%r = <rhs>` and returns `%r`.
    pub fn assign(&mut self, rhs: &str) -> String {
        let r = self.fresh();
        self.line(&format!("{r} = {rhs}"));
        r
    }

    pub fn ty(&self, v: ValueId) -> &'a Type {
        self.k.ty(v)
    }

    /// The layout of block `v`.
    pub fn layout(&self, v: ValueId) -> BlockedLayout {
        self.layouts.get(v).unwrap_or_else(|| unreachable!("{v} is a scalar; only blocks have layouts"))
    }

    /// Elements of `v` each thread holds (0 for a scalar).
    pub fn elems(&self, v: ValueId) -> usize {
        self.layouts.get(v).map_or(0, |l| l.elems_per_thread())
    }

    /// The MLIR type value `v` has in one thread.
    pub fn thread_type(&self, v: ValueId) -> String {
        let elem = match self.ty(v).elem {
            Elem::Scalar(d) => mlir_type(d),
            Elem::Ptr(_) => "!llvm.ptr<1>",
        };
        match self.elems(v) {
            0 => elem.to_string(),
            n => format!("vector<{n}x{elem}>"),
        }
    }

    pub fn get(&self, v: ValueId) -> &Lowered {
        &self.vals[&v]
    }

    /// The SSA name of a number value (scalar or block).
    pub fn num(&self, v: ValueId) -> String {
        match self.get(v) {
            Lowered::Scalar(s) | Lowered::Block(s) => s.clone(),
            other => unreachable!("{v} is a pointer ({other:?}); the verifier keeps pointers out of arithmetic"),
        }
    }

    /// A new shared-memory buffer of `len` elements of `d` (16-byte aligned): its SSA name and
    /// its memref type.
    pub fn shared_buffer(&mut self, d: DType, len: usize) -> (String, String) {
        let name = format!("%smem{}", self.smem.len());
        self.smem.push((name.clone(), d, len));
        (name, format!("memref<{len}x{}, #gpu.address_space<workgroup>>", mlir_type(d)))
    }

    /// A new 16-byte aligned shared buffer of `len` elements of `d`, as an `!llvm.ptr<3>`.
    pub fn shared_ptr(&mut self, d: DType, len: usize) -> String {
        let (buf, memref) = self.shared_buffer(d, len);
        let idx = self.assign(&format!("memref.extract_aligned_pointer_as_index {buf} : {memref} -> index"));
        let i = self.assign(&format!("arith.index_cast {idx} : index to i64"));
        self.assign(&format!("llvm.inttoptr {i} : i64 to !llvm.ptr<3>"))
    }

    /// An `i32` constant.
    pub fn const_i32(&mut self, v: i64) -> String {
        self.assign(&format!("arith.constant {v} : i32"))
    }

    /// A constant of dtype `d` with value `v`, splatted to `thread_ty` when that is a vector.
    pub fn constant(&mut self, d: DType, v: f64, thread_ty: &str) -> String {
        let lit = match d {
            DType::Bool => (if v != 0.0 { "true" } else { "false" }).to_string(),
            d if d.is_int() => format!("{}", v as i64),
            d => float_bits(d, v),
        };
        if thread_ty.starts_with("vector") {
            self.assign(&format!("arith.constant dense<{lit}> : {thread_ty}"))
        } else if d == DType::Bool {
            // A scalar `true`/`false` carries its type (`i1`) in the literal.
            self.assign(&format!("arith.constant {lit}"))
        } else {
            self.assign(&format!("arith.constant {lit} : {thread_ty}"))
        }
    }

    fn region(&mut self, region: &Region) -> Result<Option<Vec<ValueId>>, LowerError> {
        for op in &region.ops {
            if let OpKind::Yield(vs) = &op.kind {
                return Ok(Some(vs.clone()));
            }
            let fused = op.results.first().is_some_and(|r| self.fused_reductions.contains_key(r));
            if self.cluster_wait_pending && (fused || reduce::holds_cluster_reduce(op)) {
                self.cluster_wait();
                self.cluster_wait_pending = false;
            }
            let restore = self.read_staged_operands(&op.kind);
            self.op(&op.kind, &op.results)?;
            for (v, l) in restore {
                self.vals.insert(v, l);
            }
        }
        Ok(None)
    }

    fn op(&mut self, kind: &OpKind, results: &[ValueId]) -> Result<(), LowerError> {
        let r = results.first().copied();
        let lowered = match kind {
            OpKind::Param(i) => {
                let name = format!("%arg{i}");
                Some(if self.k.params[*i].kind.is_ptr() { Lowered::Ptr(name) } else { Lowered::Scalar(name) })
            }
            OpKind::Const(l) => {
                let d = self.ty(r.expect("const has a result")).dtype().expect("constants are numbers");
                Some(Lowered::Scalar(self.constant(d, l.as_f64(), mlir_type(d))))
            }
            OpKind::ProgramId(a) => Some(Lowered::Scalar(self.grid_query("block_id", *a))),
            OpKind::NumPrograms(a) => Some(Lowered::Scalar(self.grid_query("grid_dim", *a))),
            OpKind::Arange { start, .. } => Some(self.arange(*start, r.expect("arange has a result"))),
            OpKind::Splat(v) | OpKind::Broadcast(v) => Some(self.broadcast(*v, r.expect("splat has a result"))),
            // 1-D → 2-D: the source is laid out as the rows or columns of its 2-D result already.
            OpKind::ExpandDims(v, _) if !self.ty(*v).is_scalar() => Some(self.get(*v).clone()),
            OpKind::ExpandDims(v, _) => Some(self.broadcast(*v, r.expect("expand_dims has a result"))),
            OpKind::Binary(b, x, y) => Some(Lowered::Block(self.binary(*b, *x, *y))),
            OpKind::Cmp(c, x, y) => Some(Lowered::Block(self.compare(*c, *x, *y))),
            OpKind::Unary(u, x) => Some(Lowered::Block(self.unary(*u, *x))),
            OpKind::Select(c, a, b) => {
                let (cn, an, bn) = (self.num(*c), self.num(*a), self.num(*b));
                let (ct, at) = (self.thread_type(*c), self.thread_type(*a));
                Some(Lowered::Block(self.assign(&format!("arith.select {cn}, {an}, {bn} : {ct}, {at}"))))
            }
            OpKind::Cast(v) => Some(Lowered::Block(self.cast(*v, r.expect("cast has a result")))),
            OpKind::AddPtr(p, o) => Some(self.add_ptr(*p, *o)),
            OpKind::Load { ptr, mask, staged: true, .. } => {
                Some(self.staged_load(*ptr, *mask, r.expect("load has a result"))?)
            }
            OpKind::Load { ptr, mask, other, evict, .. } => {
                Some(Lowered::Block(self.load(*ptr, *mask, *other, *evict, r.expect("load has a result"))?))
            }
            OpKind::Store { ptr, value, mask, evict } => {
                self.store(*ptr, *value, *mask, *evict)?;
                None
            }
            OpKind::AtomicAdd { ptr, value, mask } => Some(Lowered::Scalar(self.atomic_add(*ptr, *value, *mask))),
            OpKind::ReleaseNextLaunch => {
                if self.overlaps_launches {
                    self.asm_void("griddepcontrol.launch_dependents;", "", &[], "");
                }
                None
            }
            OpKind::Reduce(op, v, axis) => {
                Some(Lowered::Block(match self.fused_reductions.get(&r.expect("reductions have a result")) {
                    Some(&c) => self.cluster_reduce_fused(*op, *v, *axis, c)?,
                    None => self.reduce(*op, *v, *axis)?,
                }))
            }
            // Done with the block reduction it follows.
            OpKind::ClusterReduce(_, v) if self.fused_reductions.contains_key(v) => Some(self.get(*v).clone()),
            OpKind::ClusterReduce(op, v) => {
                Some(Lowered::Block(self.cluster_reduce(*op, *v, r.expect("cluster reductions have a result"))?))
            }
            OpKind::Trans(v) => {
                self.trans_of.insert(r.expect("trans has a result"), *v);
                None
            }
            OpKind::Dot { a, b, acc } => Some(Lowered::Block(self.dot(*a, *b, *acc, r.expect("dot has a result"))?)),
            OpKind::For { lo, hi, step, init, body } => {
                self.for_loop(*lo, *hi, *step, init, body, results)?;
                None
            }
            OpKind::While { init, cond, body } => {
                self.while_loop(init, cond, body, results)?;
                None
            }
            OpKind::Yield(_) => unreachable!("handled by region"),
        };
        if let (Some(r), Some(l)) = (r, lowered) {
            // Scalars and blocks share the `Block` arm above; normalize by the IR type.
            let l = match l {
                Lowered::Block(s) if self.ty(r).is_scalar() => Lowered::Scalar(s),
                other => other,
            };
            self.vals.insert(r, l);
        }
        Ok(())
    }

    fn grid_query(&mut self, what: &str, axis: u32) -> String {
        let dim = ["x", "y", "z"][axis as usize];
        let idx = self.assign(&format!("gpu.{what} {dim}"));
        self.assign(&format!("arith.index_cast {idx} : index to i32"))
    }

    /// This thread's lane in its warp and its warp in the program, as `i32`.
    pub fn lane_and_warp(&mut self) -> (String, String) {
        let tid = self.tid.clone();
        let ws = self.const_i32(WARP_SIZE as i64);
        let lane = self.assign(&format!("arith.remui {tid}, {ws} : i32"));
        let warp = self.assign(&format!("arith.divui {tid}, {ws} : i32"));
        (lane, warp)
    }

    /// This thread's coordinate among the threads along dimension `d` of `l`, as `i32`.
    pub fn thread_coord(&mut self, l: &BlockedLayout, d: usize) -> String {
        if l.threads(d) == 1 {
            return self.const_i32(0);
        }
        let (tpw, wpc) = (l.threads_per_warp, l.warps_per_cta);
        let (lane, warp) = self.lane_and_warp();
        let (tc, wc) = (self.const_i32(tpw[1] as i64), self.const_i32(wpc[1] as i64));
        let (lane_d, warp_d) = if d == 1 {
            (
                self.assign(&format!("arith.remui {lane}, {tc} : i32")),
                self.assign(&format!("arith.remui {warp}, {wc} : i32")),
            )
        } else {
            (
                self.assign(&format!("arith.divui {lane}, {tc} : i32")),
                self.assign(&format!("arith.divui {warp}, {wc} : i32")),
            )
        };
        let tpw_d = self.const_i32(tpw[d] as i64);
        let base = self.assign(&format!("arith.muli {warp_d}, {tpw_d} : i32"));
        self.assign(&format!("arith.addi {base}, {lane_d} : i32"))
    }

    /// The coordinate along `d` of the thread whose elements this thread holds (itself, or the
    /// owner it is a replica of).
    pub fn owner_coord(&mut self, l: &BlockedLayout, d: usize) -> String {
        let t = self.thread_coord(l, d);
        if l.has_replicas(d) {
            let used = self.const_i32(l.used(d) as i64);
            self.assign(&format!("arith.remui {t}, {used} : i32"))
        } else {
            t
        }
    }

    /// The index along `d` of the first element this thread owns in `l`; its `i`-th element
    /// along `d` sits `l.global_index(d, 0, i)` further on.
    pub fn owned_base(&mut self, l: &BlockedLayout, d: usize) -> String {
        let u = self.owner_coord(l, d);
        let spt = self.const_i32(l.size_per_thread[d] as i64);
        self.assign(&format!("arith.muli {u}, {spt} : i32"))
    }

    /// True (`i1`) when this thread is no replica along dimension `d` of `l`.
    pub fn owns_along(&mut self, l: &BlockedLayout, d: usize) -> String {
        let t = self.thread_coord(l, d);
        let used = self.const_i32(l.used(d) as i64);
        self.assign(&format!("arith.cmpi ult, {t}, {used} : i32"))
    }

    /// True (`i1`) in the program's first thread (thread 0), which writes what all threads hold
    /// alike.
    pub fn is_first_thread(&mut self) -> String {
        let zero = self.const_i32(0);
        let tid = self.tid.clone();
        self.assign(&format!("arith.cmpi eq, {tid}, {zero} : i32"))
    }

    /// True (`i1`) when this thread owns its elements of `l` (is no replica), `None` when every
    /// thread does.
    pub fn is_owner(&mut self, l: &BlockedLayout) -> Option<String> {
        let mut pred: Option<String> = None;
        for d in 0..2 {
            if l.has_replicas(d) {
                let c = self.owns_along(l, d);
                pred = Some(match pred {
                    Some(p) => self.assign(&format!("arith.andi {p}, {c} : i1")),
                    None => c,
                });
            }
        }
        pred
    }

    /// The dimension a block that is 1-D at heart runs along (columns unless it is a column).
    fn long_dim(l: &BlockedLayout) -> usize {
        if l.shape[1] == 1 && l.shape[0] > 1 {
            0
        } else {
            1
        }
    }

    fn arange(&mut self, start: i64, r: ValueId) -> Lowered {
        let l = self.layout(r);
        let d = Self::long_dim(&l);
        let e = l.elems_per_thread();
        let statics: Vec<String> = (0..e).map(|i| (l.global_index(d, 0, i) as i64 + start).to_string()).collect();
        let cst = self.assign(&format!("arith.constant dense<[{}]> : vector<{e}xi32>", statics.join(", ")));
        let base = self.owned_base(&l, d);
        let splat = self.assign(&format!("vector.broadcast {base} : i32 to vector<{e}xi32>"));
        Lowered::Block(self.assign(&format!("arith.addi {cst}, {splat} : vector<{e}xi32>")))
    }

    /// Splat of a scalar, broadcast of a block's size-1 dimensions, or expand_dims of a scalar.
    fn broadcast(&mut self, v: ValueId, r: ValueId) -> Lowered {
        let rt = self.thread_type(r);
        let (src, d) = match self.get(v).clone() {
            Lowered::Scalar(s) => {
                let et = mlir_type(self.ty(r).dtype().expect("number blocks have a dtype"));
                return Lowered::Block(self.assign(&format!("vector.broadcast {s} : {et} to {rt}")));
            }
            Lowered::Ptr(p) | Lowered::PtrBlock { base: p, offs: None } => {
                return Lowered::PtrBlock { base: p, offs: None }
            }
            Lowered::PtrBlock { base, offs: Some((o, d)) } => {
                let o = self.repeat(v, r, &o, mlir_type(d));
                return Lowered::PtrBlock { base, offs: Some((o, d)) };
            }
            Lowered::Block(s) => (s, self.ty(v).dtype().expect("number blocks have a dtype")),
            Lowered::Staged { .. } => unreachable!("staged operands are read into registers before each op"),
        };
        Lowered::Block(self.repeat(v, r, &src, mlir_type(d)))
    }

    /// The thread vector `src` of block `v` with its size-1 dimensions repeated to `r`'s shape.
    fn repeat(&mut self, v: ValueId, r: ValueId, src: &str, et: &str) -> String {
        let (vl, rl) = (self.layout(v), self.layout(r));
        let (n, m) = (vl.elems_per_thread(), rl.elems_per_thread());
        if n == 1 {
            let s = self.assign(&format!("vector.extract {src}[0] : {et} from vector<1x{et}>"));
            return self.assign(&format!("vector.broadcast {s} : {et} to vector<{m}x{et}>"));
        }
        let mut idx = vec![];
        for e0 in 0..rl.elems(0) {
            for e1 in 0..rl.elems(1) {
                let s0 = if vl.shape[0] == 1 { 0 } else { e0 };
                let s1 = if vl.shape[1] == 1 { 0 } else { e1 };
                idx.push(vl.flat(s0, s1).to_string());
            }
        }
        self.assign(&format!("vector.shuffle {src}, {src} [{}] : vector<{n}x{et}>, vector<{n}x{et}>", idx.join(", ")))
    }

    fn for_loop(
        &mut self,
        lo: ValueId,
        hi: ValueId,
        step: ValueId,
        init: &[ValueId],
        body: &Region,
        results: &[ValueId],
    ) -> Result<(), LowerError> {
        let (lo, hi, step) = (self.num(lo), self.num(hi), self.num(step));
        let iv = self.fresh();
        self.vals.insert(body.args[0], Lowered::Scalar(iv.clone()));
        let c = self.carries(init, body);
        let res = self.fresh();
        let head = if c.inits.is_empty() {
            format!("scf.for {iv} = {lo} to {hi} step {step} : i32 {{")
        } else {
            format!(
                "{res}:{} = scf.for {iv} = {lo} to {hi} step {step} iter_args({}) -> ({}) : i32 {{",
                c.inits.len(),
                c.inits.join(", "),
                c.types.join(", ")
            )
        };
        self.line(&head);
        self.indent += 1;
        let (outer, body_start) = self.enter_staged_body(c.parity.clone());
        self.bind_carried(&body.args[1..], init, &c, &c.names, body_start);
        let yields = self.region(body)?.unwrap_or_default();
        let names = self.carried_yields(&yields, &c, c.parity.as_deref());
        if !names.is_empty() {
            self.line(&format!("scf.yield {} : {}", names.join(", "), c.types.join(", ")));
        }
        self.leave_staged_body(outer, body_start);
        self.indent -= 1;
        self.line("}");
        self.bind_loop_results(results, init, &c, &res);
        Ok(())
    }

    /// `scf.while`: the test in the before region, the body in the after region. Carried staged
    /// blocks stay in shared memory as in [`Self::for_loop`], with the parity passed through the
    /// test.
    fn while_loop(
        &mut self,
        init: &[ValueId],
        cond: &Region,
        body: &Region,
        results: &[ValueId],
    ) -> Result<(), LowerError> {
        let c = self.carries(init, body);
        // The test's arguments: the carried values, then the parity.
        let test_args: Vec<String> = c.names.iter().chain(&c.parity).cloned().collect();
        let res = self.fresh();
        let tys = c.types.join(", ");
        let lhs = if c.inits.is_empty() { String::new() } else { format!("{res}:{} = ", c.inits.len()) };
        self.line(&format!("{lhs}scf.while ({}) : ({tys}) -> ({tys}) {{", c.inits.join(", ")));
        self.indent += 1;
        // The test: commits no carried copies (it yields only whether to go on).
        let (outer, start) = self.enter_staged_body(None);
        self.bind_carried(&cond.args, init, &c, &test_args, start);
        let go_on = self.region(cond)?.expect("the verifier checks a while test yields");
        let go_on = self.num(go_on[0]);
        let passed = if tys.is_empty() { String::new() } else { format!(" {} : {tys}", test_args.join(", ")) };
        self.line(&format!("scf.condition({go_on}){passed}"));
        self.leave_staged_body(outer, start);
        self.indent -= 1;
        self.line("} do {");
        self.indent += 1;
        let body_args: Vec<String> = c.types.iter().map(|_| self.fresh()).collect();
        if !body_args.is_empty() {
            let decl: Vec<String> = body_args.iter().zip(&c.types).map(|(a, t)| format!("{a}: {t}")).collect();
            self.line(&format!("^bb0({}):", decl.join(", ")));
        }
        let body_parity = c.parity.as_ref().map(|_| body_args.last().cloned().expect("the parity is carried"));
        let (outer, start) = self.enter_staged_body(body_parity.clone());
        self.bind_carried(&body.args, init, &c, &body_args, start);
        let yields = self.region(body)?.unwrap_or_default();
        let names = self.carried_yields(&yields, &c, body_parity.as_deref());
        if names.is_empty() {
            self.line("scf.yield");
        } else {
            self.line(&format!("scf.yield {} : {tys}", names.join(", ")));
        }
        self.leave_staged_body(outer, start);
        self.indent -= 1;
        self.line("}");
        self.bind_loop_results(results, init, &c, &res);
        Ok(())
    }

    /// A loop's carried values: staged blocks the loop carries stay in shared memory (their
    /// address is carried, and an `i1` parity picks the buffer the body's load writes); other
    /// staged inits are read into registers.
    fn carries(&mut self, init: &[ValueId], body: &Region) -> Carries {
        let staged = self.staged_carries(init, body);
        let parity = staged.contains(&true).then(|| self.fresh());
        let (mut types, mut inits, mut names) = (vec![], vec![], vec![]);
        for (i, s) in init.iter().zip(&staged) {
            let name = self.fresh();
            if *s {
                let Some(Lowered::Staged { ptr, .. }) = self.vals.get(i).cloned() else { unreachable!() };
                types.push("!llvm.ptr<3>".to_string());
                inits.push(format!("{name} = {ptr}"));
            } else {
                types.push(self.thread_type(*i));
                inits.push(format!("{name} = {}", self.in_registers(*i)));
            }
            names.push(name);
        }
        if let Some(p) = &parity {
            let start = self.assign("arith.constant false");
            types.push("i1".to_string());
            inits.push(format!("{p} = {start}"));
        }
        Carries { staged, parity, types, inits, names }
    }

    /// Binds a loop region's arguments `args` (one per carried value) to the names `names`; a
    /// carried staged block was issued before the region started (at commit count `start`).
    fn bind_carried(&mut self, args: &[ValueId], init: &[ValueId], c: &Carries, names: &[String], start: usize) {
        for (((a, i), s), name) in args.iter().zip(init).zip(&c.staged).zip(names) {
            let l = if *s {
                Lowered::Staged { ptr: name.clone(), issued: Some(start) }
            } else {
                self.lowered_like(*i, name.clone())
            };
            self.vals.insert(*a, l);
        }
    }

    /// What a loop body yields: the next carried values (a staged block's address), then the
    /// flipped `parity` when the loop has one.
    fn carried_yields(&mut self, yields: &[ValueId], c: &Carries, parity: Option<&str>) -> Vec<String> {
        let mut names = vec![];
        for (v, s) in yields.iter().zip(&c.staged) {
            names.push(match (s, self.vals.get(v).cloned()) {
                (true, Some(Lowered::Staged { ptr, .. })) => ptr,
                _ => self.in_registers(*v),
            });
        }
        if let Some(p) = parity {
            let t = self.assign("arith.constant true");
            names.push(self.assign(&format!("arith.xori {p}, {t} : i1")));
        }
        names
    }

    /// Binds a loop's results to the loop op's results `res#i`.
    fn bind_loop_results(&mut self, results: &[ValueId], init: &[ValueId], c: &Carries, res: &str) {
        for (i, ((r, v), s)) in results.iter().zip(init).zip(&c.staged).enumerate() {
            let name = format!("{res}#{i}");
            let l = if *s { Lowered::Staged { ptr: name, issued: None } } else { self.lowered_like(*v, name) };
            self.vals.insert(*r, l);
        }
    }

    fn lowered_like(&self, v: ValueId, name: String) -> Lowered {
        if self.ty(v).is_scalar() {
            Lowered::Scalar(name)
        } else {
            Lowered::Block(name)
        }
    }
}

/// A loop's carried values as lowered ([`Emitter::carries`]).
struct Carries {
    /// Which carried values stay staged in shared memory.
    staged: Vec<bool>,
    /// The parity's name at the loop's start, when the loop carries a staged block.
    parity: Option<String>,
    /// The carried types (the parity's last).
    types: Vec<String>,
    /// `name = initial value`, one each (the parity's last).
    inits: Vec<String>,
    /// The names the carried values (not the parity) start under.
    names: Vec<String>,
}

/// Static shared memory a kernel may use (48 KiB).
const MAX_STATIC_SHARED: usize = 48 * 1024;

/// `trans` is lowered only as a dot operand (where it decides how the operand is placed).
fn check_trans_uses(k: &Kernel) -> Result<(), LowerError> {
    let mut trans = std::collections::HashSet::new();
    tritonite_lang::ir::walk_ops(&k.body, &mut |op| {
        if matches!(op.kind, OpKind::Trans(_)) {
            trans.extend(op.results.iter().copied());
        }
    });
    let mut bad = None;
    tritonite_lang::ir::walk_ops(&k.body, &mut |op| {
        let uses = match &op.kind {
            OpKind::Dot { acc, .. } => vec![*acc],
            other => other.operands(),
        };
        bad = bad.or(uses.into_iter().find(|v| trans.contains(v)));
    });
    match bad {
        Some(v) => Err(LowerError::Unsupported {
            kernel: k.name.clone(),
            what: format!("{v}: a trans result used other than as an operand of dot"),
        }),
        None => Ok(()),
    }
}

/// A kernel's `gpu.module` and what its launches need.
pub(crate) struct Emitted {
    /// The MLIR text.
    pub mlir: String,
    /// Bytes of dynamic shared memory a program needs (staged loads' buffers).
    pub shared_bytes: usize,
}

/// Emits the whole `gpu.module` for `kernel`.
pub(crate) fn emit_module(k: &Kernel, opts: &CompileOptions) -> Result<Emitted, LowerError> {
    let narrowest = {
        let mut n = 4usize;
        tritonite_lang::ir::walk_ops(&k.body, &mut |op| {
            if let OpKind::Load { ptr, .. } | OpKind::Store { ptr, .. } = &op.kind {
                if let Elem::Ptr(d) = k.ty(*ptr).elem {
                    n = n.min(d.size_bytes());
                }
            }
        });
        n
    };
    let mut spec = vec![1; k.params.len()];
    for &(i, d) in &opts.divisibility {
        if let Some(s) = spec.get_mut(i) {
            *s = d;
        }
    }
    let mut e = Emitter {
        k,
        layouts: layout::assign(k, opts.num_warps as usize, 16 / narrowest)?,
        info: axis_info::analyze(k, &spec),
        vals: HashMap::new(),
        body: String::new(),
        indent: 3,
        next: 0,
        smem: vec![],
        tid: String::new(),
        trans_of: HashMap::new(),
        cluster_sites: HashMap::new(),
        cluster_wait_pending: false,
        fused_reductions: HashMap::new(),
        staging: staged::Staging::default(),
        overlaps_launches: opts.target.overlaps_launches(),
    };
    check_trans_uses(k)?;
    let tid = e.assign("gpu.thread_id x");
    e.tid = e.assign(&format!("arith.index_cast {tid} : index to i32"));
    // Before anything that may read what the previous launch writes.
    if k.waits_for_previous_launch && e.overlaps_launches {
        e.asm_void("griddepcontrol.wait;", "", &[], "");
    }
    e.cluster_prologue();
    e.staging_prologue();
    e.region(&k.body)?;
    e.line("gpu.return");

    let params: Vec<String> = k
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| match p.kind {
            ParamKind::Ptr(_) | ParamKind::MutPtr(_) => format!("%arg{i}: !llvm.ptr<1>"),
            ParamKind::Scalar(d) => format!("%arg{i}: {}", mlir_type(d)),
        })
        .collect();
    let workgroup = if e.smem.is_empty() {
        String::new()
    } else {
        let bufs: Vec<String> = e
            .smem
            .iter()
            .map(|(n, d, len)| {
                let t = mlir_type(*d);
                format!("{n} : memref<{len}x{t}, #gpu.address_space<workgroup>> {{llvm.align = 16 : i64}}")
            })
            .collect();
        format!(" workgroup({})", bufs.join(", "))
    };
    let smem_bytes: usize = e.smem.iter().map(|(_, d, len)| len * d.size_bytes()).sum();
    if smem_bytes > MAX_STATIC_SHARED {
        return Err(LowerError::Unsupported {
            kernel: k.name.clone(),
            what: format!("{smem_bytes} bytes of shared memory (at most {MAX_STATIC_SHARED}; use smaller dot blocks)"),
        });
    }
    let shared_bytes = e.staging.bytes;
    if smem_bytes + shared_bytes > staged::MAX_SHARED {
        return Err(LowerError::Unsupported {
            kernel: k.name.clone(),
            what: format!(
                "{} bytes of shared memory, {shared_bytes} of them for staged loads (at most {}; stage smaller \
                 blocks or fewer of them)",
                smem_bytes + shared_bytes,
                staged::MAX_SHARED
            ),
        });
    }
    let threads = opts.num_warps * 32;
    let mut out = String::new();
    let _ = writeln!(out, "module attributes {{gpu.container_module}} {{");
    let _ = writeln!(out, "  gpu.module @tritonite {{");
    if let Some(global) = e.staging_global() {
        let _ = writeln!(out, "    {global}");
    }
    let _ = writeln!(
        out,
        "    gpu.func @{}({}){workgroup} kernel attributes {{gpu.known_block_size = array<i32: {threads}, 1, 1>, nvvm.maxntid = array<i32: {threads}, 1, 1>}} {{",
        k.name,
        params.join(", ")
    );
    out.push_str(&e.body);
    let _ = writeln!(out, "    }}\n  }}\n}}");
    Ok(Emitted { mlir: out, shared_bytes })
}
