//! Changing a value in place after an op used it makes backward an error
//! that names the value and the op, as PyTorch's version counters do,
//! instead of a gradient of some other function.

use gradlab_autograd::{AutogradError, BackwardOptions, Var};
use gradlab_tensor::Tensor;

fn scalar(v: f64) -> Tensor {
    Tensor::from_vec(vec![v], [1]).unwrap()
}

/// `y = w * w * x` at `w = 2`, `x = 3`: dy/dw = 2wx = 12.
fn product(w: &Var) -> Var {
    let x = Var::constant(scalar(3.0));
    w.mul(w).unwrap().mul(&x).unwrap().sum_all().unwrap()
}

#[test]
fn set_data_after_forward_is_refused_by_backward() {
    let w = Var::named_parameter(scalar(2.0), "w");
    let y = product(&w);
    assert_eq!(w.version(), 0);
    w.set_data(scalar(5.0));
    assert_eq!(w.version(), 1);
    let err = y.backward().unwrap_err();
    assert!(
        matches!(
            err,
            AutogradError::ModifiedInPlace {
                op: "MulBackward",
                saved: 0,
                now: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "backward: one of the values needed for gradient computation has been modified in place: input 0 of MulBackward (created at "
        ),
        "{text}"
    );
    assert!(text.contains("inplace_versions.rs:"), "{text}");
    assert!(
        text.contains("name=w), is at version 1, but MulBackward used it at version 0"),
        "{text}"
    );
    // Refused before anything was accumulated (unchecked, the gradient was 30).
    assert!(w.grad().is_none());

    // Recomputing the forward pass with the new value works: 2 * 5 * 3.
    let y = product(&w);
    y.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![30.0]);
}

#[test]
fn update_data_counts_as_a_change_too() {
    let w = Var::named_parameter(scalar(2.0), "w");
    let y = product(&w);
    w.update_data(|t| {
        t.update_::<f64>(|v| v[0] = 5.0).unwrap();
    });
    assert_eq!(w.version(), 1);
    let err = y.backward().unwrap_err().to_string();
    assert!(err.contains("modified in place"), "{err}");
    assert!(err.contains("MulBackward"), "{err}");
}

#[test]
fn a_changed_constant_input_is_refused_as_well() {
    // x needs no gradient, but dy/dw reads it.
    let w = Var::parameter(scalar(2.0));
    let x = Var::constant(scalar(3.0));
    let y = w.mul(&x).unwrap().sum_all().unwrap();
    x.set_data(scalar(4.0));
    let err = y.backward().unwrap_err();
    assert!(
        matches!(err, AutogradError::ModifiedInPlace { index: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn the_optimizer_cycle_is_unaffected() {
    // forward, backward, update in place, forward again: each backward
    // runs on a graph recorded after the last update.
    let w = Var::parameter(scalar(2.0));
    for step in 0..3 {
        let y = product(&w);
        w.zero_grad();
        y.backward().unwrap();
        let g = w.grad().unwrap().to_vec::<f64>().unwrap()[0];
        let now = w.data().to_vec::<f64>().unwrap()[0];
        assert_eq!(g, 6.0 * now, "step {step}");
        w.update_data(|t| t.update_::<f64>(|v| v[0] -= 0.01 * g).unwrap());
    }
    assert_eq!(w.version(), 3);
}

#[test]
fn a_retained_graph_is_refused_after_an_update() {
    let w = Var::parameter(scalar(2.0));
    let y = product(&w);
    let keep = BackwardOptions {
        retain_graph: true,
        create_graph: false,
    };
    y.backward_with(None, keep).unwrap();
    w.update_data(|t| t.update_::<f64>(|v| v[0] = 1.0).unwrap());
    let err = y.backward_with(None, keep).unwrap_err().to_string();
    assert!(err.contains("modified in place"), "{err}");
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![12.0]);
}

#[test]
fn changes_to_values_outside_the_graph_do_not_matter() {
    let w = Var::parameter(scalar(2.0));
    let unrelated = Var::parameter(scalar(1.0));
    let y = product(&w);
    unrelated.set_data(scalar(9.0));
    y.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![12.0]);
}
