//! Inputs whose elements share memory (expanded views, stride 0).
//!
//! Finite differences written on such an input's storage would move every
//! element that shares the perturbed location at once, and the numeric
//! derivative would be the sum of several partial derivatives. gradcheck
//! instead perturbs a contiguous copy, one logical element at a time,
//! which matches what the analytic side computes (autograd gives one
//! gradient entry per logical element of a view), and says so in the report.

use gradlab_tensor::Tensor;
use std::collections::HashSet;

/// Why `t`'s elements may share memory, or `None` when they cannot.
///
/// Dims are taken by increasing stride; the elements are distinct when
/// each stride steps past everything the smaller dims can reach. A view
/// that fails this (a stride of 0, or strides that interleave) is
/// described with its number of distinct memory locations.
pub(crate) fn shared_memory(t: &Tensor) -> Option<String> {
    let mut dims: Vec<(usize, usize, usize)> = t
        .dims()
        .iter()
        .zip(t.strides())
        .enumerate()
        .filter(|(_, (&size, _))| size > 1)
        .map(|(d, (&size, &stride))| (stride, size, d))
        .collect();
    dims.sort_unstable();
    let mut reach = 0;
    let mut overlapping = None;
    for &(stride, size, d) in &dims {
        if stride <= reach || stride == 0 {
            overlapping = Some((d, stride));
            break;
        }
        reach += stride * (size - 1);
    }
    let (dim, stride) = overlapping?;
    let locations: HashSet<usize> = t.layout().offsets().into_iter().collect();
    let kind = if stride == 0 {
        format!("stride 0 along dim {dim}, an expanded view")
    } else {
        format!("stride {stride} along dim {dim} overlaps the smaller dims")
    };
    Some(format!(
        "its {} elements live in {} memory locations ({kind})",
        t.numel(),
        locations.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradlab_tensor::DType;

    #[test]
    fn expanded_views_share_memory_and_other_views_do_not() {
        let row = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [1, 3]).unwrap();
        let expanded = row.broadcast_to([4, 3]).unwrap();
        let what = shared_memory(&expanded).expect("stride 0 overlaps");
        assert!(
            what.contains("12 elements live in 3 memory locations")
                && what.contains("stride 0 along dim 0"),
            "{what}"
        );
        let base = Tensor::zeros([3, 5], DType::F64);
        assert_eq!(shared_memory(&base), None);
        assert_eq!(shared_memory(&base.t().unwrap()), None);
        assert_eq!(shared_memory(&base.narrow(1, 1, 3).unwrap()), None);
        // Size-1 dims never overlap, whatever their stride.
        assert_eq!(shared_memory(&row), None);
    }
}
