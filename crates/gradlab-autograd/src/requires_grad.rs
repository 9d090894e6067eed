//! PyTorch's spelling of "make this tensor a leaf that requires grad".

use crate::Var;
use gradlab_tensor::Tensor;

/// `tensor.requires_grad_()`: PyTorch's way to ask for a tensor's gradient,
/// here turning the tensor into a leaf [`Var`] that requires grad (the
/// same as [`Var::parameter`]; [`Var::leaf`] takes the flag as an argument,
/// like `torch.tensor(data, requires_grad=...)`).
///
/// ```
/// use gradlab_autograd::RequiresGrad;
/// use gradlab_tensor::Tensor;
/// let w = Tensor::from_vec(vec![2.0f64, -1.0], [2]).unwrap().requires_grad_();
/// assert!(w.requires_grad() && w.is_leaf());
/// let y = w.mul(&w).unwrap().sum_all().unwrap();
/// y.backward().unwrap();
/// assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), [4.0, -2.0]);
/// ```
pub trait RequiresGrad {
    fn requires_grad_(self) -> Var;
}

impl RequiresGrad for Tensor {
    fn requires_grad_(self) -> Var {
        Var::parameter(self)
    }
}
