//! gradlab-data: data sets and batches for the trainer.
//!
//! Knows nothing of tensors: a [`Dataset`] keeps images as `u8` (N x C x H x W)
//! in memory, and a [`DataLoader`] turns them into [`Batch`]es of plain `f32`
//! with a shape and labels, shuffled, augmented and normalised, optionally on
//! a background thread ([`DataLoader::prefetch_epoch`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use gradlab_data::*;
//!
//! let dir = cifar10_dir(None).expect("run data/get-cifar10.sh");
//! let train = Arc::new(load_cifar10(&dir, Split::Train)?);
//! let config = LoaderConfig::train(128, 42)
//!     .with_normalization(Normalization::cifar10())
//!     .with_augmentation(Augmentation::cifar10());
//! let loader = DataLoader::new(train, config)?;
//! for epoch in 0..10 {
//!     let mut batches = loader.prefetch_epoch(epoch, 2);
//!     while let Some(batch) = batches.next() {
//!         // batch.images: Vec<f32> of batch.shape = [N, 3, 32, 32]; batch.labels: Vec<usize>
//!         batches.recycle(batch);
//!     }
//! }
//! # Ok::<(), DataError>(())
//! ```

pub mod augment;
pub mod cifar10;
pub mod dataset;
pub mod error;
pub mod fashion_mnist;
pub mod idx;
pub mod loader;
pub mod normalize;
pub mod prefetch;

pub use augment::{transform_image, Augmentation, ImageTransform};
pub use cifar10::{
    cifar10_dir, cifar10_files, load_cifar10, load_cifar10_limited, CIFAR10_CLASSES, CIFAR10_DIMS,
    CIFAR10_RECORD_LEN,
};
pub use dataset::{Dataset, ImageDims, Split};
pub use error::DataError;
pub use fashion_mnist::{
    fashion_mnist_dir, load_fashion_mnist, load_idx_pair, FASHION_MNIST_CLASSES,
};
pub use loader::{Batch, Batches, DataLoader, LoaderConfig};
pub use normalize::{
    Normalization, CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
};
pub use prefetch::Prefetch;

#[cfg(test)]
mod test_util;
