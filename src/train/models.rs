//! The trainer's networks, built from gradlab-nn layers with PyTorch's names.

use super::args::ModelKind;
use gradlab_data::ImageDims;
use gradlab_nn::layers::{BatchNorm2d, Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU};
use gradlab_nn::{Result, Sequential};
use gradlab_tensor::{DType, Rng};

/// Builds `kind` for images of `dims` and `classes` outputs, initialised
/// from `rng` as PyTorch initialises its layers.
pub fn build_model(
    kind: ModelKind,
    dims: ImageDims,
    classes: usize,
    rng: &mut Rng,
) -> Result<Sequential> {
    match kind {
        ModelKind::Lenet => lenet(dims, classes, rng),
        ModelKind::Convnet => convnet(dims, classes, rng),
    }
}

/// The PyTorch CIFAR-10 tutorial's `Net`: conv(C,6,5)-relu-pool2,
/// conv(6,16,5)-relu-pool2, flatten, fc 400-120-84-classes with ReLUs.
/// For 28x28 images conv1 pads by 2, so the flattened features stay 16x5x5.
pub fn lenet(dims: ImageDims, classes: usize, rng: &mut Rng) -> Result<Sequential> {
    let padding = if dims.height < 32 {
        (32 - dims.height).div_ceil(2)
    } else {
        0
    };
    let side = |s: usize| ((s + 2 * padding).saturating_sub(4) / 2).saturating_sub(4) / 2;
    let features = 16 * side(dims.height) * side(dims.width);
    let f = DType::F32;
    Sequential::new()
        .push(
            "conv1",
            Conv2d::new(dims.channels, 6, 5, 1, padding, true, f, rng),
        )?
        .push("relu1", ReLU)?
        .push("pool1", MaxPool2d::new(2))?
        .push("conv2", Conv2d::new(6, 16, 5, 1, 0, true, f, rng))?
        .push("relu2", ReLU)?
        .push("pool2", MaxPool2d::new(2))?
        .push("flatten", Flatten::default())?
        .push("fc1", Linear::new(features, 120, true, f, rng))?
        .push("relu3", ReLU)?
        .push("fc2", Linear::new(120, 84, true, f, rng))?
        .push("relu4", ReLU)?
        .push("fc3", Linear::new(84, classes, true, f, rng))
}

/// Three blocks of 3x3 conv (no bias: batch norm follows) - batchnorm -
/// relu - maxpool 2 with 64, 128 and 256 channels, then the mean of each
/// channel (global average pooling) and one linear layer on those 256 features.
///
/// The head sees one feature per channel rather than the 256 x 4 x 4
/// flattened activations: thousands of non-negative (post-ReLU) inputs to one
/// linear layer make its initial logits large and its updates unstable at
/// ordinary learning rates.
pub fn convnet(dims: ImageDims, classes: usize, rng: &mut Rng) -> Result<Sequential> {
    let f = DType::F32;
    let mut model = Sequential::new();
    let mut channels = dims.channels;
    for (i, out) in [64, 128, 256].into_iter().enumerate() {
        let n = i + 1;
        model = model
            .push(
                format!("conv{n}"),
                Conv2d::new(channels, out, 3, 1, 1, false, f, rng),
            )?
            .push(format!("bn{n}"), BatchNorm2d::new(out, f))?
            .push(format!("relu{n}"), ReLU)?
            .push(format!("pool{n}"), MaxPool2d::new(2))?;
        channels = out;
    }
    model
        .push("avgpool", GlobalAvgPool2d)?
        .push("fc", Linear::new(channels, classes, true, f, rng))
}
