//! Dimension indices with PyTorch's meaning: `0`, `1`, ... count from the
//! front, `-1` is the last dim, `-rank` the first.
//!
//! Every op that takes one dimension takes `impl Into<Dim>`, so a literal
//! (`x.softmax(1)`, `x.softmax(-1)`) and a `usize` or `isize` variable all
//! work. Ops that take a list of dims take `&[isize]` (`x.sum(Some(&[0, -1]),
//! true)`); `permute` takes any slice of integers.
//!
//! The rules, as `torch`'s `maybe_wrap_dim`:
//! - A dim of a tensor of rank `r` must lie in `[-r, r - 1]`; `d < 0` means
//!   `d + r`. Anything else is [`TensorError::DimOutOfRange`], which names
//!   the dim as given and the valid range.
//! - A 0-d tensor is treated as having one dim: `-1` and `0` name it. The
//!   ops that accept that (reductions, max, softmax, transpose, squeeze,
//!   flatten) then act on the scalar as on a one-element vector; `cat` and
//!   `narrow` refuse 0-d tensors, as PyTorch does.
//! - `unsqueeze` inserts a dim, so it chooses among `r + 1` places:
//!   `[-(r + 1), r]`.
//!
//! ```
//! use gradlab_tensor::{Dim, Shape};
//! let s = Shape::from([2, 3, 4]);
//! assert_eq!(Dim::from(-1).index("t", &s).unwrap(), 2);
//! assert_eq!(Dim::from(0usize).index("t", &s).unwrap(), 0);
//! let err = Dim::from(-4).index("softmax", &s).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "softmax: dimension -4 is out of range for a tensor of shape [2, 3, 4] (expected to be in range of [-3, 2])"
//! );
//! // A scalar has one nameable dim.
//! assert_eq!(Dim::from(-1).index("sum", &Shape::scalar()).unwrap(), 0);
//! ```

use crate::{Result, Shape, TensorError};
use std::fmt;

/// A dimension index, negative counting from the end (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dim(isize);

impl Dim {
    pub const fn new(dim: isize) -> Dim {
        Dim(dim)
    }

    /// The index as given (possibly negative).
    pub const fn get(self) -> isize {
        self.0
    }

    /// The index in `0..rank` this dim names in a tensor of `shape`. A 0-d
    /// tensor counts as having one dim (so `0` and `-1` give 0, and the
    /// caller treats the scalar as a one-element vector).
    pub fn index(self, op: &'static str, shape: &Shape) -> Result<usize> {
        self.index_among(op, shape, shape.rank().max(1))
    }

    /// The index in `0..places` this dim names, where an op chooses among
    /// `places` positions of a tensor of `shape` (`unsqueeze`: rank + 1).
    pub fn index_among(self, op: &'static str, shape: &Shape, places: usize) -> Result<usize> {
        if places == 0 {
            return Err(TensorError::shape(
                op,
                format!("dimension {self} given, but a tensor of shape {shape} has no dimensions"),
            ));
        }
        // Ranks are tiny; `places` fits an isize.
        let n = isize::try_from(places).unwrap_or(isize::MAX);
        let wrapped = if self.0 < 0 { self.0 + n } else { self.0 };
        if (0..n).contains(&wrapped) {
            Ok(wrapped as usize)
        } else {
            Err(TensorError::DimOutOfRange {
                op,
                dim: self.0,
                shape: shape.clone(),
                low: -n,
                high: n - 1,
            })
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<isize> for Dim {
    fn from(d: isize) -> Dim {
        Dim(d)
    }
}

impl From<i32> for Dim {
    fn from(d: i32) -> Dim {
        Dim(d as isize)
    }
}

impl From<i64> for Dim {
    fn from(d: i64) -> Dim {
        // Out of range for any tensor either way; saturate rather than wrap.
        Dim(isize::try_from(d).unwrap_or(if d < 0 { isize::MIN } else { isize::MAX }))
    }
}

impl From<usize> for Dim {
    fn from(d: usize) -> Dim {
        Dim(isize::try_from(d).unwrap_or(isize::MAX))
    }
}

impl From<u32> for Dim {
    fn from(d: u32) -> Dim {
        Dim::from(d as usize)
    }
}

/// Each dim of `dims` as an index of `shape` (see [`Dim::index`]), refusing
/// a dim named twice (`0` and `-rank` included) as PyTorch does.
pub fn indices(op: &'static str, shape: &Shape, dims: &[isize]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let i = Dim::from(d).index(op, shape)?;
        if out.contains(&i) {
            return Err(TensorError::invalid(
                op,
                format!("dim {i} appears multiple times in the list of dims {dims:?}"),
            ));
        }
        out.push(i);
    }
    Ok(out)
}

/// `dims` as a permutation of the dims of `shape`: one entry per dim, each
/// in `[-rank, rank - 1]` and none named twice (no scalar wrap: a 0-d
/// tensor takes the empty permutation).
pub fn permutation<D: Into<Dim> + Copy>(
    op: &'static str,
    shape: &Shape,
    dims: &[D],
) -> Result<Vec<usize>> {
    let given: Vec<isize> = dims.iter().map(|&d| d.into().get()).collect();
    let rank = shape.rank();
    let not_a_permutation = || {
        TensorError::shape(
            op,
            format!(
                "{given:?} is not a permutation of the {rank} dimensions of a tensor with shape {shape}"
            ),
        )
    };
    if given.len() != rank {
        return Err(not_a_permutation());
    }
    let mut out = Vec::with_capacity(rank);
    for &d in &given {
        let i = Dim(d).index_among(op, shape, rank)?;
        if out.contains(&i) {
            return Err(not_a_permutation());
        }
        out.push(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_dims_count_from_the_end() {
        let s = Shape::from([2, 3]);
        for (d, want) in [(0, 0), (1, 1), (-1, 1), (-2, 0)] {
            assert_eq!(Dim::from(d).index("t", &s).unwrap(), want, "dim {d}");
        }
        for d in [2, -3, isize::MAX, isize::MIN] {
            let err = Dim::from(d).index("t", &s).unwrap_err().to_string();
            assert!(
                err.contains(&format!("dimension {d} is out of range")) && err.contains("[-2, 1]"),
                "{err}"
            );
        }
        // unsqueeze's places: one more than the rank.
        assert_eq!(Dim::from(-1).index_among("t", &s, 3).unwrap(), 2);
        assert_eq!(Dim::from(-3).index_among("t", &s, 3).unwrap(), 0);
        assert!(Dim::from(3).index_among("t", &s, 3).is_err());
    }

    #[test]
    fn a_scalar_has_one_nameable_dim() {
        let s = Shape::scalar();
        assert_eq!(Dim::from(0).index("t", &s).unwrap(), 0);
        assert_eq!(Dim::from(-1).index("t", &s).unwrap(), 0);
        let err = Dim::from(1).index("sum", &s).unwrap_err().to_string();
        assert!(err.contains("[-1, 0]"), "{err}");
    }

    #[test]
    fn wide_integers_saturate() {
        assert_eq!(Dim::from(u64::MAX as usize).get(), isize::MAX);
        assert_eq!(Dim::from(i64::MIN).get(), i64::MIN as isize);
    }

    #[test]
    fn a_dim_named_twice_is_an_error() {
        let s = Shape::from([2, 3]);
        assert_eq!(indices("t", &s, &[-1, 0]).unwrap(), vec![1, 0]);
        let err = indices("sum", &s, &[0, -2]).unwrap_err().to_string();
        assert!(err.contains("dim 0 appears multiple times"), "{err}");
        assert_eq!(permutation("p", &s, &[-1, 0]).unwrap(), vec![1, 0]);
        assert_eq!(permutation("p", &s, &[1usize, 0]).unwrap(), vec![1, 0]);
        for bad in [&[0, -2][..], &[0], &[0, 1, 2]] {
            let err = permutation("permute", &s, bad).unwrap_err().to_string();
            assert!(err.contains("is not a permutation"), "{bad:?}: {err}");
        }
        let err = permutation("permute", &s, &[0, 2]).unwrap_err().to_string();
        assert!(err.contains("dimension 2 is out of range"), "{err}");
        assert!(permutation::<isize>("p", &Shape::scalar(), &[])
            .unwrap()
            .is_empty());
    }
}
