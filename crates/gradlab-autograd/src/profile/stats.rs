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

    /// The plain loop: exact for any values, NaN and infinity included.
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

    /// The same sums in eight independent lanes without branches, which
    /// the compiler turns into SIMD: several times faster on the large
    /// activations a profile reads. A run holding NaN or infinity makes
    /// the sums non-finite and is redone by [`Partial::of`].
    fn of_lanes<T: Copy + Into<f64>>(values: &[T]) -> Partial {
        const LANES: usize = 8;
        let mut sum = [0f64; LANES];
        let mut sum_sq = [0f64; LANES];
        let mut max_abs = [0f64; LANES];
        let mut zeros = [0usize; LANES];
        let chunks = values.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let v: f64 = chunk[lane].into();
                sum[lane] += v;
                sum_sq[lane] += v * v;
                max_abs[lane] = max_abs[lane].max(v.abs());
                zeros[lane] += usize::from(v == 0.0);
            }
        }
        let lanes = Partial {
            count: values.len() - tail.len(),
            sum: sum.iter().sum(),
            sum_sq: sum_sq.iter().sum(),
            max_abs: max_abs.iter().fold(0.0, |a, &b| a.max(b)),
            zeros: zeros.iter().sum(),
            non_finite: 0,
        };
        if !(lanes.sum.is_finite() && lanes.sum_sq.is_finite()) {
            return Partial::of(values.iter().map(|&v| v.into()));
        }
        lanes.merge(Partial::of(tail.iter().map(|&v| v.into())))
    }
}

/// Runs of this many values are summed apart (and in parallel).
const CHUNK: usize = 1 << 15;

fn partial(t: &Tensor) -> Option<Partial> {
    let host;
    let t = if t.is_cuda() {
        host = t.to_cpu().ok()?;
        &host
    } else {
        t
    };
    Some(match t.dtype() {
        DType::F32 => f32_over(&t.contiguous_slice::<f32>("profile").ok()?),
        DType::F64 => lanes_over(&t.contiguous_slice::<f64>("profile").ok()?),
        DType::I64 => return None,
    })
}

/// [`Partial::of_lanes`] over `values`, split over the thread pool when
/// there are enough of them to pay for waking it.
fn lanes_over<T: Copy + Into<f64> + Sync>(values: &[T]) -> Partial {
    if values.len() < 4 * CHUNK {
        return Partial::of_lanes(values);
    }
    values
        .par_chunks(CHUNK)
        .map(Partial::of_lanes)
        .reduce(Partial::default, Partial::merge)
}

/// f32 values (every activation of a training step) in blocks summed in
/// sixteen f32 lanes (one AVX-512 register, two AVX2 ones), each block's
/// sums then added in f64: a block is short enough that f32 sums lose
/// nothing a statistic shows.
fn f32_over(values: &[f32]) -> Partial {
    #[inline(always)]
    fn block(values: &[f32]) -> Partial {
        const LANES: usize = 16;
        let mut sum = [0f32; LANES];
        let mut sum_sq = [0f32; LANES];
        let mut max_abs = [0f32; LANES];
        let mut zeros = [0u32; LANES];
        let chunks = values.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let v = chunk[lane];
                sum[lane] += v;
                sum_sq[lane] += v * v;
                let a = v.abs();
                max_abs[lane] = if a > max_abs[lane] { a } else { max_abs[lane] };
                zeros[lane] += u32::from(v == 0.0);
            }
        }
        let lanes = Partial {
            count: values.len() - tail.len(),
            sum: sum.iter().map(|&v| f64::from(v)).sum(),
            sum_sq: sum_sq.iter().map(|&v| f64::from(v)).sum(),
            max_abs: f64::from(max_abs.iter().fold(0f32, |a, &b| a.max(b))),
            zeros: zeros.iter().map(|&z| z as usize).sum(),
            non_finite: 0,
        };
        if !(lanes.sum.is_finite() && lanes.sum_sq.is_finite()) {
            return Partial::of(values.iter().map(|&v| f64::from(v)));
        }
        lanes.merge(Partial::of(tail.iter().map(|&v| f64::from(v))))
    }
    const BLOCK: usize = 1024;
    #[inline(always)]
    fn blocks(values: &[f32]) -> Partial {
        values
            .chunks(BLOCK)
            .map(block)
            .fold(Partial::default(), Partial::merge)
    }
    /// The same loop compiled for AVX2 (eight f32 lanes a register).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn blocks_avx2(values: &[f32]) -> Partial {
        blocks(values)
    }
    let sequential = |values: &[f32]| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { blocks_avx2(values) };
        }
        blocks(values)
    };
    if values.len() < 4 * CHUNK {
        return sequential(values);
    }
    values
        .par_chunks(CHUNK)
        .map(sequential)
        .reduce(Partial::default, Partial::merge)
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
