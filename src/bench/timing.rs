//! Repeating a kernel and keeping the median time.

use std::time::Instant;

/// How long to spend per measurement.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub quick: bool,
    /// At most this many timed repetitions...
    max_reps: usize,
    /// ...and stop adding repetitions after this many seconds.
    budget_s: f64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                max_reps: 7,
                budget_s: 0.25,
            }
        } else {
            Plan {
                quick,
                max_reps: 21,
                budget_s: 1.0,
            }
        }
    }

    /// Median seconds of `f` after one warm-up call (which also fills caches
    /// and scratch buffers, as a training loop's steady state would).
    pub fn median_s(&self, mut f: impl FnMut()) -> f64 {
        f();
        let start = Instant::now();
        let mut times = Vec::with_capacity(self.max_reps);
        while times.len() < self.max_reps
            && (times.len() < 3 || start.elapsed().as_secs_f64() < self.budget_s)
        {
            let t = Instant::now();
            f();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    /// One timed call, for slow reference kernels.
    pub fn once_s(&self, mut f: impl FnMut()) -> f64 {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }
}
