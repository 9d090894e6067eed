//! Softmax and log-softmax along a dim.

use crate::{Dim, Result, Shape, Tensor};

impl Tensor {
    /// Softmax along `dim` (`-1`: the last dim). A 0-d tensor is a
    /// one-element row: its softmax is 1.
    pub fn softmax(&self, dim: impl Into<Dim>) -> Result<Tensor> {
        self.softmax_impl(dim.into(), false)
    }

    /// Log-softmax along `dim` (`-1`: the last dim); 0 for a 0-d tensor.
    pub fn log_softmax(&self, dim: impl Into<Dim>) -> Result<Tensor> {
        self.softmax_impl(dim.into(), true)
    }

    fn softmax_impl(&self, dim: Dim, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        let dim = dim.index(op, self.shape())?;
        self.check_float(op)?;
        if self.rank() == 0 {
            return self
                .reshape([1])?
                .softmax_impl(Dim::new(0), log)?
                .reshape(Shape::scalar());
        }
        self.backend().softmax(self, dim, log)
    }
}
