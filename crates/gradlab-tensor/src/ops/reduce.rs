//! Reductions: sum and mean over any set of dims, max along a dim, and the
//! gather/scatter pair that routes max's gradient.

use super::iter::for_each_offset_pair;
use crate::{with_float, Element, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::Float;

/// Normalises a list of dims (None = all): checks range and duplicates, sorts.
pub fn reduced_dims(op: &'static str, shape: &Shape, dims: Option<&[usize]>) -> Result<Vec<usize>> {
    let mut dims: Vec<usize> = match dims {
        None => (0..shape.rank()).collect(),
        Some(d) => d.to_vec(),
    };
    for &d in &dims {
        shape.check_dim(op, d)?;
    }
    dims.sort_unstable();
    if dims.windows(2).any(|w| w[0] == w[1]) {
        return Err(TensorError::invalid(
            op,
            format!("dimension listed twice in {dims:?}"),
        ));
    }
    Ok(dims)
}

/// The shape after reducing `dims`, keeping them as size 1 or dropping them.
pub fn reduced_shape(shape: &Shape, dims: &[usize], keepdim: bool) -> Shape {
    let mut out = Vec::with_capacity(shape.rank());
    for (i, &d) in shape.dims().iter().enumerate() {
        if !dims.contains(&i) {
            out.push(d);
        } else if keepdim {
            out.push(1);
        }
    }
    Shape::new(out)
}

fn sum_impl<T: Element>(x: &Tensor, dims: &[usize], keepdim: bool, scale: f64) -> Result<Tensor> {
    let data = x.storage_slice::<T>("sum")?;
    let kept = reduced_shape(x.shape(), dims, true);
    let mut acc = vec![T::ZERO; kept.numel()];
    match x.layout().contiguous_range() {
        Some(range) => sum_blocks(&data[range], &reduction_blocks(x.dims(), dims), &mut acc),
        None => {
            // Broadcasting the (keepdim) output back over the input maps every
            // input element onto the output element it is summed into.
            let out_layout = Layout::contiguous(kept.clone(), 0).broadcast_to(x.shape())?;
            for_each_offset_pair(x.layout(), &out_layout, |i, o| acc[o] += data[i]);
        }
    }
    if scale != 1.0 {
        let s = T::from_f64(scale);
        acc.iter_mut().for_each(|v| *v *= s);
    }
    Tensor::from_vec(acc, reduced_shape(x.shape(), dims, keepdim))
}

/// The dims of a contiguous tensor merged into runs that are all reduced or
/// all kept: `(length, reduced)`, outermost first. Summing `[N, C, H, W]`
/// over `[0, 2, 3]` becomes `[(N, true), (C, false), (H*W, true)]`.
fn reduction_blocks(dims: &[usize], reduced: &[usize]) -> Vec<(usize, bool)> {
    let mut blocks: Vec<(usize, bool)> = Vec::new();
    for (d, &len) in dims.iter().enumerate() {
        let r = reduced.contains(&d);
        match blocks.last_mut() {
            Some((l, br)) if *br == r => *l *= len,
            _ => blocks.push((len, r)),
        }
    }
    blocks
}

/// Adds the contiguous `x`, laid out as `blocks`, into `acc` (the kept
/// elements in order). The innermost run is either summed as a whole or
/// added elementwise, both loops the compiler vectorises.
fn sum_blocks<T: Float>(x: &[T], blocks: &[(usize, bool)], acc: &mut [T]) {
    let Some((&(len, reduced), rest)) = blocks.split_first() else {
        acc[0] += x[0];
        return;
    };
    if rest.is_empty() {
        if reduced {
            acc[0] += sum_run(x);
        } else {
            acc.iter_mut().zip(x).for_each(|(a, &v)| *a += v);
        }
        return;
    }
    let x_step = x.len() / len.max(1);
    let acc_step = if reduced { 0 } else { acc.len() / len.max(1) };
    for i in 0..len {
        let xs = &x[i * x_step..(i + 1) * x_step];
        let out = if reduced {
            &mut *acc
        } else {
            &mut acc[i * acc_step..(i + 1) * acc_step]
        };
        sum_blocks(xs, rest, out);
    }
}

/// Sum of a contiguous run in eight interleaved partial sums (a fixed
/// order, so results are deterministic, and one the compiler vectorises).
fn sum_run<T: Float>(x: &[T]) -> T {
    let mut lanes = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mut total = lanes.iter().fold(T::ZERO, |a, &b| a + b);
    for &v in tail {
        total += v;
    }
    total
}

fn max_dim_impl<T: Element>(x: &Tensor, dim: usize, keepdim: bool) -> Result<(Tensor, Tensor)> {
    let data = x.storage_slice::<T>("max_dim")?;
    let kept = reduced_shape(x.shape(), &[dim], true);
    let n = kept.numel();
    let mut best = vec![T::NEG_INFINITY; n];
    let mut arg = vec![-1i64; n];
    let out_layout = Layout::contiguous(kept.clone(), 0).broadcast_to(x.shape())?;
    // Row-major order visits each output's candidates in increasing index
    // along `dim`, so `>` keeps the first maximum, as PyTorch does on CPU.
    let along_stride: usize = x.dims()[dim + 1..].iter().product();
    let mut counter = 0usize;
    for_each_offset_pair(x.layout(), &out_layout, |i, o| {
        let pos = (counter / along_stride) % x.dims()[dim];
        counter += 1;
        let v = data[i];
        if arg[o] < 0 || v > best[o] || (v.is_nan() && !best[o].is_nan()) {
            best[o] = v;
            arg[o] = pos as i64;
        }
    });
    let shape = reduced_shape(x.shape(), &[dim], keepdim);
    Ok((
        Tensor::from_vec(best, shape.clone())?,
        Tensor::from_vec(arg, shape)?,
    ))
}

impl Tensor {
    /// Sum over `dims` (None = all), keeping them as size 1 when `keepdim`.
    pub fn sum(&self, dims: Option<&[usize]>, keepdim: bool) -> Result<Tensor> {
        let dims = reduced_dims("sum", self.shape(), dims)?;
        if self.is_cuda() {
            self.check_float("sum")?;
            return crate::cuda::sum(self, &dims, keepdim, 1.0);
        }
        with_float!(self.dtype(), "sum", |T| sum_impl::<T>(
            self, &dims, keepdim, 1.0
        ))
    }

    /// Sum of all elements as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(None, false)
    }

    /// Mean over `dims` (None = all).
    pub fn mean(&self, dims: Option<&[usize]>, keepdim: bool) -> Result<Tensor> {
        let dims = reduced_dims("mean", self.shape(), dims)?;
        let count: usize = dims.iter().map(|&d| self.dims()[d]).product();
        let scale = if count == 0 {
            f64::NAN
        } else {
            1.0 / count as f64
        };
        if self.is_cuda() {
            self.check_float("mean")?;
            return crate::cuda::sum(self, &dims, keepdim, scale);
        }
        with_float!(self.dtype(), "mean", |T| sum_impl::<T>(
            self, &dims, keepdim, scale
        ))
    }

    /// Maximum along `dim`: values and their indices (i64) along that dim.
    pub fn max_dim(&self, dim: usize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.shape().check_dim("max_dim", dim)?;
        if self.dims()[dim] == 0 {
            return Err(TensorError::shape(
                "max_dim",
                format!(
                    "cannot take the max over empty dimension {dim} of shape {}",
                    self.shape()
                ),
            ));
        }
        if self.is_cuda() {
            self.check_float("max_dim")?;
            return crate::cuda::max_dim(self, dim, keepdim);
        }
        with_float!(self.dtype(), "max_dim", |T| max_dim_impl::<T>(
            self, dim, keepdim
        ))
    }

    /// Sums broadcast dimensions away so that the result has `shape`: the
    /// adjoint of `broadcast_to`, used by the gradients of broadcasting ops.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.rank()).ok_or_else(|| {
            TensorError::shape(
                "sum_to",
                format!("cannot sum shape {} to {shape}", self.shape()),
            )
        })?;
        let mut dims: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            let have = self.dims()[lead + i];
            if d == 1 && have != 1 {
                dims.push(lead + i);
            } else if d != have {
                return Err(TensorError::shape(
                    "sum_to",
                    format!("cannot sum shape {} to {shape}", self.shape()),
                ));
            }
        }
        self.sum(Some(&dims), true)?.reshape(shape.clone())
    }

    /// `out[..., idx[...], ...] += self[...]` into zeros of `shape` along `dim`:
    /// `self` and `index` have `shape` with `dim` of any size; the adjoint of
    /// [`Tensor::gather_along`].
    pub fn scatter_add_along(&self, dim: usize, index: &Tensor, shape: &Shape) -> Result<Tensor> {
        check_index_op("scatter_add_along", self, dim, index, shape)?;
        if self.is_cuda() {
            self.check_float("scatter_add_along")?;
            return crate::cuda::scatter_add_along(self, dim, index, shape);
        }
        let idx = index.contiguous_slice::<i64>("scatter_add_along")?;
        with_float!(self.dtype(), "scatter_add_along", |T| {
            let src = self.contiguous_slice::<T>("scatter_add_along")?;
            let mut out = vec![T::ZERO; shape.numel()];
            let (outer, len, inner) = split_at_dim(self.dims(), dim);
            let full = shape.dims()[dim];
            for o in 0..outer {
                for j in 0..len {
                    for i in 0..inner {
                        let k = (o * len + j) * inner + i;
                        let target = checked_index("scatter_add_along", idx[k], full)?;
                        out[(o * full + target) * inner + i] += src[k];
                    }
                }
            }
            Tensor::from_vec(out, shape.clone())
        })
    }

    /// `out[...] = self[..., idx[...], ...]` along `dim`, as `torch.gather`.
    pub fn gather_along(&self, dim: usize, index: &Tensor) -> Result<Tensor> {
        check_index_op("gather_along", index, dim, index, self.shape())?;
        if self.is_cuda() {
            return crate::cuda::gather_along(self);
        }
        let idx = index.contiguous_slice::<i64>("gather_along")?;
        with_float!(self.dtype(), "gather_along", |T| {
            let src = self.contiguous_slice::<T>("gather_along")?;
            let (outer, len, inner) = split_at_dim(index.dims(), dim);
            let full = self.dims()[dim];
            let mut out = Vec::with_capacity(index.numel());
            for o in 0..outer {
                for j in 0..len {
                    for i in 0..inner {
                        let k = (o * len + j) * inner + i;
                        let source = checked_index("gather_along", idx[k], full)?;
                        out.push(src[(o * full + source) * inner + i]);
                    }
                }
            }
            Tensor::from_vec(out, index.shape().clone())
        })
    }
}

/// (product of dims before `dim`, dims[dim], product of dims after).
pub(crate) fn split_at_dim(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    )
}

fn checked_index(op: &'static str, i: i64, len: usize) -> Result<usize> {
    if i >= 0 && (i as usize) < len {
        Ok(i as usize)
    } else {
        Err(TensorError::invalid(
            op,
            format!("index {i} is out of range for a dimension of size {len}"),
        ))
    }
}

fn check_index_op(
    op: &'static str,
    src: &Tensor,
    dim: usize,
    index: &Tensor,
    full: &Shape,
) -> Result<()> {
    if index.dtype() != crate::DType::I64 {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype: index.dtype(),
            expected: "i64 indices",
        });
    }
    src.check_same_device(op, index)?;
    full.check_dim(op, dim)?;
    let same_except_dim = src.rank() == full.rank()
        && index.shape() == src.shape()
        && (0..full.rank()).all(|d| d == dim || src.dims()[d] == full.dims()[d]);
    if !same_except_dim {
        return Err(TensorError::shape(
            op,
            format!(
                "source {} and index {} must match {full} in every dimension but {dim}",
                src.shape(),
                index.shape()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{DType, Rng, Tensor};

    /// Sums of a contiguous tensor (block path) and of a permuted view of
    /// the same values (strided path) agree for every subset of dims.
    #[test]
    fn contiguous_and_strided_sums_agree() {
        let x = Tensor::randn([3, 4, 5, 6], 0.0, 1.0, DType::F64, &mut Rng::new(5));
        let strided = x.permute(&[3, 2, 1, 0]).unwrap(); // dims [6, 5, 4, 3]
        for mask in 0u32..16 {
            let dims: Vec<usize> = (0..4).filter(|d| mask & (1 << d) != 0).collect();
            let flipped: Vec<usize> = dims.iter().map(|d| 3 - d).collect();
            for keepdim in [false, true] {
                let fast = x.sum(Some(&dims), keepdim).unwrap();
                let slow = strided
                    .sum(Some(&flipped), true)
                    .unwrap()
                    .permute(&[3, 2, 1, 0])
                    .unwrap();
                let slow = slow.reshape(fast.shape().clone()).unwrap();
                let (f, s) = (fast.to_vec::<f64>().unwrap(), slow.to_vec::<f64>().unwrap());
                assert_eq!(f.len(), s.len());
                for (a, b) in f.iter().zip(&s) {
                    assert!((a - b).abs() < 1e-12, "dims {dims:?}: {a} vs {b}");
                }
            }
        }
    }
}
