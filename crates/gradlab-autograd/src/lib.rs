//! gradlab-autograd: define-by-run reverse-mode automatic differentiation.
//!
//! A [`Var`] wraps a [`gradlab_tensor::Tensor`]; every op on vars records a
//! node naming its backward rule (`MulBackward`, `Conv2dBackward`, ...) and its
//! inputs. [`Var::backward`] walks the graph in topological order without
//! recursion and accumulates gradients into the leaves. Backward rules are
//! written with the same differentiable ops, so gradients of gradients work.
//!
//! ```
//! use gradlab_autograd::Var;
//! use gradlab_tensor::Tensor;
//! let w = Var::parameter(Tensor::from_vec(vec![1.0f64, -2.0], [2]).unwrap());
//! let x = Var::constant(Tensor::from_vec(vec![3.0f64, 4.0], [2]).unwrap());
//! let loss = w.mul(&x).unwrap().sum_all().unwrap().tanh().unwrap();
//! loss.backward().unwrap();
//! let g = w.grad().unwrap().to_vec::<f64>().unwrap();
//! let d = 1.0 - (-5.0f64).tanh().powi(2); // d tanh(s)/ds at s = w·x = -5
//! assert!((g[0] - 3.0 * d).abs() < 1e-12 && (g[1] - 4.0 * d).abs() < 1e-12);
//! ```

pub mod dot;
mod engine;
mod error;
pub mod gradcheck;
mod graph;
pub mod ops;
pub mod profile;
mod requires_grad;
pub mod trace;
mod var;

#[cfg(feature = "testing")]
pub mod testing;

pub use dot::{GraphNode, Highlight, NodeKind, RecordedGraph};
pub use engine::{grad, topological_order, BackwardOptions};
pub use error::{AutogradError, Result};
pub use gradcheck::{
    gradcheck, gradcheck_parameters, gradgradcheck, hvp, GradcheckOptions, GradcheckReport,
    InputReport, Localize,
};
pub use graph::{
    detect_anomaly, is_anomaly_mode, is_grad_enabled, no_grad, set_anomaly_mode, BackwardOp,
    GradModeGuard, Node,
};
pub use ops::norm::{
    batch_norm2d, batch_norm2d_train, batch_norm2d_train_with_stats, batch_stats2d,
};
pub use profile::{profile, profile_with, Profile, ProfileOptions};
pub use requires_grad::RequiresGrad;
pub use trace::{capture_trace, set_trace, TraceEvent};
pub use var::{GradHook, Var};
