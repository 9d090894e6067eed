//! Shapes and broadcasting.
//!
//! # Sizes never wrap
//!
//! Dims come from users (a shape on the command line, a header in a file),
//! and the kernels index with the products of those dims in unchecked
//! inner loops. A product that wrapped around (`2^32 * 2^32 == 0` in a
//! release build) would make a huge tensor look empty and let a kernel run
//! past its buffer. The rule, and where it is enforced:
//!
//! - A `Shape` is only a list of dims, built infallibly (`From<[usize; N]>`
//!   and friends are used everywhere), so it *can* describe more elements
//!   than fit in memory. [`Shape::numel`] therefore never wraps: it
//!   saturates at `usize::MAX`, a count no buffer can have, so a length
//!   check against it fails and an allocation of it is refused.
//! - Every place where a shape meets memory checks it with
//!   [`Shape::checked_numel`]: creating a tensor from data
//!   (`Tensor::from_vec`), reshaping, broadcasting ([`Shape::broadcast`],
//!   `Layout::broadcast_to`), and the conv/pool problem checks of
//!   `gradlab_cpu::shapes`. The check fails, with an error naming the op and
//!   the shape, when the product of the non-zero dims exceeds
//!   [`gradlab_cpu::MAX_ELEMENTS`] (about 1.15e18, so that the bytes of
//!   even an 8-byte element type fit an allocation). Leaving zeros out of
//!   the product means every partial product (a row, a plane) fits as well.
//! - Output buffers are allocated through `gradlab_cpu::alloc`, so a shape
//!   that passes the check but not the machine's memory is an error too.
//!
//! A fallible `Shape::new` was the alternative; it would turn every literal
//! shape in the code base into a `Result` while checking nothing more than
//! the entry points above do.

use crate::{Result, TensorError};
use gradlab_cpu::alloc::{checked_len, MAX_ELEMENTS};
use std::fmt;

/// The sizes of a tensor's dimensions. A rank-0 shape (`[]`) is a scalar.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The number of elements; `usize::MAX` when the product overflows
    /// (never a wrapped-around count: see the module documentation).
    pub fn numel(&self) -> usize {
        if self.0.contains(&0) {
            return 0;
        }
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The number of elements, or an error naming `op` when the shape
    /// describes more than [`MAX_ELEMENTS`] (counting the non-zero dims).
    ///
    /// ```
    /// use gradlab_tensor::Shape;
    /// assert_eq!(Shape::from([2, 3]).checked_numel("t").unwrap(), 6);
    /// let err = Shape::from([1 << 32, 1 << 32]).checked_numel("from_vec").unwrap_err();
    /// assert!(err.to_string().starts_with("from_vec: shape [4294967296, 4294967296] has more elements than"), "{err}");
    /// ```
    pub fn checked_numel(&self, op: &'static str) -> Result<usize> {
        checked_len(&self.0).ok_or_else(|| {
            TensorError::shape(
                op,
                format!(
                    "shape {self} has more elements than the {MAX_ELEMENTS} a tensor may hold (the product of its sizes overflows)"
                ),
            )
        })
    }

    /// Row-major strides of a contiguous tensor of this shape (saturating,
    /// like [`Shape::numel`], for a shape that fails [`Shape::checked_numel`]).
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.0.len()];
        let mut acc: usize = 1;
        for i in (0..self.0.len()).rev() {
            strides[i] = acc;
            acc = acc.saturating_mul(self.0[i]);
        }
        strides
    }
    /// Checks `dim < rank` for op `op` (a dim already resolved; user-given
    /// dims go through [`crate::Dim`], which also accepts negative ones).
    pub fn check_dim(&self, op: &'static str, dim: usize) -> Result<()> {
        if dim < self.rank() {
            Ok(())
        } else {
            let rank = isize::try_from(self.rank()).unwrap_or(isize::MAX);
            Err(TensorError::DimOutOfRange {
                op,
                dim: isize::try_from(dim).unwrap_or(isize::MAX),
                shape: self.clone(),
                low: -rank,
                high: rank - 1,
            })
        }
    }

    /// The shape both operands broadcast to, with NumPy/PyTorch rules: align
    /// trailing dims; sizes must match or one of them be 1.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let rank = a.rank().max(b.rank());
        let mut out = vec![0; rank];
        for (i, slot) in out.iter_mut().enumerate() {
            let da = dim_from_end(a, rank - 1 - i);
            let db = dim_from_end(b, rank - 1 - i);
            *slot = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                (x, y) => {
                    return Err(TensorError::shape(
                        op,
                        format!(
                            "shapes {a} and {b} cannot be broadcast: dimension {i} of the result would need {x} and {y} to match (or one to be 1)"
                        ),
                    ))
                }
            };
        }
        let out = Shape(out);
        out.checked_numel(op)?;
        Ok(out)
    }
}

/// Size of the dim `from_end` places from the end, 1 when the shape is shorter.
fn dim_from_end(s: &Shape, from_end: usize) -> usize {
    if from_end < s.rank() {
        s.0[s.rank() - 1 - from_end]
    } else {
        1
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_rules() {
        let s = |d: &[usize]| Shape::from(d);
        assert_eq!(
            Shape::broadcast("t", &s(&[2, 1, 4]), &s(&[3, 1])).unwrap(),
            s(&[2, 3, 4])
        );
        assert_eq!(Shape::broadcast("t", &s(&[5]), &s(&[])).unwrap(), s(&[5]));
        let err = Shape::broadcast("add", &s(&[2, 3]), &s(&[4])).unwrap_err();
        assert!(
            err.to_string()
                .contains("add: shapes [2, 3] and [4] cannot be broadcast"),
            "{err}"
        );
    }

    #[test]
    fn element_counts_never_wrap() {
        let huge = Shape::from([1 << 32, 1 << 32]);
        assert_eq!(huge.numel(), usize::MAX);
        assert!(huge.checked_numel("t").is_err());
        assert_eq!(huge.contiguous_strides(), vec![1 << 32, 1]);
        assert_eq!(
            Shape::from([3, 1 << 62, 4]).contiguous_strides(),
            vec![usize::MAX, 4, 1]
        );
        // A zero empties the tensor but does not excuse a wrapped plane.
        let hidden = Shape::from([1 << 40, 1 << 40, 0]);
        assert_eq!(hidden.numel(), 0);
        assert!(hidden.checked_numel("t").is_err());
        assert_eq!(Shape::from([0, 7]).checked_numel("t").unwrap(), 0);
        assert_eq!(Shape::scalar().checked_numel("t").unwrap(), 1);
        // Broadcasting two views of 2^32 elements each would make 2^64.
        let err = Shape::broadcast("add", &Shape::from([1 << 32, 1]), &Shape::from([1 << 32]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("add: shape [4294967296, 4294967296] has more elements"),
            "{err}"
        );
    }

    #[test]
    fn contiguous_strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).contiguous_strides(), vec![12, 4, 1]);
        assert_eq!(Shape::scalar().contiguous_strides(), Vec::<usize>::new());
    }
}
