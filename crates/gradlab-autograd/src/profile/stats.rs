//! Statistics of one tensor's values in a single pass: what the profiler
//! reports for every activation, and how it finds NaN and infinity.

use gradlab_tensor::{DType, Tensor};
use rayon::prelude::*;
use serde::Serialize;

/// Mean, spread and extremes of a tensor's values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValueStats {
    /// Values counted.
    pub count: usize,
    /// Mean and (population) standard deviation of the finite values.
    pub mean: f64,
    pub std: f64,
    /// The largest magnitude among the finite values.
    pub max_abs: f64,
    /// Share of values that are exactly zero (dead units after a ReLU).
    pub zero_fraction: f64,
    /// NaN and infinite values.
    pub non_finite: usize,
}

/// Running sums over a run of values.
#[derive(Clone, Copy, Default)]
struct Partial {
    count: usize,
    sum: f64,
    sum_sq: f64,
    max_abs: f64,
    zeros: usize,
    non_finite: usize,
}

impl Partial {
    fn merge(self, o: Partial) -> Partial {
        Partial {
            count: self.count + o.count,
            sum: self.sum + o.sum,
            sum_sq: self.sum_sq + o.sum_sq,
            max_abs: self.max_abs.max(o.max_abs),
            zeros: self.zeros + o.zeros,
            non_finite: self.non_finite + o.non_finite,
        }
    }

    fn of(values: impl Iterator<Item = f64>) -> Partial {
        let mut p = Partial::default();
        for v in values {
            p.count += 1;
            if !v.is_finite() {
                p.non_finite += 1;
                continue;
            }
            p.sum += v;
            p.sum_sq += v * v;
            p.max_abs = p.max_abs.max(v.abs());
            p.zeros += usize::from(v == 0.0);
        }
        p
    }
}

/// Runs of this many values are summed apart (and in parallel).
const CHUNK: usize = 1 << 14;

fn partial(t: &Tensor) -> Option<Partial> {
    let host;
    let t = if t.is_cuda() {
        host = t.to_cpu().ok()?;
        &host
    } else {
        t
    };
    Some(match t.dtype() {
        DType::F32 => {
            let values = t.contiguous_slice::<f32>("profile").ok()?;
            values
                .par_chunks(CHUNK)
                .map(|c| Partial::of(c.iter().map(|&v| f64::from(v))))
                .reduce(Partial::default, Partial::merge)
        }
        DType::F64 => {
            let values = t.contiguous_slice::<f64>("profile").ok()?;
            values
                .par_chunks(CHUNK)
                .map(|c| Partial::of(c.iter().copied()))
                .reduce(Partial::default, Partial::merge)
        }
        DType::I64 => return None,
    })
}

/// The statistics of a float tensor's values (`None` for integer tensors
/// or values that cannot be read). CUDA tensors are copied to the host.
///
/// ```
/// use gradlab_autograd::profile::value_stats;
/// use gradlab_tensor::Tensor;
/// let t = Tensor::from_vec(vec![0.0f32, 2.0, -4.0, 0.0, f32::NAN], [5]).unwrap();
/// let s = value_stats(&t).unwrap();
/// assert_eq!((s.count, s.non_finite, s.max_abs), (5, 1, 4.0));
/// assert_eq!(s.mean, -0.5); // over the four finite values
/// assert_eq!(s.zero_fraction, 0.4);
/// ```
pub fn value_stats(t: &Tensor) -> Option<ValueStats> {
    let p = partial(t)?;
    let finite = (p.count - p.non_finite).max(1) as f64;
    let mean = p.sum / finite;
    let variance = (p.sum_sq / finite - mean * mean).max(0.0);
    Some(ValueStats {
        count: p.count,
        mean,
        std: variance.sqrt(),
        max_abs: p.max_abs,
        zero_fraction: if p.count == 0 {
            0.0
        } else {
            p.zeros as f64 / p.count as f64
        },
        non_finite: p.non_finite,
    })
}

/// The L2 norm and largest magnitude of a gradient, and its count of
/// non-finite values, in one pass.
pub(crate) fn norm_and_max(t: &Tensor) -> Option<(f64, f64, usize)> {
    let p = partial(t)?;
    Some((p.sum_sq.sqrt(), p.max_abs, p.non_finite))
}
