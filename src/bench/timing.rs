//! Repeating a kernel and keeping the median time, with the fastest and
//! slowest repetition beside it.

use std::cell::RefCell;
use std::time::Instant;

/// The repetitions of one measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub min_s: f64,
    pub median_s: f64,
    pub max_s: f64,
    pub reps: usize,
}

impl Timing {
    /// `times` (not empty) summarised.
    pub fn of(mut times: Vec<f64>) -> Timing {
        times.sort_by(f64::total_cmp);
        Timing {
            min_s: times[0],
            median_s: times[times.len() / 2],
            max_s: times[times.len() - 1],
            reps: times.len(),
        }
    }
}

/// How long to spend per measurement.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    /// At most this many timed repetitions...
    max_reps: usize,
    /// ...and stop adding repetitions after this many seconds.
    budget_s: f64,
    /// Every measurement made, so that a row can carry its spread
    /// ([`Plan::timing_of`]).
    log: RefCell<Vec<Timing>>,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan::with_budget(quick, 7, 0.25)
        } else {
            Plan::with_budget(quick, 21, 1.0)
        }
    }

    /// At most `max_reps` repetitions (at least 3), added while the
    /// measurement has taken less than `budget_s` seconds.
    pub fn with_budget(quick: bool, max_reps: usize, budget_s: f64) -> Plan {
        Plan {
            quick,
            max_reps: max_reps.max(3),
            budget_s,
            log: RefCell::new(Vec::new()),
        }
    }

    /// Times `f` after one warm-up call (which also fills caches and
    /// scratch buffers, as a training loop's steady state would): as many
    /// repetitions as the time budget allows, at least 3.
    pub fn measure(&self, mut f: impl FnMut()) -> Timing {
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
        let timing = Timing::of(times);
        self.log.borrow_mut().push(timing);
        timing
    }

    /// Median seconds of `f` ([`Plan::measure`]).
    pub fn median_s(&self, f: impl FnMut()) -> f64 {
        self.measure(f).median_s
    }

    /// The measurement whose median is `median_s` (the spread of a row
    /// built from [`Plan::median_s`]).
    pub fn timing_of(&self, median_s: f64) -> Option<Timing> {
        self.log
            .borrow()
            .iter()
            .rev()
            .find(|t| t.median_s == median_s)
            .copied()
    }

    /// One timed call, for slow reference kernels.
    pub fn once_s(&self, mut f: impl FnMut()) -> f64 {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }
}
