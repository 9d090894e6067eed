//! 2-D convolution (NCHW) and the two products of its backward pass.

use crate::{Result, Shape, Tensor, TensorError};
use gradlab_cpu::Conv2dShape;

/// Convolution parameters with PyTorch's names and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// The kernel problem for an input shape (`[N, C, H, W]`, or `[C, H, W]`
    /// for one unbatched image, a batch of one) and a weight shape, checked.
    pub fn problem(&self, op: &'static str, input: &Shape, weight: &Shape) -> Result<Conv2dShape> {
        let w = weight.dims();
        let i: [usize; 4] = match *input.dims() {
            [c, h, wd] if w.len() == 4 => [1, c, h, wd],
            [n, c, h, wd] if w.len() == 4 => [n, c, h, wd],
            _ => {
                return Err(TensorError::shape(
                    op,
                    format!("expects a 3-D [C, H, W] (unbatched) or 4-D [N, C, H, W] input and a 4-D weight [O, C/groups, KH, KW], got {input} and {weight}"),
                ))
            }
        };
        let p = self;
        if p.groups == 0
            || p.stride.0 == 0
            || p.stride.1 == 0
            || p.dilation.0 == 0
            || p.dilation.1 == 0
        {
            return Err(TensorError::invalid(
                op,
                format!(
                    "stride {:?}, dilation {:?} and groups {} must be positive",
                    p.stride, p.dilation, p.groups
                ),
            ));
        }
        if !i[1].is_multiple_of(p.groups)
            || !w[0].is_multiple_of(p.groups)
            || i[1] / p.groups != w[1]
        {
            return Err(TensorError::shape(
                op,
                format!(
                    "input {input} with {} channels and weight {weight} do not fit groups={}: need input channels / groups == weight.shape[1] and output channels divisible by groups",
                    i[1], p.groups
                ),
            ));
        }
        // PyTorch refuses these too: a weight without output channels, and
        // an image without rows or columns (an empty batch is fine). It
        // answers an input without channels with a tensor of no channels
        // whatever the weight says; gradlab refuses that as well.
        if w[0] == 0 || i[1] == 0 || i[2] == 0 || i[3] == 0 {
            return Err(TensorError::shape(
                op,
                format!(
                    "input {input} and weight {weight}: only the batch may be empty (the weight needs output channels, the input channels, rows and columns)"
                ),
            ));
        }
        let s = Conv2dShape {
            batch: i[0],
            in_channels: i[1],
            in_h: i[2],
            in_w: i[3],
            out_channels: w[0],
            kernel_h: w[2],
            kernel_w: w[3],
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups: p.groups,
        };
        // Before any other arithmetic on the sizes: none of them may wrap.
        s.check_sizes()
            .map_err(|e| TensorError::shape(op, e.to_string()))?;
        let span_h = p.dilation.0 * (w[2].max(1) - 1) + 1;
        let span_w = p.dilation.1 * (w[3].max(1) - 1) + 1;
        if w[2] == 0
            || w[3] == 0
            || i[2] + 2 * p.padding.0 < span_h
            || i[3] + 2 * p.padding.1 < span_w
        {
            return Err(TensorError::shape(
                op,
                format!(
                    "kernel {}x{} (dilation {:?}) does not fit the padded input {}x{} (input {input}, padding {:?})",
                    w[2], w[3], p.dilation, i[2] + 2 * p.padding.0, i[3] + 2 * p.padding.1, p.padding
                ),
            ));
        }
        Ok(s)
    }
}

/// The output shape of problem `s`: `[N, O, OH, OW]`, or `[O, OH, OW]`
/// when the input is an unbatched image (`batched` false).
pub(crate) fn output_shape(s: &Conv2dShape, batched: bool) -> Shape {
    if batched {
        Shape::new([s.batch, s.out_channels, s.out_h(), s.out_w()])
    } else {
        Shape::new([s.out_channels, s.out_h(), s.out_w()])
    }
}

/// `t` as the backends take it: an unbatched image `[C, H, W]` is a batch
/// of one (a view, no copy).
pub(crate) fn as_batch(t: &Tensor, batched: bool) -> Result<Tensor> {
    if batched {
        Ok(t.clone())
    } else {
        t.unsqueeze(0)
    }
}

/// A backend's batched result `[1, ...]` as the unbatched caller's `[...]`.
pub(crate) fn unbatch(t: Tensor, batched: bool) -> Result<Tensor> {
    if batched {
        Ok(t)
    } else {
        t.squeeze(0)
    }
}

impl Tensor {
    /// `torch.nn.functional.conv2d(self, weight, bias, stride, padding, dilation, groups)`
    /// on a batch `[N, C, H, W]` or one unbatched image `[C, H, W]` (the
    /// result is then `[O, OH, OW]`).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: Conv2dParams,
    ) -> Result<Tensor> {
        self.check_same_kind("conv2d", weight)?;
        self.check_float("conv2d")?;
        let s = params.problem("conv2d", self.shape(), weight.shape())?;
        if let Some(b) = bias {
            self.check_same_kind("conv2d", b)?;
            if b.dims() != [s.out_channels] {
                return Err(TensorError::shape(
                    "conv2d",
                    format!(
                        "bias must have shape [{}] for weight {}, got {}",
                        s.out_channels,
                        weight.shape(),
                        b.shape()
                    ),
                ));
            }
        }
        let batched = self.rank() == 4;
        let y = self
            .backend()
            .conv2d(&s, &as_batch(self, batched)?, weight, bias)?;
        unbatch(y, batched)
    }

    /// Gradient of `conv2d` with respect to its input, given the output
    /// gradient `self` and the weight: a transposed convolution. An
    /// unbatched `input_shape` takes an unbatched gradient and gives one.
    pub fn conv2d_backward_data(
        &self,
        weight: &Tensor,
        input_shape: &Shape,
        params: Conv2dParams,
    ) -> Result<Tensor> {
        let op = "conv2d_backward_data";
        self.check_same_kind(op, weight)?;
        self.check_float(op)?;
        let s = params.problem(op, input_shape, weight.shape())?;
        let batched = input_shape.rank() == 4;
        check_grad_out(op, self, &s, batched)?;
        let dx = self
            .backend()
            .conv2d_backward_data(&s, &as_batch(self, batched)?, weight)?;
        unbatch(dx, batched)
    }

    /// Gradient of `conv2d` with respect to its weight, given the output
    /// gradient `self` and the input (both batched, or both unbatched).
    pub fn conv2d_backward_weight(
        &self,
        input: &Tensor,
        weight_shape: &Shape,
        params: Conv2dParams,
    ) -> Result<Tensor> {
        let op = "conv2d_backward_weight";
        self.check_same_kind(op, input)?;
        self.check_float(op)?;
        let s = params.problem(op, input.shape(), weight_shape)?;
        let batched = input.rank() == 4;
        check_grad_out(op, self, &s, batched)?;
        self.backend().conv2d_backward_weight(
            &s,
            &as_batch(self, batched)?,
            &as_batch(input, batched)?,
        )
    }
}

fn check_grad_out(op: &'static str, g: &Tensor, s: &Conv2dShape, batched: bool) -> Result<()> {
    let want = output_shape(s, batched);
    if g.shape() != &want {
        return Err(TensorError::shape(
            op,
            format!("output gradient has shape {}, expected {want}", g.shape()),
        ));
    }
    Ok(())
}
