//! Reductions (one pass and chunked two-pass, deterministic), softmax,
//! log-softmax and cross-entropy with PyTorch's semantics (ignore_index,
//! label smoothing, none/sum/mean, an out-of-range target as an error).

use super::{assert_bits, assert_close, download, random, upload};
use gradlab_cpu::Rng;
use gradlab_cuda::{
    cross_entropy_backward, cross_entropy_forward, cross_entropy_loss, cross_entropy_loss_backward,
    log_softmax_rows, reduce, softmax_rows, CrossEntropyOptions, DeviceBuffer, Gpu, LossReduction,
    ReduceOp,
};
use std::sync::Arc;

/// `[outer, len, inner]` shapes: one block per row, chunked rows (a whole
/// tensor), columns, chunked columns (a bias gradient).
pub const REDUCE_SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (7, 1000, 1),
    (3, 5, 129),
    (1, 70_000, 1),
    (2, 9000, 1),
    (1, 256, 10),
    (1, 5000, 7),
];

pub fn check_reductions(gpu: &Arc<Gpu>, shapes: &[(usize, usize, usize)]) {
    let mut rng = Rng::new(8);
    for &(outer, len, inner) in shapes {
        let mut x = random(&mut rng, outer * len * inner);
        if x.len() > 100 {
            x[77] = 3.5; // a clear maximum, placed mid-way through a chunk
        }
        let dx = upload(gpu, &x);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let mut want = vec![0.0f64; outer * inner];
            for o in 0..outer {
                for i in 0..inner {
                    let vals = (0..len).map(|j| x[(o * len + j) * inner + i] as f64);
                    want[o * inner + i] = match op {
                        ReduceOp::Sum => vals.sum(),
                        ReduceOp::Mean => vals.sum::<f64>() / len as f64,
                        ReduceOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                        ReduceOp::Min => vals.fold(f64::INFINITY, f64::min),
                    };
                }
            }
            let mut out = DeviceBuffer::zeros(gpu, outer * inner).unwrap();
            reduce(op, &dx, outer, len, inner, &mut out).unwrap();
            let first = download(&out);
            let tol = 1e-6 * (len as f64).sqrt() * 4.0 + 1e-6;
            assert_close(&format!("{op:?} {outer}x{len}x{inner}"), &first, &want, tol);
            reduce(op, &dx, outer, len, inner, &mut out).unwrap();
            assert_bits(
                &format!("{op:?} {outer}x{len}x{inner} rerun"),
                &download(&out),
                &first,
            );
        }
    }
    // NaN propagates through max, also across chunks.
    let mut x = vec![0.5f32; 70_000];
    x[69_999] = f32::NAN;
    let mut out = DeviceBuffer::zeros(gpu, 1).unwrap();
    reduce(ReduceOp::Max, &upload(gpu, &x), 1, 70_000, 1, &mut out).unwrap();
    assert!(download(&out)[0].is_nan(), "max must propagate NaN");
}

fn log_softmax_ref(row: &[f32]) -> Vec<f64> {
    let m = row
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

pub fn check_softmax(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(9);
    for (rows, cols) in [(1, 1), (5, 10), (9, 300), (2, 1000)] {
        let x: Vec<f32> = random(&mut rng, rows * cols)
            .iter()
            .map(|v| v * 8.0)
            .collect();
        let want_log: Vec<f64> = x.chunks(cols).flat_map(log_softmax_ref).collect();
        let dx = upload(gpu, &x);
        let mut out = DeviceBuffer::zeros(gpu, rows * cols).unwrap();
        log_softmax_rows(&dx, rows, cols, &mut out).unwrap();
        assert_close("log_softmax", &download(&out), &want_log, 1e-5);
        softmax_rows(&dx, rows, cols, &mut out).unwrap();
        let want_p: Vec<f64> = want_log.iter().map(|v| v.exp()).collect();
        assert_close("softmax", &download(&out), &want_p, 1e-6);
    }
}

/// PyTorch's cross-entropy in f64: per-row losses, the reduced loss, the
/// number of counted rows and the gradient for upstream gradient `g`.
pub struct CrossEntropyRef {
    pub per_row: Vec<f64>,
    pub reduced: f64,
    pub counted: f64,
    pub grad: Vec<f64>,
}

pub fn cross_entropy_ref(
    x: &[f32],
    targets: &[i64],
    cols: usize,
    opts: &CrossEntropyOptions,
    grad_out: &[f32],
) -> CrossEntropyRef {
    let eps = opts.label_smoothing as f64;
    let rows = targets.len();
    let mut per_row = vec![0.0; rows];
    let mut probs = vec![vec![0.0; cols]; rows];
    let mut counted = 0.0;
    for r in 0..rows {
        let t = targets[r];
        if t == opts.ignore_index {
            continue;
        }
        counted += 1.0;
        let logp = log_softmax_ref(&x[r * cols..(r + 1) * cols]);
        let mean_logp = logp.iter().sum::<f64>() / cols as f64;
        per_row[r] = -(1.0 - eps) * logp[t as usize] - eps * mean_logp;
        probs[r] = logp.iter().map(|v| v.exp()).collect();
    }
    let sum: f64 = per_row.iter().sum();
    let reduced = match opts.reduction {
        LossReduction::Mean => sum / counted,
        _ => sum,
    };
    let mut grad = vec![0.0; rows * cols];
    for r in 0..rows {
        if targets[r] == opts.ignore_index {
            continue;
        }
        let g = match opts.reduction {
            LossReduction::None => grad_out[r] as f64,
            LossReduction::Sum => grad_out[0] as f64,
            LossReduction::Mean => grad_out[0] as f64 / counted,
        };
        for c in 0..cols {
            let hot = if c as i64 == targets[r] {
                1.0 - eps
            } else {
                0.0
            };
            grad[r * cols + c] = (probs[r][c] - hot - eps / cols as f64) * g;
        }
    }
    CrossEntropyRef {
        per_row,
        reduced,
        counted,
        grad,
    }
}

pub fn check_cross_entropy(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(11);
    for (rows, cols) in [(1, 1), (6, 10), (7, 300), (3, 700)] {
        let x: Vec<f32> = random(&mut rng, rows * cols)
            .iter()
            .map(|v| v * 8.0)
            .collect();
        let classes: Vec<i64> = (0..rows).map(|_| rng.below(cols) as i64).collect();
        let mut with_default_ignored = classes.clone();
        if rows > 2 {
            with_default_ignored[1] = -100; // PyTorch's default ignore_index
        }
        let dx = upload(gpu, &x);
        for reduction in [LossReduction::None, LossReduction::Sum, LossReduction::Mean] {
            for smoothing in [0.0f32, 0.1] {
                // The default ignore_index, and a class index as ignore_index
                // (every row of that class is left out).
                for (ignore_index, targets) in
                    [(-100i64, &with_default_ignored), (classes[0], &classes)]
                {
                    // Every combination on the small shapes; on the larger
                    // ones, with smoothing: each reduction once.
                    if cols >= 300 && (smoothing == 0.0 || ignore_index != -100) {
                        continue;
                    }
                    let dt = upload(gpu, targets);
                    let opts = CrossEntropyOptions {
                        ignore_index,
                        label_smoothing: smoothing,
                        reduction,
                    };
                    let out_len = if reduction == LossReduction::None {
                        rows
                    } else {
                        1
                    };
                    let grad_out: Vec<f32> =
                        random(&mut rng, out_len).iter().map(|v| v + 1.25).collect();
                    let want = cross_entropy_ref(&x, targets, cols, &opts, &grad_out);
                    let what = format!("cross_entropy {rows}x{cols} {opts:?}");
                    let mut out = DeviceBuffer::zeros(gpu, out_len).unwrap();
                    let mut total = DeviceBuffer::zeros(gpu, 1).unwrap();
                    cross_entropy_loss(&dx, &dt, rows, cols, &opts, &mut out, &mut total).unwrap();
                    let got = download(&out);
                    if reduction == LossReduction::None {
                        assert_close(&what, &got, &want.per_row, 2e-5);
                    } else if want.reduced.is_nan() {
                        assert!(
                            got[0].is_nan(),
                            "{what}: mean over no counted row must be NaN"
                        );
                    } else {
                        assert_close(
                            &what,
                            &got,
                            &[want.reduced],
                            2e-5 * (1.0 + want.reduced.abs()),
                        );
                    }
                    assert_eq!(
                        download(&total),
                        vec![want.counted as f32],
                        "{what}: total_weight"
                    );
                    if want.counted == 0.0 && reduction == LossReduction::Mean {
                        continue;
                    }
                    let mut grad = upload(gpu, &vec![f32::NAN; rows * cols]);
                    cross_entropy_loss_backward(
                        &dx,
                        &dt,
                        rows,
                        cols,
                        &opts,
                        &upload(gpu, &grad_out),
                        &total,
                        &mut grad,
                    )
                    .unwrap();
                    assert_close(
                        &format!("{what} backward"),
                        &download(&grad),
                        &want.grad,
                        2e-6,
                    );
                }
            }
        }
    }
    check_cross_entropy_rows(gpu);
}

/// A target out of range (and not ignore_index) fails the next
/// synchronisation with a message naming it; the device works afterwards.
/// Give it a device no other thread uses: the report goes to whichever
/// synchronisation on the device comes first.
pub fn check_cross_entropy_errors(gpu: &Arc<Gpu>) {
    let x = upload(gpu, &[0.0f32, 1.0, 2.0, 0.5, 0.5, 0.5]);
    let opts = CrossEntropyOptions::default();
    for bad in [3i64, -1, -7] {
        let t = upload(gpu, &[0i64, bad]);
        let mut out = DeviceBuffer::zeros(gpu, 1).unwrap();
        let mut total = DeviceBuffer::zeros(gpu, 1).unwrap();
        cross_entropy_loss(&x, &t, 2, 3, &opts, &mut out, &mut total).unwrap();
        let e = out
            .to_host()
            .expect_err("an out-of-range target must be an error");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "target {bad} at row 1 is out of range for 3 classes"
            )),
            "{msg}"
        );
        // Reported once: the device is usable again.
        assert!(gpu.synchronize().is_ok());
        let mut grad = DeviceBuffer::zeros(gpu, 6).unwrap();
        let g = upload(gpu, &[1.0f32]);
        let one = upload(gpu, &[1.0f32]);
        cross_entropy_loss_backward(&x, &t, 2, 3, &opts, &g, &one, &mut grad).unwrap();
        assert!(gpu.synchronize().is_err(), "the backward reports it too");
    }
}

/// The per-row API (no ignored index) on i64 targets.
fn check_cross_entropy_rows(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(12);
    let (rows, cols) = (9, 17);
    let x: Vec<f32> = random(&mut rng, rows * cols)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let t64: Vec<i64> = (0..rows).map(|_| rng.below(cols) as i64).collect();
    let opts = CrossEntropyOptions {
        ignore_index: i64::MIN,
        reduction: LossReduction::None,
        ..Default::default()
    };
    let want = cross_entropy_ref(&x, &t64, cols, &opts, &vec![0.75; rows]);
    let (dx, dt) = (upload(gpu, &x), upload(gpu, &t64));
    let mut losses = DeviceBuffer::zeros(gpu, rows).unwrap();
    cross_entropy_forward(&dx, &dt, rows, cols, &mut losses).unwrap();
    assert_close(
        "cross_entropy rows",
        &download(&losses),
        &want.per_row,
        2e-5,
    );
    let g = upload(gpu, &[0.75f32 * rows as f32]);
    let mut grad = DeviceBuffer::zeros(gpu, rows * cols).unwrap();
    cross_entropy_backward(&dx, &dt, &g, 0, 1.0 / rows as f32, rows, cols, &mut grad).unwrap();
    assert_close(
        "cross_entropy rows backward",
        &download(&grad),
        &want.grad,
        2e-6,
    );
}
