//! Sums, max along a dim, and the gather/scatter pair on the fast path.

use crate::backend::host::{filled, tensor, zeros};
use crate::ops::reduce::{reduced_shape, split_at_dim};
use crate::{Element, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::Float;

pub(super) fn sum<T: Element>(x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
    let data = x.storage_slice::<T>("sum")?;
    let kept = reduced_shape(x.shape(), dims, true);
    let mut acc = zeros::<T>("sum", kept.numel())?;
    match x.layout().contiguous_range() {
        Some(range) => sum_blocks(&data[range], &reduction_blocks(x.dims(), dims), &mut acc),
        None => {
            // Broadcasting the (keepdim) output back over the input maps every
            // input element onto the output element it is summed into.
            let out_layout = Layout::contiguous(kept.clone(), 0).broadcast_to(x.shape())?;
            x.layout()
                .for_each_offset_pair(&out_layout, |i, o| acc[o] += data[i]);
        }
    }
    if scale != 1.0 {
        let s = T::from_f64(scale);
        acc.iter_mut().for_each(|v| *v *= s);
    }
    tensor(acc, kept)
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

pub(super) fn max_along<T: Element>(x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
    let data = x.storage_slice::<T>("max_dim")?;
    let kept = reduced_shape(x.shape(), &[dim], true);
    let n = kept.numel();
    let mut best = filled("max_dim", n, T::NEG_INFINITY)?;
    let mut arg = filled("max_dim", n, -1i64)?;
    let out_layout = Layout::contiguous(kept.clone(), 0).broadcast_to(x.shape())?;
    // Row-major order visits each output's candidates in increasing index
    // along `dim`, so `>` keeps the first maximum, as PyTorch does on CPU.
    let along_stride: usize = x.dims()[dim + 1..].iter().product();
    let mut counter = 0usize;
    x.layout().for_each_offset_pair(&out_layout, |i, o| {
        let pos = (counter / along_stride) % x.dims()[dim];
        counter += 1;
        let v = data[i];
        if arg[o] < 0 || v > best[o] || (v.is_nan() && !best[o].is_nan()) {
            best[o] = v;
            arg[o] = pos as i64;
        }
    });
    Ok((tensor(best, kept.clone())?, tensor(arg, kept)?))
}

pub(super) fn scatter_add_along<T: Element>(
    src: &Tensor,
    dim: usize,
    index: &Tensor,
    shape: &Shape,
) -> Result<Tensor> {
    let op = "scatter_add_along";
    let idx = index.contiguous_slice::<i64>(op)?;
    let src = src.contiguous_slice::<T>(op)?;
    let mut out = zeros::<T>(op, shape.numel())?;
    let (outer, len, inner) = split_at_dim(index.dims(), dim);
    let full = shape.dims()[dim];
    for o in 0..outer {
        for j in 0..len {
            for i in 0..inner {
                let k = (o * len + j) * inner + i;
                let target = checked_index(op, idx[k], full)?;
                out[(o * full + target) * inner + i] += src[k];
            }
        }
    }
    tensor(out, shape.clone())
}

pub(super) fn gather_along<T: Element>(x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor> {
    let op = "gather_along";
    let idx = index.contiguous_slice::<i64>(op)?;
    let src = x.contiguous_slice::<T>(op)?;
    let (outer, len, inner) = split_at_dim(index.dims(), dim);
    let full = x.dims()[dim];
    let mut out = gradlab_cpu::alloc::try_vec(op, index.numel())?;
    for o in 0..outer {
        for j in 0..len {
            for i in 0..inner {
                let k = (o * len + j) * inner + i;
                let source = checked_index(op, idx[k], full)?;
                out.push(src[(o * full + source) * inner + i]);
            }
        }
    }
    tensor(out, index.shape().clone())
}

fn checked_index(op: &'static str, i: i64, len: usize) -> Result<usize> {
    if i >= 0 && (i as u64) < len as u64 {
        Ok(i as usize)
    } else {
        Err(TensorError::invalid(
            op,
            format!("index {i} is out of range for a dimension of size {len}"),
        ))
    }
}
