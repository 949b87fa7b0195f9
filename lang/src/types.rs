//! Element types and block types of the language.

use std::fmt;

/// A scalar element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean (masks and comparison results).
    Bool,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 6] = [DType::Bool, DType::I32, DType::I64, DType::F16, DType::BF16, DType::F32];

    /// True for `f16`, `bf16` and `f32`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32)
    }

    /// True for `i32` and `i64`.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    /// Size of one element in bytes (`bool` counts as one byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 => 8,
        }
    }

    /// Bit width of the type (`bool` is 1).
    pub fn bits(self) -> u32 {
        match self {
            DType::Bool => 1,
            other => 8 * other.size_bytes() as u32,
        }
    }

    /// The short name used in IR dumps and on the command line (`f32`, `bf16`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
        }
    }

    /// Parses a short name (`f32`, `f16`, `bf16`, `i32`, `i64`, `bool`).
    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one element of a value is: a number or a pointer to numbers in global memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// A number of the given dtype.
    Scalar(DType),
    /// A pointer into global memory whose pointee has the given dtype.
    Ptr(DType),
}

impl Elem {
    /// The dtype of a number, or `None` for a pointer.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Elem::Scalar(d) => Some(d),
            Elem::Ptr(_) => None,
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Scalar(d) => write!(f, "{d}"),
            Elem::Ptr(d) => write!(f, "*{d}"),
        }
    }
}

/// The type of a value: an element type and a compile-time shape (`[]` for a scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    /// Element type.
    pub elem: Elem,
    /// Block shape; empty for a scalar.
    pub shape: Vec<usize>,
}

impl Type {
    /// A scalar number type.
    pub fn scalar(dtype: DType) -> Type {
        Type { elem: Elem::Scalar(dtype), shape: vec![] }
    }

    /// A block of numbers.
    pub fn block(dtype: DType, shape: &[usize]) -> Type {
        Type { elem: Elem::Scalar(dtype), shape: shape.to_vec() }
    }

    /// True when the shape is empty.
    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same shape with another element type.
    pub fn with_elem(&self, elem: Elem) -> Type {
        Type { elem, shape: self.shape.clone() }
    }

    /// The dtype of a number type, `None` for pointers.
    pub fn dtype(&self) -> Option<DType> {
        self.elem.dtype()
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.elem)?;
        if !self.shape.is_empty() {
            let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
            write!(f, "[{}]", dims.join(", "))?;
        }
        Ok(())
    }
}
