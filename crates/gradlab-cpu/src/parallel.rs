//! When splitting a kernel across threads pays for itself, and the two
//! loop shapes kernels split.
//!
//! Waking rayon's workers and joining them costs tens of microseconds; a
//! problem smaller than a few million floating-point operations finishes
//! sooner on the calling thread. Splitting never changes results: every
//! kernel computes the same pieces in the same order either way.

use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Workers running a keep-warm job (see [`keep_workers_warm`]).
static WARM: AtomicUsize = AtomicUsize::new(0);

/// Keeps the current pool's other workers looking for work, instead of
/// parking, until none has come for `idle`; returns at once if they are
/// already kept warm. For a loop of many short parallel kernels, such as a
/// training step, called from a worker of the pool (as `gradlab train`
/// runs), and called again each iteration.
///
/// A parked worker takes time to wake: measured from a worker's `join`
/// until the other worker starts its half, 30-90 us after a pause of 0.1-10
/// ms on a 2-core virtual machine, against under 1 us for a worker that is
/// looking for work. A LeNet step makes some fifty parallel kernels of
/// 20-500 us, so that wake-up cost most of the second core's share.
/// OpenMP runtimes do the same: their threads spin for a while (the block
/// time) after a parallel region ends. The spinning worker offers its core
/// back to the operating system between looks (a `yield`), so other
/// threads, such as a data loader's, still get it.
pub fn keep_workers_warm(idle: Duration) {
    let Some(me) = rayon::current_thread_index() else {
        return;
    };
    let others = rayon::current_num_threads() - 1;
    if others == 0
        || WARM
            .compare_exchange(0, others, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    rayon::spawn_broadcast(move |ctx| {
        if ctx.index() == me {
            return;
        }
        let mut last_work = Instant::now();
        loop {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => last_work = Instant::now(),
                _ if last_work.elapsed() >= idle => break,
                _ => std::thread::yield_now(),
            }
        }
        WARM.fetch_sub(1, Ordering::Release);
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn warm_workers() -> usize {
        WARM.load(Ordering::Acquire)
    }

    /// Waits up to a second for the keep-warm count to reach `want`.
    fn settles_at(want: usize) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if warm_workers() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn workers_stay_warm_while_work_comes_and_park_after_the_idle_time() {
        // Outside a pool nothing is started.
        keep_workers_warm(Duration::from_millis(50));
        assert_eq!(warm_workers(), 0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            keep_workers_warm(Duration::from_millis(50));
            // The two other workers, once; a second call starts nothing more.
            assert_eq!(warm_workers(), 2);
            keep_workers_warm(Duration::from_millis(50));
            assert_eq!(warm_workers(), 2);
            // Work still gets done, by all three threads.
            let sum: u64 = (0..100_000u64).into_par_iter().map(|i| i * i).sum();
            assert_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>());
        });
        // No work comes: both leave after the idle time, and it can start again.
        assert!(settles_at(0), "still {} warm", warm_workers());
        pool.install(|| keep_workers_warm(Duration::from_millis(1)));
        assert!(settles_at(0), "still {} warm", warm_workers());
    }
}
