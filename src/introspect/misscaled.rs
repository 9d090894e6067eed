//! An op whose backward is wrong on purpose, for seeing a failure found and
//! localised (`gradlab gradcheck --inject-wrong-op`, a hidden flag).

use gradlab_autograd::{BackwardOp, Result, Var};
use gradlab_tensor::{Shape, Tensor};

/// The forward scale of [`misscaled`]; its backward claims twice this.
const SCALE: f64 = 1.5;

/// `y = 1.5 x`, whose backward returns `3 g`: right in shape, wrong by a
/// factor of 2. Its forward replays, so localisation can check it alone.
struct MisscaledBackward;

impl BackwardOp for MisscaledBackward {
    fn name(&self) -> &'static str {
        "MisscaledBackward"
    }
    fn backward(&self, _: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul_scalar(2.0 * SCALE)?)])
    }
    fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
        Some(inputs[0].mul_scalar(SCALE).map_err(Into::into))
    }
}

/// Records [`MisscaledBackward`] on `x`, located at the caller.
#[track_caller]
pub(crate) fn misscaled(x: &Var) -> Result<Var> {
    Var::from_op(x.data().mul_scalar(SCALE)?, &[x], MisscaledBackward)
}
