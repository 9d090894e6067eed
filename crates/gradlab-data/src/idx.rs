//! The IDX format of MNIST and Fashion-MNIST, optionally gzip'ed.
//!
//! A file is a big-endian `u32` magic number (`0x0000_08NN`: unsigned bytes,
//! NN dimensions), one big-endian `u32` size per dimension, then the bytes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};
use flate2::read::GzDecoder;
use gradlab_cpu::alloc::{checked_len, try_reserve, try_vec};

use crate::error::DataError;

/// Magic number of an IDX file of `u8` images (3 dimensions: N, rows, cols).
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of `u8` labels (1 dimension: N).
pub const IDX_LABELS_MAGIC: u32 = 2049;

/// Bytes of a gzip'ed file past the header's promise that are counted for
/// the error message before it says "at least": a decompression bomb is
/// not read to its end.
const EXTRA_BYTES_COUNTED: u64 = 64 << 20;

/// Images read from an IDX file: `count` images of `rows` x `cols` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (gzip'ed or not).
///
/// The header is checked before the body is read: its sizes must multiply
/// (without overflow) to at most [`gradlab_cpu::MAX_ELEMENTS`] bytes, a
/// plain file must be exactly as long as they say, and the body buffer is
/// allocated fallibly, so a corrupt or hostile header is an error, never
/// an abort or a huge allocation.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    let mut source = Source::open(path)?;
    let dims = source.header(IDX_IMAGES_MAGIC, "u8 images, 3 dimensions")?;
    let pixels = source.body(&dims)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (gzip'ed or not), with the checks of [`read_idx_images`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut source = Source::open(path)?;
    let dims = source.header(IDX_LABELS_MAGIC, "u8 labels, 1 dimension")?;
    source.body(&dims)
}

/// The header's length in bytes for `dims.len()` dimensions.
fn header_len(dimensions: usize) -> usize {
    4 + 4 * dimensions
}

/// An open IDX file, decompressed on the fly when it is gzip'ed.
struct Source<'a> {
    path: &'a Path,
    reader: Box<dyn Read + 'a>,
    /// The file's length when it is not compressed (the body length is then
    /// known before reading it).
    plain_len: Option<u64>,
}

impl<'a> Source<'a> {
    fn open(path: &'a Path) -> Result<Source<'a>, DataError> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(DataError::NotAFile {
                dataset: "IDX",
                path: path.to_path_buf(),
            });
        }
        let mut buffered = BufReader::new(file);
        let gzip = buffered
            .fill_buf()
            .map_err(io_err)?
            .starts_with(&[0x1f, 0x8b]);
        Ok(if gzip {
            Source {
                path,
                reader: Box::new(GzDecoder::new(buffered)),
                plain_len: None,
            }
        } else {
            Source {
                path,
                reader: Box::new(buffered),
                plain_len: Some(meta.len()),
            }
        })
    }

    fn io_err(&self, source: std::io::Error) -> DataError {
        DataError::Io {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Fills `buf` as far as the data goes; returns how many bytes it got.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(filled)
    }

    /// Checks the magic number and returns the dimension sizes.
    fn header(&mut self, expected: u32, what: &'static str) -> Result<Vec<usize>, DataError> {
        let dimensions = (expected & 0xff) as usize;
        let header = header_len(dimensions);
        let mut bytes = vec![0u8; header];
        let path = self.path;
        let too_short = |got: usize, needed: usize| {
            DataError::Invalid(format!(
                "{}: {got} bytes is too short for an IDX header ({needed} needed)",
                path.display(),
            ))
        };
        let got = self.read_full(&mut bytes[..4])?;
        if got < 4 {
            return Err(too_short(got, 4));
        }
        let found = BigEndian::read_u32(&bytes[..4]);
        if found != expected {
            return Err(DataError::BadMagic {
                path: self.path.to_path_buf(),
                found,
                expected,
                what,
            });
        }
        let got = 4 + self.read_full(&mut bytes[4..])?;
        if got < header {
            return Err(too_short(got, header));
        }
        Ok(bytes[4..]
            .chunks_exact(4)
            .map(|size| BigEndian::read_u32(size) as usize)
            .collect())
    }

    /// The bytes after the header, which must number exactly the product of
    /// the dimension sizes.
    fn body(&mut self, dims: &[usize]) -> Result<Vec<u8>, DataError> {
        let header = header_len(dims.len());
        let path = self.path.to_path_buf();
        let Some(expected) = checked_len(dims) else {
            return Err(DataError::IdxTooLarge {
                path,
                dims: dims.iter().map(|&d| d as u64).collect(),
            });
        };
        let length_error = |actual: u64, at_least: bool| DataError::IdxLength {
            path: path.clone(),
            header_len: header,
            expected: expected as u64,
            actual,
            at_least,
        };
        let alloc_err = |source| DataError::Alloc {
            path: path.clone(),
            source,
        };
        if let Some(file_len) = self.plain_len {
            // The length is known: no allocation before it is right.
            let actual = file_len.saturating_sub(header as u64);
            if actual != expected as u64 {
                return Err(length_error(actual, false));
            }
            let mut body = try_vec::<u8>("reading an IDX file", expected).map_err(alloc_err)?;
            let got = (&mut self.reader)
                .take(expected as u64)
                .read_to_end(&mut body)
                .map_err(|e| self.io_err(e))?;
            if got != expected {
                // The file shrank while being read.
                return Err(length_error(got as u64, false));
            }
            return Ok(body);
        }
        // Compressed: the header's promise is only checked by reading, so the
        // buffer grows with the data actually there (doubling, fallibly)
        // rather than being sized by the header up front.
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        while body.len() < expected {
            let want = chunk.len().min(expected - body.len());
            let got = self.read_full(&mut chunk[..want])?;
            if got == 0 {
                break;
            }
            if body.capacity() - body.len() < got {
                let grow = body.len().max(got).min(expected - body.len());
                try_reserve("reading an IDX file", &mut body, grow).map_err(alloc_err)?;
            }
            body.extend_from_slice(&chunk[..got]);
        }
        if body.len() < expected {
            return Err(length_error(body.len() as u64, false));
        }
        let extra = std::io::copy(
            &mut (&mut self.reader).take(EXTRA_BYTES_COUNTED),
            &mut std::io::sink(),
        )
        .map_err(|e| self.io_err(e))?;
        if extra > 0 {
            return Err(length_error(
                expected as u64 + extra,
                extra == EXTRA_BYTES_COUNTED,
            ));
        }
        Ok(body)
    }
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
    fn headers_whose_sizes_overflow_or_lie_are_refused_before_allocating() {
        let tmp = TempDir::new("idx-huge");
        // 4 x 2^31 x 2^31 = 2^64 bytes: wrapped to 0 unchecked, so an empty
        // body "matched" and loaded as four 2^31 x 2^31 images.
        for gzip in [false, true] {
            let path = write(
                tmp.path(),
                "huge",
                &idx_bytes(IDX_IMAGES_MAGIC, &[4, 1 << 31, 1 << 31], &[], gzip),
            );
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{} has an IDX header promising 4 x 2147483648 x 2147483648 bytes, more than the 1152921504606846975 a data set may hold",
                    path.display()
                )
            );
        }
        // 2^16 x 2^16 x 2^16 (256 TiB) fits the limit but not the file: a
        // plain file is refused from its length, a gzip'ed one once its data
        // runs out, with the buffer grown only as far as the data went.
        for gzip in [false, true] {
            let path = write(
                tmp.path(),
                "liar",
                &idx_bytes(
                    IDX_IMAGES_MAGIC,
                    &[1 << 16, 1 << 16, 1 << 16],
                    &[7; 100],
                    gzip,
                ),
            );
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert!(
                err.ends_with("has 100 bytes of data after its 16-byte header; the header promises 281474976710656"),
                "{err}"
            );
        }
        let path = write(
            tmp.path(),
            "long.gz",
            &idx_bytes(IDX_LABELS_MAGIC, &[2], &[1, 2, 3, 4, 5], true),
        );
        let err = read_idx_labels(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("has 5 bytes of data after its 8-byte header; the header promises 2"),
            "{err}"
        );
        let dir = tmp.path().join("a-directory");
        std::fs::create_dir(&dir).unwrap();
        let err = read_idx_labels(&dir).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("IDX file {} is a directory, not a file", dir.display())
        );
    }

    #[test]
    fn mismatched_pairs_with_overflowing_sizes_do_not_load() {
        use crate::load_idx_pair;
        let tmp = TempDir::new("idx-pair-huge");
        let images = write(
            tmp.path(),
            "images",
            &idx_bytes(IDX_IMAGES_MAGIC, &[4, 1 << 31, 1 << 31], &[], false),
        );
        let labels = write(
            tmp.path(),
            "labels",
            &idx_bytes(IDX_LABELS_MAGIC, &[4], &[0, 1, 2, 3], false),
        );
        let names = (0..10).map(|i| i.to_string()).collect();
        let err = load_idx_pair(&images, &labels, names)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IDX header promising 4 x 2147483648 x 2147483648"),
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

        std::fs::create_dir(dir.join("train-images-idx3-ubyte")).unwrap();
        let err = load_fashion_mnist(dir, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("train-images-idx3-ubyte is a directory, not a file"),
            "{err}"
        );
        let file = dir.join("t10k-labels-idx1-ubyte.gz");
        let err = load_fashion_mnist(&file, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "Fashion-MNIST path {} is not a directory",
                file.display()
            )),
            "{err}"
        );
    }
}
