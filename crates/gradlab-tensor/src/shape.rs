//! Shapes and broadcasting.

use crate::{Result, TensorError};
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
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.0.len()];
        let mut acc = 1;
        for i in (0..self.0.len()).rev() {
            strides[i] = acc;
            acc *= self.0[i];
        }
        strides
    }
    /// Checks `dim < rank` for op `op`.
    pub fn check_dim(&self, op: &'static str, dim: usize) -> Result<()> {
        if dim < self.rank() {
            Ok(())
        } else {
            Err(TensorError::DimOutOfRange {
                op,
                dim,
                rank: self.rank(),
                shape: self.clone(),
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
        Ok(Shape(out))
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
    fn contiguous_strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).contiguous_strides(), vec![12, 4, 1]);
        assert_eq!(Shape::scalar().contiguous_strides(), Vec::<usize>::new());
    }
}
