//! The readers of outside bytes (IDX files, plain or gzip'ed, and CIFAR-10
//! batches) on thousands of damaged variants of valid files: every one
//! gives `Ok` with consistent contents or an error naming the file, never
//! a panic, an abort or a hang.

#[path = "../support/mutate.rs"]
mod mutate;

use byteorder::{BigEndian, WriteBytesExt};
use flate2::{write::GzEncoder, Compression};
use gradlab_data::idx::{read_idx_images, read_idx_labels, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use gradlab_data::{load_cifar10, load_idx_pair, Split, CIFAR10_RECORD_LEN};
use mutate::{apply, damage, fuzz, put};
use proptest::prelude::*;
use std::io::Write;
use std::path::Path;

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.write_u32::<BigEndian>(magic).unwrap();
    for &d in dims {
        raw.write_u32::<BigEndian>(d).unwrap();
    }
    raw.extend_from_slice(body);
    raw
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap()
}

fn valid_images() -> Vec<u8> {
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 7) as u8).collect();
    idx(IDX_IMAGES_MAGIC, &[3, 4, 5], &pixels)
}

fn valid_labels() -> Vec<u8> {
    idx(IDX_LABELS_MAGIC, &[3], &[1, 7, 9])
}

/// Reads `bytes` as an IDX image file and checks the outcome.
fn check_images(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    put(path, bytes);
    match read_idx_images(path) {
        // Checked: a header whose sizes wrap to the body's length is no match.
        Ok(images) => prop_assert_eq!(
            Some(images.pixels.len()),
            images
                .count
                .checked_mul(images.rows)
                .and_then(|n| n.checked_mul(images.cols))
        ),
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.contains(&path.display().to_string()), "{}", text);
        }
    }
    Ok(())
}

#[test]
fn idx_images_damaged_plain() {
    fuzz("idx-plain", 2000, damage(), |dir, (kind, seed)| {
        check_images(&dir.join("images"), &apply(&valid_images(), kind, seed))
    });
}

#[test]
fn idx_images_damaged_then_gzipped() {
    fuzz("idx-gz-raw", 1500, damage(), |dir, (kind, seed)| {
        check_images(
            &dir.join("images.gz"),
            &gzip(&apply(&valid_images(), kind, seed)),
        )
    });
}

#[test]
fn idx_images_gzip_stream_damaged() {
    fuzz("idx-gz-bytes", 1500, damage(), |dir, (kind, seed)| {
        check_images(
            &dir.join("images.gz"),
            &apply(&gzip(&valid_images()), kind, seed),
        )
    });
}

/// An IDX size: small, a power of two that makes products wrap (2^31),
/// the largest, or anything.
fn idx_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..5,
        Just(1 << 31),
        Just(4),
        Just(u32::MAX),
        any::<u32>()
    ]
}

#[test]
fn idx_headers_with_extreme_sizes() {
    // Valid files' structure with sizes drawn from the extremes and a body
    // of any length: 4 x 2^31 x 2^31 with no body is 2^64 bytes, which
    // wrapped to 0 and "matched" the empty body unchecked.
    let strategy = (
        [idx_size(), idx_size(), idx_size()],
        prop_oneof![Just(0usize), 0usize..200],
        any::<bool>(),
    );
    fuzz("idx-sizes", 2000, strategy, |dir, (dims, body, gz)| {
        let raw = idx(IDX_IMAGES_MAGIC, &dims, &vec![5u8; body]);
        let (name, bytes) = if gz {
            ("sizes.gz", gzip(&raw))
        } else {
            ("sizes", raw)
        };
        check_images(&dir.join(name), &bytes)
    });
}

#[test]
fn idx_pairs_damaged() {
    let strategy = (damage(), any::<bool>(), 0u8..3);
    fuzz(
        "idx-pair",
        1500,
        strategy,
        |dir, ((kind, seed), gz, which)| {
            let pack = |raw: Vec<u8>| if gz { gzip(&raw) } else { raw };
            let (mut images, mut labels) = (pack(valid_images()), pack(valid_labels()));
            match which {
                0 => images = apply(&images, kind, seed),
                1 => labels = apply(&labels, kind, seed),
                _ => {
                    images = apply(&images, kind, seed);
                    labels = apply(&labels, kind, seed.rotate_left(17));
                }
            }
            let (ip, lp) = (dir.join("images"), dir.join("labels"));
            put(&ip, &images);
            put(&lp, &labels);
            if let Err(e) = read_idx_labels(&lp) {
                prop_assert!(e.to_string().contains(&lp.display().to_string()));
            }
            let names = (0..10).map(|i| i.to_string()).collect();
            match load_idx_pair(&ip, &lp, names) {
                Ok(ds) => {
                    let d = ds.dims();
                    let bytes = [d.height, d.width, ds.len()]
                        .iter()
                        .try_fold(d.channels, |n, &m| n.checked_mul(m));
                    prop_assert_eq!(Some(ds.images().len()), bytes);
                }
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.contains(&dir.display().to_string()), "{}", text);
                }
            }
            Ok(())
        },
    );
}

fn valid_batch(records: usize) -> Vec<u8> {
    (0..records)
        .flat_map(|r| {
            std::iter::once((r % 10) as u8)
                .chain((0..CIFAR10_RECORD_LEN - 1).map(move |i| ((r * 13 + i) % 256) as u8))
        })
        .collect()
}

#[test]
fn cifar10_batches_damaged() {
    let strategy = (damage(), any::<bool>());
    fuzz("cifar", 1500, strategy, |dir, ((kind, seed), meta)| {
        put(
            &dir.join("test_batch.bin"),
            &apply(&valid_batch(3), kind, seed),
        );
        let meta_path = dir.join("batches.meta.txt");
        if meta {
            let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
            put(
                &meta_path,
                &apply(names.as_bytes(), kind, seed.rotate_left(9)),
            );
        } else {
            let _ = std::fs::remove_file(&meta_path);
        }
        match load_cifar10(dir, Split::Test) {
            Ok(ds) => {
                prop_assert_eq!(ds.images().len(), ds.len() * 3072);
                prop_assert!(ds.labels().iter().all(|&l| l < 10));
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains(&dir.display().to_string()), "{}", text);
            }
        }
        Ok(())
    });
}
