//! CIFAR-10 in the official binary layout.
//!
//! A record is 3,073 bytes: one label byte (0-9), then the 32x32 image as
//! 1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major. That is
//! already the planar C x H x W layout the [`Dataset`] keeps, so loading is a
//! copy. Training records are `data_batch_1.bin` .. `data_batch_5.bin`, test
//! records `test_batch.bin`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use gradlab_cpu::alloc::try_reserve;

use crate::dataset::{Dataset, ImageDims, Split};
use crate::error::DataError;

/// Channels, height and width of a CIFAR-10 image.
pub const CIFAR10_DIMS: ImageDims = ImageDims {
    channels: 3,
    height: 32,
    width: 32,
};
/// Bytes in one record: the label byte and the image.
pub const CIFAR10_RECORD_LEN: usize = 1 + 3 * 32 * 32;
/// Class names in label order, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// Environment variable naming the CIFAR-10 directory (or its parent).
pub const DATA_ENV: &str = "GRADLAB_DATA";
/// Name of the directory the official archive unpacks to.
pub const CIFAR10_DIR_NAME: &str = "cifar-10-batches-bin";

const HINT: &str =
    "run data/get-cifar10.sh, or set GRADLAB_DATA to a cifar-10-batches-bin directory";

/// The batch files of a split, in load order.
pub fn cifar10_files(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        Split::Test => &["test_batch.bin"],
    }
}

/// Finds the CIFAR-10 directory: `explicit` when given (even if it does not
/// exist, so that loading reports it), else the first that exists of
/// 1. `$GRADLAB_DATA`, or `$GRADLAB_DATA/cifar-10-batches-bin` when the
///    variable names the parent (a set variable is always used),
/// 2. `data/cifar-10-batches-bin` (where `data/get-cifar10.sh` puts it),
/// 3. `../shared/data/cifar-10-batches-bin`,
///
/// each relative to the current directory, then 2 and 3 relative to the
/// workspace root this crate was built in (so tests run from any directory).
pub fn cifar10_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(env) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(env);
        let nested = path.join(CIFAR10_DIR_NAME);
        return Some(if !holds_cifar10(&path) && nested.is_dir() {
            nested
        } else {
            path
        });
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        PathBuf::from("data").join(CIFAR10_DIR_NAME),
        PathBuf::from("../shared/data").join(CIFAR10_DIR_NAME),
        workspace.join("data").join(CIFAR10_DIR_NAME),
        workspace.join("../shared/data").join(CIFAR10_DIR_NAME),
    ];
    candidates.into_iter().find(|p| p.is_dir())
}

fn holds_cifar10(dir: &Path) -> bool {
    [Split::Train, Split::Test]
        .iter()
        .any(|&split| dir.join(cifar10_files(split)[0]).is_file())
}

/// Loads a whole split. See [`load_cifar10_limited`] for the checks made.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    load_cifar10_limited(dir, split, None)
}

/// Loads the first `limit` records of a split (all when `None`), reading
/// only the files and bytes needed.
///
/// Every file read is checked: it exists, its size is a non-zero multiple of
/// 3,073 bytes (else the error names the incomplete record's offset), and
/// every label read is 0-9 (else the error names its byte offset). Class names
/// come from `batches.meta.txt` when present.
pub fn load_cifar10_limited(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    check_dir("CIFAR-10", dir, HINT)?;
    let class_names = read_class_names(dir)?;
    let mut wanted = limit.unwrap_or(usize::MAX);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut buffer = Vec::new();
    for name in cifar10_files(split) {
        if wanted == 0 {
            break;
        }
        let path = dir.join(name);
        let records = read_records(&path, wanted, &mut buffer)?;
        let alloc_err = |source| DataError::Alloc {
            path: path.clone(),
            source,
        };
        try_reserve(
            "loading CIFAR-10",
            &mut images,
            records * CIFAR10_DIMS.len(),
        )
        .map_err(alloc_err)?;
        try_reserve("loading CIFAR-10", &mut labels, records).map_err(alloc_err)?;
        for (index, record) in buffer.chunks_exact(CIFAR10_RECORD_LEN).enumerate() {
            let label = record[0];
            if usize::from(label) >= CIFAR10_CLASSES.len() {
                return Err(DataError::BadLabel {
                    path,
                    label,
                    offset: (index * CIFAR10_RECORD_LEN) as u64,
                    record: index as u64,
                    max: (CIFAR10_CLASSES.len() - 1) as u8,
                });
            }
            labels.push(label);
            images.extend_from_slice(&record[1..]);
        }
        wanted -= records;
    }
    Dataset::new(images, labels, CIFAR10_DIMS, class_names)
}

/// Checks the size of one batch file and reads up to `wanted` whole records
/// into `buffer`; returns how many it read.
fn read_records(path: &Path, wanted: usize, buffer: &mut Vec<u8>) -> Result<usize, DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::MissingFile {
                dataset: "CIFAR-10",
                path: path.to_path_buf(),
                hint: HINT,
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(DataError::NotAFile {
            dataset: "CIFAR-10",
            path: path.to_path_buf(),
        });
    }
    let size = meta.len();
    let record_len = CIFAR10_RECORD_LEN as u64;
    if size == 0 {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
            record_len: CIFAR10_RECORD_LEN,
        });
    }
    if size % record_len != 0 {
        let record = size / record_len;
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            size,
            record_len: CIFAR10_RECORD_LEN,
            record,
            offset: record * record_len,
            partial: size % record_len,
        });
    }
    let records = usize::try_from(size / record_len)
        .unwrap_or(usize::MAX)
        .min(wanted);
    // The size comes from the file system (a sparse file can claim any):
    // the buffer is allocated fallibly.
    let len = records * CIFAR10_RECORD_LEN;
    buffer.clear();
    try_reserve("reading a CIFAR-10 batch", buffer, len).map_err(|source| DataError::Alloc {
        path: path.to_path_buf(),
        source,
    })?;
    buffer.resize(len, 0);
    file.read_exact(buffer).map_err(io_err)?;
    Ok(records)
}

/// Checks that a data set directory exists and is a directory.
pub(crate) fn check_dir(
    dataset: &'static str,
    dir: &Path,
    hint: &'static str,
) -> Result<(), DataError> {
    if dir.is_dir() {
        Ok(())
    } else if dir.exists() {
        Err(DataError::NotADirectory {
            dataset,
            path: dir.to_path_buf(),
            hint,
        })
    } else {
        Err(DataError::MissingDir {
            dataset,
            path: dir.to_path_buf(),
            hint,
        })
    }
}

/// Class names from `batches.meta.txt` (one a line, blank lines ignored, as
/// the official file ends with some), or the standard names without it.
fn read_class_names(dir: &Path) -> Result<Vec<String>, DataError> {
    let path = dir.join("batches.meta.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
        }
        Err(source) => return Err(DataError::Io { path, source }),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != CIFAR10_CLASSES.len() {
        return Err(DataError::BadClassNames {
            path,
            found: names.len(),
            expected: CIFAR10_CLASSES.len(),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    /// Record `r` of file `f`: label `(f + r) % 10`, pixel `i` = `(f*31 + r*7 + i) % 256`.
    fn record(f: usize, r: usize) -> Vec<u8> {
        let mut bytes = vec![((f + r) % 10) as u8];
        bytes.extend((0..CIFAR10_DIMS.len()).map(|i| ((f * 31 + r * 7 + i) % 256) as u8));
        bytes
    }

    /// Writes `records` records into each of the five training files and
    /// `records + 1` into the test file.
    fn write_split_files(dir: &Path, records: usize) {
        for (f, name) in cifar10_files(Split::Train).iter().enumerate() {
            let bytes: Vec<u8> = (0..records).flat_map(|r| record(f, r)).collect();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let bytes: Vec<u8> = (0..records + 1).flat_map(|r| record(9, r)).collect();
        std::fs::write(dir.join("test_batch.bin"), bytes).unwrap();
    }

    fn load_err(dir: &Path, split: Split) -> String {
        load_cifar10(dir, split).unwrap_err().to_string()
    }

    #[test]
    fn synthetic_files_round_trip_exactly() {
        let tmp = TempDir::new("cifar-roundtrip");
        write_split_files(tmp.path(), 2);
        let train = load_cifar10(tmp.path(), Split::Train).unwrap();
        assert_eq!(train.len(), 10);
        assert_eq!(train.dims(), CIFAR10_DIMS);
        for f in 0..5 {
            for r in 0..2 {
                let expected = record(f, r);
                let i = f * 2 + r;
                assert_eq!(train.label(i), expected[0]);
                assert_eq!(train.image(i), &expected[1..]);
            }
        }
        // Red plane first, then green: pixel 1024 of the record is green (0, 0).
        assert_eq!(train.image(3)[1024], ((31 + 7 + 1024) % 256) as u8);
        assert_eq!(train.class_names(), CIFAR10_CLASSES);

        let test = load_cifar10(tmp.path(), Split::Test).unwrap();
        assert_eq!(test.len(), 3);
        assert_eq!(test.image(2), &record(9, 2)[1..]);
    }

    #[test]
    fn limit_reads_only_the_first_records() {
        let tmp = TempDir::new("cifar-limit");
        write_split_files(tmp.path(), 2);
        let three = load_cifar10_limited(tmp.path(), Split::Train, Some(3)).unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three.image(2), &record(1, 0)[1..]);
        assert_eq!(three.labels(), &[0, 1, 1]);
        // Files past the limit are not opened.
        std::fs::remove_file(tmp.path().join("data_batch_5.bin")).unwrap();
        assert_eq!(
            load_cifar10_limited(tmp.path(), Split::Train, Some(2))
                .unwrap()
                .len(),
            2
        );
        assert!(load_cifar10(tmp.path(), Split::Train).is_err());
    }

    #[test]
    fn class_names_come_from_the_meta_file() {
        let tmp = TempDir::new("cifar-meta");
        write_split_files(tmp.path(), 1);
        let names: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
        std::fs::write(
            tmp.path().join("batches.meta.txt"),
            format!("{}\n\n\n", names.join("\n")),
        )
        .unwrap();
        let test = load_cifar10(tmp.path(), Split::Test).unwrap();
        assert_eq!(test.class_names(), names.as_slice());

        std::fs::write(tmp.path().join("batches.meta.txt"), "a\nb\nc\n").unwrap();
        let err = load_err(tmp.path(), Split::Test);
        assert!(
            err.contains("batches.meta.txt lists 3 class names; expected 10"),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_names_the_incomplete_record() {
        let tmp = TempDir::new("cifar-truncated");
        write_split_files(tmp.path(), 2);
        let path = tmp.path().join("test_batch.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(2 * CIFAR10_RECORD_LEN + 100);
        std::fs::write(&path, bytes).unwrap();
        let err = load_err(tmp.path(), Split::Test);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("truncated: 6246 bytes"), "{err}");
        assert!(
            err.contains("record 2 starting at byte offset 6146 is incomplete (100 of 3073 bytes)"),
            "{err}"
        );
    }

    #[test]
    fn wrong_size_and_empty_files_are_rejected() {
        let tmp = TempDir::new("cifar-size");
        let path = tmp.path().join("test_batch.bin");
        std::fs::write(&path, vec![0u8; CIFAR10_RECORD_LEN - 1]).unwrap();
        let err = load_err(tmp.path(), Split::Test);
        assert!(
            err.contains("3072 bytes is not a multiple of the 3073-byte record"),
            "{err}"
        );
        assert!(err.contains("record 0 starting at byte offset 0"), "{err}");

        std::fs::write(&path, []).unwrap();
        let err = load_err(tmp.path(), Split::Test);
        assert!(err.contains("test_batch.bin is empty (0 bytes)"), "{err}");
    }

    #[test]
    fn bad_label_names_file_and_offset() {
        let tmp = TempDir::new("cifar-label");
        write_split_files(tmp.path(), 3);
        let path = tmp.path().join("data_batch_4.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2 * CIFAR10_RECORD_LEN] = 10;
        std::fs::write(&path, bytes).unwrap();
        let err = load_err(tmp.path(), Split::Train);
        assert!(err.contains("data_batch_4.bin has label 10"), "{err}");
        assert!(err.contains("at byte offset 6146 (record 2)"), "{err}");
        assert!(err.contains("labels must be 0..=9"), "{err}");
    }

    #[test]
    fn missing_dir_and_file_point_to_the_download_script() {
        let tmp = TempDir::new("cifar-missing");
        let absent = tmp.path().join("nowhere");
        let err = load_err(&absent, Split::Train);
        assert!(err.contains(&absent.display().to_string()), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("data/get-cifar10.sh"), "{err}");
        assert!(err.contains("GRADLAB_DATA"), "{err}");

        let err = load_err(tmp.path(), Split::Test);
        assert!(err.contains("test_batch.bin is missing"), "{err}");
        assert!(err.contains("data/get-cifar10.sh"), "{err}");
    }

    #[test]
    fn a_file_for_the_directory_and_a_directory_for_a_file_are_named_as_such() {
        let tmp = TempDir::new("cifar-kinds");
        let file = tmp.path().join("data_batch_1.bin");
        std::fs::write(&file, record(0, 0)).unwrap();
        let err = load_err(&file, Split::Train);
        assert!(
            err.starts_with(&format!(
                "CIFAR-10 path {} is not a directory; run data/get-cifar10.sh",
                file.display()
            )),
            "{err}"
        );
        std::fs::create_dir(tmp.path().join("test_batch.bin")).unwrap();
        let err = load_err(tmp.path(), Split::Test);
        assert_eq!(
            err,
            format!(
                "CIFAR-10 file {} is a directory, not a file",
                tmp.path().join("test_batch.bin").display()
            )
        );
    }

    #[test]
    fn explicit_dir_wins_even_when_absent() {
        let absent = Path::new("/definitely/not/here");
        assert_eq!(cifar10_dir(Some(absent)), Some(absent.to_path_buf()));
    }
}
