use crate::{Conv2dShape, Float};

/// Input row/column read by output position `o`, kernel tap `k` (None in the padding).
#[inline]
fn input_index(
    o: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    len: usize,
) -> Option<usize> {
    let pos = (o * stride + k * dilation) as isize - padding as isize;
    (pos >= 0 && (pos as usize) < len).then_some(pos as usize)
}

/// Calls `f(out_index, input_index, weight_index)` for every multiply-add of
/// the convolution: each output element with each kernel tap that lands
/// inside the input. All three kernels below are this one loop nest.
fn for_each_tap(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize)) {
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    for n in 0..s.batch {
        for oc in 0..s.out_channels {
            let g = oc / ocg;
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let o = ((n * s.out_channels + oc) * oh_n + oh) * ow_n + ow;
                    for icl in 0..icg {
                        let ic = g * icg + icl;
                        for kh in 0..s.kernel_h {
                            let Some(ih) =
                                input_index(oh, kh, s.stride.0, s.padding.0, s.dilation.0, s.in_h)
                            else {
                                continue;
                            };
                            for kw in 0..s.kernel_w {
                                let Some(iw) = input_index(
                                    ow,
                                    kw,
                                    s.stride.1,
                                    s.padding.1,
                                    s.dilation.1,
                                    s.in_w,
                                ) else {
                                    continue;
                                };
                                let x = ((n * s.in_channels + ic) * s.in_h + ih) * s.in_w + iw;
                                let w = ((oc * icg + icl) * s.kernel_h + kh) * s.kernel_w + kw;
                                f(o, x, w);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Direct convolution: `out[n, oc, oh, ow] = bias[oc] + Σ input · weight`.
pub fn conv2d_forward<T: Float>(
    s: &Conv2dShape,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let plane = s.out_h() * s.out_w();
    for (o, v) in out[..s.output_len()].iter_mut().enumerate() {
        *v = bias.map_or(T::ZERO, |b| b[(o / plane) % s.out_channels]);
    }
    for_each_tap(s, |o, x, w| out[o] += input[x] * weight[w]);
}

/// Gradient of the convolution with respect to its input (overwrites `grad_input`).
pub fn conv2d_backward_data<T: Float>(
    s: &Conv2dShape,
    grad_out: &[T],
    weight: &[T],
    grad_input: &mut [T],
) {
    grad_input.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_tap(s, |o, x, w| grad_input[x] += grad_out[o] * weight[w]);
}

/// Gradient of the convolution with respect to its weight (overwrites `grad_weight`).
pub fn conv2d_backward_weight<T: Float>(
    s: &Conv2dShape,
    input: &[T],
    grad_out: &[T],
    grad_weight: &mut [T],
) {
    grad_weight.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_tap(s, |o, x, w| grad_weight[w] += grad_out[o] * input[x]);
}
