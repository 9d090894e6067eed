//! The comparison under every check: one input's analytic gradient against
//! central differences of a scalar function of that input, over every
//! element, a random sample of elements, or random directions, telling
//! non-differentiable points (kinks) from errors.

use super::report::{Coverage, InputReport, Kink, Probe};
use super::GradcheckOptions;
use crate::Result;
use gradlab_tensor::{Rng, Shape, Tensor};

/// Which probes a comparison makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Every element, one at a time: two evaluations per element.
    Every,
    /// A seeded random sample of elements, plus random directions over
    /// the whole input (so an error outside the sample still shows).
    Sample { elements: usize, directions: usize },
    /// Random directions only: two evaluations per direction.
    Directions(usize),
}

/// How far (relatively) a smooth function's gap between its one-sided
/// differences may stray from proportional to the step.
const SMOOTH_SLACK: f64 = 0.2;

/// Rounding noise of a one-sided difference, in f64 epsilons of the
/// scalar's magnitude (sums of many terms lose a few digits).
const ROUNDING_ULPS: f64 = 1e4;

/// Directions added to a sample of elements.
const SAMPLE_DIRECTIONS: usize = 2;

impl Plan {
    /// Every element of an input of `numel` elements when there are at
    /// most `limit` (or no limit), else a sample of `limit` and two directions.
    pub(crate) fn at_most(limit: Option<usize>, numel: usize) -> Plan {
        match limit {
            Some(limit) if numel > limit => Plan::Sample {
                elements: limit,
                directions: SAMPLE_DIRECTIONS,
            },
            _ => Plan::Every,
        }
    }
}

/// A scalar function of one input, the others held fixed.
pub(crate) struct Scalar<'a> {
    /// Its value at the unperturbed input.
    pub(crate) at_base: f64,
    /// Its value with the input replaced (a contiguous f64 tensor of the input's shape).
    pub(crate) eval: &'a dyn Fn(Tensor) -> Result<f64>,
}

/// Compares `analytic` (the gradient of `scalar` with respect to the input
/// whose values are `base`, flattened in logical order) with central
/// differences, probe by probe as `plan` says. Perturbed inputs are always
/// contiguous copies: each logical element is its own variable, even when
/// `base` is a view whose elements share memory.
pub(crate) fn compare(
    input: usize,
    base: &Tensor,
    analytic: &[f64],
    scalar: &Scalar<'_>,
    plan: Plan,
    opts: &GradcheckOptions,
    seed: u64,
) -> Result<InputReport> {
    let values = base.to_vec_f64()?;
    let shape = base.shape();
    let n = values.len();
    let mut tally = Tally::new(opts, scalar.at_base);
    let perturbed =
        |v: Vec<f64>| -> Result<f64> { (scalar.eval)(Tensor::from_vec(v, shape.clone())?) };
    let elements: Vec<usize> = match plan {
        Plan::Every => (0..n).collect(),
        Plan::Sample { elements, .. } => sample(n, elements, seed),
        Plan::Directions(_) => Vec::new(),
    };
    let directions = match plan {
        Plan::Every => 0,
        Plan::Sample { directions, .. } | Plan::Directions(directions) => directions,
    };
    for &j in &elements {
        let step = |s: f64| -> Result<f64> {
            let mut v = values.clone();
            v[j] += s;
            perturbed(v)
        };
        tally.add(Probe::Element(unravel(j, shape)), analytic[j], &step)?;
    }
    for d in 0..directions {
        let direction = random_direction(n, seed, d);
        let step = |s: f64| -> Result<f64> {
            perturbed(
                values
                    .iter()
                    .zip(&direction)
                    .map(|(x, u)| x + s * u)
                    .collect(),
            )
        };
        let projected: f64 = analytic.iter().zip(&direction).map(|(g, u)| g * u).sum();
        tally.add(Probe::Direction(d), projected, &step)?;
    }
    let coverage = match plan {
        Plan::Every => Coverage::Every(n),
        Plan::Sample { .. } => Coverage::Sample {
            elements: elements.len(),
            of: n,
            directions,
        },
        Plan::Directions(d) => Coverage::Directions(d),
    };
    Ok(tally.finish(input, shape, coverage))
}

/// The running worst of a comparison.
struct Tally<'a> {
    opts: &'a GradcheckOptions,
    at_base: f64,
    max_abs_error: f64,
    max_rel_error: f64,
    worst: Probe,
    worst_scaled: f64,
    analytic: f64,
    numeric: f64,
    kinks: Vec<Kink>,
    passed: bool,
}

impl<'a> Tally<'a> {
    fn new(opts: &'a GradcheckOptions, at_base: f64) -> Tally<'a> {
        Tally {
            opts,
            at_base,
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst: Probe::Element(Vec::new()),
            worst_scaled: f64::NEG_INFINITY,
            analytic: 0.0,
            numeric: 0.0,
            kinks: Vec::new(),
            passed: true,
        }
    }

    /// One probe: the analytic derivative along it, and the scalar at a
    /// step `s` along it (`step(s)`).
    fn add(&mut self, at: Probe, analytic: f64, step: &dyn Fn(f64) -> Result<f64>) -> Result<()> {
        let opts = self.opts;
        let (plus, minus) = (step(opts.eps)?, step(-opts.eps)?);
        let numeric = (plus - minus) / (2.0 * opts.eps);
        let abs = (analytic - numeric).abs();
        let tolerance = opts.atol + opts.rtol * numeric.abs();
        let within = abs <= tolerance;
        let kink = self.kink(&at, analytic, plus, minus, step)?;
        let is_kink = kink.is_some();
        if let Some(kink) = kink {
            self.kinks.push(kink);
            if !opts.kinks_fail {
                return Ok(());
            }
        }
        // A kink counts as a failure here only with `kinks_fail`.
        let fails = !within || is_kink;
        // Scaled by the tolerance, so that a passing check still points at
        // the probe nearest to failing rather than at a zero.
        let scaled = if abs.is_nan() || (tolerance == 0.0 && abs > 0.0) {
            f64::INFINITY
        } else if abs == 0.0 {
            0.0
        } else {
            abs / tolerance
        };
        self.max_abs_error = self.max_abs_error.max(abs);
        if numeric.abs() > opts.atol {
            self.max_rel_error = self.max_rel_error.max(abs / numeric.abs());
        }
        // The first failure outranks any passing probe, however close to failing.
        if scaled > self.worst_scaled || (fails && self.passed) {
            self.worst_scaled = scaled;
            self.worst = at;
            self.analytic = analytic;
            self.numeric = numeric;
        }
        if fails {
            self.passed = false;
        }
        Ok(())
    }

    /// A kink at this probe: the one-sided differences disagree by more
    /// than the tolerance (and than rounding noise), the disagreement does
    /// not shrink with the step as a smooth function's curvature would,
    /// and, for an element, the analytic derivative is one of them or
    /// between them (a subgradient; a value outside is an error, kink or
    /// not). A direction moves every element and may cross several kinks at
    /// once (ReLU zeros tied in every max-pool window, say), each with its
    /// own one-sided slopes: their sum bounds nothing, so a direction that
    /// crosses kinks is reported as one without judging the analytic value.
    fn kink(
        &self,
        at: &Probe,
        analytic: f64,
        plus: f64,
        minus: f64,
        step: &dyn Fn(f64) -> Result<f64>,
    ) -> Result<Option<Kink>> {
        let (opts, base) = (self.opts, self.at_base);
        let eps = opts.eps;
        let left = (base - minus) / eps;
        let right = (plus - base) / eps;
        let jump = right - left;
        let slack = opts.atol + opts.rtol * left.abs().max(right.abs());
        let noise =
            ROUNDING_ULPS * f64::EPSILON * base.abs().max(plus.abs()).max(minus.abs()) / eps;
        let between = matches!(at, Probe::Direction(_))
            || (analytic >= left.min(right) - slack && analytic <= left.max(right) + slack);
        if !(jump.abs() > slack && jump.abs() > noise && between) {
            return Ok(None);
        }
        // A smooth function's one-sided differences part by its curvature
        // times the step: halving the step halves the gap. A kink's gap
        // stays (or vanishes, once the smaller step no longer reaches it).
        let mut smooth = true;
        for fraction in [0.5, 0.25] {
            let h = eps * fraction;
            let gap = (step(h)? - base) / h - (base - step(-h)?) / h;
            smooth &= ((gap / jump) - fraction).abs() <= SMOOTH_SLACK * fraction;
        }
        if smooth {
            return Ok(None);
        }
        Ok(Some(Kink {
            at: at.clone(),
            analytic,
            left,
            right,
        }))
    }

    fn finish(self, input: usize, shape: &Shape, coverage: Coverage) -> InputReport {
        let passed = self.passed;
        InputReport {
            input,
            name: None,
            shape: shape.dims().to_vec(),
            coverage,
            max_abs_error: self.max_abs_error,
            max_rel_error: self.max_rel_error,
            worst: self.worst,
            analytic: self.analytic,
            numeric: self.numeric,
            kinks: self.kinks,
            passed,
        }
    }
}

/// `count` distinct indices below `n`, drawn from `seed`, in increasing order.
fn sample(n: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ 0x5A3F_11E5).shuffle(&mut all);
    all.truncate(count);
    all.sort_unstable();
    all
}

/// Direction `d` of an input of `n` elements: a random unit vector, so that
/// a step moves the input by `eps` in all, as an element probe does. (Unit
/// length also keeps each element's move tiny in a large input, so that a
/// step rarely crosses a ReLU's or a max-pool's kink.)
fn random_direction(n: usize, seed: u64, d: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed ^ 0xD1_2EC7 ^ ((d as u64 + 1) << 32));
    let mut u: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        u.iter_mut().for_each(|x| *x /= norm);
    }
    u
}

/// The multi-index of flat (row-major) position `flat` in `shape`.
pub(crate) fn unravel(mut flat: usize, shape: &Shape) -> Vec<usize> {
    let dims = shape.dims();
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = flat % dims[d].max(1);
        flat /= dims[d].max(1);
    }
    idx
}
