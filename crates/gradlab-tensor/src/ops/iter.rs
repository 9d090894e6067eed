//! Walking two layouts of one shape side by side.

use crate::Layout;

/// Calls `f(offset_a, offset_b)` for every element of two layouts that share
/// a shape, in row-major order.
pub(crate) fn for_each_offset_pair(a: &Layout, b: &Layout, mut f: impl FnMut(usize, usize)) {
    debug_assert_eq!(a.dims(), b.dims());
    if let (Some(ra), Some(rb)) = (a.contiguous_range(), b.contiguous_range()) {
        ra.zip(rb).for_each(|(x, y)| f(x, y));
        return;
    }
    if a.numel() == 0 {
        return;
    }
    let dims = a.dims();
    let rank = dims.len();
    if rank == 0 {
        f(a.offset(), b.offset());
        return;
    }
    let (sa, sb) = (a.strides(), b.strides());
    let inner = dims[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    let (mut oa, mut ob) = (a.offset(), b.offset());
    loop {
        for i in 0..inner {
            f(oa + i * ia, ob + i * ib);
        }
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if index[d] < dims[d] {
                break;
            }
            oa -= index[d] * sa[d];
            ob -= index[d] * sb[d];
            index[d] = 0;
        }
    }
}

/// Dims and strides of two layouts of one shape, with adjacent dims merged
/// wherever both layouts keep them contiguous with each other (so that a
/// `[64, 6, 28, 28]` tensor next to a `[1, 6, 1, 1]` broadcast becomes
/// `[64, 6, 784]` with inner strides 1 and 0).
fn coalesce(a: &Layout, b: &Layout) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut sa: Vec<usize> = Vec::new();
    let mut sb: Vec<usize> = Vec::new();
    for ((&d, &x), &y) in a.dims().iter().zip(a.strides()).zip(b.strides()) {
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

/// Calls `f(offset_a, offset_b, len, stride_a, stride_b)` for each innermost
/// run of two layouts that share a shape, in row-major order, after merging
/// dims that allow it. Callers specialise their inner loop on the strides.
pub(crate) fn for_each_run_pair(
    a: &Layout,
    b: &Layout,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    debug_assert_eq!(a.dims(), b.dims());
    if a.numel() == 0 {
        return;
    }
    let (dims, sa, sb) = coalesce(a, b);
    let Some((&inner, outer)) = dims.split_last() else {
        f(a.offset(), b.offset(), 1, 0, 0);
        return;
    };
    let rank = dims.len();
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut index = vec![0usize; outer.len()];
    let (mut oa, mut ob) = (a.offset(), b.offset());
    loop {
        f(oa, ob, inner, ia, ib);
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if index[d] < outer[d] {
                break;
            }
            oa -= index[d] * sa[d];
            ob -= index[d] * sb[d];
            index[d] = 0;
        }
    }
}
