//! Anomaly mode names the op that first makes a NaN or infinity, and the
//! place in the user's code that called it.
//!
//! Anomaly mode is a process-wide switch, so this file (its own test
//! process) runs its tests one at a time.

use gradlab_autograd::{detect_anomaly, is_anomaly_mode, set_anomaly_mode, AutogradError, Var};
use gradlab_tensor::Tensor;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn here(line: u32) -> String {
    format!("{}:{line}:", file!())
}

#[test]
fn forward_nan_names_the_first_op_and_the_callers_line() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Var::parameter(t(&[0.5, -1.5, 2.0], &[3]));
    let x = Var::constant(t(&[2.0, 1.0, 1.0], &[3]));
    let err = detect_anomaly(|| -> Result<Var, AutogradError> {
        let h = w.mul(&x)?.tanh()?;
        let z = h.add_scalar(-0.5)?; // [0.26, -1.41, 0.46]
        let line = line!() + 1;
        let bad = z.log(); // log of a negative number: NaN at index 1
        let e = bad.unwrap_err();
        match &e {
            AutogradError::Anomaly {
                op,
                phase,
                what,
                location,
            } => {
                assert_eq!(op, "Log");
                assert_eq!(*phase, "forward result");
                assert!(
                    what.starts_with("NaN at flat index 1 of a [3] tensor"),
                    "{what}"
                );
                assert!(location.starts_with(&here(line)), "{location}");
            }
            other => panic!("expected an anomaly, got {other}"),
        }
        Err(e)
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Log produced NaN"), "{message}");
    assert!(
        !is_anomaly_mode(),
        "detect_anomaly restores the previous mode"
    );
    // Without anomaly mode the same NaN passes silently.
    let h = w.mul(&x).unwrap().tanh().unwrap().add_scalar(-0.5).unwrap();
    assert!(h.log().unwrap().data().to_vec::<f64>().unwrap()[1].is_nan());
}

#[test]
fn later_ops_do_not_take_the_blame() {
    // The NaN is made by sqrt; the ops after it would also hold NaNs, but the
    // first one is reported and nothing after it runs.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::parameter(t(&[4.0, -1.0], &[2]));
    set_anomaly_mode(true);
    let line = line!() + 1;
    let root = x.sqrt();
    let result = root.and_then(|s| s.mul_scalar(2.0)?.sum_all());
    set_anomaly_mode(false);
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with("anomaly: Sqrt produced NaN at flat index 1"),
        "{message}"
    );
    assert!(message.contains(&here(line)), "{message}");
}

#[test]
fn backward_infinity_names_the_backward_op_and_the_forward_call() {
    // sqrt(0) = 0 is fine forward, but d sqrt/dx = 1 / (2 sqrt(x)) is
    // infinite at 0: the first non-finite value appears in backward.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::parameter(t(&[1.0, 0.0, 4.0], &[3]));
    let result = detect_anomaly(|| {
        let scaled = x.mul_scalar(3.0)?;
        let line = line!() + 1;
        let root = scaled.sqrt()?;
        let loss = root.sum_all()?;
        Ok::<_, AutogradError>((line, loss.backward()))
    });
    let (line, outcome) = result.unwrap();
    match outcome.unwrap_err() {
        AutogradError::Anomaly {
            op,
            phase,
            what,
            location,
        } => {
            assert_eq!(op, "SqrtBackward");
            assert!(phase.starts_with("backward"), "{phase}");
            assert!(
                what.starts_with("inf at flat index 1 of a [3] tensor"),
                "{what}"
            );
            assert!(location.starts_with(&here(line)), "{location}");
        }
        other => panic!("expected an anomaly, got {other}"),
    }
}

#[test]
fn backward_infinity_inside_a_larger_graph_is_named() {
    // |c| written as sqrt(c * c) is finite forward everywhere, but its
    // backward divides by sqrt(c * c), which is 0 at c = 0.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = Var::parameter(t(&[1.0, 2.0], &[2]));
    let b = Var::parameter(t(&[2.0, 0.5], &[2]));
    let outcome = detect_anomaly(|| {
        let c = b.add_scalar(-0.5)?; // [1.5, 0]
        let q = a.exp()?;
        let squared = c.mul(&c)?;
        let line = line!() + 1;
        let magnitude = squared.sqrt()?;
        let loss = magnitude.mul(&q)?.mean_all()?.tanh()?;
        Ok::<_, AutogradError>((line, loss.backward()))
    });
    let (line, result) = outcome.unwrap();
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with("anomaly: SqrtBackward produced inf at flat index 1 of a [2] tensor"),
        "{message}"
    );
    assert!(message.contains(&here(line)), "{message}");
    // The pass stopped at the anomaly: b, below the sqrt, got no gradient.
    assert!(b.grad().is_none());
}

#[test]
fn anomaly_mode_off_lets_nans_through() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::parameter(t(&[0.0], &[1]));
    x.sqrt().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(x.grad().unwrap().to_vec::<f64>().unwrap()[0].is_infinite());
}
