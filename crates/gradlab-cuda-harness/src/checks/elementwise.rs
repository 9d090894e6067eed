//! Binary ops over broadcast, strided and dense operands (the strided and
//! the contiguous kernels, aligned and not), in place; unary ops; fill;
//! strided and dense copies.

use super::{assert_close, download, random, upload};
use gradlab_cpu::Rng;
use gradlab_cuda::{
    binary, binary_contiguous, binary_inplace, contiguous_strides, copy_strided, fill, unary,
    unary_inplace, BinaryOp, DeviceBuffer, Gpu, UnaryOp, View,
};
use std::sync::Arc;

pub const BINARY_OPS: [BinaryOp; 6] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::ReluBackward,
];

/// The scalar meaning of each op, in f64.
pub fn binary_ref(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::ReluBackward => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
    }
}

fn tol(want: f64) -> f64 {
    1e-6 * want.abs().max(1.0)
}

/// Positive inputs (for pow) with an offset that leaves the dense kernel's
/// pointers unaligned unless `offset % 4 == 0`.
fn positive(rng: &mut Rng, len: usize) -> Vec<f32> {
    random(rng, len).iter().map(|v| v + 1.5).collect()
}

pub fn check_binary(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(6);
    let shape = [2, 3, 5, 7];
    let a: Vec<f32> = positive(&mut rng, 210);
    let b: Vec<f32> = positive(&mut rng, 21);
    let dense = contiguous_strides(&shape);
    let b_strides = [0, 7, 0, 1]; // b [1, 3, 1, 7] broadcast
    let da = upload(gpu, &a);
    for op in BINARY_OPS {
        let shift = if op == BinaryOp::ReluBackward {
            1.5
        } else {
            0.0
        };
        let b_at = |i: usize| (b[((i / 35) % 3) * 7 + i % 7] - shift) as f64;
        let want: Vec<f64> = (0..210)
            .map(|i| binary_ref(op, a[i] as f64, b_at(i)))
            .collect();
        let t = want.iter().map(|&w| tol(w)).fold(0.0, f64::max);
        let db_shifted = upload(gpu, &b.iter().map(|v| v - shift).collect::<Vec<_>>());

        // Broadcast: the strided kernel.
        let mut out = DeviceBuffer::zeros(gpu, 210).unwrap();
        binary(
            op,
            &shape,
            &da,
            View::new(0, &dense),
            &db_shifted,
            View::new(0, &b_strides),
            &mut out,
            View::new(0, &dense),
        )
        .unwrap();
        assert_close(&format!("{op:?} broadcast"), &download(&out), &want, t);

        // In place.
        let mut inplace = upload(gpu, &a);
        binary_inplace(
            op,
            &shape,
            &mut inplace,
            View::new(0, &dense),
            &db_shifted,
            View::new(0, &b_strides),
        )
        .unwrap();
        assert_close(&format!("{op:?} in place"), &download(&inplace), &want, t);

        // Dense operands: the contiguous kernel, aligned (offset 0) and not
        // (offsets 1 and 3 leave float4 loads impossible), through both entry points.
        let expanded: Vec<f32> = (0..210).map(|i| b_at(i) as f32).collect();
        for (off_a, off_b, off_out) in [(0, 0, 0), (1, 3, 2), (4, 8, 4)] {
            let pad = |v: &[f32], off: usize| {
                let mut p = vec![7.0f32; off];
                p.extend_from_slice(v);
                p
            };
            let (pa, pb) = (
                upload(gpu, &pad(&a, off_a)),
                upload(gpu, &pad(&expanded, off_b)),
            );
            let mut out = upload(gpu, &vec![-9.0f32; off_out + 210]);
            binary(
                op,
                &shape,
                &pa,
                View::new(off_a, &dense),
                &pb,
                View::new(off_b, &dense),
                &mut out,
                View::new(off_out, &dense),
            )
            .unwrap();
            let got = download(&out);
            assert!(
                got[..off_out].iter().all(|&v| v == -9.0),
                "{op:?}: wrote before the view"
            );
            assert_close(
                &format!("{op:?} dense offsets {off_a}/{off_b}/{off_out}"),
                &got[off_out..],
                &want,
                t,
            );
        }
        let mut out = DeviceBuffer::zeros(gpu, 210).unwrap();
        binary_contiguous(op, &da, &upload(gpu, &expanded), &mut out).unwrap();
        assert_close(&format!("{op:?} contiguous"), &download(&out), &want, t);
    }
    // A transposed operand and a strided output: the strided kernel both ways.
    let x = random(&mut rng, 12);
    let y = random(&mut rng, 12);
    let mut out = DeviceBuffer::zeros(gpu, 24).unwrap();
    binary(
        BinaryOp::Sub,
        &[3, 4],
        &upload(gpu, &x),
        View::new(0, &[1, 3]),
        &upload(gpu, &y),
        View::new(0, &[4, 1]),
        &mut out,
        View::new(0, &[8, 2]),
    )
    .unwrap();
    let got = download(&out);
    for i in 0..3 {
        for j in 0..4 {
            let want = x[j * 3 + i] as f64 - y[i * 4 + j] as f64;
            assert!(
                (got[i * 8 + j * 2] as f64 - want).abs() < 1e-6,
                "transposed sub ({i}, {j})"
            );
        }
    }
}

/// An op, its input, and the f64 function it must match.
type UnaryCase<'a> = (UnaryOp, &'a Vec<f32>, fn(f32) -> f64);

pub fn check_unary_fill_copy(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(7);
    let x: Vec<f32> = random(&mut rng, 1001).iter().map(|v| v * 4.0).collect();
    let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.1).collect();
    let cases: Vec<UnaryCase> = vec![
        (UnaryOp::Neg, &x, |v| -(v as f64)),
        (UnaryOp::Exp, &x, |v| (v as f64).exp()),
        (UnaryOp::Log, &pos, |v| (v as f64).ln()),
        (UnaryOp::Sqrt, &pos, |v| (v as f64).sqrt()),
        (UnaryOp::Relu, &x, |v| (v as f64).max(0.0)),
        (UnaryOp::Sigmoid, &x, |v| 1.0 / (1.0 + (-(v as f64)).exp())),
        (UnaryOp::Tanh, &x, |v| (v as f64).tanh()),
        (UnaryOp::Abs, &x, |v| (v as f64).abs()),
        (UnaryOp::Pow(2.5), &pos, |v| (v as f64).powf(2.5)),
        (UnaryOp::AddScalar(0.25), &x, |v| v as f64 + 0.25),
        (UnaryOp::MulScalar(-3.0), &x, |v| v as f64 * -3.0),
        (UnaryOp::GtMask(0.25), &x, |v| {
            if v as f64 > 0.25 {
                1.0
            } else {
                0.0
            }
        }),
    ];
    for (op, input, f) in cases {
        let want: Vec<f64> = input.iter().map(|&v| f(v)).collect();
        let mut out = DeviceBuffer::zeros(gpu, input.len()).unwrap();
        unary(op, &upload(gpu, input), &mut out).unwrap();
        let got = download(&out);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 4e-6 * w.abs().max(1.0),
                "{op:?}[{i}]: {g} vs {w}"
            );
        }
        let mut inplace = upload(gpu, input);
        unary_inplace(op, &mut inplace).unwrap();
        assert_eq!(download(&inplace), got, "{op:?} in place");
    }

    let mut buf = DeviceBuffer::zeros(gpu, 333).unwrap();
    fill(&mut buf, 2.5).unwrap();
    assert!(download(&buf).iter().all(|&v| v == 2.5));

    // Permute a [3, 4, 5] tensor to [5, 3, 4] and make it contiguous.
    let src: Vec<f32> = (0..60).map(|v| v as f32).collect();
    let dsrc = upload(gpu, &src);
    let mut dst = DeviceBuffer::zeros(gpu, 61).unwrap();
    let dst_strides = contiguous_strides(&[5, 3, 4]);
    copy_strided(
        &[5, 3, 4],
        &dsrc,
        View::new(0, &[1, 20, 5]),
        &mut dst,
        View::new(1, &dst_strides),
    )
    .unwrap();
    let got = download(&dst);
    for k in 0..5 {
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(got[1 + (k * 3 + i) * 4 + j], src[(i * 4 + j) * 5 + k]);
            }
        }
    }
    assert_eq!(got[0], 0.0, "element before the view untouched");
    // Dense to dense at offsets: a plain device copy.
    let mut dst = upload(gpu, &vec![-1.0f32; 64]);
    copy_strided(
        &[2, 3, 10],
        &dsrc,
        View::new(0, &[30, 10, 1]),
        &mut dst,
        View::new(3, &[30, 10, 1]),
    )
    .unwrap();
    let got = download(&dst);
    assert_eq!(&got[3..63], &src[..], "dense copy");
    assert_eq!(
        (got[2], got[63]),
        (-1.0, -1.0),
        "dense copy stays inside its view"
    );
}
