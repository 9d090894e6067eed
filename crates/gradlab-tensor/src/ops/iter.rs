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
