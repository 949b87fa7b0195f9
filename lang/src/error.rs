//! Errors of the language: building or verifying a kernel, and running it on the interpreter.

use thiserror::Error;

/// A kernel that cannot be built or does not verify.
///
/// Messages name the operation, the shapes and dtypes involved, and where possible suggest the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("kernel `{kernel}`: {op}: {detail}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct LangError {
    /// The kernel being built.
    pub kernel: String,
    /// The operation at fault, as the kernel author wrote it (`load`, `add`, `for_range`, …).
    pub op: String,
    /// What is wrong, with the shapes and dtypes involved.
    pub detail: String,
    /// A suggested fix, when there is an obvious one.
    pub hint: Option<String>,
}

/// A failure while running a kernel on the CPU interpreter. Buffers are left untouched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InterpError {
    /// The arguments do not match the kernel's parameters.
    #[error("kernel `{kernel}`: argument {index} (`{name}`): expected {expected}, got {got}")]
    Argument {
        /// Kernel name.
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Parameter name.
        name: String,
        /// What the kernel declares.
        expected: String,
        /// What was passed.
        got: String,
    },
    /// An unmasked lane of a load or store fell outside its buffer.
    #[error(
        "kernel `{kernel}`: {op} (value {value}) in program {program:?}: offset {offset} is outside \
         `{param}` (length {len}); mask the access or fix the indexing"
    )]
    OutOfBounds {
        /// Kernel name.
        kernel: String,
        /// `load` or `store`.
        op: &'static str,
        /// The IR value of the access (`%12`), or the store's pointer.
        value: String,
        /// The program id `[x, y, z]`.
        program: [u32; 3],
        /// The buffer's parameter name.
        param: String,
        /// The element offset accessed.
        offset: i64,
        /// The buffer length in elements.
        len: usize,
    },
    /// Two programs of one launch touched the same element, at least one of them writing it.
    #[error(
        "kernel `{kernel}`: race on `{param}`[{offset}]: program {first:?} wrote it and program \
         {second:?} also {access} it in the same launch"
    )]
    Race {
        /// Kernel name.
        kernel: String,
        /// The buffer's parameter name.
        param: String,
        /// The element offset.
        offset: i64,
        /// The program that wrote first.
        first: [u32; 3],
        /// The program that accessed it after.
        second: [u32; 3],
        /// `wrote` or `read`.
        access: &'static str,
    },
    /// An integer division or remainder by zero.
    #[error("kernel `{kernel}`: integer division by zero at {value} in program {program:?}")]
    DivisionByZero {
        /// Kernel name.
        kernel: String,
        /// The IR value.
        value: String,
        /// The program id.
        program: [u32; 3],
    },
    /// A loop whose step is not positive.
    #[error("kernel `{kernel}`: loop {value} has step {step}; steps must be positive")]
    BadStep {
        /// Kernel name.
        kernel: String,
        /// The IR value of the loop.
        value: String,
        /// The step found.
        step: i64,
    },
    /// The grid is empty or too large.
    #[error("kernel `{kernel}`: grid {grid:?} is invalid: {why}")]
    Grid {
        /// Kernel name.
        kernel: String,
        /// The grid asked for.
        grid: [u32; 3],
        /// What is wrong.
        why: String,
    },
    /// Two programs of one cluster reached a cluster reduction a different number of times.
    #[error(
        "kernel `{kernel}`: programs {first:?} and {second:?} of one cluster take {first_trips} and \
         {second_trips} trips of a loop that combines values across the cluster; every program of a \
         cluster must reach each cluster reduction equally often"
    )]
    ClusterDiverged {
        /// Kernel name.
        kernel: String,
        /// The cluster's first program.
        first: [u32; 3],
        /// A program whose trip count differs from the first's.
        second: [u32; 3],
        /// The first program's trips.
        first_trips: i64,
        /// The other program's trips.
        second_trips: i64,
    },
}
