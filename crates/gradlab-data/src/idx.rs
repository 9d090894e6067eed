//! The IDX format of MNIST and Fashion-MNIST, optionally gzip'ed.
//!
//! A file is a big-endian `u32` magic number (`0x0000_08NN`: unsigned bytes,
//! NN dimensions), one big-endian `u32` size per dimension, then the bytes.

use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};
use flate2::read::GzDecoder;

use crate::error::DataError;

/// Magic number of an IDX file of `u8` images (3 dimensions: N, rows, cols).
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of `u8` labels (1 dimension: N).
pub const IDX_LABELS_MAGIC: u32 = 2049;

/// Images read from an IDX file: `count` images of `rows` x `cols` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (gzip'ed or not).
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    let bytes = read_maybe_gzip(path)?;
    let dims = parse_header(path, &bytes, IDX_IMAGES_MAGIC, "u8 images, 3 dimensions")?;
    let pixels = take_body(path, &bytes, &dims)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (gzip'ed or not).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzip(path)?;
    let dims = parse_header(path, &bytes, IDX_LABELS_MAGIC, "u8 labels, 1 dimension")?;
    take_body(path, &bytes, &dims)
}

/// The header's length in bytes for `dims.len()` dimensions.
fn header_len(dimensions: usize) -> usize {
    4 + 4 * dimensions
}

fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io_err)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io_err)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Checks the magic number and returns the dimension sizes.
fn parse_header(
    path: &Path,
    bytes: &[u8],
    expected: u32,
    what: &'static str,
) -> Result<Vec<usize>, DataError> {
    let dimensions = (expected & 0xff) as usize;
    let header = header_len(dimensions);
    let too_short = |needed: usize| {
        DataError::Invalid(format!(
            "{}: {} bytes is too short for an IDX header ({} needed)",
            path.display(),
            bytes.len(),
            needed
        ))
    };
    if bytes.len() < 4 {
        return Err(too_short(4));
    }
    let found = BigEndian::read_u32(&bytes[..4]);
    if found != expected {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected,
            what,
        });
    }
    if bytes.len() < header {
        return Err(too_short(header));
    }
    Ok(bytes[4..header]
        .chunks_exact(4)
        .map(|size| BigEndian::read_u32(size) as usize)
        .collect())
}

/// The bytes after the header, which must number exactly the product of the
/// dimension sizes.
fn take_body(path: &Path, bytes: &[u8], dims: &[usize]) -> Result<Vec<u8>, DataError> {
    let header = header_len(dims.len());
    let expected = dims.iter().map(|&d| d as u64).product::<u64>();
    let actual = (bytes.len() - header) as u64;
    if actual != expected {
        return Err(DataError::IdxLength {
            path: path.to_path_buf(),
            header_len: header,
            expected,
            actual,
        });
    }
    Ok(bytes[header..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use byteorder::WriteBytesExt;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    /// An IDX file: magic, sizes, then `body`, gzip'ed when `gzip`.
    fn idx_bytes(magic: u32, dims: &[u32], body: &[u8], gzip: bool) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.write_u32::<BigEndian>(magic).unwrap();
        for &d in dims {
            raw.write_u32::<BigEndian>(d).unwrap();
        }
        raw.extend_from_slice(body);
        if !gzip {
            return raw;
        }
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&raw).unwrap();
        encoder.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn gzip_and_plain_images_round_trip() {
        let tmp = TempDir::new("idx-roundtrip");
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 7) as u8).collect();
        for gzip in [true, false] {
            let bytes = idx_bytes(IDX_IMAGES_MAGIC, &[3, 4, 5], &pixels, gzip);
            let path = write(tmp.path(), "images", &bytes);
            let images = read_idx_images(&path).unwrap();
            assert_eq!(
                images,
                IdxImages {
                    count: 3,
                    rows: 4,
                    cols: 5,
                    pixels: pixels.clone()
                }
            );
        }
        let path = write(
            tmp.path(),
            "labels",
            &idx_bytes(IDX_LABELS_MAGIC, &[4], &[3, 1, 4, 1], true),
        );
        assert_eq!(read_idx_labels(&path).unwrap(), vec![3, 1, 4, 1]);
    }

    #[test]
    fn wrong_magic_is_reported_with_both_numbers() {
        let tmp = TempDir::new("idx-magic");
        let path = write(
            tmp.path(),
            "swapped",
            &idx_bytes(IDX_LABELS_MAGIC, &[2], &[0, 1], true),
        );
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(err.contains("swapped has IDX magic number 2049"), "{err}");
        assert!(err.contains("expected 2051"), "{err}");
    }

    #[test]
    fn truncated_and_overlong_bodies_are_rejected() {
        let tmp = TempDir::new("idx-length");
        let path = write(
            tmp.path(),
            "short",
            &idx_bytes(IDX_IMAGES_MAGIC, &[2, 3, 3], &[0; 17], true),
        );
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains("has 17 bytes of data after its 16-byte header; the header promises 18"),
            "{err}"
        );
        let path = write(
            tmp.path(),
            "long",
            &idx_bytes(IDX_LABELS_MAGIC, &[2], &[0; 3], false),
        );
        let err = read_idx_labels(&path).unwrap_err().to_string();
        assert!(
            err.contains("has 3 bytes of data after its 8-byte header"),
            "{err}"
        );
    }

    #[test]
    fn short_header_and_corrupt_gzip_are_errors() {
        let tmp = TempDir::new("idx-header");
        let mut header_only = idx_bytes(IDX_IMAGES_MAGIC, &[2, 3], &[], false);
        header_only.truncate(10);
        let path = write(tmp.path(), "cut", &header_only);
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains("10 bytes is too short for an IDX header (16 needed)"),
            "{err}"
        );

        let mut gz = idx_bytes(IDX_LABELS_MAGIC, &[50], &[1; 50], true);
        gz.truncate(gz.len() / 2);
        let path = write(tmp.path(), "cut.gz", &gz);
        let err = read_idx_labels(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("reading {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn fashion_mnist_layout_loads_and_checks_pairs() {
        use crate::{load_fashion_mnist, Split};
        let tmp = TempDir::new("idx-fashion");
        let dir = tmp.path();
        let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 253) as u8).collect();
        write(
            dir,
            "t10k-images-idx3-ubyte.gz",
            &idx_bytes(IDX_IMAGES_MAGIC, &[3, 28, 28], &pixels, true),
        );
        write(
            dir,
            "t10k-labels-idx1-ubyte.gz",
            &idx_bytes(IDX_LABELS_MAGIC, &[3], &[9, 0, 5], true),
        );
        let test = load_fashion_mnist(dir, Split::Test).unwrap();
        assert_eq!(test.len(), 3);
        assert_eq!((test.dims().channels, test.dims().height), (1, 28));
        assert_eq!(test.images(), pixels.as_slice());
        assert_eq!(test.labels(), &[9, 0, 5]);
        assert_eq!(test.class_names()[9], "Ankle boot");

        write(
            dir,
            "t10k-labels-idx1-ubyte.gz",
            &idx_bytes(IDX_LABELS_MAGIC, &[2], &[9, 0], true),
        );
        let err = load_fashion_mnist(dir, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds 3 images but"), "{err}");
        assert!(
            err.contains("t10k-labels-idx1-ubyte.gz holds 2 labels"),
            "{err}"
        );

        write(
            dir,
            "t10k-labels-idx1-ubyte.gz",
            &idx_bytes(IDX_LABELS_MAGIC, &[3], &[9, 12, 5], true),
        );
        let err = load_fashion_mnist(dir, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has label 12 at byte offset 9 (record 1)"),
            "{err}"
        );

        let err = load_fashion_mnist(dir, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte.gz is missing"),
            "{err}"
        );
        assert!(err.contains("dataset-fashion-mnist"), "{err}");
    }
}
