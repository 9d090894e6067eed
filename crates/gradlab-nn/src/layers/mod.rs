//! Layers, one file each, with PyTorch's names, shapes and defaults.

mod activation;
mod batchnorm;
mod conv;
mod dropout;
mod linear;
mod pool;
mod sequential;

pub use activation::{Flatten, ReLU};
pub use batchnorm::BatchNorm2d;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use linear::Linear;
pub use pool::{GlobalAvgPool2d, MaxPool2d};
pub use sequential::{Layer, Sequential};
