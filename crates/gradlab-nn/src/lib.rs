//! gradlab-nn: layers, initialisation, optimizers, schedules and checkpoints.
//!
//! Modules own their parameters as [`Var`](gradlab_autograd::Var)s with
//! PyTorch's names; optimizers update them in place outside the graph with
//! PyTorch's rules; checkpoints are safetensors files PyTorch can read.
//!
//! ```
//! use gradlab_autograd::Var;
//! use gradlab_nn::{layers::{Linear, ReLU}, Module, Optimizer, Sequential, Sgd, SgdConfig};
//! use gradlab_tensor::{DType, Rng, Tensor};
//!
//! let mut rng = Rng::new(0);
//! let model = Sequential::new()
//!     .push("fc1", Linear::new(4, 8, true, DType::F32, &mut rng)).unwrap()
//!     .push("relu", ReLU).unwrap()
//!     .push("fc2", Linear::new(8, 3, true, DType::F32, &mut rng)).unwrap();
//! let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//!
//! let mut opt = Sgd::new(model.parameters(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap();
//! let x = Var::constant(Tensor::randn([5, 4], 0.0, 1.0, DType::F32, &mut rng));
//! let target = Tensor::from_vec(vec![0i64, 1, 2, 0, 1], [5]).unwrap();
//! let loss = gradlab_nn::cross_entropy(&model.forward(&x).unwrap(), &target).unwrap();
//! opt.zero_grad();
//! loss.backward().unwrap();
//! opt.step().unwrap();
//! ```

pub mod checkpoint;
mod error;
pub mod init;
pub mod layers;
mod loss;
mod module;
pub mod optim;
pub mod schedule;

pub use checkpoint::Checkpoint;
pub use error::{NnError, Result};
pub use layers::Sequential;
pub use loss::{cross_entropy, predictions};
pub use module::{prefixed, Module};
pub use optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
pub use schedule::{LrSchedule, OneCycle};
