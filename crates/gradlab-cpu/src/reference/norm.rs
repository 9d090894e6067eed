//! Training-mode batch norm, straight from its definition, in `f64`.

use crate::norm::BatchNormShape;
use crate::{BinaryOp, Float, UnaryOp};

fn at(s: BatchNormShape, n: usize, c: usize, p: usize) -> usize {
    (n * s.channels + c) * s.plane + p
}

/// Same contract as [`crate::batch_norm2d_train_forward`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_train_forward<T: Float>(
    s: BatchNormShape,
    x: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    var: &mut [T],
) {
    let count = s.count() as f64;
    for c in 0..s.channels {
        let values = || {
            (0..s.batch).flat_map(move |n| (0..s.plane).map(move |p| x[at(s, n, c, p)].to_f64()))
        };
        let m = values().sum::<f64>() / count;
        let v = values().map(|x| (x - m) * (x - m)).sum::<f64>() / count;
        mean[c] = T::from_f64(m);
        var[c] = T::from_f64(v);
        let w = weight.map_or(1.0, |w| w[c].to_f64());
        let b = bias.map_or(0.0, |b| b[c].to_f64());
        for n in 0..s.batch {
            for p in 0..s.plane {
                let i = at(s, n, c, p);
                y[i] = T::from_f64((x[i].to_f64() - m) / (v + eps).sqrt() * w + b);
            }
        }
    }
}

/// Same contract as [`crate::batch_norm2d_backward`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_backward<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    eps: f64,
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let count = s.count() as f64;
    for c in 0..s.channels {
        let invstd = 1.0 / (var[c].to_f64() + eps).sqrt();
        let xhat = |i: usize| (x[i].to_f64() - mean[c].to_f64()) * invstd;
        let (mut sum_dy, mut sum_dy_xhat) = (0.0, 0.0);
        for n in 0..s.batch {
            for p in 0..s.plane {
                let i = at(s, n, c, p);
                sum_dy += dy[i].to_f64();
                sum_dy_xhat += dy[i].to_f64() * xhat(i);
            }
        }
        dbias[c] = T::from_f64(sum_dy);
        dweight[c] = T::from_f64(sum_dy_xhat);
        let w = weight.map_or(1.0, |w| w[c].to_f64());
        for n in 0..s.batch {
            for p in 0..s.plane {
                let i = at(s, n, c, p);
                let g = dy[i].to_f64() - sum_dy / count - xhat(i) * sum_dy_xhat / count;
                dx[i] = T::from_f64(w * invstd * g);
            }
        }
    }
}

/// Same contract as [`crate::batch_norm2d_inference`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_inference<T: Float>(
    s: BatchNormShape,
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
) {
    for n in 0..s.batch {
        for c in 0..s.channels {
            let w = weight.map_or(1.0, |w| w[c].to_f64());
            let b = bias.map_or(0.0, |b| b[c].to_f64());
            for p in 0..s.plane {
                let i = at(s, n, c, p);
                let xhat = (x[i].to_f64() - mean[c].to_f64()) / (var[c].to_f64() + eps).sqrt();
                y[i] = T::from_f64(xhat * w + b);
            }
        }
    }
}

/// Same contract as [`crate::batch_norm2d_relu_train_forward`]: the
/// reference batch norm, then ReLU. The output is normalised with the
/// statistics as stored (rounded to `T`), as the backward recomputes it.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_relu_train_forward<T: Float>(
    s: BatchNormShape,
    x: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    var: &mut [T],
) {
    batch_norm2d_train_forward(s, x, weight, bias, eps, y, mean, var);
    batch_norm2d_inference(s, x, mean, var, weight, bias, eps, y);
    for v in y.iter_mut().take(s.len()) {
        *v = UnaryOp::Relu.eval(*v);
    }
}

/// Same contract as [`crate::batch_norm2d_relu_backward`]: batch norm's
/// output recomputed, ReLU's backward on it, then batch norm's backward.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_relu_backward<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let mut z = vec![T::ZERO; s.len()];
    batch_norm2d_inference(s, x, mean, var, weight, bias, eps, &mut z);
    let masked: Vec<T> = dy
        .iter()
        .zip(&z)
        .map(|(&g, &z)| BinaryOp::ReluBackward.eval(g, z))
        .collect();
    batch_norm2d_backward(s, &masked, x, mean, var, weight, eps, dx, dweight, dbias);
}
