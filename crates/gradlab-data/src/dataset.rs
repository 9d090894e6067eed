//! An image classification data set held in memory as bytes.
//!
//! Images stay `u8` (a quarter of the memory of `f32`); the loader converts
//! and normalises each batch as it is drawn.

use rayon::prelude::*;

use crate::error::DataError;
use crate::normalize::Normalization;

/// Which part of a data set to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

/// Channels, height and width of every image of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageDims {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageDims {
    /// Bytes (or values) in one image (saturating at `usize::MAX`; a
    /// [`Dataset`] only holds dims for which [`ImageDims::checked_len`] is exact).
    pub fn len(&self) -> usize {
        self.checked_len().unwrap_or(usize::MAX)
    }

    /// Bytes in one image, or `None` when the sizes multiply past
    /// [`gradlab_cpu::MAX_ELEMENTS`].
    pub fn checked_len(&self) -> Option<usize> {
        gradlab_cpu::alloc::checked_len(&[self.channels, self.height, self.width])
    }

    /// Values in one channel plane.
    pub fn plane_len(&self) -> usize {
        self.height.saturating_mul(self.width)
    }

    /// True when an image would hold no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Images (N x C x H x W, planar, `u8`), their labels and the class names.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    dims: ImageDims,
    class_names: Vec<String>,
}

impl Dataset {
    /// Builds a data set, checking that the pieces fit together: `images`
    /// holds `labels.len()` images of `dims`, and every label indexes
    /// `class_names`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        dims: ImageDims,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        if dims.is_empty() {
            return Err(DataError::Invalid(format!(
                "Dataset::new: image dims {dims:?} hold no pixels"
            )));
        }
        // Checked: a wrapped product (4 images of 2^31 x 2^31 is 2^64 = 0
        // bytes) would let an empty buffer pass for a huge data set.
        let expected = dims
            .checked_len()
            .and_then(|len| len.checked_mul(labels.len()));
        if expected != Some(images.len()) {
            let expected = match expected {
                Some(n) => n.to_string(),
                None => "more than any buffer may hold".to_string(),
            };
            return Err(DataError::Invalid(format!(
                "Dataset::new: {} image bytes for {} labels of {}x{}x{} images (expected {expected})",
                images.len(),
                labels.len(),
                dims.channels,
                dims.height,
                dims.width,
            )));
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= class_names.len())
        {
            return Err(DataError::Invalid(format!(
                "Dataset::new: label {label} of image {index} is outside the {} class names",
                class_names.len()
            )));
        }
        Ok(Dataset {
            images,
            labels,
            dims,
            class_names,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the data set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of each image.
    pub fn dims(&self) -> ImageDims {
        self.dims
    }

    /// All pixels, image after image, each image channel-planar.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// The pixels of image `index` (C x H x W). Panics when out of range,
    /// like slice indexing.
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.dims.len();
        &self.images[index * len..(index + 1) * len]
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The label of image `index`.
    pub fn label(&self, index: usize) -> u8 {
        self.labels[index]
    }

    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// How many images carry each label.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.class_names.len()];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// Per-channel mean and (population) standard deviation of the pixels
    /// scaled to [0, 1]: what [`Normalization`] needs to centre this data set.
    ///
    /// Sums are kept as exact integers, so the result does not depend on the
    /// thread count. Errors on an empty data set.
    pub fn channel_stats(&self) -> Result<Normalization, DataError> {
        if self.is_empty() {
            return Err(DataError::Invalid(
                "Dataset::channel_stats: the data set is empty".to_string(),
            ));
        }
        let channels = self.dims.channels;
        let plane = self.dims.plane_len();
        let zero = || vec![(0u64, 0u64); channels];
        let sums = self
            .images
            .par_chunks(self.dims.len())
            .fold(zero, |mut acc, image| {
                for (c, plane_pixels) in image.chunks_exact(plane).enumerate() {
                    for &v in plane_pixels {
                        let v = u64::from(v);
                        acc[c].0 += v;
                        acc[c].1 += v * v;
                    }
                }
                acc
            })
            .reduce(zero, |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.0 += y.0;
                    x.1 += y.1;
                }
                a
            });
        let count = (self.len() * plane) as f64;
        let (mean, std) = sums
            .iter()
            .map(|&(sum, sum_sq)| {
                let mean = sum as f64 / count / 255.0;
                let mean_sq = sum_sq as f64 / count / (255.0 * 255.0);
                (mean as f32, (mean_sq - mean * mean).max(0.0).sqrt() as f32)
            })
            .unzip();
        Normalization::new(mean, std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn channel_stats_match_hand_computation() {
        // Two images, two channels of two pixels each.
        // Channel 0 pixels: 0, 255, 51, 102 -> /255: 0, 1, 0.2, 0.4
        // Channel 1 pixels: 255 everywhere except one 0 -> 1, 1, 1, 0
        let dims = ImageDims {
            channels: 2,
            height: 1,
            width: 2,
        };
        let images = vec![0, 255, 255, 255, 51, 102, 255, 0];
        let ds = Dataset::new(images, vec![0, 1], dims, names(2)).unwrap();
        let stats = ds.channel_stats().unwrap();
        // mean0 = 1.6/4 = 0.4; var0 = (0.16+0.36+0.04+0)/4 = 0.14
        // mean1 = 0.75; var1 = 0.75 - 0.5625 = 0.1875
        let want_mean = [0.4f64, 0.75];
        let want_std = [0.14f64.sqrt(), 0.1875f64.sqrt()];
        for c in 0..2 {
            assert!((f64::from(stats.mean()[c]) - want_mean[c]).abs() < 1e-6);
            assert!((f64::from(stats.std()[c]) - want_std[c]).abs() < 1e-6);
        }
    }

    #[test]
    fn new_checks_lengths_and_labels() {
        let dims = ImageDims {
            channels: 1,
            height: 2,
            width: 2,
        };
        let err = Dataset::new(vec![0; 7], vec![0, 1], dims, names(2)).unwrap_err();
        assert!(
            err.to_string().contains("7 image bytes for 2 labels"),
            "{err}"
        );
        // 4 images of 2^31 x 2^31 bytes: 2^64 wraps to 0 unchecked.
        let huge = ImageDims {
            channels: 1,
            height: 1 << 31,
            width: 1 << 31,
        };
        let err = Dataset::new(vec![], vec![0; 4], huge, names(2)).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "0 image bytes for 4 labels of 1x2147483648x2147483648 images (expected more than any buffer may hold)"
            ),
            "{err}"
        );
        let err = Dataset::new(vec![0; 8], vec![0, 2], dims, names(2)).unwrap_err();
        assert!(err.to_string().contains("label 2 of image 1"), "{err}");
        let ds = Dataset::new(vec![0; 12], vec![1, 0, 1], dims, names(2)).unwrap();
        assert_eq!(ds.label_histogram(), vec![1, 2]);
        assert!(Dataset::new(vec![], vec![], dims, names(2))
            .unwrap()
            .channel_stats()
            .is_err());
    }
}
