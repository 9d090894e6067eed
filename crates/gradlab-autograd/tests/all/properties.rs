//! Property tests: for every differentiable op, on random shapes (size-1
//! dims, broadcasting), random parameter sets and non-contiguous inputs
//! (permuted, narrowed, expanded), analytic gradients match central
//! differences in f64. A failing case names its op (ops are drawn by name,
//! not by index) and shows the shrunk shapes.

use gradlab_autograd::testing::{
    assert_gradcheck, assert_op_gradcheck, binary_ops, broadcast_pair, conv2d_case,
    distinct_tensor, max_pool2d_case, random_tensor, shape, strided_view, strided_view_in,
    unary_ops, view_kind,
};
use gradlab_autograd::Var;
use gradlab_tensor::{Reduction, Tensor};
use proptest::prelude::*;

const CASES: u32 = 24;

/// The shape ops checked below, by name.
#[derive(Clone, Copy, Debug)]
enum ShapeOp {
    Reshape,
    Permute,
    Transpose,
    Flatten,
    Narrow,
    Expand,
}

fn shape_op() -> impl Strategy<Value = ShapeOp> {
    prop_oneof![
        Just(ShapeOp::Reshape),
        Just(ShapeOp::Permute),
        Just(ShapeOp::Transpose),
        Just(ShapeOp::Flatten),
        Just(ShapeOp::Narrow),
        Just(ShapeOp::Expand),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn binary_ops_broadcast(op in binary_ops(), (sa, sb) in broadcast_pair(3, 3), seed in any::<u64>()) {
        assert_op_gradcheck(&op, &op.inputs(&[sa, sb], seed));
    }

    #[test]
    fn unary_ops_on_strided_inputs(op in unary_ops(), s in shape(3, 4), kind in view_kind(), seed in any::<u64>()) {
        // The view's values come from the op's domain: log on positives,
        // relu away from its kink, and still strided.
        let x = strided_view_in(&s, kind, op.domains[0], seed);
        assert_op_gradcheck(&op, &[x]);
    }

    #[test]
    fn sum_and_mean_over_any_dims(s in shape(4, 3), mask in any::<u8>(), negative in any::<u8>(), keepdim in any::<bool>(), mean in any::<bool>(), seed in any::<u64>(), kind in view_kind()) {
        let x = strided_view(&s, kind, seed);
        let dims: Vec<isize> = (0..s.len())
            .filter(|d| mask & (1 << d) != 0)
            .map(|d| signed_dim(d, s.len(), negative & (1 << d) != 0))
            .collect();
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
        let dim = signed_dim(dim_pick % s.len(), s.len(), dim_pick % 2 == 1);
        assert_gradcheck(|v| Ok(v[0].max_dim(dim, keepdim)?.0), &[x]);
    }

    #[test]
    fn matmul_with_torch_rules(batch in proptest::collection::vec(1usize..3, 0..2), m in 1usize..4, k in 1usize..4, n in 1usize..4,
                               a_vec in any::<bool>(), b_vec in any::<bool>(), b_batched in any::<bool>(), transposed in any::<bool>(), seed in any::<u64>()) {
        let (a, b) = matmul_operands(&batch, (m, k, n), (a_vec, b_vec, b_batched, transposed), seed);
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
    fn conv2d_every_parameter(case in conv2d_case(), seed in any::<u64>()) {
        assert_gradcheck(|v| case.apply(v), &case.tensors(seed));
    }

    #[test]
    fn max_pool2d_every_parameter(case in max_pool2d_case(), seed in any::<u64>()) {
        assert_gradcheck(|v| case.apply(v), &[case.tensor(seed)]);
    }

    #[test]
    fn softmax_and_log_softmax(s in shape(3, 4), dim_pick in any::<usize>(), log_softmax in any::<bool>(), seed in any::<u64>(), kind in view_kind()) {
        let x = strided_view(&s, kind, seed);
        let dim = signed_dim(dim_pick % s.len(), s.len(), dim_pick % 2 == 1);
        assert_gradcheck(|v| if log_softmax { v[0].log_softmax(dim) } else { v[0].softmax(dim) }, &[x]);
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
    fn shape_ops(op in shape_op(), s in shape(4, 3), seed in any::<u64>(), kind in view_kind()) {
        let x = strided_view(&s, kind, seed);
        let r = s.len();
        assert_gradcheck(|v| match op {
            ShapeOp::Reshape => v[0].reshape(vec![s.iter().product::<usize>()]),
            ShapeOp::Permute => v[0].permute(&(0..r).rev().collect::<Vec<_>>()),
            ShapeOp::Transpose => v[0].transpose(0, r - 1),
            ShapeOp::Flatten => v[0].flatten(r / 2),
            ShapeOp::Narrow => v[0].narrow(r - 1, s[r - 1] / 2, s[r - 1] - s[r - 1] / 2),
            ShapeOp::Expand => v[0].unsqueeze(r)?.expand({ let mut e = s.clone(); e.push(2); e }),
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
}

/// Dim `d` of a tensor of `rank` as PyTorch may name it: `d`, or
/// `d - rank` counting from the end when `negative`.
fn signed_dim(d: usize, rank: usize, negative: bool) -> isize {
    if negative {
        d as isize - rank as isize
    } else {
        d as isize
    }
}

/// Operands of `matmul` as the property above draws them: `a` of
/// `batch + [m, k]` or `[k]`, `b` of (`batch` +) `[k, n]` or `[k]`, `b` as
/// a transposed view when it is a matrix and `transposed` is set.
fn matmul_operands(
    batch: &[usize],
    (m, k, n): (usize, usize, usize),
    (a_vec, b_vec, b_batched, transposed): (bool, bool, bool, bool),
    seed: u64,
) -> (Tensor, Tensor) {
    let mut sa = batch.to_vec();
    sa.extend(if a_vec { vec![k] } else { vec![m, k] });
    let mut sb = if b_batched { batch.to_vec() } else { vec![] };
    sb.extend(if b_vec { vec![k] } else { vec![k, n] });
    // A 1-D operand has no batch dims.
    if a_vec {
        sa = vec![k];
    }
    if b_vec {
        sb = vec![k];
    }
    let a = random_tensor(&sa, seed);
    let b = if transposed && sb.len() == 2 {
        random_tensor(&[sb[1], sb[0]], seed ^ 7).t().unwrap()
    } else {
        random_tensor(&sb, seed ^ 7)
    };
    (a, b)
}

/// The case the regressions file holds, pinned by value: a batched matrix
/// times a vector (`[1, 1, 2] @ [2]`).
#[test]
fn matmul_of_a_batched_matrix_and_a_vector() {
    let (a, b) = matmul_operands(&[1], (1, 2, 1), (false, true, true, false), 0);
    assert_eq!((a.dims(), b.dims()), (&[1, 1, 2][..], &[2][..]));
    assert_gradcheck(|v| v[0].matmul(&v[1]), &[a, b]);
}
