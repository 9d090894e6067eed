//! Measures how fast the loader turns CIFAR-10 into normalised, augmented
//! batches, and prints the data set's channel statistics.
//!
//! `cargo run --release -p gradlab-data --example loader_throughput [DIR]`

use std::sync::Arc;
use std::time::Instant;

use gradlab_data::*;

fn main() -> Result<(), DataError> {
    let explicit = std::env::args().nth(1).map(std::path::PathBuf::from);
    let Some(dir) = cifar10_dir(explicit.as_deref()) else {
        eprintln!("no CIFAR-10 directory: run data/get-cifar10.sh or set GRADLAB_DATA");
        std::process::exit(1);
    };

    let start = Instant::now();
    let train = Arc::new(load_cifar10(&dir, Split::Train)?);
    println!(
        "loaded {} images from {} in {:.2?}",
        train.len(),
        dir.display(),
        start.elapsed()
    );
    let start = Instant::now();
    let stats = train.channel_stats()?;
    println!(
        "channel mean {:?} std {:?} ({:.2?})",
        stats.mean(),
        stats.std(),
        start.elapsed()
    );

    for batch_size in [4, 128] {
        let config = LoaderConfig::train(batch_size, 0)
            .with_normalization(Normalization::cifar10())
            .with_augmentation(Augmentation::cifar10());
        let loader = DataLoader::new(train.clone(), config)?;
        let mut batches = loader.epoch(0);
        let mut batch = Batch::default();
        let start = Instant::now();
        let mut count = 0;
        while batches.next_into(&mut batch) {
            count += 1;
        }
        let elapsed = start.elapsed();
        println!(
            "batch {batch_size:>3}, crop+flip+normalise, reused buffer: {:>8.2} us/batch ({:.2} M images/s)",
            elapsed.as_secs_f64() * 1e6 / count as f64,
            (count * batch_size) as f64 / elapsed.as_secs_f64() / 1e6
        );
        let start = Instant::now();
        let mut prefetch = loader.prefetch_epoch(0, 2);
        while let Some(batch) = prefetch.next() {
            prefetch.recycle(batch);
        }
        println!(
            "batch {batch_size:>3}, same, prefetch thread:             {:>8.2} us/batch",
            start.elapsed().as_secs_f64() * 1e6 / count as f64
        );
    }
    Ok(())
}
