//! Loss and scoring helpers for classifiers.

use crate::Result;
use gradlab_autograd::Var;
use gradlab_tensor::{Reduction, Tensor};

/// Mean cross-entropy of logits `[N, C]` against class indices `[N]` (i64),
/// as `torch.nn.functional.cross_entropy` with its defaults.
pub fn cross_entropy(logits: &Var, target: &Tensor) -> Result<Var> {
    Ok(logits.cross_entropy(target, Reduction::Mean, 0.0)?)
}

/// The predicted class of each row of `logits` `[N, C]` (the first maximum on ties).
pub fn predictions(logits: &Tensor) -> Result<Vec<usize>> {
    let (_, indices) = logits.max_dim(1, false)?;
    Ok(indices
        .to_vec::<i64>()?
        .into_iter()
        .map(|i| i as usize)
        .collect())
}
