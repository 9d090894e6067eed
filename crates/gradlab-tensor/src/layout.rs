//! Where each element of a tensor lives in its storage: shape, strides, offset.
//!
//! Every view (permute, transpose, narrow, broadcast, squeeze, unsqueeze,
//! reshape of contiguous data) is a new `Layout` over the same storage; no
//! element is copied. Broadcast dimensions have stride 0.

use crate::{Result, Shape, TensorError};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A contiguous row-major layout starting at `offset`.
    pub fn contiguous(shape: Shape, offset: usize) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset,
        }
    }
    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// True when the elements are stored row-major without gaps (size-1
    /// dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// The storage range `[offset, offset + numel)` when contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    /// Largest storage index touched, plus one (0 for an empty tensor).
    /// Saturates rather than wraps, so a layout that reaches past any
    /// storage never looks as if it fits.
    pub fn storage_span(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.dims()
            .iter()
            .zip(&self.strides)
            .fold(self.offset, |acc, (&d, &s)| {
                acc.saturating_add((d - 1).saturating_mul(s))
            })
            .saturating_add(1)
    }

    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        let valid = dims.len() == rank
            && dims
                .iter()
                .all(|&d| d < rank && !std::mem::replace(&mut seen[d], true));
        if !valid {
            return Err(TensorError::shape(
                "permute",
                format!(
                    "{dims:?} is not a permutation of the {rank} dimensions of a tensor with shape {}",
                    self.shape
                ),
            ));
        }
        Ok(Layout {
            shape: Shape::new(dims.iter().map(|&d| self.dims()[d]).collect::<Vec<_>>()),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    pub fn transpose(&self, dim0: usize, dim1: usize) -> Result<Layout> {
        self.shape.check_dim("transpose", dim0)?;
        self.shape.check_dim("transpose", dim1)?;
        let mut perm: Vec<usize> = (0..self.shape.rank()).collect();
        perm.swap(dim0, dim1);
        self.permute(&perm)
    }

    pub fn narrow(&self, dim: usize, start: usize, length: usize) -> Result<Layout> {
        self.shape.check_dim("narrow", dim)?;
        let size = self.dims()[dim];
        if start.checked_add(length).is_none_or(|end| end > size) {
            return Err(TensorError::shape(
                "narrow",
                format!(
                    "start {start} + length {length} exceeds size {size} of dimension {dim} (shape {})",
                    self.shape
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[dim] = length;
        Ok(Layout {
            shape: Shape::new(dims),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// A view with `shape`, repeating size-1 (or missing leading) dims with
    /// stride 0. The new shape must pass [`Shape::checked_numel`]: a view
    /// costs no memory, but every op on it loops over its elements.
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Layout> {
        shape.checked_numel("broadcast_to")?;
        let err = || {
            TensorError::shape(
                "broadcast_to",
                format!("cannot broadcast shape {} to {}", self.shape, shape),
            )
        };
        if shape.rank() < self.shape.rank() {
            return Err(err());
        }
        let lead = shape.rank() - self.shape.rank();
        let mut strides = vec![0; shape.rank()];
        for (i, &target) in shape.dims().iter().enumerate() {
            if i < lead {
                continue;
            }
            let (d, s) = (self.dims()[i - lead], self.strides[i - lead]);
            strides[i] = if d == target {
                s
            } else if d == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Layout {
            shape: shape.clone(),
            strides,
            offset: self.offset,
        })
    }

    pub fn unsqueeze(&self, dim: usize) -> Result<Layout> {
        if dim > self.shape.rank() {
            return Err(TensorError::DimOutOfRange {
                op: "unsqueeze",
                dim,
                rank: self.shape.rank() + 1,
                shape: self.shape.clone(),
            });
        }
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let stride = if dim < dims.len() {
            dims[dim] * strides[dim]
        } else {
            1
        };
        dims.insert(dim, 1);
        strides.insert(dim, stride);
        Ok(Layout {
            shape: Shape::new(dims),
            strides,
            offset: self.offset,
        })
    }

    /// Removes `dim` when its size is 1 (a no-op otherwise, as in PyTorch).
    pub fn squeeze(&self, dim: usize) -> Result<Layout> {
        self.shape.check_dim("squeeze", dim)?;
        if self.dims()[dim] != 1 {
            return Ok(self.clone());
        }
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.remove(dim);
        strides.remove(dim);
        Ok(Layout {
            shape: Shape::new(dims),
            strides,
            offset: self.offset,
        })
    }

    /// A reshaped view when the data is contiguous; `None` when a copy is needed.
    pub fn reshape(&self, shape: &Shape) -> Option<Layout> {
        self.is_contiguous()
            .then(|| Layout::contiguous(shape.clone(), self.offset))
    }

    /// Calls `f` with the storage offset of every element, in row-major order.
    pub fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        if let Some(range) = self.contiguous_range() {
            range.for_each(f);
            return;
        }
        let n = self.numel();
        if n == 0 {
            return;
        }
        let rank = self.shape.rank();
        let (inner_len, inner_stride) = (self.dims()[rank - 1], self.strides[rank - 1]);
        let outer = &self.dims()[..rank - 1];
        let mut index = vec![0usize; outer.len()];
        let mut base = self.offset;
        loop {
            for i in 0..inner_len {
                f(base + i * inner_stride);
            }
            // Odometer increment over the outer dims.
            let mut d = outer.len();
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                base += self.strides[d];
                if index[d] < outer[d] {
                    break;
                }
                base -= index[d] * self.strides[d];
                index[d] = 0;
            }
        }
    }

    /// Storage offsets of all elements in row-major order.
    pub fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.numel());
        self.for_each_offset(|o| v.push(o));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_map_indices_like_pytorch() {
        let l = Layout::contiguous(Shape::from([2, 3, 4]), 0);
        let t = l.transpose(0, 2).unwrap();
        assert_eq!(t.dims(), &[4, 3, 2]);
        assert_eq!(t.strides(), &[1, 4, 12]);
        assert!(!t.is_contiguous());
        let n = l.narrow(1, 1, 2).unwrap();
        assert_eq!(n.offset(), 4);
        assert_eq!(&n.offsets()[..5], &[4, 5, 6, 7, 8]);
        assert_eq!(n.offsets()[8], 16);
        let b = Layout::contiguous(Shape::from([3, 1]), 0)
            .broadcast_to(&Shape::from([2, 3, 4]))
            .unwrap();
        assert_eq!(b.strides(), &[0, 1, 0]);
        assert_eq!(b.offsets()[..8], [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn bad_views_are_errors() {
        let l = Layout::contiguous(Shape::from([2, 3]), 0);
        assert!(l.permute(&[0, 0]).is_err());
        assert!(l.narrow(1, 2, 2).is_err());
        assert!(l.transpose(0, 2).is_err());
        assert!(l.broadcast_to(&Shape::from([2, 4])).is_err());
        let err = Layout::contiguous(Shape::from([1, 1]), 0)
            .broadcast_to(&Shape::from([1 << 32, 1 << 32]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("broadcast_to: shape [4294967296, 4294967296] has more elements"),
            "{err}"
        );
    }

    #[test]
    fn spans_of_huge_views_saturate() {
        let l = Layout::new(Shape::from([1 << 40, 1 << 40]), vec![1 << 40, 1], 0);
        assert_eq!(l.storage_span(), usize::MAX);
    }
}
