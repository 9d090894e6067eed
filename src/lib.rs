//! gradlab: a from-scratch tensor and reverse-mode autodiff engine you can
//! see into.
//!
//! A tensor, a leaf that requires grad, a few ops, backward, the gradient:
//!
//! ```
//! use gradlab::autograd::{RequiresGrad, Var};
//! use gradlab::tensor::Tensor;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // PyTorch: w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
//! let w = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3])?.requires_grad_();
//! let x = Var::constant(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3])?);
//!
//! // y = sum(2 tanh(w * x) + x); every op returns a Result, as candle's do.
//! let y = (((&w * &x)?.tanh()? * 2.0)? + &x)?.sum_all()?;
//! y.backward()?;
//!
//! // dy/dw = 2 (1 - tanh(w x)^2) x
//! let grad = w.grad().expect("w requires grad").to_vec::<f64>()?;
//! for (i, (w, x)) in [(0.5f64, 1.0f64), (-1.0, 2.0), (2.0, 3.0)].into_iter().enumerate() {
//!     let t = (w * x).tanh();
//!     assert!((grad[i] - 2.0 * (1.0 - t * t) * x).abs() < 1e-12);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The operators (`&a * &b`, `&a + 1.0`, `-&a`, ...) stand beside named
//! methods (`a.mul(&b)`, `a.add_scalar(1.0)`, `a.neg()`); both record the
//! same graph node. [`Var::parameter`](autograd::Var::parameter) is the
//! same as `requires_grad_()`, and [`Var::constant`](autograd::Var::constant)
//! a leaf that needs no gradient.
//!
//! # The library
//!
//! This crate re-exports the workspace crates so that one dependency is
//! enough:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`tensor`] | `Tensor`, `Shape`, `DType`, devices, the forward ops, the backend contract and `with_kernels` |
//! | [`autograd`] | `Var`, backward, one rule per op, `gradcheck`, graph export, the backward trace, anomaly mode |
//! | [`nn`] | layers, losses, SGD/Adam/AdamW, schedules, safetensors checkpoints |
//! | [`data`] | CIFAR-10 and Fashion-MNIST loaders, batching, augmentation |
//! | [`cpu`] | the kernels on raw slices, each fast kernel beside its plain twin in `cpu::reference` |
//! | [`cuda`] | the CUDA device and its NVRTC-compiled kernels |
//! | [`plot`] | line charts, scatter plots and heat maps as SVG |
//!
//! # The command line
//!
//! The `gradlab` binary's commands (`train`, `eval`, `runs`, `fixtures`,
//! `gradcheck`, `graph`, `bench`) are modules of this crate so that tests
//! can drive them, but they are not library API and are hidden from these
//! pages: run `gradlab --help`, and see the README for what each writes.
pub use gradlab_autograd as autograd;
pub use gradlab_cpu as cpu;
pub use gradlab_cuda as cuda;
pub use gradlab_data as data;
pub use gradlab_nn as nn;
pub use gradlab_tensor as tensor;

pub mod plot;

#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod fixtures;
#[doc(hidden)]
pub mod introspect;
#[doc(hidden)]
pub mod profile;
#[doc(hidden)]
pub mod runs;
#[doc(hidden)]
pub mod threads;
#[doc(hidden)]
pub mod train;

/// The README's Rust examples, compiled (and run) by `cargo test --doc`
/// so that they keep working as written.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
