//! What the typed APIs take: buffers as [`Storage`] (device buffers, or host buffers on the CPU
//! interpreter) and row-major views of them as [`Rows`], with the checks every entry point runs
//! before anything is launched.

use tritonite_lang::DType;

use crate::error::KernelError;

/// A buffer an executor can run kernels on.
pub trait Storage {
    /// Element dtype.
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Address of element 0 (device or host): what alignment and overlap checks look at.
    fn address(&self) -> u64;
    /// True when the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A row-major matrix view of a buffer: `rows × cols`, row `r` starting at element
/// `offset + r · row_stride`, columns contiguous. Leading dimensions of a tensor flatten into rows.
#[derive(Debug)]
pub struct Rows<'a, S> {
    /// The buffer.
    pub buf: &'a S,
    /// Element where row 0 starts.
    pub offset: usize,
    /// Rows (the product of the leading dimensions).
    pub rows: usize,
    /// Columns (the last dimension).
    pub cols: usize,
    /// Elements from one row's start to the next.
    pub row_stride: usize,
}

impl<S> Clone for Rows<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Rows<'_, S> {}

impl<'a, S: Storage> Rows<'a, S> {
    /// A contiguous tensor of `shape` (at least one dimension; the last is the row): `[b, s, d]`
    /// is `b·s` rows of `d`. The buffer must hold exactly the tensor (checked when used).
    pub fn new(buf: &'a S, shape: &[usize]) -> Rows<'a, S> {
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape.iter().rev().skip(1).product();
        Rows { buf, offset: 0, rows, cols, row_stride: cols }
    }

    /// `rows × cols` with rows `row_stride` elements apart, starting at element `offset`: e.g. a
    /// column slice `t[:, a..a + cols]` of a wider row-major `t` is
    /// `Rows::strided(buf, a, rows, cols, t_cols)`.
    pub fn strided(buf: &'a S, offset: usize, rows: usize, cols: usize, row_stride: usize) -> Rows<'a, S> {
        Rows { buf, offset, rows, cols, row_stride }
    }

    /// Elements from `offset` that the view reaches.
    pub fn span(&self) -> usize {
        crate::plan::span(self.rows, self.cols, self.row_stride)
    }

    /// True when the view is the whole buffer, row after row.
    pub fn is_contiguous(&self) -> bool {
        self.offset == 0 && (self.rows <= 1 || self.row_stride == self.cols) && self.span() == self.buf.len()
    }

    /// Checks the view as argument `arg` of an `[m, n]` problem: dtype `dtype`, `m × n`, a stride
    /// of at least `n`, inside the buffer, element-aligned.
    pub fn check(&self, arg: &'static str, dtype: DType, m: usize, n: usize) -> Result<(), KernelError> {
        let bad = |expected: String, got: String| Err(KernelError::BadArgument { arg, expected, got });
        if self.buf.dtype() != dtype {
            return bad(format!("dtype {dtype}"), format!("dtype {}", self.buf.dtype()));
        }
        if (self.rows, self.cols) != (m, n) {
            return bad(format!("{m} rows of {n}"), format!("{} rows of {}", self.rows, self.cols));
        }
        if self.rows > 1 && self.row_stride < self.cols {
            return bad(
                format!("a row stride ≥ {} (rows must not overlap)", self.cols),
                format!("stride {}", self.row_stride),
            );
        }
        if self.offset + self.span() > self.buf.len() {
            return bad(
                format!("a view inside its buffer ({} elements)", self.buf.len()),
                format!("elements {}..{}", self.offset, self.offset + self.span()),
            );
        }
        check_aligned(arg, self.buf)
    }

    /// The byte ranges the view covers: (start of row 0, bytes per row, bytes between rows, rows).
    fn bytes(&self) -> Region {
        let size = self.buf.dtype().size_bytes() as u64;
        Region {
            start: self.buf.address() + self.offset as u64 * size,
            width: self.cols as u64 * size,
            stride: self.row_stride as u64 * size,
            rows: self.rows as u64,
        }
    }
}

/// Checks a whole-buffer vector argument: dtype `dtype` (any dtype when `None`), `len` elements,
/// element-aligned.
pub fn check_vector<S: Storage>(arg: &'static str, buf: &S, dtype: DType, len: usize) -> Result<(), KernelError> {
    if buf.dtype() != dtype || buf.len() != len {
        return Err(KernelError::BadArgument {
            arg,
            expected: format!("{len} elements of {dtype}"),
            got: format!("{} elements of {}", buf.len(), buf.dtype()),
        });
    }
    check_aligned(arg, buf)
}

fn check_aligned<S: Storage>(arg: &'static str, buf: &S) -> Result<(), KernelError> {
    let size = buf.dtype().size_bytes() as u64;
    if !buf.address().is_multiple_of(size) {
        return Err(KernelError::BadArgument {
            arg,
            expected: format!("an address aligned to {size} bytes ({})", buf.dtype()),
            got: format!("{:#x}", buf.address()),
        });
    }
    Ok(())
}

/// Bytes a view covers: `rows` runs of `width` bytes, `stride` apart, from `start`.
#[derive(Clone, Copy, Debug)]
struct Region {
    start: u64,
    width: u64,
    stride: u64,
    rows: u64,
}

impl Region {
    fn end(&self) -> u64 {
        if self.rows == 0 {
            self.start
        } else {
            self.start + (self.rows - 1) * self.stride + self.width
        }
    }

    /// True when some byte is in both. Exact for equal strides (interleaved column slices of one
    /// buffer do not overlap); otherwise the hulls are compared.
    fn overlaps(&self, other: &Region) -> bool {
        if self.rows == 0 || other.rows == 0 || self.width == 0 || other.width == 0 {
            return false;
        }
        if self.end() <= other.start || other.end() <= self.start {
            return false;
        }
        if self.stride != other.stride || self.rows == 1 || other.rows == 1 {
            return true;
        }
        // Row i of self and row j of other overlap when, with k = j − i and d = other − self,
        // −other.width < d + k·stride < self.width. Only the k nearest −d/stride can qualify.
        let s = self.stride as i128;
        let d = other.start as i128 - self.start as i128;
        let k0 = (-d).div_euclid(s);
        (k0 - 1..=k0 + 1).any(|k| {
            let in_range = k > -(self.rows as i128) && k < other.rows as i128;
            let gap = d + k * s;
            in_range && gap > -(other.width as i128) && gap < self.width as i128
        })
    }
}

/// One argument of an entry point, for the overlap check.
pub enum Operand<'v, 'a, S> {
    /// A row-major view.
    Rows(&'v Rows<'a, S>),
    /// A whole buffer.
    Whole(&'a S),
}

impl<S: Storage> Operand<'_, '_, S> {
    fn region(&self) -> Region {
        match self {
            Operand::Rows(r) => r.bytes(),
            Operand::Whole(b) => {
                let width = (b.len() * b.dtype().size_bytes()) as u64;
                Region { start: b.address(), width, stride: width, rows: 1 }
            }
        }
    }
}

/// Checks that no output shares a byte with another output or with an input (inputs may share:
/// they are only read). The error names both arguments.
pub fn check_no_overlap<S: Storage>(
    inputs: &[(&'static str, Operand<'_, '_, S>)],
    outputs: &[(&'static str, Operand<'_, '_, S>)],
) -> Result<(), KernelError> {
    for (i, (name, out)) in outputs.iter().enumerate() {
        let region = out.region();
        for (other, o) in outputs[..i].iter().chain(inputs) {
            if region.overlaps(&o.region()) {
                return Err(KernelError::BadArgument {
                    arg: name,
                    expected: format!("memory not shared with `{other}`"),
                    got: "overlapping buffers".into(),
                });
            }
        }
    }
    Ok(())
}
