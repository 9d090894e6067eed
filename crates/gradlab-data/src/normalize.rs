//! Per-channel normalisation, `(pixel / 255 - mean) / std`.
//!
//! A pixel has only 256 values, so the conversion is precomputed once per
//! channel into a table: turning a batch into `f32` is then one lookup per
//! pixel, with no division in the hot loop.

use crate::error::DataError;

/// Per-channel mean of CIFAR-10's training images, pixels scaled to [0, 1].
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of CIFAR-10's training pixels (over all
/// pixels, not the average of per-image deviations).
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// Mean of Fashion-MNIST's training pixels, scaled to [0, 1].
pub const FASHION_MNIST_MEAN: [f32; 1] = [0.2860];
/// Standard deviation of Fashion-MNIST's training pixels.
pub const FASHION_MNIST_STD: [f32; 1] = [0.3530];

/// Per-channel mean and standard deviation, both for pixels scaled to [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalization {
    /// Checks that there is one finite mean and one positive, finite standard
    /// deviation per channel.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, DataError> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::Invalid(format!(
                "Normalization::new: {} means and {} standard deviations; need one of each per channel",
                mean.len(),
                std.len()
            )));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::Invalid(format!(
                "Normalization::new: mean {m} is not finite"
            )));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::Invalid(format!(
                "Normalization::new: standard deviation {s} must be finite and positive"
            )));
        }
        Ok(Normalization { mean, std })
    }

    /// The standard CIFAR-10 statistics ([`CIFAR10_MEAN`], [`CIFAR10_STD`]).
    pub fn cifar10() -> Self {
        Normalization {
            mean: CIFAR10_MEAN.to_vec(),
            std: CIFAR10_STD.to_vec(),
        }
    }

    /// The standard Fashion-MNIST statistics.
    pub fn fashion_mnist() -> Self {
        Normalization {
            mean: FASHION_MNIST_MEAN.to_vec(),
            std: FASHION_MNIST_STD.to_vec(),
        }
    }

    /// Mean 0 and deviation 1: pixels come out scaled to [0, 1] only.
    pub fn unit_scale(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels.max(1)],
            std: vec![1.0; channels.max(1)],
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Per-channel means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-channel standard deviations.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// The normalised value of `pixel` in `channel`, computed directly.
    pub fn apply(&self, channel: usize, pixel: u8) -> f32 {
        (f32::from(pixel) / 255.0 - self.mean[channel]) / self.std[channel]
    }

    /// The table of every normalised value, one row of 256 per channel.
    pub(crate) fn table(&self) -> PixelTable {
        let rows = (0..self.channels())
            .map(|c| std::array::from_fn(|v| self.apply(c, v as u8)))
            .collect();
        PixelTable { rows }
    }
}

/// Precomputed `u8 -> f32` conversion, one 256-entry row per channel.
#[derive(Clone, Debug)]
pub(crate) struct PixelTable {
    rows: Vec<[f32; 256]>,
}

impl PixelTable {
    /// The row of channel `channel`.
    pub(crate) fn row(&self, channel: usize) -> &[f32; 256] {
        &self.rows[channel]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_hand_computation() {
        let norm = Normalization::new(vec![0.5, 0.25], vec![0.5, 0.125]).unwrap();
        let table = norm.table();
        // (0/255 - 0.5)/0.5 = -1, (255/255 - 0.5)/0.5 = 1, (51/255 - 0.25)/0.125 = -0.4
        assert_eq!(table.row(0)[0], -1.0);
        assert_eq!(table.row(0)[255], 1.0);
        assert!((table.row(1)[51] - (-0.4)).abs() < 1e-6);
        assert!((table.row(1)[255] - 6.0).abs() < 1e-6);
        for v in 0..=255u8 {
            assert_eq!(table.row(1)[usize::from(v)], norm.apply(1, v));
        }
    }

    #[test]
    fn rejects_bad_statistics() {
        let err = Normalization::new(vec![0.5], vec![0.0]).unwrap_err();
        assert!(
            err.to_string().contains("must be finite and positive"),
            "{err}"
        );
        let err = Normalization::new(vec![0.5, 0.5], vec![1.0]).unwrap_err();
        assert!(err.to_string().contains("2 means and 1 standard"), "{err}");
    }
}
