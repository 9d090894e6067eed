//! The trainer's LeNet written straight from autograd ops, so that its graph
//! shows every op with PyTorch's parameter names.
//!
//! `conv(3,6,5) - relu - maxpool2 - conv(6,16,5) - relu - maxpool2 - flatten
//! - fc120 - relu - fc84 - relu - fc10`, on 3 x 32 x 32 images.

use gradlab_autograd::Var;
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Tensor};

/// LeNet-5 for CIFAR-10, its parameters named as in a PyTorch `state_dict`.
///
/// ```
/// use gradlab::introspect::LeNet;
/// use gradlab::tensor::{DType, Rng, Tensor};
/// let mut rng = Rng::new(0);
/// let net = LeNet::new(DType::F32, &mut rng);
/// let (x, target) = LeNet::random_batch(2, DType::F32, &mut rng);
/// let loss = net.loss(&x, &target).unwrap();
/// assert_eq!(loss.op_name(), Some("CrossEntropyBackward"));
/// loss.backward().unwrap();
/// assert_eq!(net.parameter("conv1.weight").unwrap().grad().unwrap().dims(), &[6, 3, 5, 5]);
/// ```
pub struct LeNet {
    parameters: Vec<Var>,
}

/// (name, shape, fan-in) of each parameter, in `state_dict` order.
const LAYOUT: [(&str, &[usize], usize); 10] = [
    ("conv1.weight", &[6, 3, 5, 5], 3 * 25),
    ("conv1.bias", &[6], 3 * 25),
    ("conv2.weight", &[16, 6, 5, 5], 6 * 25),
    ("conv2.bias", &[16], 6 * 25),
    ("fc1.weight", &[120, 400], 400),
    ("fc1.bias", &[120], 400),
    ("fc2.weight", &[84, 120], 120),
    ("fc2.bias", &[84], 120),
    ("fc3.weight", &[10, 84], 84),
    ("fc3.bias", &[10], 84),
];

impl LeNet {
    /// Parameters drawn as PyTorch's default initialisation does:
    /// uniform in `±1/sqrt(fan_in)`.
    pub fn new(dtype: DType, rng: &mut Rng) -> LeNet {
        let parameters = LAYOUT
            .iter()
            .map(|&(name, shape, fan_in)| {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let data = Tensor::rand_uniform(shape.to_vec(), -bound, bound, dtype, rng);
                Var::named_parameter(data, name)
            })
            .collect();
        LeNet { parameters }
    }

    /// `(name, parameter)` pairs in `state_dict` order.
    pub fn parameters(&self) -> Vec<(String, Var)> {
        LAYOUT
            .iter()
            .zip(&self.parameters)
            .map(|(&(name, _, _), p)| (name.to_string(), p.clone()))
            .collect()
    }

    /// The parameter called `name` (e.g. `"fc3.bias"`).
    pub fn parameter(&self, name: &str) -> Option<&Var> {
        LAYOUT
            .iter()
            .position(|&(n, _, _)| n == name)
            .map(|i| &self.parameters[i])
    }

    /// Logits `[N, 10]` of images `[N, 3, 32, 32]`.
    pub fn forward(&self, x: &Var) -> gradlab_autograd::Result<Var> {
        let p = &self.parameters;
        let conv = Conv2dParams::default();
        let pool = MaxPool2dParams::square(2);
        let h = x
            .conv2d(&p[0], Some(&p[1]), conv)?
            .relu()?
            .max_pool2d(pool)?;
        let h = h
            .conv2d(&p[2], Some(&p[3]), conv)?
            .relu()?
            .max_pool2d(pool)?;
        let h = h.flatten(1)?;
        let h = h.linear(&p[4], Some(&p[5]))?.relu()?;
        let h = h.linear(&p[6], Some(&p[7]))?.relu()?;
        h.linear(&p[8], Some(&p[9]))
    }

    /// Mean cross-entropy of the logits against class indices `[N]` (i64).
    pub fn loss(&self, x: &Var, target: &Tensor) -> gradlab_autograd::Result<Var> {
        self.forward(x)?.cross_entropy(target, Reduction::Mean, 0.0)
    }

    /// A batch of standard-normal images `[n, 3, 32, 32]` (a constant var)
    /// and uniformly drawn class indices.
    pub fn random_batch(n: usize, dtype: DType, rng: &mut Rng) -> (Var, Tensor) {
        let x = Tensor::randn([n, 3, 32, 32], 0.0, 1.0, dtype, rng);
        let labels: Vec<i64> = (0..n).map(|_| rng.below(10) as i64).collect();
        let target = Tensor::from_vec(labels, [n]).expect("n labels fit a [n] tensor");
        (Var::constant(x), target)
    }
}
