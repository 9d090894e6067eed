//! Fast 2-D max-pool (NCHW): parallel over channel planes, with the window
//! bounds worked out once per row and column instead of per tap, and
//! vector kernels for the common 2×2, stride-2 window (`pool/two_by_two.rs`).
//!
//! Ties and NaNs are resolved exactly as in the reference twin
//! ([`crate::reference::max_pool2d_forward`]): scan order, the first maximum
//! wins, and a NaN beats everything after it except a later NaN (the last
//! NaN of a window wins), as PyTorch's CPU kernel does.

mod two_by_two;

use crate::parallel::for_each_chunk;
use crate::simd::SimdLevel;
use crate::{Float, Pool2dShape};
use rayon::prelude::*;
use std::sync::Mutex;

/// The element type of an argmax buffer: `usize` (the reference twin's) or
/// `i64` (what tensors store, as PyTorch does), so that callers holding
/// either need no conversion pass. A window without a winner (all of it in
/// the padding, impossible with PyTorch's padding limits) gets `NONE`.
pub trait PoolIndex: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// The marker of a window without a winner (`usize::MAX`, `-1`).
    const NONE: Self;
    /// The index of an element within its plane.
    fn from_index(i: usize) -> Self;
    /// The plane index, or `None` for [`PoolIndex::NONE`] (and any other
    /// value that is not an index, such as a negative `i64`).
    fn index(self) -> Option<usize>;
}

impl PoolIndex for usize {
    const NONE: Self = usize::MAX;
    #[inline(always)]
    fn from_index(i: usize) -> Self {
        i
    }
    #[inline(always)]
    fn index(self) -> Option<usize> {
        (self != usize::MAX).then_some(self)
    }
}

impl PoolIndex for i64 {
    const NONE: Self = -1;
    #[inline(always)]
    fn from_index(i: usize) -> Self {
        i as i64
    }
    #[inline(always)]
    fn index(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}

/// Elements per parallel task: below this a task costs more to schedule than to run.
const TASK_ELEMS: usize = 1 << 14;

fn check(op: &str, s: &Pool2dShape) {
    assert!(
        s.kernel.0 > 0
            && s.kernel.1 > 0
            && s.stride.0 > 0
            && s.stride.1 > 0
            && s.dilation.0 > 0
            && s.dilation.1 > 0,
        "{op}: invalid shape {s:?} (kernel, stride and dilation must be positive)"
    );
}

fn check_len(op: &str, what: &str, got: usize, want: usize, s: &Pool2dShape) {
    assert!(
        got >= want,
        "{op}: {what} has {got} elements, shape {s:?} needs {want}"
    );
}

/// Planes per task so that each task touches about `TASK_ELEMS` input elements.
fn planes_per_task(s: &Pool2dShape) -> usize {
    (TASK_ELEMS / (s.in_h * s.in_w).max(1)).max(1)
}

/// Max-pool forward; `argmax` gets each winner's index within its input
/// plane (`ih * in_w + iw`). Same contract as the reference twin.
///
/// # Panics
/// On an invalid shape or slices shorter than the shape needs.
pub fn max_pool2d_forward<T: Float, I: PoolIndex>(
    s: &Pool2dShape,
    input: &[T],
    out: &mut [T],
    argmax: &mut [I],
) {
    let op = "max_pool2d_forward";
    check(op, s);
    check_len(op, "input", input.len(), s.input_len(), s);
    check_len(op, "out", out.len(), s.output_len(), s);
    check_len(op, "argmax", argmax.len(), s.output_len(), s);
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let (plane, out_plane) = (s.in_h * s.in_w, out_h * out_w);
    if out_plane == 0 || s.batch * s.channels == 0 {
        return;
    }
    let per_task = planes_per_task(s);
    let planes = s.batch * s.channels;
    let level = crate::simd::simd_level();
    let lefts = two_by_two::gather_table::<T, I>(level, s);
    let out = &mut out[..planes * out_plane];
    let argmax = &mut argmax[..planes * out_plane];
    let task = |(t, (out, argmax)): (usize, (&mut [T], &mut [I]))| {
        let first = t * per_task;
        for (i, (out, argmax)) in out
            .chunks_exact_mut(out_plane)
            .zip(argmax.chunks_exact_mut(out_plane))
            .enumerate()
        {
            let x = &input[(first + i) * plane..(first + i + 1) * plane];
            pool_plane(level, s, &lefts, x, out, argmax);
        }
    };
    let chunk = per_task * out_plane;
    if planes > per_task && crate::parallel::worth_parallel_elems(s.input_len()) {
        out.par_chunks_mut(chunk)
            .zip(argmax.par_chunks_mut(chunk))
            .enumerate()
            .for_each(task);
    } else {
        out.chunks_mut(chunk)
            .zip(argmax.chunks_mut(chunk))
            .enumerate()
            .for_each(task);
    }
}

fn pool_plane<T: Float, I: PoolIndex>(
    level: SimdLevel,
    s: &Pool2dShape,
    lefts: &[i32],
    x: &[T],
    out: &mut [T],
    argmax: &mut [I],
) {
    if two_by_two::applies(s) {
        return two_by_two::forward_plane(level, s, lefts, x, out, argmax);
    }
    let (out_h, out_w) = (s.out_h(), s.out_w());
    // Valid taps of each output column, computed once per plane.
    let cols: Vec<(usize, usize)> = (0..out_w)
        .map(|ow| {
            valid_taps(
                ow,
                s.kernel.1,
                s.stride.1,
                s.padding.1,
                s.dilation.1,
                s.in_w,
            )
        })
        .collect();
    for oh in 0..out_h {
        let (kh_lo, kh_hi) = valid_taps(
            oh,
            s.kernel.0,
            s.stride.0,
            s.padding.0,
            s.dilation.0,
            s.in_h,
        );
        let ih0 = oh * s.stride.0;
        for (ow, &(kw_lo, kw_hi)) in cols.iter().enumerate() {
            let iw0 = ow * s.stride.1;
            let mut best = T::NEG_INFINITY;
            let mut best_idx = usize::MAX;
            for kh in kh_lo..kh_hi {
                let ih = ih0 + kh * s.dilation.0 - s.padding.0;
                for kw in kw_lo..kw_hi {
                    let idx = ih * s.in_w + iw0 + kw * s.dilation.1 - s.padding.1;
                    let v = x[idx];
                    if best_idx == usize::MAX || v > best || v.is_nan() {
                        best = v;
                        best_idx = idx;
                    }
                }
            }
            out[oh * out_w + ow] = best;
            argmax[oh * out_w + ow] = if best_idx == usize::MAX {
                I::NONE
            } else {
                I::from_index(best_idx)
            };
        }
    }
}

/// Taps `lo..hi` of a window at output `o` that land inside `0..len`.
fn valid_taps(
    o: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    len: usize,
) -> (usize, usize) {
    let start = o * stride;
    // Tap k reads position start + k*dilation - padding.
    let lo = if start >= padding {
        0
    } else {
        (padding - start).div_ceil(dilation)
    };
    let end = len + padding; // first invalid (start + k*dilation)
    let hi = if start >= end {
        0
    } else {
        (end - start).div_ceil(dilation).min(kernel)
    };
    (lo.min(hi), hi)
}

/// Max-pool backward: each output gradient goes to its window's winner
/// (overwrites `grad_input`). Same contract as the reference twin.
///
/// # Panics
/// On an invalid shape, slices shorter than the shape needs, or an
/// `argmax` entry outside its plane (see [`try_max_pool2d_backward`]).
pub fn max_pool2d_backward<T: Float, I: PoolIndex>(
    s: &Pool2dShape,
    grad_out: &[T],
    argmax: &[I],
    grad_input: &mut [T],
) {
    let op = "max_pool2d_backward";
    if let Err(e) = scatter(op, s, grad_out, argmax, grad_input, true) {
        panic!("{op}: {e}");
    }
}

/// [`max_pool2d_backward`] for an `argmax` that may come from a user: an
/// entry outside its plane is an error (the first one, by flat index),
/// found by the scatter itself rather than by a pass of its own, and
/// `grad_input` then holds no meaningful values.
///
/// # Panics
/// On an invalid shape or slices shorter than the shape needs.
pub fn try_max_pool2d_backward<T: Float, I: PoolIndex>(
    s: &Pool2dShape,
    grad_out: &[T],
    argmax: &[I],
    grad_input: &mut [T],
) -> Result<(), ArgmaxOutsidePlane> {
    scatter("max_pool2d_backward", s, grad_out, argmax, grad_input, true)
}

/// An argmax entry that is neither the no-winner marker nor an index within
/// its plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argmax entry {entry} at flat index {at} is outside its plane of {plane} elements (or -1)")]
pub struct ArgmaxOutsidePlane {
    /// The entry's position in `argmax`.
    pub at: usize,
    /// The entry, as written.
    pub entry: String,
    /// Elements per plane.
    pub plane: usize,
}

/// [`max_pool2d_backward`] adding into `grad_input` instead of overwriting
/// it: for a buffer that is already zero (a fresh `vec![0.0; n]`), this
/// saves clearing it twice.
///
/// # Panics
/// As [`max_pool2d_backward`].
pub fn max_pool2d_backward_add<T: Float, I: PoolIndex>(
    s: &Pool2dShape,
    grad_out: &[T],
    argmax: &[I],
    grad_input: &mut [T],
) {
    let op = "max_pool2d_backward_add";
    if let Err(e) = scatter(op, s, grad_out, argmax, grad_input, false) {
        panic!("{op}: {e}");
    }
}

/// Adds each output gradient at its winner; stops a task at its first
/// entry outside the plane and reports the first such entry overall.
fn scatter<T: Float, I: PoolIndex>(
    op: &str,
    s: &Pool2dShape,
    grad_out: &[T],
    argmax: &[I],
    grad_input: &mut [T],
    overwrite: bool,
) -> Result<(), ArgmaxOutsidePlane> {
    check(op, s);
    check_len(op, "grad_out", grad_out.len(), s.output_len(), s);
    check_len(op, "argmax", argmax.len(), s.output_len(), s);
    check_len(op, "grad_input", grad_input.len(), s.input_len(), s);
    let (plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    let planes = s.batch * s.channels;
    let grad_input = &mut grad_input[..planes * plane];
    if plane == 0 {
        return Ok(());
    }
    let per_task = planes_per_task(s);
    let first_bad: Mutex<Option<ArgmaxOutsidePlane>> = Mutex::new(None);
    let task = |t: usize, dx: &mut [T]| {
        if overwrite {
            dx.fill(T::ZERO);
        }
        let first = t * per_task;
        for (i, dx) in dx.chunks_exact_mut(plane).enumerate() {
            let at = (first + i) * out_plane;
            let (dy, arg) = (&grad_out[at..at + out_plane], &argmax[at..at + out_plane]);
            for (o, (&idx, &g)) in arg.iter().zip(dy).enumerate() {
                if idx == I::NONE {
                    continue;
                }
                match idx.index() {
                    Some(idx) if idx < plane => dx[idx] += g,
                    _ => {
                        let bad = ArgmaxOutsidePlane {
                            at: at + o,
                            entry: format!("{idx:?}"),
                            plane,
                        };
                        let mut first_bad = first_bad.lock().unwrap_or_else(|e| e.into_inner());
                        if first_bad.as_ref().is_none_or(|b| b.at > bad.at) {
                            *first_bad = Some(bad);
                        }
                        return;
                    }
                }
            }
        }
    };
    let parallel = planes > per_task && crate::parallel::worth_parallel_elems(s.input_len());
    for_each_chunk(grad_input, per_task * plane, parallel, task);
    match first_bad.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(bad) => Err(bad),
        None => Ok(()),
    }
}
