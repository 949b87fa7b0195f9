//! Bad kernels must fail with clear errors: `KernelBuilder::finish` returns a `LangError` naming the
//! op, the shapes and dtypes involved (and usually a hint); the verifier rejects hand-built bad IR;
//! the interpreter reports bad launches with `InterpError`s naming the parameter and the program.

use std::cell::Cell;

use tritonite_lang::interp::{run, Arg, Buffer};
use tritonite_lang::ir::{BinOp, CmpOp, Eviction, Kernel, Lit, Op, OpKind, Param, ParamKind, Region, ValueId};
use tritonite_lang::verify::verify;
use tritonite_lang::{DType, InterpError, KernelBuilder, LangError, Type, Value};

/// Finishes a kernel that must fail and returns its error.
fn fails(k: KernelBuilder) -> LangError {
    match k.finish() {
        Ok(kernel) => panic!("expected an error, the kernel verified:\n{}", kernel.dump()),
        Err(e) => e,
    }
}

/// Asserts the error's kernel and op, and that its detail mentions every one of `words`.
fn check(e: &LangError, kernel: &str, op: &str, words: &[&str]) {
    assert_eq!(e.kernel, kernel, "{e}");
    assert_eq!(e.op, op, "{e}");
    for w in words {
        assert!(e.detail.contains(w), "detail {:?} should mention {w:?}", e.detail);
    }
    // The message is readable on its own.
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("kernel `{kernel}`: {op}: ")), "{msg}");
    assert!(msg.contains(&e.detail), "{msg}");
}

fn hint_mentions(e: &LangError, word: &str) {
    let hint = e.hint.as_deref().unwrap_or_else(|| panic!("expected a hint in {e}"));
    assert!(hint.contains(word), "hint {hint:?} should mention {word:?}");
    assert!(e.to_string().ends_with(&format!("({hint})")), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Builder errors
// ---------------------------------------------------------------------------------------------

#[test]
fn shape_mismatch_in_add() {
    let k = KernelBuilder::new("shapes");
    let a = k.arange(0, 128);
    let b = k.arange(0, 64);
    let _ = a + b;
    let e = fails(k);
    check(&e, "shapes", "add", &["128", "64", "i32", "do not broadcast"]);
    hint_mentions(&e, "expand_dims");
}

#[test]
fn shape_mismatch_in_2d_binary_and_compare() {
    let k = KernelBuilder::new("shapes2d");
    let a = k.arange(0, 16).expand_dims(1).broadcast_to(&[16, 8]);
    let b = k.arange(0, 4).expand_dims(0);
    let _ = a.lt(b);
    let e = fails(k);
    check(&e, "shapes2d", "lt", &["[16, 8]", "[1, 4]"]);
}

#[test]
fn broadcast_to_incompatible_shape() {
    let k = KernelBuilder::new("bcast");
    let a = k.arange(0, 128);
    let _ = a.broadcast_to(&[4, 64]);
    let e = fails(k);
    check(&e, "bcast", "broadcast", &["i32[128]", "[4, 64]"]);
}

#[test]
fn store_through_read_only_pointer() {
    let k = KernelBuilder::new("ro_store");
    let x = k.ptr_arg("x", DType::F32);
    let offs = k.arange(0, 128);
    let v = k.load(x + offs);
    k.store(x + offs, v * 2.0);
    let e = fails(k);
    check(&e, "ro_store", "store", &["`x`", "read-only"]);
    hint_mentions(&e, "mut_ptr_arg");
}

#[test]
fn arithmetic_on_bool_mask() {
    // bool with a number.
    let k = KernelBuilder::new("mask_arith");
    let mask = k.arange(0, 128).lt(100);
    let _ = mask + 1;
    let e = fails(k);
    check(&e, "mask_arith", "add", &["bool", "bool[128]", "number"]);
    hint_mentions(&e, "where");

    // bool with bool.
    let k = KernelBuilder::new("mask_mul");
    let mask = k.arange(0, 128).lt(100);
    let _ = mask * mask;
    let e = fails(k);
    check(&e, "mask_mul", "mul", &["bool[128]"]);
    hint_mentions(&e, "where");

    // Negating a mask (`!` is the way).
    let k = KernelBuilder::new("mask_neg");
    let mask = k.arange(0, 128).lt(100);
    let _ = -mask;
    let e = fails(k);
    check(&e, "mask_neg", "neg", &["bool[128]"]);

    // Reducing a mask.
    let k = KernelBuilder::new("mask_sum");
    let mask = k.arange(0, 128).lt(100);
    let _ = mask.sum(0);
    let e = fails(k);
    check(&e, "mask_sum", "sum", &["bool[128]"]);
}

#[test]
fn float_math_on_integers() {
    for name in ["sqrt", "rsqrt", "exp", "log"] {
        let k = KernelBuilder::new("int_math");
        let v = k.arange(0, 128);
        let _ = match name {
            "sqrt" => v.sqrt(),
            "rsqrt" => v.rsqrt(),
            "exp" => v.exp(),
            _ => v.log(),
        };
        let e = fails(k);
        check(&e, "int_math", name, &["i32[128]"]);
        hint_mentions(&e, "f32");
    }
}

#[test]
fn remainder_on_floats() {
    let k = KernelBuilder::new("frem");
    let v = k.arange(0, 32).cast(DType::F32);
    let _ = v % 3;
    let e = fails(k);
    check(&e, "frem", "rem", &["f32[32]"]);
}

#[test]
fn arange_not_power_of_two() {
    let k = KernelBuilder::new("ar");
    let _ = k.arange(0, 100);
    let e = fails(k);
    check(&e, "ar", "arange", &["100", "powers of two"]);
    hint_mentions(&e, "power of two");

    for (start, end) in [(5, 5), (10, 2), (3, 10)] {
        let k = KernelBuilder::new("ar");
        let _ = k.arange(start, end);
        let e = fails(k);
        check(&e, "ar", "arange", &[&format!("arange({start}, {end})")]);
    }

    // Power of two, but not within i32.
    let k = KernelBuilder::new("ar");
    let _ = k.arange(1 << 40, (1 << 40) + 64);
    check(&fails(k), "ar", "arange", &["i32"]);
}

#[test]
fn load_mask_of_wrong_dtype() {
    let k = KernelBuilder::new("mask_dtype");
    let x = k.ptr_arg("x", DType::F32);
    let offs = k.arange(0, 128);
    let _ = k.load_masked(x + offs, offs, 0.0);
    let e = fails(k);
    check(&e, "mask_dtype", "load", &["mask", "i32[128]", "not bool"]);
    hint_mentions(&e, "lt");
}

#[test]
fn load_mask_of_wrong_shape() {
    let k = KernelBuilder::new("mask_shape");
    let x = k.ptr_arg("x", DType::F32);
    let offs = k.arange(0, 128);
    let mask = k.arange(0, 64).lt(10);
    let _ = k.load_masked(x + offs, mask, 0.0);
    let e = fails(k);
    check(&e, "mask_shape", "load", &["bool[64]", "[128]"]);
}

#[test]
fn store_mask_of_wrong_dtype() {
    let k = KernelBuilder::new("store_mask");
    let out = k.mut_ptr_arg("out", DType::F32);
    let offs = k.arange(0, 128);
    k.store_masked(out + offs, 1.0, offs.cast(DType::F32));
    let e = fails(k);
    check(&e, "store_mask", "store", &["f32[128]", "not bool"]);
}

#[test]
fn store_value_of_wrong_shape() {
    let k = KernelBuilder::new("store_shape");
    let out = k.mut_ptr_arg("out", DType::F32);
    let offs = k.arange(0, 64);
    k.store(out + offs, k.zeros(&[128], DType::F32));
    let e = fails(k);
    check(&e, "store_shape", "store", &["f32[128]", "*f32[64]"]);
}

#[test]
fn load_from_a_non_pointer() {
    let k = KernelBuilder::new("not_ptr");
    let offs = k.arange(0, 16);
    let _ = k.load(offs);
    let e = fails(k);
    check(&e, "not_ptr", "load", &["i32[16]", "not a pointer"]);
}

#[test]
fn pointer_offset_by_float() {
    let k = KernelBuilder::new("fptr");
    let x = k.ptr_arg("x", DType::F32);
    let _ = x + k.arange(0, 16).cast(DType::F32);
    let e = fails(k);
    check(&e, "fptr", "add", &["*f32", "f32[16]", "integers"]);
}

#[test]
fn reduction_axis_out_of_range() {
    let k = KernelBuilder::new("red_axis");
    let v = k.arange(0, 128);
    let _ = v.sum(1);
    let e = fails(k);
    check(&e, "red_axis", "sum", &["axis 1", "i32[128]"]);

    let k = KernelBuilder::new("red_axis2");
    let v = k.zeros(&[8, 16], DType::F32);
    let _ = v.max(2);
    check(&fails(k), "red_axis2", "max", &["axis 2", "f32[8, 16]"]);

    let k = KernelBuilder::new("red_scalar");
    let v = k.constant(1.0, DType::F32);
    let _ = v.min(0);
    check(&fails(k), "red_scalar", "min", &["axis 0", "f32"]);
}

#[test]
fn expand_dims_axis_out_of_range() {
    let k = KernelBuilder::new("exp_axis");
    let _ = k.arange(0, 8).expand_dims(2);
    check(&fails(k), "exp_axis", "expand_dims", &["axis 2", "rank 1"]);
}

#[test]
fn loop_body_returns_wrong_number_of_values() {
    let k = KernelBuilder::new("loop_count");
    let acc = k.zeros(&[128], DType::F32);
    let _ = k.for_range(0, 10, 1, &[acc], |_, c| vec![c[0], c[0]]);
    let e = fails(k);
    check(&e, "loop_count", "for_range", &["2 values", "1 loop-carried"]);
    hint_mentions(&e, "one next value");

    let k = KernelBuilder::new("loop_none");
    let acc = k.zeros(&[128], DType::F32);
    let _ = k.for_range(0, 10, 1, &[acc], |_, _| vec![]);
    check(&fails(k), "loop_none", "for_range", &["0 values", "1 loop-carried"]);
}

#[test]
fn loop_body_returns_wrong_shape() {
    let k = KernelBuilder::new("loop_shape");
    let acc = k.zeros(&[128], DType::F32);
    let _ = k.for_range(0, 10, 1, &[acc], |_, _| vec![k.zeros(&[64], DType::F32)]);
    let e = fails(k);
    check(&e, "loop_shape", "for_range", &["f32[128]", "f32[64]"]);

    // Reducing the carried block inside the body changes its shape too.
    let k = KernelBuilder::new("loop_reduce");
    let acc = k.zeros(&[128], DType::F32);
    let _ = k.for_range(0, 10, 1, &[acc], |_, c| vec![c[0].sum(0)]);
    check(&fails(k), "loop_reduce", "for_range", &["starts as f32[128]", "returns f32"]);
}

#[test]
fn loop_bounds_and_step() {
    let k = KernelBuilder::new("loop_step");
    let _ = k.for_range(0, 10, 0, &[], |_, _| vec![]);
    let e = fails(k);
    check(&e, "loop_step", "for_range", &["step 0"]);
    hint_mentions(&e, "step");

    let k = KernelBuilder::new("loop_bound");
    let hi = k.scalar_arg("hi", DType::F32);
    let _ = k.for_range(0, hi, 1, &[], |_, _| vec![]);
    check(&fails(k), "loop_bound", "for_range", &["upper bound", "f32", "not an i32 scalar"]);
}

#[test]
fn value_defined_in_loop_body_used_after_loop() {
    let k = KernelBuilder::new("leak");
    let out = k.mut_ptr_arg("out", DType::F32);
    let acc = k.zeros(&[128], DType::F32);
    let leaked: Cell<Option<Value<'_>>> = Cell::new(None);
    let res = k.for_range(0, 4, 1, &[acc], |_, c| {
        let next = c[0] + 1.0;
        leaked.set(Some(next * 3.0));
        vec![next]
    });
    let inner = leaked.get().expect("the body ran while tracing");
    let inner_id = inner.id();
    // Tracing accepts it; the verifier sees the value is not visible after the loop.
    let bad = res[0] * inner;
    k.store(out + k.arange(0, 128), bad);
    let e = fails(k);
    check(&e, "leak", "mul", &[&inner_id.to_string(), "not defined", "loop"]);
}

#[test]
fn program_id_axis_out_of_range() {
    let k = KernelBuilder::new("pid");
    let _ = k.program_id(3);
    let e = fails(k);
    check(&e, "pid", "program_id", &["axis 3", "0, 1, 2"]);

    let k = KernelBuilder::new("nprog");
    let _ = k.num_programs(7);
    check(&fails(k), "nprog", "num_programs", &["axis 7"]);
}

#[test]
fn duplicate_argument_names() {
    let k = KernelBuilder::new("dup");
    let _ = k.ptr_arg("x", DType::F32);
    let _ = k.scalar_arg("x", DType::I32);
    let e = fails(k);
    check(&e, "dup", "argument", &["`x`", "twice"]);
}

#[test]
fn bad_arguments_and_names() {
    let k = KernelBuilder::new("bool_arg");
    let _ = k.scalar_arg("flag", DType::Bool);
    check(&fails(k), "bool_arg", "argument", &["`flag`", "bool"]);

    let k = KernelBuilder::new("late_arg");
    let _ = k.for_range(0, 2, 1, &[], |_, _| {
        let _ = k.ptr_arg("x", DType::F32);
        vec![]
    });
    check(&fails(k), "late_arg", "argument", &["`x`", "inside a loop"]);

    let k = KernelBuilder::new("meta_twice");
    let _ = k.meta("BLOCK", 64);
    let _ = k.meta("BLOCK", 128);
    check(&fails(k), "meta_twice", "meta", &["`BLOCK`", "twice"]);

    let k = KernelBuilder::new("9bad name");
    check(&fails(k), "9bad name", "kernel", &["\"9bad name\"", "not a valid symbol"]);
}

#[test]
fn first_error_wins() {
    let k = KernelBuilder::new("first");
    let _ = k.arange(0, 100);
    let _ = k.program_id(9);
    let _ = k.arange(0, 8) + k.arange(0, 16);
    let e = fails(k);
    check(&e, "first", "arange", &["100"]);
}

// ---------------------------------------------------------------------------------------------
// The verifier on hand-built IR
// ---------------------------------------------------------------------------------------------

fn op(kind: OpKind, results: &[u32]) -> Op {
    Op { kind, results: results.iter().map(|&r| ValueId(r)).collect() }
}

fn kernel(params: Vec<Param>, ops: Vec<Op>, types: Vec<Type>) -> Kernel {
    Kernel {
        name: "hand".into(),
        params,
        meta: vec![],
        cluster: 1,
        waits_for_previous_launch: false,
        body: Region { args: vec![], ops },
        types,
    }
}

fn rejected(k: &Kernel) -> LangError {
    match verify(k) {
        Ok(()) => panic!("the verifier accepted bad IR:\n{}", k.dump()),
        Err(e) => e,
    }
}

#[test]
fn verifier_rejects_binary_on_different_types() {
    let ops = |b: Lit| {
        vec![
            op(OpKind::Const(Lit::Float(1.0)), &[0]),
            op(OpKind::Const(b), &[1]),
            op(OpKind::Binary(BinOp::Add, ValueId(0), ValueId(1)), &[2]),
        ]
    };
    let f32_ = Type::scalar(DType::F32);
    // The well-typed version verifies, so the rejection below is about the operand types.
    let good = kernel(vec![], ops(Lit::Float(2.0)), vec![f32_.clone(), f32_.clone(), f32_.clone()]);
    verify(&good).unwrap();

    let bad = kernel(vec![], ops(Lit::Int(2)), vec![f32_.clone(), Type::scalar(DType::I32), f32_]);
    let e = rejected(&bad);
    check(&e, "hand", "add", &["%0: f32", "%1: i32", "differ"]);
}

#[test]
fn verifier_rejects_wrong_result_type_and_shape_mismatch() {
    // add of two f32[4] blocks typed as an i32[4] result.
    let ops = vec![
        op(OpKind::Arange { start: 0, end: 4 }, &[0]),
        op(OpKind::Cast(ValueId(0)), &[1]),
        op(OpKind::Binary(BinOp::Mul, ValueId(1), ValueId(1)), &[2]),
    ];
    let types = vec![Type::block(DType::I32, &[4]), Type::block(DType::F32, &[4]), Type::block(DType::I32, &[4])];
    check(&rejected(&kernel(vec![], ops, types)), "hand", "mul", &["%2: i32[4]", "f32[4]"]);

    // Binary on blocks of different shapes (no implicit broadcast in the IR).
    let ops = vec![
        op(OpKind::Arange { start: 0, end: 128 }, &[0]),
        op(OpKind::Arange { start: 0, end: 64 }, &[1]),
        op(OpKind::Binary(BinOp::Add, ValueId(0), ValueId(1)), &[2]),
    ];
    let types = vec![Type::block(DType::I32, &[128]), Type::block(DType::I32, &[64]), Type::block(DType::I32, &[128])];
    check(&rejected(&kernel(vec![], ops, types)), "hand", "add", &["i32[128]", "i32[64]"]);
}

#[test]
fn verifier_rejects_use_before_definition_and_stray_yield() {
    let f32_ = Type::scalar(DType::F32);
    let ops =
        vec![op(OpKind::Binary(BinOp::Add, ValueId(1), ValueId(1)), &[0]), op(OpKind::Const(Lit::Float(1.0)), &[1])];
    check(&rejected(&kernel(vec![], ops, vec![f32_.clone(), f32_.clone()])), "hand", "add", &["%1", "not defined"]);

    let ops = vec![op(OpKind::Const(Lit::Float(1.0)), &[0]), op(OpKind::Yield(vec![ValueId(0)]), &[])];
    check(&rejected(&kernel(vec![], ops, vec![f32_.clone()])), "hand", "yield", &["loop body"]);

    let ops = vec![op(OpKind::Const(Lit::Float(1.0)), &[0]), op(OpKind::Const(Lit::Float(2.0)), &[0])];
    check(&rejected(&kernel(vec![], ops, vec![f32_])), "hand", "ir", &["%0", "defined twice"]);
}

/// A loop region that does not end with a yield is reported against its own loop: `for_range`'s
/// body, `while_loop`'s test or body.
#[test]
fn verifier_rejects_loop_regions_without_a_yield() {
    let i32_ = Type::scalar(DType::I32);
    let bool_ = Type::scalar(DType::Bool);
    let yield_of = |v: u32| op(OpKind::Yield(vec![ValueId(v)]), &[]);
    // %0 = 0; %1 = while (%2 = %0) { %3 = %2 < 4; yield %3 } do (%4) { %5 = %4 + 1; yield %5 }
    let while_op = |test_yields: bool, body_yields: bool| {
        let mut test = vec![op(OpKind::Cmp(CmpOp::Lt, ValueId(2), ValueId(6)), &[3])];
        test.insert(0, op(OpKind::Const(Lit::Int(4)), &[6]));
        if test_yields {
            test.push(yield_of(3));
        }
        let mut body =
            vec![op(OpKind::Const(Lit::Int(1)), &[7]), op(OpKind::Binary(BinOp::Add, ValueId(4), ValueId(7)), &[5])];
        if body_yields {
            body.push(yield_of(5));
        }
        let ops = vec![
            op(OpKind::Const(Lit::Int(0)), &[0]),
            op(
                OpKind::While {
                    init: vec![ValueId(0)],
                    cond: Region { args: vec![ValueId(2)], ops: test },
                    body: Region { args: vec![ValueId(4)], ops: body },
                },
                &[1],
            ),
        ];
        let types = vec![
            i32_.clone(),
            i32_.clone(),
            i32_.clone(),
            bool_.clone(),
            i32_.clone(),
            i32_.clone(),
            i32_.clone(),
            i32_.clone(),
        ];
        kernel(vec![], ops, types)
    };
    verify(&while_op(true, true)).unwrap();
    check(&rejected(&while_op(false, true)), "hand", "while_loop", &["test", "yield"]);
    check(&rejected(&while_op(true, false)), "hand", "while_loop", &["body", "yield"]);

    // for %1 in 0..4 step 1 (%2 = %0) { %3 = %2 + %1 } — no yield.
    let ops = vec![
        op(OpKind::Const(Lit::Int(0)), &[0]),
        op(
            OpKind::For {
                lo: ValueId(0),
                hi: ValueId(0),
                step: ValueId(0),
                init: vec![ValueId(0)],
                body: Region {
                    args: vec![ValueId(1), ValueId(2)],
                    ops: vec![op(OpKind::Binary(BinOp::Add, ValueId(2), ValueId(1)), &[3])],
                },
            },
            &[4],
        ),
    ];
    let types = vec![i32_.clone(), i32_.clone(), i32_.clone(), i32_.clone(), i32_];
    check(&rejected(&kernel(vec![], ops, types)), "hand", "for_range", &["body", "yield"]);
}

#[test]
fn verifier_rejects_bad_memory_ops() {
    let ptr = ParamKind::Ptr(DType::F32);
    let params = vec![Param { name: "x".into(), kind: ptr }];
    let pty = Type { elem: tritonite_lang::Elem::Ptr(DType::F32), shape: vec![] };

    // Store through a read-only argument.
    let ops = vec![
        op(OpKind::Param(0), &[0]),
        op(OpKind::Const(Lit::Float(1.0)), &[1]),
        op(OpKind::Store { ptr: ValueId(0), value: ValueId(1), mask: None, evict: Eviction::Normal }, &[]),
    ];
    let e = rejected(&kernel(params.clone(), ops, vec![pty.clone(), Type::scalar(DType::F32)]));
    check(&e, "hand", "store", &["`x`", "read-only"]);

    // A load with `other` but no mask.
    let ops = vec![
        op(OpKind::Param(0), &[0]),
        op(OpKind::Const(Lit::Float(1.0)), &[1]),
        op(
            OpKind::Load {
                ptr: ValueId(0),
                mask: None,
                other: Some(ValueId(1)),
                staged: false,
                evict: Eviction::Normal,
            },
            &[2],
        ),
    ];
    let types = vec![pty.clone(), Type::scalar(DType::F32), Type::scalar(DType::F32)];
    check(&rejected(&kernel(params.clone(), ops, types)), "hand", "load", &["other", "mask"]);

    // A load through a pointer that is not derived from an argument: make one by a bad cast.
    let ops = vec![
        op(OpKind::Const(Lit::Int(0)), &[0]),
        op(OpKind::Load { ptr: ValueId(0), mask: None, other: None, staged: false, evict: Eviction::Normal }, &[1]),
    ];
    let types = vec![Type::scalar(DType::I32), Type::scalar(DType::F32)];
    check(&rejected(&kernel(vec![], ops, types)), "hand", "load", &["%0: i32", "not a pointer"]);

    // An arange whose length is not a power of two.
    let ops = vec![op(OpKind::Arange { start: 0, end: 100 }, &[0])];
    check(&rejected(&kernel(vec![], ops, vec![Type::block(DType::I32, &[100])])), "hand", "arange", &["100"]);

    // program_id along axis 3.
    let ops = vec![op(OpKind::ProgramId(3), &[0])];
    check(&rejected(&kernel(vec![], ops, vec![Type::scalar(DType::I32)])), "hand", "program_id", &["axis 3"]);
}

// ---------------------------------------------------------------------------------------------
// Interpreter errors
// ---------------------------------------------------------------------------------------------

/// `out[pid*128 + i] = x[pid*128 + i] * 2`, no masks.
fn copy_kernel() -> Kernel {
    let k = KernelBuilder::new("copy");
    let x = k.ptr_arg("x", DType::F32);
    let out = k.mut_ptr_arg("out", DType::F32);
    let b = k.meta("BLOCK", 128);
    let offs = k.program_id(0) * b + k.arange(0, b);
    let v = k.load(x + offs);
    k.store(out + offs, v * 2.0);
    k.finish().unwrap()
}

#[test]
fn unmasked_out_of_bounds_load() {
    let kernel = copy_kernel();
    let x = Buffer::F32(vec![1.0; 200]);
    let mut out = Buffer::F32(vec![-7.0; 256]);
    let e = run(&kernel, [2, 1, 1], &mut [Arg::In(&x), Arg::Out(&mut out)]).unwrap_err();
    match &e {
        InterpError::OutOfBounds { kernel, op, program, param, offset, len, .. } => {
            assert_eq!(kernel, "copy");
            assert_eq!(*op, "load");
            assert_eq!(param, "x");
            assert_eq!(*program, [1, 0, 0]);
            assert_eq!(*offset, 200);
            assert_eq!(*len, 200);
        }
        other => panic!("expected OutOfBounds, got {other:?}"),
    }
    let msg = e.to_string();
    for w in ["`copy`", "load", "[1, 0, 0]", "`x`", "200", "mask"] {
        assert!(msg.contains(w), "{msg:?} should mention {w:?}");
    }
    // Program 0 stored before program 1 failed; the caller's buffer is still untouched.
    assert_eq!(out, Buffer::F32(vec![-7.0; 256]));
}

#[test]
fn unmasked_out_of_bounds_store() {
    let kernel = copy_kernel();
    let x = Buffer::F32(vec![1.0; 384]);
    let mut out = Buffer::F32(vec![-7.0; 300]);
    let e = run(&kernel, [3, 1, 1], &mut [Arg::In(&x), Arg::Out(&mut out)]).unwrap_err();
    match &e {
        InterpError::OutOfBounds { op, program, param, offset, len, .. } => {
            assert_eq!((*op, param.as_str(), *program, *offset, *len), ("store", "out", [2, 0, 0], 300, 300));
        }
        other => panic!("expected OutOfBounds, got {other:?}"),
    }
    assert_eq!(out, Buffer::F32(vec![-7.0; 300]));
}

#[test]
fn wrong_argument_dtype() {
    let kernel = copy_kernel();
    let x = Buffer::I32(vec![1; 128]);
    let mut out = Buffer::F32(vec![-7.0; 128]);
    let e = run(&kernel, [1, 1, 1], &mut [Arg::In(&x), Arg::Out(&mut out)]).unwrap_err();
    match &e {
        InterpError::Argument { kernel, index, name, expected, got } => {
            assert_eq!((kernel.as_str(), *index, name.as_str()), ("copy", 0, "x"));
            assert!(expected.contains("f32"), "{expected}");
            assert!(got.contains("i32"), "{got}");
        }
        other => panic!("expected Argument, got {other:?}"),
    }
    assert!(e.to_string().contains("`x`"), "{e}");
    assert_eq!(out, Buffer::F32(vec![-7.0; 128]));
}

#[test]
fn wrong_argument_kind_and_count() {
    let kernel = copy_kernel();
    let x = Buffer::F32(vec![1.0; 128]);
    let out = Buffer::F32(vec![-7.0; 128]);
    // A read-only buffer for a writable parameter.
    let e = run(&kernel, [1, 1, 1], &mut [Arg::In(&x), Arg::In(&out)]).unwrap_err();
    assert!(matches!(&e, InterpError::Argument { index: 1, name, .. } if name == "out"), "{e:?}");
    // A scalar for a pointer.
    let mut out2 = out.clone();
    let e = run(&kernel, [1, 1, 1], &mut [Arg::Scalar(Lit::Int(3)), Arg::Out(&mut out2)]).unwrap_err();
    assert!(matches!(&e, InterpError::Argument { index: 0, name, .. } if name == "x"), "{e:?}");
    // Too few arguments.
    let e = run(&kernel, [1, 1, 1], &mut [Arg::In(&x)]).unwrap_err();
    assert!(matches!(&e, InterpError::Argument { .. }), "{e:?}");
    // An empty grid.
    let e = run(&kernel, [0, 1, 1], &mut [Arg::In(&x), Arg::Out(&mut out2)]).unwrap_err();
    assert!(matches!(&e, InterpError::Grid { grid: [0, 1, 1], .. }), "{e:?}");
}

#[test]
fn integer_division_by_zero_and_bad_step() {
    let k = KernelBuilder::new("divz");
    let x = k.ptr_arg("x", DType::I32);
    let out = k.mut_ptr_arg("out", DType::I32);
    let offs = k.arange(0, 4);
    k.store(out + offs, offs / k.load(x + offs));
    let kernel = k.finish().unwrap();
    let xb = Buffer::I32(vec![1, 2, 0, 4]);
    let mut ob = Buffer::I32(vec![-7; 4]);
    let e = run(&kernel, [1, 1, 1], &mut [Arg::In(&xb), Arg::Out(&mut ob)]).unwrap_err();
    assert!(matches!(&e, InterpError::DivisionByZero { program: [0, 0, 0], .. }), "{e:?}");
    assert_eq!(ob, Buffer::I32(vec![-7; 4]));

    // A loop whose step is a run-time argument that turns out not to be positive.
    let k = KernelBuilder::new("step");
    let out = k.mut_ptr_arg("out", DType::I32);
    let step = k.scalar_arg("step", DType::I32);
    let c = k.constant(0, DType::I32);
    let r = k.for_range(0, 10, step, &[c], |_, c| vec![c[0] + 1]);
    k.store(out, r[0]);
    let kernel = k.finish().unwrap();
    let mut ob = Buffer::I32(vec![-7]);
    let e = run(&kernel, [1, 1, 1], &mut [Arg::Out(&mut ob), Arg::Scalar(Lit::Int(0))]).unwrap_err();
    assert!(matches!(&e, InterpError::BadStep { step: 0, .. }), "{e:?}");
    run(&kernel, [1, 1, 1], &mut [Arg::Out(&mut ob), Arg::Scalar(Lit::Int(3))]).unwrap();
    assert_eq!(ob, Buffer::I32(vec![4]));
}
