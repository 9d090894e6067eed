//! Property tests of views and broadcasting at the tensor level: strided
//! views agree with their contiguous copies element by element, and
//! broadcasting binary ops equal their materialised form. (The gradient
//! property tests of every op live with autograd, in
//! `crates/gradlab-autograd/tests/all/properties.rs`.)

use gradlab::autograd::testing::{
    broadcast_pair, random_tensor, shape, strided_view, view_kind, ViewKind,
};
use gradlab::tensor::Tensor;
use proptest::prelude::*;

const CASES: u32 = 24;

/// The broadcasting binary ops, by name.
#[derive(Clone, Copy, Debug)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop_oneof![
        Just(BinaryOp::Add),
        Just(BinaryOp::Sub),
        Just(BinaryOp::Mul),
        Just(BinaryOp::Div)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn broadcast_binary_ops_equal_their_materialised_form(op in binary_op(), (sa, sb) in broadcast_pair(4, 4), kind in view_kind(), seed in any::<u64>()) {
        let a = strided_view(&sa, kind, seed);
        let b = random_tensor(&sb, seed ^ 3);
        let shape = gradlab::tensor::Shape::broadcast("t", a.shape(), b.shape()).unwrap();
        let (a_full, b_full) = (a.broadcast_to(shape.clone()).unwrap().contiguous().unwrap(), b.broadcast_to(shape).unwrap().contiguous().unwrap());
        let apply = |x: &Tensor, y: &Tensor| match op {
            BinaryOp::Add => x.add(y),
            BinaryOp::Sub => x.sub(y),
            BinaryOp::Mul => x.mul(y),
            BinaryOp::Div => x.div(y),
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
