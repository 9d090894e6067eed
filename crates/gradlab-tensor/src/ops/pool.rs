//! 2-D max pooling with recorded argmax, and its scatter/gather adjoints.

use super::conv::{as_batch, unbatch};
use crate::{DType, Result, Shape, Tensor, TensorError};
use gradlab_cpu::Pool2dShape;

/// Max-pool parameters with PyTorch's names and meaning (`stride` defaults
/// to the kernel size in PyTorch; here it is explicit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    /// A `k x k` window moving by `k`, no padding: the usual pooling layer.
    pub fn square(k: usize) -> Self {
        MaxPool2dParams {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    /// The kernel problem for an input of shape `[N, C, H, W]`, or
    /// `[C, H, W]` for one unbatched image (a batch of one), checked.
    pub fn problem(&self, op: &'static str, input: &Shape) -> Result<Pool2dShape> {
        let d: [usize; 4] = match *input.dims() {
            [c, h, w] => [1, c, h, w],
            [n, c, h, w] => [n, c, h, w],
            _ => {
                return Err(TensorError::shape(
                    op,
                    format!(
                        "expects a 3-D [C, H, W] (unbatched) or 4-D [N, C, H, W] input, got {input}"
                    ),
                ))
            }
        };
        // As PyTorch: only the batch may be empty.
        if d[1] == 0 || d[2] == 0 || d[3] == 0 {
            return Err(TensorError::shape(
                op,
                format!("input {input}: only the batch may be empty (channels, rows and columns may not)"),
            ));
        }
        let p = self;
        if p.kernel.0 == 0
            || p.kernel.1 == 0
            || p.stride.0 == 0
            || p.stride.1 == 0
            || p.dilation.0 == 0
            || p.dilation.1 == 0
        {
            return Err(TensorError::invalid(
                op,
                format!(
                    "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                    p.kernel, p.stride, p.dilation
                ),
            ));
        }
        if 2 * p.padding.0 > p.kernel.0 || 2 * p.padding.1 > p.kernel.1 {
            return Err(TensorError::invalid(
                op,
                format!(
                    "padding {:?} must be at most half of kernel {:?}",
                    p.padding, p.kernel
                ),
            ));
        }
        let s = Pool2dShape {
            batch: d[0],
            channels: d[1],
            in_h: d[2],
            in_w: d[3],
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            ceil_mode: p.ceil_mode,
        };
        s.check_sizes()
            .map_err(|e| TensorError::shape(op, e.to_string()))?;
        if s.out_h() == 0 || s.out_w() == 0 {
            return Err(TensorError::shape(
                op,
                format!(
                    "kernel {:?} with padding {:?} and dilation {:?} does not fit input {input}",
                    p.kernel, p.padding, p.dilation
                ),
            ));
        }
        Ok(s)
    }
}

/// The pooled shape of problem `s`: `[N, C, OH, OW]`, or `[C, OH, OW]`
/// for an unbatched image (`batched` false).
fn out_shape(s: &Pool2dShape, batched: bool) -> Shape {
    if batched {
        Shape::new([s.batch, s.channels, s.out_h(), s.out_w()])
    } else {
        Shape::new([s.channels, s.out_h(), s.out_w()])
    }
}

impl Tensor {
    /// `max_pool2d` returning the pooled values and, for each, the index of
    /// the winning element within its input plane (`h * W + w`, i64). An
    /// unbatched image `[C, H, W]` gives unbatched results `[C, OH, OW]`.
    pub fn max_pool2d(&self, params: MaxPool2dParams) -> Result<(Tensor, Tensor)> {
        self.check_float("max_pool2d")?;
        let s = params.problem("max_pool2d", self.shape())?;
        let batched = self.rank() == 4;
        let (y, argmax) = self.backend().max_pool2d(&s, &as_batch(self, batched)?)?;
        Ok((unbatch(y, batched)?, unbatch(argmax, batched)?))
    }

    /// Routes the output gradient `self` back to the argmax positions of an
    /// input of `input_shape` (the adjoint of [`Tensor::max_pool2d_gather`]).
    pub fn max_pool2d_backward(
        &self,
        argmax: &Tensor,
        input_shape: &Shape,
        params: MaxPool2dParams,
    ) -> Result<Tensor> {
        let op = "max_pool2d_backward";
        self.check_float(op)?;
        let s = params.problem(op, input_shape)?;
        let batched = input_shape.rank() == 4;
        check_pooled(op, self, argmax, &s, batched)?;
        self.check_same_device(op, argmax)?;
        let dx = self.backend().max_pool2d_backward(
            &s,
            &as_batch(self, batched)?,
            &as_batch(argmax, batched)?,
        )?;
        unbatch(dx, batched)
    }

    /// Reads `self` (shaped like the pool's input) at the argmax positions:
    /// the pooled shape's values of the winners. Linear in `self`.
    pub fn max_pool2d_gather(&self, argmax: &Tensor, params: MaxPool2dParams) -> Result<Tensor> {
        let op = "max_pool2d_gather";
        self.check_float(op)?;
        let s = params.problem(op, self.shape())?;
        let batched = self.rank() == 4;
        let pooled = out_shape(&s, batched);
        if argmax.dtype() != DType::I64 || argmax.shape() != &pooled {
            return Err(TensorError::shape(
                op,
                format!(
                    "argmax must be i64 of shape {pooled}, got {} {}",
                    argmax.dtype(),
                    argmax.shape()
                ),
            ));
        }
        self.check_same_device(op, argmax)?;
        let y = self.backend().max_pool2d_gather(
            &s,
            &as_batch(self, batched)?,
            &as_batch(argmax, batched)?,
        )?;
        unbatch(y, batched)
    }
}

fn check_pooled(
    op: &'static str,
    g: &Tensor,
    argmax: &Tensor,
    s: &Pool2dShape,
    batched: bool,
) -> Result<()> {
    let want = out_shape(s, batched);
    if g.shape() != &want || argmax.shape() != &want || argmax.dtype() != DType::I64 {
        return Err(TensorError::shape(
            op,
            format!(
                "gradient {} and i64 argmax {} ({}) must both have the pooled shape {want}",
                g.shape(),
                argmax.shape(),
                argmax.dtype()
            ),
        ));
    }
    Ok(())
}
