//! The one error type of the data layer: every message names the file and,
//! where it helps, the byte offset of the problem, so a bad download can be
//! found without a hex editor.

use std::path::PathBuf;

/// Why a data set could not be loaded or a loader could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data set directory itself is absent.
    #[error(
        "{dataset} directory {} does not exist; {hint}",
        path.display()
    )]
    MissingDir {
        dataset: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// The data path exists but is a file (or something else), not a directory.
    #[error(
        "{dataset} path {} is not a directory; {hint}",
        path.display()
    )]
    NotADirectory {
        dataset: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// A directory (or other non-file) sits where a data file should be.
    #[error(
        "{dataset} file {} is a directory, not a file",
        path.display()
    )]
    NotAFile {
        dataset: &'static str,
        path: PathBuf,
    },

    /// A file asks for a buffer the machine cannot provide.
    #[error("{}: {source}", path.display())]
    Alloc {
        path: PathBuf,
        #[source]
        source: gradlab_cpu::AllocError,
    },

    /// A file the data set needs is absent from an existing directory.
    #[error("{dataset} file {} is missing; {hint}", path.display())]
    MissingFile {
        dataset: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// The operating system refused a read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CIFAR-10 batch file holds no records at all.
    #[error(
        "CIFAR-10 file {} is empty (0 bytes); expected a non-zero multiple of {record_len} bytes",
        path.display()
    )]
    EmptyFile { path: PathBuf, record_len: usize },

    /// A CIFAR-10 batch file ends inside a record.
    #[error(
        "CIFAR-10 file {} is truncated: {size} bytes is not a multiple of the {record_len}-byte record; \
         record {record} starting at byte offset {offset} is incomplete ({partial} of {record_len} bytes)",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        size: u64,
        record_len: usize,
        record: u64,
        offset: u64,
        partial: u64,
    },

    /// A label byte names no class.
    #[error(
        "{} has label {label} at byte offset {offset} (record {record}); labels must be 0..={max}",
        path.display()
    )]
    BadLabel {
        path: PathBuf,
        label: u8,
        offset: u64,
        record: u64,
        max: u8,
    },

    /// The class-name file does not list the expected number of classes.
    #[error(
        "{} lists {found} class names; expected {expected}",
        path.display()
    )]
    BadClassNames {
        path: PathBuf,
        found: usize,
        expected: usize,
    },

    /// An IDX file starts with the wrong magic number.
    #[error(
        "{} has IDX magic number {found} (0x{found:08x}); expected {expected} (0x{expected:08x}, {what})",
        path.display()
    )]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },

    /// An IDX file is shorter or longer than its header says.
    #[error(
        "{} has {}{actual} bytes of data after its {header_len}-byte header; the header promises {expected}",
        path.display(),
        if *at_least { "at least " } else { "" }
    )]
    IdxLength {
        path: PathBuf,
        header_len: usize,
        expected: u64,
        actual: u64,
        /// The file holds more than `actual` bytes (counting stopped there).
        at_least: bool,
    },

    /// An IDX header whose sizes multiply to more than any buffer may hold.
    #[error(
        "{} has an IDX header promising {} bytes, more than the {max} a data set may hold",
        path.display(),
        dims.iter().map(u64::to_string).collect::<Vec<_>>().join(" x "),
        max = gradlab_cpu::MAX_ELEMENTS
    )]
    IdxTooLarge { path: PathBuf, dims: Vec<u64> },

    /// The image and label files of an IDX pair disagree.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    /// In-memory data or a loader setting that cannot work.
    #[error("{0}")]
    Invalid(String),
}
