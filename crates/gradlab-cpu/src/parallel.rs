//! When splitting a kernel across threads pays for itself, and the two
//! loop shapes kernels split.
//!
//! Waking rayon's workers and joining them costs tens of microseconds; a
//! problem smaller than a few million floating-point operations finishes
//! sooner on the calling thread. Splitting never changes results: every
//! kernel computes the same pieces in the same order either way.

use rayon::prelude::*;

/// Work below this many floating-point operations runs on the calling thread.
pub const MIN_PARALLEL_FLOPS: f64 = 8.0e6;

/// True when there is more than one worker and `flops` of work to share.
pub fn worth_parallel(flops: f64) -> bool {
    rayon::current_num_threads() > 1 && flops >= MIN_PARALLEL_FLOPS
}

/// Memory-bound kernels (pooling, elementwise) below this many elements run
/// on the calling thread.
pub const MIN_PARALLEL_ELEMS: usize = 1 << 16;

/// True when there is more than one worker and `elems` elements to share.
pub fn worth_parallel_elems(elems: usize) -> bool {
    rayon::current_num_threads() > 1 && elems >= MIN_PARALLEL_ELEMS
}

/// `f(i, chunk)` for the `chunk_len`-long chunks of `data` (the last may be
/// shorter), on the pool when `parallel`.
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if data.is_empty() || chunk_len == 0 {
        return;
    }
    let f = |(i, chunk): (usize, &mut [T])| f(i, chunk);
    if parallel {
        data.par_chunks_mut(chunk_len).enumerate().for_each(f);
    } else {
        data.chunks_mut(chunk_len).enumerate().for_each(f);
    }
}

/// `[f(0), f(1), .., f(n - 1)]`, on the pool when `parallel`.
pub(crate) fn map_indices<R: Send>(
    n: usize,
    parallel: bool,
    f: impl Fn(usize) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}
