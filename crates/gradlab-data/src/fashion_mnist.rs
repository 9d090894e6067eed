//! Fashion-MNIST: 28x28 grey images of clothing in 10 classes, as gzip'ed
//! IDX files (Debian package `dataset-fashion-mnist`).

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, ImageDims, Split};
use crate::error::DataError;
use crate::idx::{read_idx_images, read_idx_labels, IDX_LABELS_MAGIC};

/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming a Fashion-MNIST directory.
pub const FASHION_MNIST_ENV: &str = "GRADLAB_FASHION_MNIST";
/// Class names in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const HINT: &str = "install the Debian package dataset-fashion-mnist, or set GRADLAB_FASHION_MNIST to a directory holding the IDX files (see data/README.md)";

/// Finds the Fashion-MNIST directory: `explicit` when given, else
/// `$GRADLAB_FASHION_MNIST` when set, else the first that exists of
/// `data/fashion-mnist` and [`FASHION_MNIST_SYSTEM_DIR`].
pub fn fashion_mnist_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(env) = std::env::var_os(FASHION_MNIST_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(env));
    }
    [
        PathBuf::from("data/fashion-mnist"),
        PathBuf::from(FASHION_MNIST_SYSTEM_DIR),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// Loads a Fashion-MNIST split from `dir` (`train-*` or `t10k-*` files,
/// `.gz` or not).
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    crate::cifar10::check_dir("Fashion-MNIST", dir, HINT)?;
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let class_names = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    load_idx_pair(&images, &labels, class_names)
}

/// Loads any IDX image file and label file of grey images as a data set,
/// checking that the counts agree and every label indexes `class_names`.
pub fn load_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    class_names: Vec<String>,
) -> Result<Dataset, DataError> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    let label_header = 4 + 4 * (IDX_LABELS_MAGIC & 0xff) as u64;
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= class_names.len())
    {
        return Err(DataError::BadLabel {
            path: labels_path.to_path_buf(),
            label,
            offset: label_header + index as u64,
            record: index as u64,
            max: (class_names.len().saturating_sub(1)).min(255) as u8,
        });
    }
    if images.rows == 0 || images.cols == 0 {
        return Err(DataError::Invalid(format!(
            "{}: images of {}x{} pixels hold no pixels",
            images_path.display(),
            images.rows,
            images.cols
        )));
    }
    let dims = ImageDims {
        channels: 1,
        height: images.rows,
        width: images.cols,
    };
    Dataset::new(images.pixels, labels, dims, class_names)
}

/// `name.gz` when present, else `name`.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    let plain = dir.join(name);
    for path in [gz.clone(), plain.clone()] {
        if path.is_file() {
            return Ok(path);
        }
    }
    for path in [gz.clone(), plain] {
        if path.exists() {
            return Err(DataError::NotAFile {
                dataset: "Fashion-MNIST",
                path,
            });
        }
    }
    Err(DataError::MissingFile {
        dataset: "Fashion-MNIST",
        path: gz,
        hint: HINT,
    })
}
