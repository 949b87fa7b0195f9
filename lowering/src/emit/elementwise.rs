//! Elementwise arithmetic, comparisons, math, casts and pointer offsets: one MLIR op on each
//! thread's vector (math without a single PTX instruction goes element by element through NVVM
//! intrinsics — never libdevice, which users' machines lack).

use tritonite_lang::ir::{BinOp, CmpOp, UnOp, ValueId};
use tritonite_lang::DType;

use super::{mlir_type, Emitter, Lowered};

impl Emitter<'_> {
    fn dtype(&self, v: ValueId) -> DType {
        self.ty(v).dtype().expect("the verifier keeps pointers out of arithmetic")
    }

    pub(crate) fn binary(&mut self, op: BinOp, x: ValueId, y: ValueId) -> String {
        let d = self.dtype(x);
        let t = self.thread_type(x);
        let (a, b) = (self.num(x), self.num(y));
        let name = if d.is_float() {
            match op {
                BinOp::Add => "arith.addf",
                BinOp::Sub => "arith.subf",
                BinOp::Mul => "arith.mulf",
                BinOp::Div => "arith.divf",
                BinOp::Max => "arith.maximumf",
                BinOp::Min => "arith.minimumf",
                BinOp::Rem | BinOp::And | BinOp::Or => {
                    unreachable!("the verifier rejects {op:?} on floats")
                }
            }
        } else {
            match op {
                BinOp::Add => "arith.addi",
                BinOp::Sub => "arith.subi",
                BinOp::Mul => "arith.muli",
                BinOp::Div => "arith.divsi",
                BinOp::Rem => "arith.remsi",
                BinOp::Max => "arith.maxsi",
                BinOp::Min => "arith.minsi",
                BinOp::And => "arith.andi",
                BinOp::Or => "arith.ori",
            }
        };
        // Float adds, subtracts and multiplies may contract into fused multiply-adds (one
        // rounding instead of two), as Triton's default `enable_fp_fusion` allows.
        let flags =
            if d.is_float() && matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul) { " fastmath<contract>" } else { "" };
        self.assign(&format!("{name} {a}, {b}{flags} : {t}"))
    }

    pub(crate) fn compare(&mut self, op: CmpOp, x: ValueId, y: ValueId) -> String {
        let d = self.dtype(x);
        let t = self.thread_type(x);
        let (a, b) = (self.num(x), self.num(y));
        if d.is_float() {
            // Ordered predicates: false on NaN, except `ne`, which is true (as in the interpreter).
            let p = match op {
                CmpOp::Lt => "olt",
                CmpOp::Le => "ole",
                CmpOp::Gt => "ogt",
                CmpOp::Ge => "oge",
                CmpOp::Eq => "oeq",
                CmpOp::Ne => "une",
            };
            self.assign(&format!("arith.cmpf {p}, {a}, {b} : {t}"))
        } else {
            let p = match op {
                CmpOp::Lt => "slt",
                CmpOp::Le => "sle",
                CmpOp::Gt => "sgt",
                CmpOp::Ge => "sge",
                CmpOp::Eq => "eq",
                CmpOp::Ne => "ne",
            };
            self.assign(&format!("arith.cmpi {p}, {a}, {b} : {t}"))
        }
    }

    pub(crate) fn unary(&mut self, op: UnOp, x: ValueId) -> String {
        let d = self.dtype(x);
        let t = self.thread_type(x);
        let a = self.num(x);
        match op {
            UnOp::Neg if d.is_float() => self.assign(&format!("arith.negf {a} : {t}")),
            UnOp::Neg => {
                let zero = self.constant(d, 0.0, &t);
                self.assign(&format!("arith.subi {zero}, {a} : {t}"))
            }
            UnOp::Not => {
                let one = self.constant(DType::Bool, 1.0, &t);
                self.assign(&format!("arith.xori {a}, {one} : {t}"))
            }
            UnOp::Abs if d.is_float() => {
                // Clear the sign bit (what fabs does); NVVM's conversion rejects llvm.intr.fabs.
                let bits = d.size_bytes() * 8;
                let n = self.elems(x);
                let it = if n == 0 { format!("i{bits}") } else { format!("vector<{n}xi{bits}>") };
                let mask = (1u64 << (bits - 1)) - 1;
                let m = if n == 0 {
                    self.assign(&format!("arith.constant {mask} : {it}"))
                } else {
                    self.assign(&format!("arith.constant dense<{mask}> : {it}"))
                };
                let i = self.assign(&format!("arith.bitcast {a} : {t} to {it}"));
                let cleared = self.assign(&format!("arith.andi {i}, {m} : {it}"));
                self.assign(&format!("arith.bitcast {cleared} : {it} to {t}"))
            }
            UnOp::Abs => {
                let zero = self.constant(d, 0.0, &t);
                let neg = self.assign(&format!("arith.subi {zero}, {a} : {t}"));
                self.assign(&format!("arith.maxsi {a}, {neg} : {t}"))
            }
            UnOp::Sqrt | UnOp::Rsqrt | UnOp::Exp | UnOp::Log => self.transcendental(op, x),
        }
    }

    /// f32 math through NVVM intrinsics, element by element; 16-bit floats go through f32.
    fn transcendental(&mut self, op: UnOp, x: ValueId) -> String {
        let d = self.dtype(x);
        let n = self.elems(x);
        let t = self.thread_type(x);
        let f32t = if n == 0 { "f32".to_string() } else { format!("vector<{n}xf32>") };
        let mut a = self.num(x);
        if d != DType::F32 {
            a = self.assign(&format!("arith.extf {a} : {t} to {f32t}"));
        }
        let apply = |e: &mut Self, s: &str| -> String {
            match op {
                UnOp::Sqrt => e.assign(&format!("llvm.call_intrinsic \"llvm.nvvm.sqrt.rn.f\"({s}) : (f32) -> f32")),
                UnOp::Rsqrt => {
                    e.assign(&format!("llvm.call_intrinsic \"llvm.nvvm.rsqrt.approx.f\"({s}) : (f32) -> f32"))
                }
                UnOp::Exp => {
                    let log2e = e.constant(DType::F32, std::f64::consts::LOG2_E, "f32");
                    let m = e.assign(&format!("arith.mulf {s}, {log2e} : f32"));
                    e.assign(&format!("llvm.call_intrinsic \"llvm.nvvm.ex2.approx.f32\"({m}) : (f32) -> f32"))
                }
                UnOp::Log => {
                    let l = e.assign(&format!("llvm.call_intrinsic \"llvm.nvvm.lg2.approx.f\"({s}) : (f32) -> f32"));
                    let ln2 = e.constant(DType::F32, std::f64::consts::LN_2, "f32");
                    e.assign(&format!("arith.mulf {l}, {ln2} : f32"))
                }
                _ => unreachable!("only transcendental ops reach here"),
            }
        };
        let mut out = if n == 0 {
            apply(self, &a)
        } else {
            let mut acc = a.clone();
            for i in 0..n {
                let s = self.assign(&format!("vector.extract {a}[{i}] : f32 from {f32t}"));
                let r = apply(self, &s);
                acc = self.assign(&format!("vector.insert {r}, {acc} [{i}] : f32 into {f32t}"));
            }
            acc
        };
        if d != DType::F32 {
            out = self.assign(&format!("arith.truncf {out} : {f32t} to {t}"));
        }
        out
    }

    pub(crate) fn cast(&mut self, v: ValueId, r: ValueId) -> String {
        let (from, to) = (self.dtype(v), self.dtype(r));
        let (ft, tt) = (self.thread_type(v), self.thread_type(r));
        let a = self.num(v);
        if from == to {
            return a;
        }
        let op = match (from, to) {
            (DType::Bool, t) if t.is_float() => "arith.uitofp",
            (DType::Bool, _) => "arith.extui",
            (_, DType::Bool) => {
                let zero = self.constant(from, 0.0, &ft);
                let cmp = if from.is_float() { "arith.cmpf une" } else { "arith.cmpi ne" };
                return self.assign(&format!("{cmp}, {a}, {zero} : {ft}"));
            }
            (f, t) if f.is_float() && t.is_float() => {
                if f.bits() < t.bits() {
                    "arith.extf"
                } else if f.bits() > t.bits() {
                    "arith.truncf"
                } else {
                    // f16 <-> bf16: through f32.
                    let f32t = ft.replace(mlir_type(f), "f32");
                    let wide = self.assign(&format!("arith.extf {a} : {ft} to {f32t}"));
                    return self.assign(&format!("arith.truncf {wide} : {f32t} to {tt}"));
                }
            }
            (f, _) if f.is_float() => "arith.fptosi",
            (_, t) if t.is_float() => "arith.sitofp",
            (f, t) if f.bits() < t.bits() => "arith.extsi",
            _ => "arith.trunci",
        };
        self.assign(&format!("{op} {a} : {ft} to {tt}"))
    }

    pub(crate) fn add_ptr(&mut self, p: ValueId, o: ValueId) -> Lowered {
        let od = self.dtype(o);
        let off = self.num(o);
        match self.get(p).clone() {
            Lowered::Ptr(base) => {
                let elem = self.pointee(p);
                Lowered::Ptr(self.assign(&format!(
                    "llvm.getelementptr {base}[{off}] : (!llvm.ptr<1>, {}) -> !llvm.ptr<1>, {elem}",
                    mlir_type(od)
                )))
            }
            Lowered::PtrBlock { base, offs: None } => Lowered::PtrBlock { base, offs: Some((off, od)) },
            Lowered::PtrBlock { base, offs: Some((prev, pd)) } => {
                let t = self.thread_type(o);
                let (prev, off, d) = if pd == od {
                    (prev, off, od)
                } else {
                    let wide = t.replace("i32", "i64");
                    let ext = |e: &mut Self, s: String, d: DType| {
                        if d == DType::I32 {
                            e.assign(&format!("arith.extsi {s} : {t} to {wide}"))
                        } else {
                            s
                        }
                    };
                    (ext(self, prev, pd), ext(self, off, od), DType::I64)
                };
                let t = self.thread_type(o).replace("i32", mlir_type(d));
                Lowered::PtrBlock { base, offs: Some((self.assign(&format!("arith.addi {prev}, {off} : {t}")), d)) }
            }
            other => unreachable!("addptr on {other:?}"),
        }
    }

    /// The MLIR element type a pointer points to.
    pub(crate) fn pointee(&self, p: ValueId) -> &'static str {
        match self.ty(p).elem {
            tritonite_lang::Elem::Ptr(d) => mlir_type(d),
            tritonite_lang::Elem::Scalar(_) => unreachable!("pointee of a number"),
        }
    }
}
