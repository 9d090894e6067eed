use crate::{Float, Pool2dShape};

/// Max-pool forward. `argmax` receives, for every output element, the index
/// of the chosen element within its input plane (`ih * in_w + iw`), as PyTorch
/// records it. Ties keep the first maximum in scan order; a NaN beats every
/// number and the last NaN of a window wins, as in PyTorch's CPU kernel.
pub fn max_pool2d_forward<T: Float>(
    s: &Pool2dShape,
    input: &[T],
    out: &mut [T],
    argmax: &mut [usize],
) {
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let plane = s.in_h * s.in_w;
    for nc in 0..s.batch * s.channels {
        let x = &input[nc * plane..(nc + 1) * plane];
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let mut best = T::NEG_INFINITY;
                let mut best_idx = usize::MAX;
                for kh in 0..s.kernel.0 {
                    let ih = (oh * s.stride.0 + kh * s.dilation.0) as isize - s.padding.0 as isize;
                    if ih < 0 || ih as usize >= s.in_h {
                        continue;
                    }
                    for kw in 0..s.kernel.1 {
                        let iw =
                            (ow * s.stride.1 + kw * s.dilation.1) as isize - s.padding.1 as isize;
                        if iw < 0 || iw as usize >= s.in_w {
                            continue;
                        }
                        let idx = ih as usize * s.in_w + iw as usize;
                        let v = x[idx];
                        if best_idx == usize::MAX || v > best || v.is_nan() {
                            best = v;
                            best_idx = idx;
                        }
                    }
                }
                let o = (nc * oh_n + oh) * ow_n + ow;
                out[o] = best;
                argmax[o] = best_idx;
            }
        }
    }
}

/// Max-pool backward: each output gradient goes to the input element that won
/// its window (overwrites `grad_input`).
pub fn max_pool2d_backward<T: Float>(
    s: &Pool2dShape,
    grad_out: &[T],
    argmax: &[usize],
    grad_input: &mut [T],
) {
    grad_input.iter_mut().for_each(|v| *v = T::ZERO);
    let out_plane = s.out_h() * s.out_w();
    let plane = s.in_h * s.in_w;
    for nc in 0..s.batch * s.channels {
        for o in 0..out_plane {
            let idx = argmax[nc * out_plane + o];
            if idx != usize::MAX {
                grad_input[nc * plane + idx] += grad_out[nc * out_plane + o];
            }
        }
    }
}

/// Reads `input` (shaped like the pool's input) at each window's winner:
/// the adjoint of [`max_pool2d_backward`], and the gradient of that
/// routing. A window without a winner (`usize::MAX`) reads 0.
pub fn max_pool2d_gather<T: Float>(s: &Pool2dShape, input: &[T], argmax: &[usize], out: &mut [T]) {
    let out_plane = s.out_h() * s.out_w();
    let plane = s.in_h * s.in_w;
    for (o, (v, &idx)) in out.iter_mut().zip(argmax).enumerate() {
        *v = if idx == usize::MAX {
            T::ZERO
        } else {
            input[(o / out_plane) * plane + idx]
        };
    }
}
