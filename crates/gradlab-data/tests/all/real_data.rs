//! Loads the real data sets when they are on this machine; each test says
//! why it skips otherwise.

use std::sync::Arc;

use gradlab_data::*;

fn cifar10_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let dir = cifar10_dir(None);
    if dir.is_none() {
        eprintln!(
            "skipping {test}: no CIFAR-10 directory found (run data/get-cifar10.sh or set GRADLAB_DATA)"
        );
    }
    dir
}

#[test]
fn cifar10_train_and_test_have_the_official_counts() {
    let Some(dir) = cifar10_or_skip("cifar10_train_and_test_have_the_official_counts") else {
        return;
    };
    let train = load_cifar10(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 50_000);
    assert_eq!(train.dims(), CIFAR10_DIMS);
    assert_eq!(train.label_histogram(), vec![5_000; 10]);
    assert_eq!(train.class_names(), CIFAR10_CLASSES);

    // The standard constants are this set's statistics (to JPEG rounding).
    let stats = train.channel_stats().unwrap();
    for c in 0..3 {
        assert!(
            (stats.mean()[c] - CIFAR10_MEAN[c]).abs() < 0.01,
            "{stats:?}"
        );
        assert!((stats.std()[c] - CIFAR10_STD[c]).abs() < 0.01, "{stats:?}");
    }

    let test = load_cifar10(&dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.label_histogram(), vec![1_000; 10]);
}

#[test]
fn cifar10_limited_load_is_a_prefix_and_batches_prefetch_identically() {
    let Some(dir) = cifar10_or_skip("cifar10_limited_load_is_a_prefix") else {
        return;
    };
    let full = load_cifar10(&dir, Split::Test).unwrap();
    let head = Arc::new(load_cifar10_limited(&dir, Split::Test, Some(1_000)).unwrap());
    assert_eq!(head.len(), 1_000);
    assert_eq!(head.images(), &full.images()[..1_000 * CIFAR10_DIMS.len()]);
    assert_eq!(head.labels(), &full.labels()[..1_000]);

    let config = LoaderConfig::train(64, 7)
        .with_normalization(Normalization::cifar10())
        .with_augmentation(Augmentation::cifar10());
    let loader = DataLoader::new(head, config).unwrap();
    let sync: Vec<Batch> = loader.epoch(1).collect();
    assert_eq!(sync.len(), 15);
    assert!(sync.iter().all(|b| b.shape == [64, 3, 32, 32]));
    let prefetched: Vec<Batch> = loader.prefetch_epoch(1, 3).collect();
    assert_eq!(prefetched, sync);
}

#[test]
fn fashion_mnist_loads_when_installed() {
    let Some(dir) = fashion_mnist_dir(None) else {
        eprintln!(
            "skipping fashion_mnist_loads_when_installed: no Fashion-MNIST directory \
             (Debian package dataset-fashion-mnist, or GRADLAB_FASHION_MNIST)"
        );
        return;
    };
    let train = load_fashion_mnist(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(
        train.dims(),
        ImageDims {
            channels: 1,
            height: 28,
            width: 28
        }
    );
    assert_eq!(train.label_histogram(), vec![6_000; 10]);
    let stats = train.channel_stats().unwrap();
    assert!(
        (stats.mean()[0] - FASHION_MNIST_MEAN[0]).abs() < 0.001,
        "{stats:?}"
    );
    assert!(
        (stats.std()[0] - FASHION_MNIST_STD[0]).abs() < 0.001,
        "{stats:?}"
    );
    let test = load_fashion_mnist(&dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.label_histogram(), vec![1_000; 10]);
}
