//! When splitting a kernel across threads pays for itself.
//!
//! Waking rayon's workers and joining them costs tens of microseconds; a
//! problem smaller than a few million floating-point operations finishes
//! sooner on the calling thread. Splitting never changes results: every
//! kernel computes the same pieces in the same order either way.

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
