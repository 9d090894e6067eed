//! Mean and biased variance of a sequence of runs in one read of the data.
//!
//! The textbook two-pass form (the mean, then the squared deviations from
//! it) reads an activation twice. The naive one-pass form,
//! `Σx²/n - (Σx/n)²`, reads it once but cancels catastrophically when the
//! mean is large against the spread (`1e4 + noise` in `f32` loses every
//! digit of the variance). This module reads each value once and loses
//! nothing measurable:
//!
//! - values are taken in blocks of at most [`BLOCK`]; within a block it
//!   sums `d = x - shift` and `d²` in `f64`, in eight independent lanes
//!   (which the compiler turns into vector code), where `shift` is the mean
//!   of the blocks before (the block's first value for the first block);
//! - the block's mean and sum of squared deviations follow from those
//!   shifted sums, `M2 = Σd² - (Σd)²/n`: with the shift within a few
//!   standard deviations of the block's mean, the subtraction cancels only
//!   a few bits of the 53 of `f64`;
//! - blocks are merged with Chan, Golub and LeVeque's pairwise formula,
//!   `M2 = M2a + M2b + δ²·na·nb/n`, which adds only non-negative terms.
//!
//! The order of the blocks is fixed by the data, never by threads, so the
//! results do not depend on the thread count. The twin is the plain
//! two-pass loop in [`crate::reference::batch_norm2d_train_forward`].

use crate::simd::{per_simd_level, SimdLevel};
use crate::Float;

/// Values per block: a few KiB, summed in `f64` before one merge.
pub const BLOCK: usize = 512;

/// Lanes of independent partial sums (one AVX-512 register of `f64`, two
/// of AVX2).
const LANES: usize = 8;

/// Count, mean and sum of squared deviations from the mean (`M2`) of a
/// set of values: a summary two sets' summaries merge into exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub count: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// The biased (population) variance, `M2 / count` (0 for no values).
    pub fn variance(&self) -> f64 {
        if self.count > 0.0 {
            self.m2 / self.count
        } else {
            0.0
        }
    }

    /// The summary of both sets (Chan, Golub and LeVeque).
    pub fn merge(self, other: Moments) -> Moments {
        if other.count == 0.0 {
            return self;
        }
        if self.count == 0.0 {
            return other;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Moments {
            count,
            mean: self.mean + delta * (other.count / count),
            m2: self.m2 + other.m2 + delta * delta * (self.count * other.count / count),
        }
    }
}

/// Shifted sums of one block in progress.
struct Block {
    shift: f64,
    count: usize,
    sum: [f64; LANES],
    squares: [f64; LANES],
}

impl Block {
    fn new(shift: f64) -> Block {
        Block {
            shift,
            count: 0,
            sum: [0.0; LANES],
            squares: [0.0; LANES],
        }
    }

    /// Adds `values` (at most the room left in the block) with `level`'s
    /// instructions: the same sums at every level.
    fn add<T: Float>(&mut self, level: SimdLevel, values: &[T]) {
        add_shifted(level, &mut self.sum, &mut self.squares, values, self.shift);
        self.count += values.len();
    }

    fn moments(&self) -> Moments {
        let n = self.count as f64;
        let sum: f64 = self.sum.iter().sum();
        let squares: f64 = self.squares.iter().sum();
        Moments {
            count: n,
            mean: self.shift + sum / n,
            // Never negative in exact arithmetic; rounding could make it so.
            m2: (squares - sum * sum / n).max(0.0),
        }
    }
}

per_simd_level! {
    /// `sum[l] += x - shift` and `squares[l] += (x - shift)²` in `f64` for
    /// the values `x` of `values` at positions `l` modulo [`LANES`].
    fn add_shifted<T: Float>(
        sum: &mut [f64; LANES],
        squares: &mut [f64; LANES],
        values: &[T],
        shift: f64,
    ) => add_shifted_any
}

#[inline(always)]
fn add_shifted_any<T: Float>(
    sum: &mut [f64; LANES],
    squares: &mut [f64; LANES],
    values: &[T],
    shift: f64,
) {
    // Local copies indexed only by constants stay vector registers; the
    // tail goes through the same code padded with `shift` (adding 0).
    let (mut s, mut q) = (*sum, *squares);
    #[inline(always)]
    fn add<T: Float>(s: &mut [f64; LANES], q: &mut [f64; LANES], v: &[T], shift: f64) {
        let v = &v[..LANES];
        for l in 0..LANES {
            let d = v[l].to_f64() - shift;
            s[l] += d;
            q[l] += d * d;
        }
    }
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        add(&mut s, &mut q, chunk, shift);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut v = [T::from_f64(shift); LANES];
        v[..rest.len()].copy_from_slice(rest);
        // The padding must subtract to exactly 0, which a shift that does
        // not round-trip through `T` would not; add the tail one by one then.
        if v[LANES - 1].to_f64() == shift {
            add(&mut s, &mut q, &v, shift);
        } else {
            for (l, x) in rest.iter().enumerate() {
                let d = x.to_f64() - shift;
                s[l] += d;
                q[l] += d * d;
            }
        }
    }
    (*sum, *squares) = (s, q);
}

/// The moments of all the values of `runs`, taken in order, each value
/// read once (see the module docs), with the SIMD level in use on this
/// thread.
pub fn moments_of_runs<'a, T: Float + 'a>(runs: impl IntoIterator<Item = &'a [T]>) -> Moments {
    moments_of_runs_at(crate::simd::simd_level(), runs)
}

/// [`moments_of_runs`] with `level`'s instructions (for worker threads,
/// which do not see the caller's forced level): the same result at every level.
pub fn moments_of_runs_at<'a, T: Float + 'a>(
    level: SimdLevel,
    runs: impl IntoIterator<Item = &'a [T]>,
) -> Moments {
    let mut total = Moments::default();
    let mut block: Option<Block> = None;
    for run in runs {
        let mut rest = run;
        while !rest.is_empty() {
            let b = block.get_or_insert_with(|| {
                let shift = if total.count > 0.0 {
                    total.mean
                } else {
                    rest[0].to_f64()
                };
                Block::new(shift)
            });
            let take = rest.len().min(BLOCK - b.count);
            b.add(level, &rest[..take]);
            rest = &rest[take..];
            if b.count == BLOCK {
                total = total.merge(b.moments());
                block = None;
            }
        }
    }
    match block {
        Some(b) if b.count > 0 => total.merge(b.moments()),
        _ => total,
    }
}
