//! Random crop with zero padding and random horizontal flip.
//!
//! Both are applied in one pass that reads the source image and writes the
//! output, so no padded copy is ever built. The padding is black (pixel value
//! 0, before normalisation), as torchvision's `RandomCrop(padding=4)` on an
//! 8-bit image does.

use gradlab_cpu::Rng;

use crate::dataset::ImageDims;
use crate::normalize::PixelTable;

/// Which random augmentations a loader applies to each training image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augmentation {
    /// Pad each side by this many black pixels, then crop back to the
    /// original size at a random offset. 0 disables cropping.
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
}

impl Augmentation {
    /// No augmentation.
    pub fn none() -> Self {
        Augmentation::default()
    }

    /// The usual CIFAR-10 recipe: pad 4, random 32x32 crop, random flip.
    pub fn cifar10() -> Self {
        Augmentation {
            crop_padding: 4,
            horizontal_flip: true,
        }
    }

    /// True when no image would ever change.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip
    }

    /// Draws the transform of one image. Only enabled augmentations consume
    /// random numbers.
    pub fn sample(&self, rng: &mut Rng) -> ImageTransform {
        let span = 2 * self.crop_padding + 1;
        let (offset_y, offset_x) = if self.crop_padding > 0 {
            (rng.below(span), rng.below(span))
        } else {
            (0, 0)
        };
        let flip = self.horizontal_flip && rng.below(2) == 1;
        ImageTransform {
            padding: self.crop_padding,
            offset_y,
            offset_x,
            flip,
        }
    }
}

/// The transform of one image: crop the image padded by `padding` at
/// (`offset_y`, `offset_x`) (each in `0..=2*padding`), then mirror if `flip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageTransform {
    pub padding: usize,
    pub offset_y: usize,
    pub offset_x: usize,
    pub flip: bool,
}

impl ImageTransform {
    /// Leaves the image as it is.
    pub const IDENTITY: ImageTransform = ImageTransform {
        padding: 0,
        offset_y: 0,
        offset_x: 0,
        flip: false,
    };

    /// True when the output equals the input.
    pub fn is_identity(&self) -> bool {
        self.offset_y == self.padding && self.offset_x == self.padding && !self.flip
    }
}

/// Applies `transform` to one `u8` image (C x H x W) into `out` (same size).
///
/// Panics if a slice is not `dims.len()` long or an offset exceeds
/// `2 * padding`: both are caller bugs, not user input.
pub fn transform_image(src: &[u8], dims: ImageDims, transform: ImageTransform, out: &mut [u8]) {
    let identity: [u8; 256] = std::array::from_fn(|v| v as u8);
    transform_planes(src, dims, transform, |_| &identity, out);
}

/// Applies `transform` and the `u8 -> f32` table in one pass.
pub(crate) fn transform_image_f32(
    src: &[u8],
    dims: ImageDims,
    transform: ImageTransform,
    table: &PixelTable,
    out: &mut [f32],
) {
    transform_planes(src, dims, transform, |c| table.row(c), out);
}

/// Output pixel (y, x) of channel c is `row(c)[src[c][sy][sx]]` with
/// sy = y + offset_y - padding and sx = (flip ? W-1-x : x) + offset_x - padding,
/// or `row(c)[0]` where that falls in the padding.
///
/// Each output row is split into padding on the left, the run of columns
/// that read the source, and padding on the right, so the inner loop is a
/// plain table lookup with no bounds test per pixel.
fn transform_planes<'t, T: Copy + 't>(
    src: &[u8],
    dims: ImageDims,
    transform: ImageTransform,
    row_of_channel: impl Fn(usize) -> &'t [T; 256],
    out: &mut [T],
) {
    let (h, w) = (dims.height as isize, dims.width);
    assert_eq!(src.len(), dims.len(), "source image length");
    assert_eq!(out.len(), dims.len(), "output image length");
    assert!(
        transform.offset_y <= 2 * transform.padding && transform.offset_x <= 2 * transform.padding,
        "crop offset outside the padded image: {transform:?}"
    );
    let pad = transform.padding as isize;
    let shift_y = transform.offset_y as isize - pad;
    let shift_x = transform.offset_x as isize - pad;
    // Output columns lo..hi read source columns; mirrored, column x reads
    // W-1-x+shift_x, otherwise x+shift_x.
    let (lo, hi) = if transform.flip {
        (shift_x, w as isize + shift_x)
    } else {
        (-shift_x, w as isize - shift_x)
    };
    let lo = lo.clamp(0, w as isize) as usize;
    let hi = (hi.clamp(0, w as isize) as usize).max(lo);

    for (c, (src_plane, out_plane)) in src
        .chunks_exact(dims.plane_len())
        .zip(out.chunks_exact_mut(dims.plane_len()))
        .enumerate()
    {
        let table = row_of_channel(c);
        let fill = table[0];
        for (y, out_row) in out_plane.chunks_exact_mut(w).enumerate() {
            let sy = y as isize + shift_y;
            if sy < 0 || sy >= h || lo == hi {
                out_row.fill(fill);
                continue;
            }
            let src_row = &src_plane[sy as usize * w..(sy as usize + 1) * w];
            out_row[..lo].fill(fill);
            out_row[hi..].fill(fill);
            let inner = &mut out_row[lo..hi];
            if transform.flip {
                // Column lo reads the rightmost source column of the run.
                let last = (w as isize - 1 - lo as isize + shift_x) as usize;
                let run = &src_row[last + 1 - inner.len()..=last];
                for (o, &v) in inner.iter_mut().zip(run.iter().rev()) {
                    *o = table[usize::from(v)];
                }
            } else {
                let first = (lo as isize + shift_x) as usize;
                let run = &src_row[first..first + inner.len()];
                for (o, &v) in inner.iter_mut().zip(run) {
                    *o = table[usize::from(v)];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: ImageDims = ImageDims {
        channels: 3,
        height: 5,
        width: 7,
    };

    fn sample_image(dims: ImageDims) -> Vec<u8> {
        (0..dims.len()).map(|i| (i * 37 % 251 + 1) as u8).collect()
    }

    /// Pads explicitly, crops, then flips: the slow, obvious way.
    fn naive(src: &[u8], dims: ImageDims, t: ImageTransform) -> Vec<u8> {
        let (h, w, p) = (dims.height, dims.width, t.padding);
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let mut out = Vec::with_capacity(dims.len());
        for c in 0..dims.channels {
            let mut padded = vec![0u8; ph * pw];
            for y in 0..h {
                for x in 0..w {
                    padded[(y + p) * pw + x + p] = src[c * h * w + y * w + x];
                }
            }
            for y in 0..h {
                let row: Vec<u8> = (0..w)
                    .map(|x| padded[(y + t.offset_y) * pw + x + t.offset_x])
                    .collect();
                if t.flip {
                    out.extend(row.iter().rev());
                } else {
                    out.extend(row);
                }
            }
        }
        out
    }

    fn apply(src: &[u8], t: ImageTransform) -> Vec<u8> {
        let mut out = vec![0u8; src.len()];
        transform_image(src, DIMS, t, &mut out);
        out
    }

    #[test]
    fn identity_transforms_leave_the_image_alone() {
        let img = sample_image(DIMS);
        assert_eq!(apply(&img, ImageTransform::IDENTITY), img);
        let centred = ImageTransform {
            padding: 4,
            offset_y: 4,
            offset_x: 4,
            flip: false,
        };
        assert!(centred.is_identity());
        assert_eq!(apply(&img, centred), img);
    }

    #[test]
    fn flip_twice_is_identity_and_flip_mirrors_rows() {
        let img = sample_image(DIMS);
        let flip = ImageTransform {
            flip: true,
            ..ImageTransform::IDENTITY
        };
        let once = apply(&img, flip);
        assert_ne!(once, img);
        assert_eq!(once[0], img[DIMS.width - 1]);
        assert_eq!(once[DIMS.width - 1], img[0]);
        assert_eq!(apply(&once, flip), img);
    }

    #[test]
    fn every_crop_and_flip_matches_explicit_padding() {
        let img = sample_image(DIMS);
        for padding in [0, 1, 4, 8] {
            for offset_y in 0..=2 * padding {
                for offset_x in 0..=2 * padding {
                    for flip in [false, true] {
                        let t = ImageTransform {
                            padding,
                            offset_y,
                            offset_x,
                            flip,
                        };
                        assert_eq!(apply(&img, t), naive(&img, DIMS, t), "{t:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn shifted_crop_exposes_black_padding() {
        let img = sample_image(DIMS);
        let t = ImageTransform {
            padding: 2,
            offset_y: 0,
            offset_x: 0,
            flip: false,
        };
        let out = apply(&img, t);
        // Top two rows and left two columns come from the padding.
        assert!(out[..2 * DIMS.width].iter().all(|&v| v == 0));
        assert_eq!(out[2 * DIMS.width + 1], 0);
        assert_eq!(out[2 * DIMS.width + 2], img[0]);
    }

    #[test]
    fn f32_path_equals_u8_path_then_table() {
        let img = sample_image(DIMS);
        let table = crate::Normalization::new(vec![0.1, 0.2, 0.3], vec![0.5, 0.6, 0.7])
            .unwrap()
            .table();
        let plane = DIMS.plane_len();
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let t = Augmentation::cifar10().sample(&mut rng);
            let expected: Vec<f32> = apply(&img, t)
                .iter()
                .enumerate()
                .map(|(i, &v)| table.row(i / plane)[usize::from(v)])
                .collect();
            let mut out = vec![0f32; DIMS.len()];
            transform_image_f32(&img, DIMS, t, &table, &mut out);
            assert_eq!(out, expected, "{t:?}");
        }
    }

    #[test]
    fn sampled_offsets_cover_the_range() {
        let mut rng = Rng::new(11);
        let aug = Augmentation::cifar10();
        let mut seen_y = [false; 9];
        let mut flips = 0;
        for _ in 0..2000 {
            let t = aug.sample(&mut rng);
            seen_y[t.offset_y] = true;
            assert!(t.offset_x <= 8);
            flips += usize::from(t.flip);
        }
        assert!(seen_y.iter().all(|&s| s));
        assert!((800..1200).contains(&flips), "{flips} flips in 2000");
        assert_eq!(
            Augmentation::none().sample(&mut rng),
            ImageTransform::IDENTITY
        );
    }
}
