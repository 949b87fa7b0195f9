//! The tracing builder: a kernel is a Rust function that calls these methods, and what it calls is
//! recorded as block IR.
//!
//! Values are cheap `Copy` handles, so kernels read like Triton:
//!
//! ```
//! use tritonite_lang::{DType, KernelBuilder};
//!
//! let k = KernelBuilder::new("add");
//! let x = k.ptr_arg("x", DType::F32);
//! let out = k.mut_ptr_arg("out", DType::F32);
//! let n = k.scalar_arg("n", DType::I32);
//! let block = k.meta("BLOCK_SIZE", 256);
//! let offs = k.program_id(0) * block + k.arange(0, block);
//! let mask = offs.lt(n);
//! let v = k.load_masked(x + offs, mask, 0.0);
//! k.store_masked(out + offs, v * 2.0, mask);
//! let kernel = k.finish().unwrap();
//! assert!(kernel.dump().contains("load"));
//! ```
//!
//! Errors do not interrupt tracing: the first one is kept and returned by [`KernelBuilder::finish`].

use std::cell::RefCell;
use std::ops;

use crate::error::LangError;
use crate::ir::{BinOp, CmpOp, Eviction, Kernel, Lit, Meta, OpKind, Param, ParamKind, ReduceOp, Region, UnOp, ValueId};
use crate::semantic::{self, Operand, State};
use crate::types::{DType, Elem, Type};
use crate::verify;

/// Records a kernel as it is traced. See the module docs for an example.
pub struct KernelBuilder {
    st: RefCell<State>,
}

/// A traced value: a scalar or a block, of numbers or pointers. `Copy`, tied to its builder.
#[derive(Clone, Copy)]
pub struct Value<'k> {
    k: &'k KernelBuilder,
    id: ValueId,
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.ty())
    }
}

/// Something usable as an operand: a traced [`Value`] or a Rust literal (`2.0`, `1`, `true`).
///
/// Literals are weakly typed: they take the dtype of the value they meet (see `semantic.rs`).
pub trait IntoOperand<'k> {
    /// Converts to the builder's operand form.
    #[doc(hidden)]
    fn into_operand(self) -> OperandOf<'k>;
}

/// An operand, as produced by [`IntoOperand`].
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct OperandOf<'k> {
    op: Operand,
    _k: std::marker::PhantomData<&'k KernelBuilder>,
}

impl<'k> IntoOperand<'k> for Value<'k> {
    fn into_operand(self) -> OperandOf<'k> {
        OperandOf { op: Operand::Value(self.id), _k: std::marker::PhantomData }
    }
}

macro_rules! literal_operand {
    ($($t:ty => $variant:ident as $conv:ty),*) => {$(
        impl<'k> IntoOperand<'k> for $t {
            fn into_operand(self) -> OperandOf<'k> {
                OperandOf { op: Operand::Lit(Lit::$variant(self as $conv)), _k: std::marker::PhantomData }
            }
        }
    )*};
}
literal_operand!(f64 => Float as f64, f32 => Float as f64, i64 => Int as i64, i32 => Int as i64,
    u32 => Int as i64, usize => Int as i64, bool => Bool as bool);

impl KernelBuilder {
    /// Starts a kernel called `name` (used as the GPU symbol: letters, digits and `_`).
    pub fn new(name: &str) -> KernelBuilder {
        let b = KernelBuilder { st: RefCell::new(State::new(name)) };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            b.st.borrow_mut().fail(
                "kernel",
                format!("name {name:?} is not a valid symbol"),
                Some("use letters, digits and _"),
                Type::scalar(DType::I32),
            );
        }
        b
    }

    fn wrap(&self, id: ValueId) -> Value<'_> {
        Value { k: self, id }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.st.borrow_mut())
    }

    fn param(&self, name: &str, kind: ParamKind) -> Value<'_> {
        self.wrap(self.with(|st| {
            if st.params.iter().any(|p| p.name == name) {
                st.fail("argument", format!("argument `{name}` is declared twice"), None, Type::scalar(DType::I32));
            }
            if st.regions.len() > 1 {
                st.fail(
                    "argument",
                    format!("argument `{name}` is declared inside a loop"),
                    Some("declare arguments first"),
                    Type::scalar(DType::I32),
                );
            }
            st.params.push(Param { name: name.to_string(), kind });
            let ty = match kind {
                ParamKind::Ptr(d) | ParamKind::MutPtr(d) => Type { elem: Elem::Ptr(d), shape: vec![] },
                ParamKind::Scalar(d) => Type::scalar(d),
            };
            st.emit(OpKind::Param(st.params.len() - 1), ty)
        }))
    }

    /// Declares a read-only pointer argument to elements of `dtype`.
    pub fn ptr_arg(&self, name: &str, dtype: DType) -> Value<'_> {
        self.param(name, ParamKind::Ptr(dtype))
    }

    /// Declares a pointer argument the kernel may store through.
    pub fn mut_ptr_arg(&self, name: &str, dtype: DType) -> Value<'_> {
        self.param(name, ParamKind::MutPtr(dtype))
    }

    /// Declares a scalar argument passed by value.
    pub fn scalar_arg(&self, name: &str, dtype: DType) -> Value<'_> {
        if dtype == DType::Bool {
            self.with(|st| {
                st.fail(
                    "argument",
                    format!("scalar argument `{name}` cannot be bool"),
                    Some("pass an i32"),
                    Type::scalar(DType::I32),
                )
            });
        }
        self.param(name, ParamKind::Scalar(dtype))
    }

    /// Records a compile-time meta-parameter and returns its value for use while tracing.
    pub fn meta(&self, name: &str, value: i64) -> i64 {
        self.with(|st| {
            if st.meta.iter().any(|m| m.name == name) {
                st.fail("meta", format!("meta-parameter `{name}` is recorded twice"), None, Type::scalar(DType::I32));
            }
            st.meta.push(Meta { name: name.to_string(), value });
        });
        value
    }

    /// The index of this program along grid `axis` (0, 1 or 2), as `i32`.
    pub fn program_id(&self, axis: u32) -> Value<'_> {
        self.grid_query(axis, OpKind::ProgramId(axis), "program_id")
    }

    /// The number of programs along grid `axis`, as `i32`.
    pub fn num_programs(&self, axis: u32) -> Value<'_> {
        self.grid_query(axis, OpKind::NumPrograms(axis), "num_programs")
    }

    /// Groups the programs along grid axis 0 into clusters of `size` consecutive programs (1 to
    /// 16; more than 8 needs a device that allows non-portable cluster sizes, as the H100 does), which run at the same time on neighbouring SMs and combine
    /// values with [`Value::cluster_sum`] and its kin (on the GPU through each other's shared
    /// memory). A launch's grid along axis 0 must be a multiple of `size`. Without a call, every
    /// program is a cluster of one.
    pub fn cluster(&self, size: u32) {
        self.with(|st| {
            if !(1..=16).contains(&size) {
                st.fail(
                    "cluster",
                    format!("a cluster of {size} programs"),
                    Some("use 1 to 16"),
                    Type::scalar(DType::I32),
                );
            } else if st.cluster != 1 {
                st.fail("cluster", "the cluster size is declared twice".into(), None, Type::scalar(DType::I32));
            }
            st.cluster = size;
        });
    }

    /// Lets the next launch on the stream start once every program of this launch has passed
    /// here (or exited), if that kernel [waits for this one](Self::wait_for_previous_launch):
    /// its programs then take SMs as these free them and wait there, rather than being
    /// scheduled after this launch's end (programmatic dependent launch, sm_90 and later; a
    /// no-op elsewhere and in the interpreter). Near a kernel's end, so that the next launch's
    /// programs do not crowd onto the few SMs that free up first.
    pub fn release_next_launch(&self) {
        self.with(|st| st.push_op(OpKind::ReleaseNextLaunch, vec![]));
    }

    /// Lets this kernel's launches start before the previous launch on the stream has finished
    /// (see [`Self::release_next_launch`]): each program waits at its start until that launch has
    /// finished and its writes are visible, so what it computes is the same as without it.
    pub fn wait_for_previous_launch(&self) {
        self.with(|st| st.waits_for_previous_launch = true);
    }

    /// This program's rank in its cluster (`program_id(0) % size`), as `i32`.
    pub fn cluster_rank(&self) -> Value<'_> {
        let size = self.with(|st| st.cluster) as i64;
        self.program_id(0) % size
    }

    /// This program's cluster (`program_id(0) / size`), as `i32`.
    pub fn cluster_id(&self) -> Value<'_> {
        let size = self.with(|st| st.cluster) as i64;
        self.program_id(0) / size
    }

    /// The number of clusters along grid axis 0, as `i32`.
    pub fn num_clusters(&self) -> Value<'_> {
        let size = self.with(|st| st.cluster) as i64;
        self.num_programs(0) / size
    }

    fn grid_query(&self, axis: u32, kind: OpKind, name: &str) -> Value<'_> {
        self.wrap(self.with(|st| {
            if axis > 2 {
                return st.fail(
                    name,
                    format!("axis {axis} does not exist; the grid has axes 0, 1, 2"),
                    None,
                    Type::scalar(DType::I32),
                );
            }
            st.emit(kind, Type::scalar(DType::I32))
        }))
    }

    /// The `i32` block `[start, start+1, …, end-1]`; its length must be a power of two.
    pub fn arange(&self, start: i64, end: i64) -> Value<'_> {
        self.wrap(self.with(|st| semantic::arange(st, start, end)))
    }

    /// A scalar constant of `dtype`.
    pub fn constant<'k>(&'k self, value: impl IntoOperand<'k>, dtype: DType) -> Value<'k> {
        let op = value.into_operand().op;
        self.wrap(self.with(|st| match op {
            Operand::Lit(l) => {
                let v = st.emit(
                    OpKind::Const(l),
                    Type::scalar(match l {
                        Lit::Float(_) => DType::F32,
                        Lit::Int(_) => DType::I32,
                        Lit::Bool(_) => DType::Bool,
                    }),
                );
                semantic::cast(st, v, dtype)
            }
            Operand::Value(v) => semantic::cast(st, v, dtype),
        }))
    }

    /// A block of `shape` filled with `value` converted to `dtype`.
    pub fn full<'k>(&'k self, shape: &[usize], value: impl IntoOperand<'k>, dtype: DType) -> Value<'k> {
        let c = self.constant(value, dtype);
        c.broadcast_to(shape)
    }

    /// A block of zeros.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Value<'_> {
        self.full(shape, 0, dtype)
    }

    /// Loads through `ptr` (a pointer or block of pointers), every lane in bounds.
    pub fn load<'k>(&'k self, ptr: Value<'k>) -> Value<'k> {
        self.wrap(self.with(|st| semantic::load(st, ptr.id, None, None, false, Eviction::Normal)))
    }

    /// Loads the lanes where `mask` holds; the others read as `other`.
    pub fn load_masked<'k>(&'k self, ptr: Value<'k>, mask: Value<'k>, other: impl IntoOperand<'k>) -> Value<'k> {
        self.load_masked_evict(ptr, mask, other, Eviction::Normal)
    }

    /// [`load_masked`](Self::load_masked) with a cache eviction policy (Triton's
    /// `eviction_policy`): [`Eviction::First`] for data read once, [`Eviction::Last`] for data
    /// read again soon. The values are the same under every policy.
    pub fn load_masked_evict<'k>(
        &'k self,
        ptr: Value<'k>,
        mask: Value<'k>,
        other: impl IntoOperand<'k>,
        evict: Eviction,
    ) -> Value<'k> {
        let other = other.into_operand().op;
        self.wrap(self.with(|st| semantic::load(st, ptr.id, Some(Operand::Value(mask.id)), Some(other), false, evict)))
    }

    /// Loads the lanes of block pointer `ptr` where `mask` holds (the others read as zero), staged
    /// through shared memory: the values are those of [`load_masked`](Self::load_masked), but on
    /// the GPU the block is copied into shared memory asynchronously and every use reads it from
    /// there. A staged block holds no registers while its copy is in flight, nor while a loop
    /// carries it to its next iteration — the way to prefetch a whole tile a loop ahead when the
    /// registers are needed for the current one. Shared memory per staged block: its bytes, twice
    /// when a loop carries it.
    pub fn load_staged<'k>(&'k self, ptr: Value<'k>, mask: Value<'k>) -> Value<'k> {
        self.wrap(
            self.with(|st| semantic::load(st, ptr.id, Some(Operand::Value(mask.id)), None, true, Eviction::Normal)),
        )
    }

    /// Stores `value` through `ptr`, every lane in bounds. The value is converted to the pointee dtype.
    pub fn store<'k>(&'k self, ptr: Value<'k>, value: impl IntoOperand<'k>) {
        let value = value.into_operand().op;
        self.with(|st| semantic::store(st, ptr.id, value, None, Eviction::Normal));
    }

    /// Stores the lanes of `value` where `mask` holds.
    pub fn store_masked<'k>(&'k self, ptr: Value<'k>, value: impl IntoOperand<'k>, mask: Value<'k>) {
        self.store_masked_evict(ptr, value, mask, Eviction::Normal);
    }

    /// [`store_masked`](Self::store_masked) with a cache eviction policy (see
    /// [`load_masked_evict`](Self::load_masked_evict)).
    pub fn store_masked_evict<'k>(
        &'k self,
        ptr: Value<'k>,
        value: impl IntoOperand<'k>,
        mask: Value<'k>,
        evict: Eviction,
    ) {
        let value = value.into_operand().op;
        self.with(|st| semantic::store(st, ptr.id, value, Some(Operand::Value(mask.id)), evict));
    }

    /// Adds `value` to the `i32` or `f32` at the single pointer `ptr` as one atomic
    /// read-modify-write per program, and returns the number it replaced, the same in every
    /// thread — Triton's `tl.atomic_add` on a scalar pointer. Programs can hand out work with it
    /// (`let tile = k.atomic_add(counter, 1)`). Relaxed: atomic, but it orders no other memory
    /// access of the program.
    pub fn atomic_add<'k>(&'k self, ptr: Value<'k>, value: impl IntoOperand<'k>) -> Value<'k> {
        let value = value.into_operand().op;
        self.wrap(self.with(|st| semantic::atomic_add(st, ptr.id, value, None)))
    }

    /// [`atomic_add`](Self::atomic_add) only where the scalar `mask` holds (in one program of a
    /// cluster, say); elsewhere memory is not touched and the result is zero.
    pub fn atomic_add_masked<'k>(&'k self, ptr: Value<'k>, value: impl IntoOperand<'k>, mask: Value<'k>) -> Value<'k> {
        let value = value.into_operand().op;
        self.wrap(self.with(|st| semantic::atomic_add(st, ptr.id, value, Some(Operand::Value(mask.id)))))
    }

    /// `acc + a · b`: the matrix product of `a: [M, K]` and `b: [K, N]` (both f16 or both bf16)
    /// added to the `f32` accumulator `acc: [M, N]` — Triton's `tl.dot(a, b, acc)`. On the GPU it
    /// runs on the tensor cores; each product is exact and the sums are `f32`.
    pub fn dot<'k>(&'k self, a: Value<'k>, b: Value<'k>, acc: Value<'k>) -> Value<'k> {
        self.wrap(self.with(|st| semantic::dot(st, a.id, b.id, acc.id)))
    }

    /// Elementwise `if cond { a } else { b }`, with promotion and broadcasting.
    pub fn where_<'k>(&'k self, cond: Value<'k>, a: impl IntoOperand<'k>, b: impl IntoOperand<'k>) -> Value<'k> {
        let (a, b) = (a.into_operand().op, b.into_operand().op);
        self.wrap(self.with(|st| semantic::select(st, Operand::Value(cond.id), a, b)))
    }

    /// A loop `for i in (lo..hi).step_by(step)` whose body maps the carried values to their next
    /// values. Returns the carried values after the last iteration (`init` if it runs zero times).
    ///
    /// ```
    /// # use tritonite_lang::{DType, KernelBuilder};
    /// let k = KernelBuilder::new("sum_row");
    /// let x = k.ptr_arg("x", DType::F32);
    /// let n = k.scalar_arg("n", DType::I32);
    /// let acc = k.zeros(&[128], DType::F32);
    /// let out = k.for_range(0, n, 128, &[acc], |i, c| {
    ///     let offs = i + k.arange(0, 128);
    ///     vec![c[0] + k.load_masked(x + offs, offs.lt(n), 0.0)]
    /// });
    /// let total = out[0].sum(0);
    /// # let _ = total; k.finish().unwrap();
    /// ```
    pub fn for_range<'k>(
        &'k self,
        lo: impl IntoOperand<'k>,
        hi: impl IntoOperand<'k>,
        step: impl IntoOperand<'k>,
        init: &[Value<'k>],
        body: impl FnOnce(Value<'k>, &[Value<'k>]) -> Vec<Value<'k>>,
    ) -> Vec<Value<'k>> {
        let (lo, hi, step) = (lo.into_operand().op, hi.into_operand().op, step.into_operand().op);
        if let Operand::Lit(l) = step {
            if l.as_i64() <= 0 {
                self.with(|st| {
                    st.fail(
                        "for_range",
                        format!("step {l} is not positive"),
                        Some("loops count upwards with a step > 0"),
                        Type::scalar(DType::I32),
                    )
                });
            }
        }
        let (lo, hi, step, iv, carried) = self.with(|st| {
            let lo = semantic::loop_bound(st, "lower bound", lo);
            let hi = semantic::loop_bound(st, "upper bound", hi);
            let step = semantic::loop_bound(st, "step", step);
            let iv = st.new_value(Type::scalar(DType::I32));
            let carried: Vec<ValueId> = init
                .iter()
                .map(|v| {
                    let ty = st.ty(v.id).clone();
                    st.new_value(ty)
                })
                .collect();
            let mut args = vec![iv];
            args.extend(&carried);
            st.regions.push(Region { args, ops: vec![] });
            (lo, hi, step, iv, carried)
        });
        let carried_vals: Vec<Value<'k>> = carried.iter().map(|&c| self.wrap(c)).collect();
        let next = body(self.wrap(iv), &carried_vals);
        self.wrap_all(self.with(|st| {
            let body = close_carrying_region(st, "for_range", &next, &carried);
            let results = new_like(st, &carried);
            let init = init.iter().map(|v| v.id).collect();
            st.push_op(OpKind::For { lo, hi, step, init, body }, results.clone());
            results
        }))
    }

    /// A loop `while cond(carried) { carried = body(carried) }`: `cond` maps the carried values to
    /// a scalar `bool` (go on), `body` maps them to their next values. Returns the carried values
    /// `cond` last saw (`init` if it is false at once). The loop runs as long as `cond` holds, so
    /// it is up to the kernel that it ends; in a cluster, a loop that holds a cluster reduction
    /// needs `cond` to come out the same in every program of the cluster.
    ///
    /// ```
    /// # use tritonite_lang::{DType, KernelBuilder};
    /// // Halves x[0] until it is below 1, and counts the steps.
    /// let k = KernelBuilder::new("halvings");
    /// let x = k.ptr_arg("x", DType::F32);
    /// let out = k.mut_ptr_arg("out", DType::I32);
    /// let start = [k.load(x), k.full(&[], 0, DType::I32)];
    /// let end = k.while_loop(&start, |c| c[0].ge(1.0), |c| vec![c[0] * 0.5, c[1] + 1]);
    /// k.store(out, end[1]);
    /// # k.finish().unwrap();
    /// ```
    pub fn while_loop<'k>(
        &'k self,
        init: &[Value<'k>],
        cond: impl FnOnce(&[Value<'k>]) -> Value<'k>,
        body: impl FnOnce(&[Value<'k>]) -> Vec<Value<'k>>,
    ) -> Vec<Value<'k>> {
        let open = |st: &mut State| {
            let args = new_like(st, &init.iter().map(|v| v.id).collect::<Vec<_>>());
            st.regions.push(Region { args: args.clone(), ops: vec![] });
            args
        };
        let test_args = self.with(open);
        let go_on = cond(&self.wrap_all(test_args.clone()));
        let test = self.with(|st| {
            let c = if *st.ty(go_on.id) == Type::scalar(DType::Bool) {
                go_on.id
            } else {
                let t = st.ty(go_on.id).clone();
                st.fail(
                    "while_loop",
                    format!("the test returned {t}, not a scalar bool"),
                    Some("compare scalars in the test, e.g. `c[0].lt(n)`"),
                    Type::scalar(DType::Bool),
                )
            };
            st.push_op(OpKind::Yield(vec![c]), vec![]);
            st.regions.pop().expect("pushed above")
        });
        let body_args = self.with(open);
        let next = body(&self.wrap_all(body_args.clone()));
        self.wrap_all(self.with(|st| {
            let body = close_carrying_region(st, "while_loop", &next, &body_args);
            let results = new_like(st, &body_args);
            let init = init.iter().map(|v| v.id).collect();
            st.push_op(OpKind::While { init, cond: test, body }, results.clone());
            results
        }))
    }

    fn wrap_all(&self, ids: Vec<ValueId>) -> Vec<Value<'_>> {
        ids.into_iter().map(|id| self.wrap(id)).collect()
    }

    /// Ends tracing: returns the verified kernel or the first error met.
    pub fn finish(self) -> Result<Kernel, LangError> {
        let st = self.st.into_inner();
        if let Some(e) = st.error {
            return Err(e);
        }
        let mut regions = st.regions;
        let body = regions.pop().expect("the kernel body region always exists");
        if !regions.is_empty() {
            return Err(LangError {
                kernel: st.name,
                op: "for_range".into(),
                detail: "a loop body was left open".into(),
                hint: None,
            });
        }
        let kernel = Kernel {
            name: st.name,
            params: st.params,
            meta: st.meta,
            cluster: st.cluster,
            waits_for_previous_launch: st.waits_for_previous_launch,
            body,
            types: st.types,
        };
        verify::verify(&kernel)?;
        Ok(kernel)
    }
}

impl<'k> Value<'k> {
    /// The IR id of this value.
    pub fn id(&self) -> ValueId {
        self.id
    }

    /// The type of this value.
    pub fn ty(&self) -> Type {
        self.k.st.borrow().ty(self.id).clone()
    }

    /// The element dtype, `None` for pointers.
    pub fn dtype(&self) -> Option<DType> {
        self.ty().dtype()
    }

    /// The block shape (`[]` for scalars).
    pub fn shape(&self) -> Vec<usize> {
        self.ty().shape
    }

    fn lift(&self, f: impl FnOnce(&mut State) -> ValueId) -> Value<'k> {
        self.k.wrap(self.k.with(f))
    }

    fn binary(self, op: BinOp, rhs: impl IntoOperand<'k>) -> Value<'k> {
        let rhs = rhs.into_operand().op;
        self.lift(|st| semantic::binary(st, op, Operand::Value(self.id), rhs))
    }

    fn compare(self, op: CmpOp, rhs: impl IntoOperand<'k>) -> Value<'k> {
        let rhs = rhs.into_operand().op;
        self.lift(|st| semantic::compare(st, op, Operand::Value(self.id), rhs))
    }

    fn unary(self, op: UnOp) -> Value<'k> {
        self.lift(|st| semantic::unary(st, op, self.id))
    }

    /// Elementwise `self < rhs`.
    pub fn lt(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Lt, rhs)
    }
    /// Elementwise `self <= rhs`.
    pub fn le(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Le, rhs)
    }
    /// Elementwise `self > rhs`.
    pub fn gt(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Gt, rhs)
    }
    /// Elementwise `self >= rhs`.
    pub fn ge(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Ge, rhs)
    }
    /// Elementwise `self == rhs`.
    pub fn equal(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Eq, rhs)
    }
    /// Elementwise `self != rhs`.
    pub fn not_equal(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.compare(CmpOp::Ne, rhs)
    }
    /// Elementwise maximum.
    pub fn maximum(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.binary(BinOp::Max, rhs)
    }
    /// Elementwise minimum.
    pub fn minimum(self, rhs: impl IntoOperand<'k>) -> Value<'k> {
        self.binary(BinOp::Min, rhs)
    }
    /// Converts to `dtype` (round to nearest even; float to integer truncates).
    pub fn cast(self, dtype: DType) -> Value<'k> {
        self.lift(|st| semantic::cast(st, self.id, dtype))
    }
    /// Square root.
    pub fn sqrt(self) -> Value<'k> {
        self.unary(UnOp::Sqrt)
    }
    /// Reciprocal square root.
    pub fn rsqrt(self) -> Value<'k> {
        self.unary(UnOp::Rsqrt)
    }
    /// Natural exponential.
    pub fn exp(self) -> Value<'k> {
        self.unary(UnOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(self) -> Value<'k> {
        self.unary(UnOp::Log)
    }
    /// Absolute value.
    pub fn abs(self) -> Value<'k> {
        self.unary(UnOp::Abs)
    }
    /// Sum along `axis`.
    pub fn sum(self, axis: usize) -> Value<'k> {
        self.lift(|st| semantic::reduce(st, ReduceOp::Sum, self.id, axis))
    }
    /// Maximum along `axis`.
    pub fn max(self, axis: usize) -> Value<'k> {
        self.lift(|st| semantic::reduce(st, ReduceOp::Max, self.id, axis))
    }
    /// Minimum along `axis`.
    pub fn min(self, axis: usize) -> Value<'k> {
        self.lift(|st| semantic::reduce(st, ReduceOp::Min, self.id, axis))
    }
    /// The elementwise sum of this value over the programs of the cluster (see
    /// [`KernelBuilder::cluster`]), added in the same order in every program (the interpreter:
    /// rank order), so every program of the cluster gets the same bits.
    /// Every program of a cluster must reach it the same number of times.
    pub fn cluster_sum(self) -> Value<'k> {
        self.lift(|st| semantic::cluster_reduce(st, ReduceOp::Sum, self.id))
    }
    /// The elementwise maximum over the programs of the cluster (see [`Value::cluster_sum`]).
    pub fn cluster_max(self) -> Value<'k> {
        self.lift(|st| semantic::cluster_reduce(st, ReduceOp::Max, self.id))
    }
    /// The elementwise minimum over the programs of the cluster (see [`Value::cluster_sum`]).
    pub fn cluster_min(self) -> Value<'k> {
        self.lift(|st| semantic::cluster_reduce(st, ReduceOp::Min, self.id))
    }
    /// The transpose of a 2-D block (`[R, C]` → `[C, R]`). The GPU lowering takes it as an operand
    /// of [`KernelBuilder::dot`], e.g. `dot(x, w.trans(), acc)` for `x · wᵀ`.
    pub fn trans(self) -> Value<'k> {
        self.lift(|st| semantic::trans(st, self.id))
    }
    /// Inserts a size-1 dimension at `axis`.
    pub fn expand_dims(self, axis: usize) -> Value<'k> {
        self.lift(|st| semantic::expand_dims(st, self.id, axis))
    }
    /// Broadcasts to `shape` (numpy rules).
    pub fn broadcast_to(self, shape: &[usize]) -> Value<'k> {
        self.lift(|st| semantic::broadcast_to(st, self.id, shape))
    }
}

macro_rules! binary_operator {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl<'k, R: IntoOperand<'k>> ops::$trait<R> for Value<'k> {
            type Output = Value<'k>;
            fn $method(self, rhs: R) -> Value<'k> {
                self.binary(BinOp::$op, rhs)
            }
        }
        binary_operator!(@lit $trait $method $op: f64, f32, i64, i32);
    )*};
    (@lit $trait:ident $method:ident $op:ident: $($t:ty),*) => {$(
        impl<'k> ops::$trait<Value<'k>> for $t {
            type Output = Value<'k>;
            fn $method(self, rhs: Value<'k>) -> Value<'k> {
                let lhs = self.into_operand().op;
                rhs.lift(|st| semantic::binary(st, BinOp::$op, lhs, Operand::Value(rhs.id)))
            }
        }
    )*};
}
binary_operator!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Rem);

impl<'k, R: IntoOperand<'k>> ops::BitAnd<R> for Value<'k> {
    type Output = Value<'k>;
    fn bitand(self, rhs: R) -> Value<'k> {
        self.binary(BinOp::And, rhs)
    }
}

impl<'k, R: IntoOperand<'k>> ops::BitOr<R> for Value<'k> {
    type Output = Value<'k>;
    fn bitor(self, rhs: R) -> Value<'k> {
        self.binary(BinOp::Or, rhs)
    }
}

impl<'k> ops::Neg for Value<'k> {
    type Output = Value<'k>;
    fn neg(self) -> Value<'k> {
        self.unary(UnOp::Neg)
    }
}

impl<'k> ops::Not for Value<'k> {
    type Output = Value<'k>;
    fn not(self) -> Value<'k> {
        self.unary(UnOp::Not)
    }
}

/// Traces a kernel: calls `f` with a fresh builder and returns the verified kernel.
pub fn build_kernel(name: &str, f: impl FnOnce(&KernelBuilder)) -> Result<Kernel, LangError> {
    let k = KernelBuilder::new(name);
    f(&k);
    k.finish()
}

/// New values of the types of `like`.
fn new_like(st: &mut State, like: &[ValueId]) -> Vec<ValueId> {
    like.iter()
        .map(|c| {
            let ty = st.ty(*c).clone();
            st.new_value(ty)
        })
        .collect()
}

/// Ends the innermost open region, a loop body, with a yield of `next` (one value per carried
/// value in `carried`; a next value of another dtype is converted back to the carried one), and
/// returns it.
fn close_carrying_region(st: &mut State, op: &str, next: &[Value<'_>], carried: &[ValueId]) -> Region {
    if next.len() != carried.len() {
        st.fail(
            op,
            format!("the body returned {} values for {} loop-carried values", next.len(), carried.len()),
            Some("return one next value per initial value"),
            Type::scalar(DType::I32),
        );
    }
    let mut yields = vec![];
    for (i, (n, c)) in next.iter().zip(carried).enumerate() {
        let (nt, ct) = (st.ty(n.id).clone(), st.ty(*c).clone());
        let v = if nt == ct {
            n.id
        } else if nt.elem != ct.elem && nt.shape == ct.shape && nt.dtype().is_some() && ct.dtype().is_some() {
            // 9) A carried value keeps its type: the next value is converted back to it.
            semantic::cast(st, n.id, ct.dtype().expect("checked above"))
        } else {
            st.fail(
                op,
                format!("loop-carried value {i} starts as {ct} but the body returns {nt}"),
                Some("keep the carried shape fixed; broadcast or reduce inside the body"),
                ct.clone(),
            )
        };
        yields.push(v);
    }
    st.push_op(OpKind::Yield(yields), vec![]);
    st.regions.pop().expect("the loop opened its region")
}
