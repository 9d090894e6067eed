//! Batches drawn from a [`Dataset`]: shuffled, augmented, normalised `f32`.
//!
//! Every random choice is a pure function of (seed, epoch, batch index): the
//! epoch's order comes from a generator seeded by (seed, epoch), and each
//! batch's augmentation from one seeded by (seed, epoch, batch). So resuming
//! at epoch k replays exactly the batches of an uninterrupted run, and the
//! prefetching loader, which fills batches on another thread, yields exactly
//! what the synchronous one does.

use std::sync::Arc;

use gradlab_cpu::Rng;

use crate::augment::{transform_image_f32, Augmentation};
use crate::dataset::Dataset;
use crate::error::DataError;
use crate::normalize::{Normalization, PixelTable};
use crate::prefetch::Prefetch;

/// A batch of images as `f32`, ready to become a tensor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// N x C x H x W values, row-major.
    pub images: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// One class index per image.
    pub labels: Vec<usize>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// How a [`DataLoader`] draws batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Draw images in a new random order each epoch.
    pub shuffle: bool,
    /// Skip the last batch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of all randomness (order and augmentation).
    pub seed: u64,
    /// Per-channel statistics; `None` only scales pixels to [0, 1].
    pub normalization: Option<Normalization>,
    /// Random crop and flip applied to each image.
    pub augmentation: Augmentation,
}

impl LoaderConfig {
    /// Training defaults: shuffled, last partial batch dropped, no
    /// normalisation or augmentation (set those fields as needed).
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: true,
            seed,
            normalization: None,
            augmentation: Augmentation::none(),
        }
    }

    /// Evaluation defaults: dataset order, every image, no augmentation.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            normalization: None,
            augmentation: Augmentation::none(),
        }
    }

    /// The same configuration with `normalization` set.
    pub fn with_normalization(mut self, normalization: Normalization) -> Self {
        self.normalization = Some(normalization);
        self
    }

    /// The same configuration with `augmentation` set.
    pub fn with_augmentation(mut self, augmentation: Augmentation) -> Self {
        self.augmentation = augmentation;
        self
    }
}

/// Draws batches from a shared data set. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DataLoader {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    table: Arc<PixelTable>,
}

impl DataLoader {
    /// Checks the configuration against the data set: a positive batch size,
    /// and normalisation statistics for as many channels as the images have.
    pub fn new(dataset: Arc<Dataset>, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Invalid(
                "DataLoader::new: batch_size must be at least 1".to_string(),
            ));
        }
        let channels = dataset.dims().channels;
        let normalization = config
            .normalization
            .clone()
            .unwrap_or_else(|| Normalization::unit_scale(channels));
        if normalization.channels() != channels {
            return Err(DataError::Invalid(format!(
                "DataLoader::new: normalisation has {} channels but the images have {}",
                normalization.channels(),
                channels
            )));
        }
        Ok(DataLoader {
            table: Arc::new(normalization.table()),
            dataset,
            config,
        })
    }

    /// The data set batches are drawn from.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, size) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / size
        } else {
            n.div_ceil(size)
        }
    }

    /// The order in which epoch `epoch` visits the images: a permutation of
    /// `0..len` that depends only on (seed, epoch), or `0..len` unshuffled.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            Rng::new(derive_seed(self.config.seed, epoch, SHUFFLE_STREAM)).shuffle(&mut order);
        }
        order
    }

    /// Fills `out` with batch `index` of an epoch whose order is `order`
    /// (from [`epoch_order`](Self::epoch_order)), reusing `out`'s buffers.
    /// Panics if `index >= num_batches()` or `order` is not this epoch's
    /// order length: both are caller bugs.
    pub fn fill_batch(&self, epoch: u64, index: usize, order: &[usize], out: &mut Batch) {
        assert!(index < self.num_batches(), "batch {index} out of range");
        assert_eq!(order.len(), self.dataset.len(), "epoch order length");
        let size = self.config.batch_size;
        let members = &order[index * size..((index + 1) * size).min(order.len())];
        let dims = self.dataset.dims();
        let image_len = dims.len();

        out.shape = [members.len(), dims.channels, dims.height, dims.width];
        out.images.resize(members.len() * image_len, 0.0);
        out.labels.clear();
        out.labels
            .extend(members.iter().map(|&i| usize::from(self.dataset.label(i))));

        let augmentation = self.config.augmentation;
        let mut rng = Rng::new(derive_seed(self.config.seed, epoch, index as u64));
        for (&i, dst) in members.iter().zip(out.images.chunks_exact_mut(image_len)) {
            let transform = augmentation.sample(&mut rng);
            transform_image_f32(self.dataset.image(i), dims, transform, &self.table, dst);
        }
    }

    /// Batch `index` of epoch `epoch`, freshly allocated.
    pub fn batch(&self, epoch: u64, index: usize) -> Batch {
        let mut out = Batch::default();
        self.fill_batch(epoch, index, &self.epoch_order(epoch), &mut out);
        out
    }

    /// The batches of epoch `epoch`, prepared on the calling thread.
    pub fn epoch(&self, epoch: u64) -> Batches {
        Batches {
            order: self.epoch_order(epoch),
            loader: self.clone(),
            epoch,
            next: 0,
        }
    }

    /// The batches of epoch `epoch`, prepared on a background thread that
    /// stays up to `depth` batches ahead (at least 1). Yields exactly what
    /// [`epoch`](Self::epoch) yields.
    pub fn prefetch_epoch(&self, epoch: u64, depth: usize) -> Prefetch {
        Prefetch::start(self.epoch(epoch), depth)
    }
}

/// The batches of one epoch, in order. As an [`Iterator`] it allocates each
/// batch; [`next_into`](Batches::next_into) reuses the caller's buffers.
#[derive(Debug)]
pub struct Batches {
    loader: DataLoader,
    epoch: u64,
    order: Vec<usize>,
    next: usize,
}

impl Batches {
    /// Fills `out` with the next batch; false when the epoch is over.
    pub fn next_into(&mut self, out: &mut Batch) -> bool {
        if self.next >= self.loader.num_batches() {
            return false;
        }
        self.loader
            .fill_batch(self.epoch, self.next, &self.order, out);
        self.next += 1;
        true
    }

    /// Batches not yet drawn.
    pub fn remaining(&self) -> usize {
        self.loader.num_batches() - self.next
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut out = Batch::default();
        self.next_into(&mut out).then_some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl ExactSizeIterator for Batches {}

/// Batch indices are streams 0, 1, ...; the shuffle uses a stream no batch
/// index can reach.
const SHUFFLE_STREAM: u64 = u64::MAX;

/// SplitMix64's output function: a bijection that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of one random stream of one epoch. Mixing (rather than adding)
/// keeps (seed 1, epoch 0) apart from (seed 0, epoch 1).
fn derive_seed(seed: u64, epoch: u64, stream: u64) -> u64 {
    mix(mix(mix(seed) ^ epoch) ^ stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::transform_image;
    use crate::dataset::ImageDims;

    const DIMS: ImageDims = ImageDims {
        channels: 2,
        height: 3,
        width: 4,
    };

    /// `n` images whose first pixel is the image index; label = index % 3.
    fn dataset(n: usize) -> Arc<Dataset> {
        let images = (0..n * DIMS.len())
            .map(|i| {
                let (image, pixel) = (i / DIMS.len(), i % DIMS.len());
                if pixel == 0 {
                    image as u8
                } else {
                    (i * 13 % 256) as u8
                }
            })
            .collect();
        let labels = (0..n).map(|i| (i % 3) as u8).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        Arc::new(Dataset::new(images, labels, DIMS, names).unwrap())
    }

    fn loader(n: usize, config: LoaderConfig) -> DataLoader {
        DataLoader::new(dataset(n), config).unwrap()
    }

    /// The dataset index of each image of a batch, read back from pixel 0
    /// (valid when no normalisation and no augmentation).
    fn members(batch: &Batch) -> Vec<usize> {
        batch
            .images
            .chunks_exact(DIMS.len())
            .map(|img| (img[0] * 255.0).round() as usize)
            .collect()
    }

    #[test]
    fn batch_counts_and_shapes_follow_drop_last() {
        let keep = loader(10, LoaderConfig::eval(4));
        assert_eq!(keep.num_batches(), 3);
        let shapes: Vec<[usize; 4]> = keep.epoch(0).map(|b| b.shape).collect();
        assert_eq!(shapes, vec![[4, 2, 3, 4], [4, 2, 3, 4], [2, 2, 3, 4]]);

        let drop = loader(10, LoaderConfig::train(4, 1));
        assert_eq!(drop.num_batches(), 2);
        assert_eq!(drop.epoch(0).count(), 2);
        assert_eq!(loader(3, LoaderConfig::train(4, 1)).epoch(0).count(), 0);
    }

    #[test]
    fn unshuffled_epoch_is_the_dataset_in_order() {
        let l = loader(10, LoaderConfig::eval(4));
        let ds = l.dataset().clone();
        let batches: Vec<Batch> = l.epoch(0).collect();
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        let expected: Vec<usize> = ds.labels().iter().map(|&l| usize::from(l)).collect();
        assert_eq!(labels, expected);
        let values: Vec<f32> = batches.iter().flat_map(|b| b.images.clone()).collect();
        let scaled: Vec<f32> = ds.images().iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(values, scaled);
    }

    #[test]
    fn normalisation_matches_hand_computation() {
        let norm = Normalization::new(vec![0.5, 0.2], vec![0.25, 0.1]).unwrap();
        let l = loader(2, LoaderConfig::eval(2).with_normalization(norm));
        let batch = l.batch(0, 0);
        let ds = l.dataset();
        for (i, &got) in batch.images.iter().enumerate() {
            let channel = (i % DIMS.len()) / DIMS.plane_len();
            let (mean, std) = [(0.5, 0.25), (0.2, 0.1)][channel];
            let want = (f64::from(ds.images()[i]) / 255.0 - mean) / std;
            assert!(
                (f64::from(got) - want).abs() < 1e-5,
                "value {i}: {got} vs {want}"
            );
        }
        // Image 1, channel 0, pixel 0 holds 1: (1/255 - 0.5) / 0.25.
        assert!((batch.images[DIMS.len()] - (-1.984_313_7)).abs() < 1e-6);
    }

    #[test]
    fn shuffle_is_a_deterministic_permutation_per_seed_and_epoch() {
        let l = loader(100, LoaderConfig::train(7, 42));
        let order = l.epoch_order(3);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        assert_eq!(
            order,
            loader(100, LoaderConfig::train(7, 42)).epoch_order(3)
        );
        assert_ne!(order, l.epoch_order(4));
        assert_ne!(
            order,
            loader(100, LoaderConfig::train(7, 43)).epoch_order(3)
        );
        // Seed and epoch are mixed, not added.
        assert_ne!(
            loader(100, LoaderConfig::train(7, 1)).epoch_order(0),
            loader(100, LoaderConfig::train(7, 0)).epoch_order(1)
        );

        // Batches follow the order; drop_last leaves out only the tail.
        let drawn: Vec<usize> = l.epoch(3).flat_map(|b| members(&b)).collect();
        assert_eq!(drawn, order[..98]);
        let labels: Vec<usize> = l.epoch(3).flat_map(|b| b.labels).collect();
        let expected: Vec<usize> = order[..98].iter().map(|i| i % 3).collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn augmented_batches_are_reproducible_and_valid() {
        let config = LoaderConfig::train(5, 9).with_augmentation(Augmentation {
            crop_padding: 0,
            horizontal_flip: true,
        });
        let l = loader(40, config.clone());
        let first: Vec<Batch> = l.epoch(2).collect();
        // A fresh loader (a resumed run) replays the same epoch exactly.
        let resumed: Vec<Batch> = loader(40, config).epoch(2).collect();
        assert_eq!(first, resumed);
        assert_ne!(first, l.epoch(3).collect::<Vec<_>>());

        // Each image is its source or the source mirrored; about half are mirrored.
        let order = l.epoch_order(2);
        let ds = l.dataset();
        let mut mirrored = 0;
        for (k, image) in first
            .iter()
            .flat_map(|b| b.images.chunks_exact(DIMS.len()))
            .enumerate()
        {
            let src = ds.image(order[k]);
            let mut flipped = vec![0u8; DIMS.len()];
            let flip = crate::ImageTransform {
                flip: true,
                ..crate::ImageTransform::IDENTITY
            };
            transform_image(src, DIMS, flip, &mut flipped);
            let as_bytes: Vec<u8> = image.iter().map(|v| (v * 255.0).round() as u8).collect();
            if as_bytes == flipped {
                mirrored += 1;
            } else {
                assert_eq!(as_bytes, src, "image {k} is neither source nor mirror");
            }
        }
        assert!((8..=32).contains(&mirrored), "{mirrored} of 40 mirrored");
    }

    #[test]
    fn next_into_reuses_buffers_and_matches_the_iterator() {
        let l = loader(
            23,
            LoaderConfig::eval(8).with_augmentation(Augmentation::cifar10()),
        );
        let expected: Vec<Batch> = l.epoch(0).collect();
        let mut batches = l.epoch(0);
        let mut buffer = Batch::default();
        let mut got = Vec::new();
        while batches.next_into(&mut buffer) {
            got.push(buffer.clone());
        }
        assert_eq!(got, expected);
        assert_eq!(got.last().unwrap().shape[0], 7);
    }

    #[test]
    fn prefetch_yields_exactly_the_synchronous_batches() {
        let config = LoaderConfig::train(6, 5)
            .with_normalization(Normalization::new(vec![0.4, 0.6], vec![0.2, 0.3]).unwrap())
            .with_augmentation(Augmentation {
                crop_padding: 1,
                horizontal_flip: true,
            });
        for drop_last in [true, false] {
            let l = loader(
                50,
                LoaderConfig {
                    drop_last,
                    ..config.clone()
                },
            );
            for epoch in 0..3 {
                let sync: Vec<Batch> = l.epoch(epoch).collect();
                for depth in [0, 1, 4] {
                    let prefetched: Vec<Batch> = l.prefetch_epoch(epoch, depth).collect();
                    assert_eq!(prefetched, sync, "epoch {epoch} depth {depth}");
                }
                // Recycled buffers are overwritten completely.
                let mut recycled = Vec::new();
                let mut prefetch = l.prefetch_epoch(epoch, 2);
                assert_eq!(prefetch.len(), sync.len());
                while let Some(batch) = prefetch.next() {
                    recycled.push(batch.clone());
                    prefetch.recycle(batch);
                }
                assert_eq!(recycled, sync);
            }
        }
    }

    #[test]
    fn dropping_a_prefetch_early_stops_the_worker() {
        let l = loader(200, LoaderConfig::eval(1));
        let mut prefetch = l.prefetch_epoch(0, 1);
        assert_eq!(prefetch.next().unwrap().labels, vec![0]);
        drop(prefetch); // must not hang with the worker blocked on a full channel
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let err = DataLoader::new(dataset(4), LoaderConfig::eval(0)).unwrap_err();
        assert!(
            err.to_string().contains("batch_size must be at least 1"),
            "{err}"
        );
        let err = DataLoader::new(
            dataset(4),
            LoaderConfig::eval(2).with_normalization(Normalization::cifar10()),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("normalisation has 3 channels but the images have 2"),
            "{err}"
        );
    }
}
