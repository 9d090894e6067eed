//! Problem descriptions shared by the conv and pool kernels (NCHW, contiguous).
//!
//! Sizes here come from users (a padding typed on the command line, a
//! kernel size in a test case), so no arithmetic on them may wrap: the
//! length methods saturate at `usize::MAX` instead, a length no buffer can
//! have, and [`Conv2dShape::check_sizes`] / [`Pool2dShape::check_sizes`] say
//! which buffer would be too large. The ops call those checks before they
//! allocate, so a kernel (whose inner loops use unchecked indexing) only
//! ever sees lengths that are the true products of the sizes.

use crate::alloc::{checked_len, MAX_ELEMENTS};
use std::fmt;

/// A problem whose buffers would hold more than [`MAX_ELEMENTS`] elements
/// (or whose sizes overflow before that).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SizeOverflow {
    /// Which buffer: `"output"`, `"input"`, `"weight"`.
    pub buffer: &'static str,
    /// Its dims as far as they could be computed (`None` for a dim that
    /// itself overflows, such as an output side of a huge padding).
    pub dims: Vec<Option<usize>>,
}

impl fmt::Display for SizeOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| d.map_or_else(|| "(overflow)".to_string(), |d| d.to_string()))
            .collect();
        write!(
            f,
            "the {} would be [{}], more than the {MAX_ELEMENTS} elements a buffer may hold",
            self.buffer,
            dims.join(", ")
        )
    }
}

/// Checks one buffer's dims (`None` = a dim that overflowed).
fn check_buffer(buffer: &'static str, dims: &[Option<usize>]) -> Result<(), SizeOverflow> {
    let known: Option<Vec<usize>> = dims.iter().copied().collect();
    match known.as_deref().and_then(checked_len) {
        Some(_) => Ok(()),
        None => Err(SizeOverflow {
            buffer,
            dims: dims.to_vec(),
        }),
    }
}

/// The product of `dims`, saturating at `usize::MAX` instead of wrapping
/// (0 when any dim is 0).
fn saturating_len(dims: &[usize]) -> usize {
    if dims.contains(&0) {
        return 0;
    }
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}

/// A 2-D convolution problem: input `[batch, in_channels, in_h, in_w]`,
/// weight `[out_channels, in_channels / groups, kernel_h, kernel_w]`,
/// output `[batch, out_channels, out_h, out_w]`, PyTorch semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Conv2dShape {
    /// The same layer on a batch of `batch` images.
    pub fn with_batch(&self, batch: usize) -> Conv2dShape {
        Conv2dShape { batch, ..*self }
    }

    /// A square `side x side` input and `kernel x kernel` window with stride
    /// 1, the given zero padding, no dilation and one group: the shape of
    /// most layers in small CNNs (LeNet's, or a 3x3 same-padding block).
    pub fn square(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        side: usize,
        kernel: usize,
        padding: usize,
    ) -> Self {
        Conv2dShape {
            batch,
            in_channels,
            in_h: side,
            in_w: side,
            out_channels,
            kernel_h: kernel,
            kernel_w: kernel,
            stride: (1, 1),
            padding: (padding, padding),
            dilation: (1, 1),
            groups: 1,
        }
    }

    pub fn out_h(&self) -> usize {
        conv_out_len(
            self.in_h,
            self.kernel_h,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
        )
    }
    pub fn out_w(&self) -> usize {
        conv_out_len(
            self.in_w,
            self.kernel_w,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
        )
    }
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    pub fn input_len(&self) -> usize {
        saturating_len(&[self.batch, self.in_channels, self.in_h, self.in_w])
    }
    pub fn weight_len(&self) -> usize {
        saturating_len(&[
            self.out_channels,
            self.in_per_group(),
            self.kernel_h,
            self.kernel_w,
        ])
    }
    pub fn output_len(&self) -> usize {
        saturating_len(&[self.batch, self.out_channels, self.out_h(), self.out_w()])
    }

    /// Checks that the input, weight and output each hold at most
    /// [`MAX_ELEMENTS`] elements (so every length and every partial product
    /// the kernels form is exact). `out_h`/`out_w` of a padding so large
    /// that the padded side overflows are reported as `(overflow)`.
    ///
    /// ```
    /// use gradlab_cpu::Conv2dShape;
    /// let mut s = Conv2dShape::square(1, 1, 1, 1, 2, 1 << 31);
    /// // Unchecked, 1 x 1 x 2^32 x 2^32 would wrap to an empty output.
    /// let err = s.check_sizes().unwrap_err().to_string();
    /// assert_eq!(err, "the output would be [1, 1, 4294967296, 4294967296], more than the 1152921504606846975 elements a buffer may hold");
    /// s.padding = (1, 1);
    /// assert!(s.check_sizes().is_ok());
    /// ```
    pub fn check_sizes(&self) -> Result<(), SizeOverflow> {
        let k = |v: usize| Some(v);
        check_buffer(
            "input",
            &[
                k(self.batch),
                k(self.in_channels),
                k(self.in_h),
                k(self.in_w),
            ],
        )?;
        check_buffer(
            "weight",
            &[
                k(self.out_channels),
                k(self.in_per_group()),
                k(self.kernel_h),
                k(self.kernel_w),
            ],
        )?;
        let side = |input, kernel, stride, padding, dilation| {
            checked_conv_out_len(input, kernel, stride, padding, dilation)
        };
        check_buffer(
            "output",
            &[
                k(self.batch),
                k(self.out_channels),
                side(
                    self.in_h,
                    self.kernel_h,
                    self.stride.0,
                    self.padding.0,
                    self.dilation.0,
                ),
                side(
                    self.in_w,
                    self.kernel_w,
                    self.stride.1,
                    self.padding.1,
                    self.dilation.1,
                ),
            ],
        )
    }
    /// Multiply-adds of the forward pass, times two.
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64
            * (self.in_per_group() * self.kernel_h * self.kernel_w) as f64
    }
}

/// Output length of a convolution along one axis: 0 when the kernel does
/// not fit (or the kernel or stride is 0), `usize::MAX` when the padded
/// input overflows (see [`checked_conv_out_len`]).
pub fn conv_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    checked_conv_out_len(input, kernel, stride, padding, dilation).unwrap_or(usize::MAX)
}

/// [`conv_out_len`], or `None` when `input + 2 * padding` or the window's
/// span overflows.
pub fn checked_conv_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return Some(0);
    }
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    Some(if padded < span {
        0
    } else {
        (padded - span) / stride + 1
    })
}

/// A 2-D max-pool problem on `[batch, channels, in_h, in_w]`, PyTorch semantics
/// (including `ceil_mode`'s rule that the last window must start inside the
/// input or its left padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
}

impl Pool2dShape {
    pub fn out_h(&self) -> usize {
        pool_out_len(
            self.in_h,
            self.kernel.0,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
            self.ceil_mode,
        )
    }
    pub fn out_w(&self) -> usize {
        pool_out_len(
            self.in_w,
            self.kernel.1,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
            self.ceil_mode,
        )
    }
    pub fn input_len(&self) -> usize {
        saturating_len(&[self.batch, self.channels, self.in_h, self.in_w])
    }
    pub fn output_len(&self) -> usize {
        saturating_len(&[self.batch, self.channels, self.out_h(), self.out_w()])
    }

    /// Checks that the input and the output (and so the argmax) each hold at
    /// most [`MAX_ELEMENTS`] elements.
    pub fn check_sizes(&self) -> Result<(), SizeOverflow> {
        let k = |v: usize| Some(v);
        check_buffer(
            "input",
            &[k(self.batch), k(self.channels), k(self.in_h), k(self.in_w)],
        )?;
        check_buffer(
            "output",
            &[
                k(self.batch),
                k(self.channels),
                k(self.out_h()),
                k(self.out_w()),
            ],
        )
    }
}

/// PyTorch's pooling output size (`pooling_output_shape`): 0 when the
/// window does not fit (or the kernel or stride is 0), saturating at
/// `usize::MAX`. Computed in `i128`, where no sum or product of `usize`
/// sizes here can overflow.
pub fn pool_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> usize {
    if kernel == 0 || stride == 0 {
        return 0;
    }
    let (input, kernel, stride, padding, dilation) = (
        input as i128,
        kernel as i128,
        stride as i128,
        padding as i128,
        dilation as i128,
    );
    let span = dilation * (kernel - 1) + 1;
    let numer = input + 2 * padding - span + if ceil_mode { stride - 1 } else { 0 };
    if numer < 0 {
        return 0;
    }
    let mut out = numer / stride + 1;
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    usize::try_from(out.max(0)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        assert_eq!(conv_out_len(32, 5, 1, 0, 1), 28);
        assert_eq!(conv_out_len(9, 3, 2, 1, 1), 5);
        assert_eq!(conv_out_len(9, 3, 1, 1, 2), 7);
        assert_eq!(pool_out_len(28, 2, 2, 0, 1, false), 14);
        assert_eq!(pool_out_len(9, 3, 2, 1, 1, false), 5);
        assert_eq!(pool_out_len(7, 2, 2, 0, 1, true), 4);
        assert_eq!(pool_out_len(7, 2, 2, 0, 1, false), 3);
        // ceil_mode never starts a window in the right padding.
        assert_eq!(pool_out_len(5, 2, 2, 1, 1, true), 3);
    }

    #[test]
    fn huge_sizes_saturate_and_are_reported_instead_of_wrapping() {
        // 1 + 2 * 2^63 overflows usize: the side is unknown, the check says so.
        assert_eq!(checked_conv_out_len(1, 2, 1, 1 << 63, 1), None);
        assert_eq!(conv_out_len(1, 2, 1, 1 << 63, 1), usize::MAX);
        assert_eq!(conv_out_len(1, 2, 1, 1 << 31, 1), 1 << 32);
        assert_eq!(conv_out_len(4, 0, 1, 0, 1), 0);
        let mut s = Conv2dShape::square(1, 1, 1, 1, 2, 1 << 63);
        assert_eq!(s.output_len(), usize::MAX);
        let err = s.check_sizes().unwrap_err();
        assert_eq!(err.buffer, "output");
        assert_eq!(err.dims, vec![Some(1), Some(1), None, None]);
        assert!(err
            .to_string()
            .starts_with("the output would be [1, 1, (overflow), (overflow)]"));
        // A padding of 1e9 fits usize but not in memory: 4e18 elements.
        s.padding = (1_000_000_000, 1_000_000_000);
        assert_eq!(s.output_len(), 2_000_000_000 * 2_000_000_000);
        assert!(s.check_sizes().is_err());
        let s = Conv2dShape::square(1 << 20, 1 << 20, 1, 1 << 20, 1, 0);
        assert_eq!(s.check_sizes().unwrap_err().buffer, "input");
        assert_eq!(s.input_len(), usize::MAX);

        assert_eq!(pool_out_len(1, 2, 1, usize::MAX, 1, false), usize::MAX);
        assert_eq!(
            pool_out_len(usize::MAX, 2, 2, 0, 1, true),
            usize::MAX / 2 + 1
        );
        let p = Pool2dShape {
            batch: 1,
            channels: 1,
            in_h: 1,
            in_w: 1,
            kernel: (1, 1),
            stride: (1, 1),
            padding: (1 << 40, 1 << 40),
            dilation: (1, 1),
            ceil_mode: false,
        };
        assert_eq!(p.check_sizes().unwrap_err().buffer, "output");
    }
}
