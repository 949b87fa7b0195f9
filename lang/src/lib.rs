//! # tritonite-lang
//!
//! The block language of tritonite: a kernel is a Rust function that traces block operations on a
//! [`KernelBuilder`] — `program_id`, `arange`, masked `load`/`store`, elementwise math, reductions,
//! loops with carried values — into a typed block IR ([`ir::Kernel`]). The IR is the contract: the
//! [`interp`] module runs it on the CPU with exact semantics (what property tests use), and the
//! `tritonite-lowering` crate compiles the same IR to PTX.
//!
//! This crate depends on neither MLIR nor CUDA.

pub mod builder;
pub mod error;
pub mod interp;
pub mod ir;
mod semantic;
pub mod types;
pub mod verify;

pub use builder::{build_kernel, IntoOperand, KernelBuilder, Value};
pub use error::{InterpError, LangError};
pub use interp::{Arg, Buffer};
pub use ir::{Eviction, Kernel, Lit};
pub use types::{DType, Elem, Type};
