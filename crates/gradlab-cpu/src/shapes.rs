//! Problem descriptions shared by the conv and pool kernels (NCHW, contiguous).

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
        self.batch * self.in_channels * self.in_h * self.in_w
    }
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_per_group() * self.kernel_h * self.kernel_w
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }
    /// Multiply-adds of the forward pass, times two.
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64
            * (self.in_per_group() * self.kernel_h * self.kernel_w) as f64
    }
}

/// Output length of a convolution along one axis (0 when the kernel does not fit).
pub fn conv_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + 2 * padding;
    if padded < span {
        0
    } else {
        (padded - span) / stride + 1
    }
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
        self.batch * self.channels * self.in_h * self.in_w
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_h() * self.out_w()
    }
}

/// PyTorch's pooling output size (`pooling_output_shape`).
pub fn pool_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> usize {
    let span = (dilation * (kernel - 1) + 1) as i64;
    let numer =
        input as i64 + 2 * padding as i64 - span + if ceil_mode { stride as i64 - 1 } else { 0 };
    if numer < 0 {
        return 0;
    }
    let mut out = numer / stride as i64 + 1;
    if ceil_mode && (out - 1) * stride as i64 >= input as i64 + padding as i64 {
        out -= 1;
    }
    out.max(0) as usize
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
}
