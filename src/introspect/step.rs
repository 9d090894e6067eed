//! One training step of the trainer's own models, for drawing and tracing:
//! the model `gradlab train --model ...` builds for CIFAR-10, its forward
//! pass and the trainer's loss.

use crate::train::models::build_model;
use crate::train::ModelKind;
use gradlab_autograd::{RecordedGraph, Var};
use gradlab_data::CIFAR10_DIMS;
use gradlab_nn::{Module, Sequential};
use gradlab_tensor::{DType, Rng, Tensor};

/// CIFAR-10's classes, the trainer's default data set.
const CLASSES: usize = 10;

/// The trainer's `kind` network for CIFAR-10 images, initialised from `rng`
/// as `gradlab train` initialises it, with each parameter named by its
/// `state_dict` path so that graphs and traces show `conv1.weight`, not an
/// anonymous leaf.
///
/// ```
/// use gradlab::introspect::named_model;
/// use gradlab::train::ModelKind;
/// use gradlab::nn::Module;
/// let model = named_model(ModelKind::Lenet, &mut gradlab::tensor::Rng::new(0)).unwrap();
/// let (name, weight) = &model.parameters()[0];
/// assert_eq!((name.as_str(), weight.name().as_deref()), ("conv1.weight", Some("conv1.weight")));
/// ```
pub fn named_model(kind: ModelKind, rng: &mut Rng) -> Result<Sequential, String> {
    let model = build_model(kind, CIFAR10_DIMS, CLASSES, rng)
        .map_err(|e| format!("cannot build the {kind:?} model: {e}"))?;
    name_parameters(&model);
    Ok(model)
}

/// Gives every parameter of `model` its dotted `state_dict` name.
pub fn name_parameters(model: &dyn Module) {
    for (name, parameter) in model.parameters() {
        parameter.set_name(name);
    }
}

/// A CIFAR-10-shaped batch: `n` standard-normal images `[n, 3, 32, 32]` (a
/// constant named `images`) and uniformly drawn class indices `[n]` (i64).
pub fn random_batch(n: usize, rng: &mut Rng) -> (Var, Tensor) {
    let dims = CIFAR10_DIMS;
    let shape = [n, dims.channels, dims.height, dims.width];
    let x = Var::constant(Tensor::randn(shape, 0.0, 1.0, DType::F32, rng));
    x.set_name("images");
    let labels: Vec<i64> = (0..n).map(|_| rng.below(CLASSES) as i64).collect();
    let target = Tensor::from_vec(labels, [n]).expect("n labels fit a [n] tensor");
    (x, target)
}

/// The trainer's loss on a batch: mean cross-entropy of `model`'s logits.
pub fn step_loss(model: &dyn Module, x: &Var, target: &Tensor) -> Result<Var, String> {
    let logits = model
        .forward(x)
        .map_err(|e| format!("model forward failed: {e}"))?;
    gradlab_nn::cross_entropy(&logits, target).map_err(|e| format!("loss failed: {e}"))
}

/// The graph of one training step of the trainer's `kind` model: forward
/// and loss on a random batch of `batch` images, parameters and batch drawn
/// from `seed`.
///
/// ```
/// use gradlab::autograd::NodeKind;
/// use gradlab::train::ModelKind;
/// let graph = gradlab::introspect::step_graph(ModelKind::Lenet, 2, 0).unwrap();
/// let root = &graph.nodes[graph.root];
/// assert_eq!(root.op, Some("CrossEntropyBackward"));
/// let parameters = graph.nodes.iter().filter(|n| n.kind == NodeKind::Parameter).count();
/// assert_eq!(parameters, 10);
/// assert!(graph.to_dot().contains("fc3.bias"));
/// ```
pub fn step_graph(kind: ModelKind, batch: usize, seed: u64) -> Result<RecordedGraph, String> {
    if batch == 0 {
        return Err("graph: --batch must be at least 1".into());
    }
    let mut rng = Rng::new(seed);
    let model = named_model(kind, &mut rng).map_err(|e| format!("graph: {e}"))?;
    let (x, target) = random_batch(batch, &mut rng);
    let loss = step_loss(&model, &x, &target).map_err(|e| format!("graph: {kind:?} {e}"))?;
    Ok(loss.graph())
}
