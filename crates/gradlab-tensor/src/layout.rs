//! Where each element of a tensor lives in its storage: shape, strides, offset.
//!
//! Every view (permute, transpose, narrow, broadcast, squeeze, unsqueeze,
//! reshape of contiguous data) is a new `Layout` over the same storage; no
//! element is copied. Broadcast dimensions have stride 0.

use crate::{Dim, Result, Shape, TensorError};

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

    /// Inserts a size-1 dim at `dim`, one of the `rank + 1` places.
    pub fn unsqueeze(&self, dim: usize) -> Result<Layout> {
        let dim = Dim::from(dim).index_among("unsqueeze", &self.shape, self.shape.rank() + 1)?;
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

    /// True when the elements are exactly `[0, numel)` of the storage, in
    /// row-major order (contiguous and starting at offset 0).
    pub fn is_compact(&self) -> bool {
        self.offset == 0 && self.is_contiguous()
    }

    /// The one stride that steps through every element in row-major order,
    /// if there is one: 1 for contiguous data, 0 for a broadcast scalar, `s`
    /// for a strided run. Size-1 dims are ignored.
    pub fn single_stride(&self) -> Option<usize> {
        let mut stride = None;
        let mut next: Option<usize> = None; // the stride the dim to the left must have
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d == 1 {
                continue;
            }
            if next.is_some_and(|n| n != s) {
                return None;
            }
            stride.get_or_insert(s);
            next = Some(s * d);
        }
        Some(stride.unwrap_or(0))
    }

    /// Calls `f` for each innermost run of a walk over `self` and `other`
    /// (two layouts of one shape) in row-major order, after merging the
    /// dims that both keep contiguous with each other: a `[64, 6, 28, 28]`
    /// tensor beside a `[1, 6, 1, 1]` broadcast walks as 384 runs of 784.
    /// Every other walk over layouts in the crate is built on this one.
    pub fn for_each_run_pair(&self, other: &Layout, mut f: impl FnMut(RunPair)) {
        debug_assert_eq!(self.dims(), other.dims());
        if self.numel() == 0 {
            return;
        }
        let (dims, sa, sb) = coalesce(self, other);
        let Some((&len, outer)) = dims.split_last() else {
            f(RunPair {
                a: self.offset,
                b: other.offset,
                len: 1,
                stride_a: 0,
                stride_b: 0,
            });
            return;
        };
        let inner = outer.len();
        let (stride_a, stride_b) = (sa[inner], sb[inner]);
        let mut index = vec![0usize; inner];
        let (mut a, mut b) = (self.offset, other.offset);
        loop {
            f(RunPair {
                a,
                b,
                len,
                stride_a,
                stride_b,
            });
            // Odometer increment over the outer dims.
            let mut d = inner;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                a += sa[d];
                b += sb[d];
                if index[d] < outer[d] {
                    break;
                }
                a -= index[d] * sa[d];
                b -= index[d] * sb[d];
                index[d] = 0;
            }
        }
    }

    /// Calls `f(offset_in_self, offset_in_other)` for every element of two
    /// layouts of one shape, in row-major order.
    pub fn for_each_offset_pair(&self, other: &Layout, mut f: impl FnMut(usize, usize)) {
        self.for_each_run_pair(other, |r| {
            for i in 0..r.len {
                f(r.a + i * r.stride_a, r.b + i * r.stride_b);
            }
        });
    }

    /// Calls `f` with the storage offset of every element, in row-major order.
    pub fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        self.for_each_run_pair(self, |r| {
            for i in 0..r.len {
                f(r.a + i * r.stride_a);
            }
        });
    }

    /// Storage offsets of all elements in row-major order.
    pub fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.numel());
        self.for_each_offset(|o| v.push(o));
        v
    }

    /// This layout read as a batch of matrices: the last two dims are the
    /// rows and columns, the dims before them the batch, broadcast to
    /// `batch` (rank >= 2 required; the caller checks).
    pub fn matrix_batch(&self, batch: &Shape) -> Result<MatrixBatch> {
        let r = self.shape.rank();
        debug_assert!(r >= 2, "matrix_batch needs rank >= 2");
        let batch_layout = Layout::new(
            Shape::new(&self.dims()[..r - 2]),
            self.strides[..r - 2].to_vec(),
            self.offset,
        )
        .broadcast_to(batch)?;
        Ok(MatrixBatch {
            batch: batch_layout,
            rows: self.dims()[r - 2],
            cols: self.dims()[r - 1],
            row_stride: self.strides[r - 2],
            col_stride: self.strides[r - 1],
        })
    }
}

/// One innermost run of [`Layout::for_each_run_pair`]: `len` elements
/// starting at storage offsets `a` and `b`, `stride_a` and `stride_b` apart
/// (0 for a broadcast run, 1 for a contiguous one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPair {
    pub a: usize,
    pub b: usize,
    pub len: usize,
    pub stride_a: usize,
    pub stride_b: usize,
}

/// A tensor seen as a batch of matrices (see [`Layout::matrix_batch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixBatch {
    /// Where each matrix starts: one element per matrix of the batch.
    pub batch: Layout,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl MatrixBatch {
    /// The storage offset of each matrix, in batch order.
    pub fn offsets(&self) -> Vec<usize> {
        self.batch.offsets()
    }
}

/// Dims and strides of two layouts of one shape, size-1 dims dropped and
/// adjacent dims merged wherever both layouts keep them contiguous with
/// each other.
fn coalesce(a: &Layout, b: &Layout) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut sa: Vec<usize> = Vec::new();
    let mut sb: Vec<usize> = Vec::new();
    for ((&d, &x), &y) in a.dims().iter().zip(&a.strides).zip(&b.strides) {
        if d == 1 {
            continue;
        }
        match (dims.last_mut(), sa.last_mut(), sb.last_mut()) {
            (Some(pd), Some(px), Some(py)) if *px == x * d && *py == y * d => {
                *pd *= d;
                *px = x;
                *py = y;
            }
            _ => {
                dims.push(d);
                sa.push(x);
                sb.push(y);
            }
        }
    }
    (dims, sa, sb)
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
    fn runs_merge_dims_and_cover_every_element() {
        let x = Layout::contiguous(Shape::from([4, 6, 5]), 0);
        let bias = Layout::contiguous(Shape::from([1, 6, 1]), 0)
            .broadcast_to(&Shape::from([4, 6, 5]))
            .unwrap();
        let mut runs = Vec::new();
        x.for_each_run_pair(&bias, |r| runs.push(r));
        assert_eq!(runs.len(), 24);
        assert_eq!((runs[1].a, runs[1].b, runs[1].len), (5, 1, 5));
        assert_eq!((runs[1].stride_a, runs[1].stride_b), (1, 0));
        let mut pairs = Vec::new();
        x.for_each_offset_pair(&bias, |a, b| pairs.push((a, b)));
        let want: Vec<(usize, usize)> = (0..120).map(|i| (i, (i / 5) % 6)).collect();
        assert_eq!(pairs, want);
        let t = x.transpose(0, 2).unwrap();
        let mut seen = t.offsets();
        seen.sort_unstable();
        assert_eq!(seen, (0..120).collect::<Vec<_>>());
    }

    #[test]
    fn single_strides_and_matrix_batches() {
        let l = Layout::contiguous(Shape::from([2, 3, 4, 5]), 0);
        assert_eq!(l.single_stride(), Some(1));
        assert_eq!(l.narrow(3, 0, 1).unwrap().single_stride(), Some(5));
        assert_eq!(l.narrow(3, 0, 2).unwrap().single_stride(), None);
        let m = l.matrix_batch(&Shape::from([2, 3])).unwrap();
        assert_eq!((m.rows, m.cols, m.row_stride, m.col_stride), (4, 5, 5, 1));
        assert_eq!(m.offsets(), vec![0, 20, 40, 60, 80, 100]);
        assert_eq!(m.batch.single_stride(), Some(20));
        let b = Layout::contiguous(Shape::from([3, 4, 5]), 0)
            .matrix_batch(&Shape::from([2, 3]))
            .unwrap();
        assert_eq!(b.offsets(), vec![0, 20, 40, 0, 20, 40]);
        // A broadcast outer dim beside a real inner one cannot fold.
        assert_eq!(b.batch.single_stride(), None);
        let s = Layout::new(Shape::from([2, 3]), vec![0, 0], 7);
        assert_eq!(s.single_stride(), Some(0));
        assert_eq!(
            Layout::new(Shape::from([2, 3]), vec![12, 24], 0).single_stride(),
            None
        );
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
