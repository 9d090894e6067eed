//! Property tests: for every differentiable op, on random shapes (size-1
//! dims, broadcasting) and non-contiguous inputs (permuted, narrowed,
//! expanded), analytic gradients match central differences in f64; views
//! agree with their contiguous copies element by element.

use gradlab::autograd::testing::{
    assert_gradcheck, broadcast_pair, distinct_tensor, random_tensor, shape, strided_view,
    view_kind, ViewKind,
};
use gradlab::autograd::Var;
use gradlab::tensor::{Conv2dParams, MaxPool2dParams, Reduction, Tensor};
use proptest::prelude::*;

const CASES: u32 = 24;

fn positive(t: &Tensor) -> Tensor {
    t.abs().unwrap().add_scalar(0.5).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn binary_ops_broadcast((sa, sb) in broadcast_pair(3, 3), seed in any::<u64>(), op in 0usize..4) {
        let a = random_tensor(&sa, seed);
        let b = random_tensor(&sb, seed.wrapping_add(1));
        // Keep divisors away from zero.
        let b = if op == 3 { positive(&b) } else { b };
        assert_gradcheck(|v| match op {
            0 => v[0].add(&v[1]),
            1 => v[0].sub(&v[1]),
            2 => v[0].mul(&v[1]),
            _ => v[0].div(&v[1]),
        }, &[a, b]);
    }

    #[test]
    fn unary_ops_on_strided_inputs(s in shape(3, 4), kind in view_kind(), seed in any::<u64>(), op in 0usize..9) {
        let x = strided_view(&s, kind, seed);
        // ReLU away from its kink; log, sqrt and pow on positive inputs.
        let x = match op {
            2 | 3 | 8 => positive(&x),
            4 => x.add(&x.gt_mask(0.0).unwrap().mul_scalar(0.2).unwrap().add_scalar(-0.1).unwrap()).unwrap(),
            _ => x,
        };
        assert_gradcheck(|v| match op {
            0 => v[0].neg(),
            1 => v[0].exp(),
            2 => v[0].log(),
            3 => v[0].sqrt(),
            4 => v[0].relu(),
            5 => v[0].sigmoid(),
            6 => v[0].tanh(),
            7 => v[0].mul_scalar(-1.5)?.add_scalar(0.25),
            _ => v[0].powf(2.5),
        }, &[x]);
    }

    #[test]
    fn sum_and_mean_over_any_dims(s in shape(4, 3), mask in any::<u8>(), keepdim in any::<bool>(), mean in any::<bool>(), seed in any::<u64>(), kind in view_kind()) {
        let x = strided_view(&s, kind, seed);
        let dims: Vec<usize> = (0..s.len()).filter(|d| mask & (1 << d) != 0).collect();
        let dims = if dims.is_empty() { None } else { Some(dims) };
        assert_gradcheck(|v| if mean {
            v[0].mean(dims.as_deref(), keepdim)
        } else {
            v[0].sum(dims.as_deref(), keepdim)
        }, &[x]);
    }

    #[test]
    fn max_along_a_dim(s in shape(3, 4), dim_pick in any::<usize>(), keepdim in any::<bool>(), seed in any::<u64>()) {
        let x = distinct_tensor(&s, seed);
        let dim = dim_pick % s.len();
        assert_gradcheck(|v| Ok(v[0].max_dim(dim, keepdim)?.0), &[x]);
    }

    #[test]
    fn matmul_with_torch_rules(batch in proptest::collection::vec(1usize..3, 0..2), m in 1usize..4, k in 1usize..4, n in 1usize..4,
                               a_vec in any::<bool>(), b_vec in any::<bool>(), b_batched in any::<bool>(), transposed in any::<bool>(), seed in any::<u64>()) {
        let mut sa = batch.clone();
        sa.extend(if a_vec { vec![k] } else { vec![m, k] });
        let mut sb = if b_batched { batch.clone() } else { vec![] };
        sb.extend(if b_vec { vec![k] } else { vec![k, n] });
        // A 1-D operand has no batch dims.
        if a_vec { sa = vec![k]; }
        if b_vec { sb = vec![k]; }
        let a = random_tensor(&sa, seed);
        // b as a transposed (strided) view when it is a matrix.
        let b = if transposed && sb.len() == 2 {
            random_tensor(&[sb[1], sb[0]], seed ^ 7).t().unwrap()
        } else {
            random_tensor(&sb, seed ^ 7)
        };
        assert_gradcheck(|v| v[0].matmul(&v[1]), &[a, b]);
    }

    #[test]
    fn linear_layer(batch in 1usize..4, fin in 1usize..5, fout in 1usize..5, bias in any::<bool>(), seed in any::<u64>()) {
        let x = random_tensor(&[batch, fin], seed);
        let w = random_tensor(&[fout, fin], seed ^ 1);
        let b = random_tensor(&[fout], seed ^ 2);
        if bias {
            assert_gradcheck(|v| v[0].linear(&v[1], Some(&v[2])), &[x, w, b]);
        } else {
            assert_gradcheck(|v| v[0].linear(&v[1], None), &[x, w]);
        }
    }

    #[test]
    fn conv2d_every_parameter(n in 1usize..3, groups in 1usize..3, cin_g in 1usize..3, cout_g in 1usize..3, h in 3usize..7, w in 3usize..7,
                              kh in 1usize..4, kw in 1usize..4, stride in 1usize..3, pad in 0usize..2, dil in 1usize..3, bias in any::<bool>(), seed in any::<u64>()) {
        prop_assume!(h + 2 * pad > dil * (kh - 1) && w + 2 * pad > dil * (kw - 1));
        let x = random_tensor(&[n, cin_g * groups, h, w], seed);
        let wt = random_tensor(&[cout_g * groups, cin_g, kh, kw], seed ^ 1);
        let b = random_tensor(&[cout_g * groups], seed ^ 2);
        let p = Conv2dParams { stride: (stride, 1), padding: (pad, pad), dilation: (dil, 1), groups };
        if bias {
            assert_gradcheck(|v| v[0].conv2d(&v[1], Some(&v[2]), p), &[x, wt, b]);
        } else {
            assert_gradcheck(|v| v[0].conv2d(&v[1], None, p), &[x, wt]);
        }
    }

    #[test]
    fn max_pool2d_every_parameter(n in 1usize..3, c in 1usize..3, h in 2usize..8, w in 2usize..8, k in 1usize..4, stride in 1usize..3,
                                  pad in 0usize..2, dil in 1usize..3, ceil_mode in any::<bool>(), seed in any::<u64>()) {
        let params = MaxPool2dParams { kernel: (k, k), stride: (stride, stride), padding: (pad, pad), dilation: (dil, 1), ceil_mode };
        prop_assume!(params.problem("t", &vec![n, c, h, w].into()).is_ok());
        let x = distinct_tensor(&[n, c, h, w], seed);
        assert_gradcheck(|v| v[0].max_pool2d(params), &[x]);
    }

    #[test]
    fn softmax_and_log_softmax(s in shape(3, 4), dim_pick in any::<usize>(), log in any::<bool>(), seed in any::<u64>(), kind in view_kind()) {
        let x = strided_view(&s, kind, seed);
        let dim = dim_pick % s.len();
        assert_gradcheck(|v| if log { v[0].log_softmax(dim) } else { v[0].softmax(dim) }, &[x]);
    }

    #[test]
    fn cross_entropy_with_smoothing(n in 1usize..5, c in 1usize..6, smoothing in 0.0f64..0.3, sum in any::<bool>(), seed in any::<u64>()) {
        let logits = random_tensor(&[n, c], seed);
        let target: Vec<i64> = (0..n).map(|i| ((seed as usize + i * 7) % c) as i64).collect();
        let target = Tensor::from_vec(target, [n]).unwrap();
        let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
        assert_gradcheck(|v| v[0].cross_entropy(&target, reduction, smoothing), &[logits]);
    }

    #[test]
    fn shape_ops(s in shape(4, 3), seed in any::<u64>(), kind in view_kind(), op in 0usize..6) {
        let x = strided_view(&s, kind, seed);
        let r = s.len();
        assert_gradcheck(|v| match op {
            0 => v[0].reshape(vec![s.iter().product::<usize>()]),
            1 => v[0].permute(&(0..r).rev().collect::<Vec<_>>()),
            2 => v[0].transpose(0, r - 1),
            3 => v[0].flatten(r / 2),
            4 => v[0].narrow(r - 1, s[r - 1] / 2, s[r - 1] - s[r - 1] / 2),
            _ => v[0].unsqueeze(r)?.expand({ let mut e = s.clone(); e.push(2); e }),
        }.and_then(|y| y.mul(&y)), &[x]);
    }

    #[test]
    fn cat_along_any_dim(s in shape(3, 3), extra in proptest::collection::vec(1usize..3, 3), dim_pick in any::<usize>(), seed in any::<u64>()) {
        let dim = dim_pick % s.len();
        let parts: Vec<Tensor> = extra.iter().enumerate().map(|(i, &e)| {
            let mut p = s.clone();
            p[dim] = e;
            random_tensor(&p, seed ^ i as u64)
        }).collect();
        assert_gradcheck(|v| Var::cat(&[&v[0], &v[1], &v[2]], dim)?.tanh(), &parts);
    }

    #[test]
    fn broadcast_binary_ops_equal_their_materialised_form((sa, sb) in broadcast_pair(4, 4), kind in view_kind(), seed in any::<u64>(), op in 0usize..4) {
        let a = strided_view(&sa, kind, seed);
        let b = random_tensor(&sb, seed ^ 3);
        let shape = gradlab::tensor::Shape::broadcast("t", a.shape(), b.shape()).unwrap();
        let (a_full, b_full) = (a.broadcast_to(shape.clone()).unwrap().contiguous().unwrap(), b.broadcast_to(shape).unwrap().contiguous().unwrap());
        let apply = |x: &Tensor, y: &Tensor| match op {
            0 => x.add(y),
            1 => x.sub(y),
            2 => x.mul(y),
            _ => x.div(y),
        }.unwrap().to_vec::<f64>().unwrap();
        prop_assert_eq!(apply(&a, &b), apply(&a_full, &b_full));
        prop_assert_eq!(apply(&b, &a), apply(&b_full, &a_full));
    }

    #[test]
    fn a_view_equals_its_contiguous_copy(s in shape(4, 4), kind in view_kind(), seed in any::<u64>()) {
        let view = strided_view(&s, kind, seed);
        let copy = view.contiguous().unwrap();
        prop_assert!(copy.is_contiguous());
        prop_assert_eq!(view.dims(), copy.dims());
        prop_assert_eq!(view.to_vec::<f64>().unwrap(), copy.to_vec::<f64>().unwrap());
        // Ops read views in place and agree with the copy bit for bit.
        prop_assert_eq!(view.exp().unwrap().to_vec::<f64>().unwrap(), copy.exp().unwrap().to_vec::<f64>().unwrap());
        prop_assert_eq!(view.sum(Some(&[0]), false).unwrap().to_vec::<f64>().unwrap(), copy.sum(Some(&[0]), false).unwrap().to_vec::<f64>().unwrap());
    }
}

#[test]
fn strided_views_are_really_strided() {
    let s = [3, 4];
    for kind in [ViewKind::Permuted, ViewKind::Narrowed, ViewKind::Expanded] {
        let v = strided_view(&s, kind, 1);
        assert_eq!(v.dims(), &s);
        assert!(!v.is_contiguous(), "{kind:?} gave a contiguous tensor");
    }
}
