//! Finding, loading and batching the trainer's data sets.

use super::args::{DatasetKind, NormalizationKind};
use gradlab_data::{
    cifar10_dir, fashion_mnist_dir, load_cifar10_limited, load_fashion_mnist, Dataset,
    Normalization, Split,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory `kind` is read from: `dir` when given, else the default
/// location (as `gradlab_data::cifar10_dir` / `fashion_mnist_dir` find it).
pub fn find_data_dir(kind: DatasetKind, dir: Option<&Path>) -> Result<PathBuf, String> {
    match kind {
        DatasetKind::Cifar10 => cifar10_dir(dir).ok_or_else(|| {
            "CIFAR-10 not found: pass --data DIR, set GRADLAB_DATA, or run data/get-cifar10.sh"
                .to_string()
        }),
        DatasetKind::FashionMnist => fashion_mnist_dir(dir).ok_or_else(|| {
            "Fashion-MNIST not found: pass --data DIR, set GRADLAB_FASHION_MNIST, or install the Debian package dataset-fashion-mnist"
                .to_string()
        }),
    }
}

/// `path` made absolute (against the current directory), so that a run's
/// configuration still names it when read from elsewhere.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Loads one split of `kind` from `dir` (or the default location), keeping
/// the first `limit` images when given.
pub fn load_split(
    kind: DatasetKind,
    dir: Option<&Path>,
    split: Split,
    limit: Option<usize>,
) -> Result<Arc<Dataset>, String> {
    let dir = find_data_dir(kind, dir)?;
    let dataset = match kind {
        DatasetKind::Cifar10 => {
            load_cifar10_limited(&dir, split, limit).map_err(|e| e.to_string())?
        }
        DatasetKind::FashionMnist => {
            let full = load_fashion_mnist(&dir, split).map_err(|e| e.to_string())?;
            match limit {
                Some(n) if n < full.len() => first(&full, n)?,
                _ => full,
            }
        }
    };
    if dataset.is_empty() {
        return Err(format!(
            "the {split:?} split holds no images (check --limit-train / --limit-test)"
        ));
    }
    Ok(Arc::new(dataset))
}

/// Checks that the training and test splits hold images of one size and
/// the same classes, so a mismatch is found at load rather than as a shape
/// error after a whole epoch of training.
pub fn check_same_images(train: &Dataset, test: &Dataset) -> Result<(), String> {
    let describe = |d: &Dataset| {
        let dims = d.dims();
        format!("{}x{}x{}", dims.channels, dims.height, dims.width)
    };
    if train.dims() != test.dims() {
        return Err(format!(
            "the training images are {} (channels x height x width) but the test images are {}: both splits must hold images of one size",
            describe(train),
            describe(test)
        ));
    }
    if train.class_names() != test.class_names() {
        return Err(format!(
            "the training split has {} classes ({}) but the test split {} ({})",
            train.num_classes(),
            train.class_names().join(", "),
            test.num_classes(),
            test.class_names().join(", ")
        ));
    }
    Ok(())
}

/// The first `n` images of a data set.
fn first(dataset: &Dataset, n: usize) -> Result<Dataset, String> {
    let len = dataset.dims().len();
    Dataset::new(
        dataset.images()[..n * len].to_vec(),
        dataset.labels()[..n].to_vec(),
        dataset.dims(),
        dataset.class_names().to_vec(),
    )
    .map_err(|e| e.to_string())
}

/// The per-channel normalisation for `kind` of a data set with `channels` channels.
pub fn normalization(
    kind: NormalizationKind,
    dataset: DatasetKind,
    channels: usize,
) -> Normalization {
    match (kind, dataset) {
        (NormalizationKind::Half, _) => {
            Normalization::new(vec![0.5; channels], vec![0.5; channels])
                .expect("0.5 is a valid mean and standard deviation")
        }
        (NormalizationKind::Dataset, DatasetKind::Cifar10) => Normalization::cifar10(),
        (NormalizationKind::Dataset, DatasetKind::FashionMnist) => Normalization::fashion_mnist(),
    }
}
