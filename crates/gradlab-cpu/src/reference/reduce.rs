//! Reductions, softmax and indexing along one dimension of a contiguous
//! tensor. A tensor with `dims` is read as `[outer, len, inner]` around the
//! dimension worked on: `outer` is the product of the dims before it, `inner`
//! of the dims after, and element `(o, j, i)` sits at `(o * len + j) * inner + i`.

use crate::Float;

/// Index of element `(o, j, i)` of an `[outer, len, inner]` view.
#[inline]
fn at(len: usize, inner: usize, o: usize, j: usize, i: usize) -> usize {
    (o * len + j) * inner + i
}

/// Sum of a contiguous tensor with `dims` over the dims listed in
/// `reduced`: each element is added into the output element it maps to
/// (its index with the reduced dims set to 0, in the kept shape). `out`
/// holds one value per kept element, in row-major order, and is overwritten.
pub fn sum<T: Float>(x: &[T], dims: &[usize], reduced: &[usize], out: &mut [T]) {
    out.iter_mut().for_each(|v| *v = T::ZERO);
    let mut index = vec![0usize; dims.len()];
    for &v in x {
        // The output position: the row-major index over the kept dims.
        let mut o = 0;
        for (d, (&i, &n)) in index.iter().zip(dims).enumerate() {
            if !reduced.contains(&d) {
                o = o * n + i;
            }
        }
        out[o] += v;
        // Next multi-index, last dim fastest.
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// The maximum along the middle dim of `[outer, len, inner]` and its
/// position along that dim (`len > 0`). The first maximum wins; a NaN beats
/// every number (the first NaN wins), as PyTorch's CPU kernel does.
pub fn max_along<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    values: &mut [T],
    indices: &mut [i64],
) {
    for o in 0..outer {
        for i in 0..inner {
            let mut best = x[at(len, inner, o, 0, i)];
            let mut best_j = 0;
            for j in 1..len {
                let v = x[at(len, inner, o, j, i)];
                if (v > best || v.is_nan()) && !best.is_nan() {
                    best = v;
                    best_j = j;
                }
            }
            values[o * inner + i] = best;
            indices[o * inner + i] = best_j as i64;
        }
    }
}

/// Softmax (or log-softmax when `log`) along the middle dim of
/// `[outer, len, inner]`, stabilised by the maximum.
pub fn softmax<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
    out: &mut [T],
) {
    for o in 0..outer {
        for i in 0..inner {
            let idx = |j| at(len, inner, o, j, i);
            let max = (0..len)
                .map(|j| x[idx(j)])
                .fold(T::NEG_INFINITY, |m, v| m.max(v));
            let sum: T = (0..len).map(|j| (x[idx(j)] - max).exp()).sum();
            for j in 0..len {
                let shifted = x[idx(j)] - max;
                out[idx(j)] = if log {
                    shifted - sum.ln()
                } else {
                    shifted.exp() / sum
                };
            }
        }
    }
}

/// `out[o, j, i] = src[o, index[o, j, i], i]` for `src` as `[outer, full, inner]`
/// and `index`/`out` as `[outer, len, inner]`. Indices must be in `0..full`.
pub fn gather_along<T: Float>(
    src: &[T],
    full: usize,
    index: &[i64],
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut [T],
) {
    for o in 0..outer {
        for j in 0..len {
            for i in 0..inner {
                let k = at(len, inner, o, j, i);
                out[k] = src[at(full, inner, o, index[k] as usize, i)];
            }
        }
    }
}

/// `out[o, index[o, j, i], i] += src[o, j, i]` into zeros: the adjoint of
/// [`gather_along`]. `out` is overwritten.
pub fn scatter_add_along<T: Float>(
    src: &[T],
    index: &[i64],
    outer: usize,
    len: usize,
    inner: usize,
    full: usize,
    out: &mut [T],
) {
    out.iter_mut().for_each(|v| *v = T::ZERO);
    for o in 0..outer {
        for j in 0..len {
            for i in 0..inner {
                let k = at(len, inner, o, j, i);
                out[at(full, inner, o, index[k] as usize, i)] += src[k];
            }
        }
    }
}
