//! Matrix products: `matmul` with torch rules, and `linear`.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};

/// `a @ b` with 1-D promotion and broadcast batch dims. Gradients are
/// computed on the promoted (>= 2-D) forms and summed back over broadcast
/// batch dims. Both gradients are products again: `da = g @ b^T`,
/// `db = a^T @ g` ([`gradlab_tensor::kernels::reference::gemm`], reading the transposes through strides).
struct MatmulBackward;

/// The >= 2-D form matmul computes with: a 1-D `a` is a row, a 1-D `b` a column.
fn promote(v: &Var, is_lhs: bool) -> Result<Var> {
    match (v.rank(), is_lhs) {
        (1, true) => v.unsqueeze(0),
        (1, false) => v.unsqueeze(1),
        _ => Ok(v.clone()),
    }
}

impl BackwardOp for MatmulBackward {
    fn name(&self) -> &'static str {
        "MatmulBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (a2, b2) = (promote(a, true)?, promote(b, false)?);
        // The gradient in the shape of the promoted product.
        let mut out_dims = g.dims();
        if a.rank() == 1 {
            out_dims.insert(out_dims.len() - if b.rank() == 1 { 0 } else { 1 }, 1);
        }
        if b.rank() == 1 {
            out_dims.push(1);
        }
        let g2 = g.reshape(out_dims)?;
        let last = |v: &Var| v.rank() - 1;
        let ga = if a.requires_grad() {
            let bt = b2.transpose(last(&b2) - 1, last(&b2))?;
            Some(g2.matmul(&bt)?.sum_to(&a2.shape())?.reshape(a.shape())?)
        } else {
            None
        };
        let gb = if b.requires_grad() {
            let at = a2.transpose(last(&a2) - 1, last(&a2))?;
            Some(at.matmul(&g2)?.sum_to(&b2.shape())?.reshape(b.shape())?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].matmul(&inputs[1]))
    }
}

/// `x @ weight^T + bias` over the last dim of `x`: `dx = g @ weight`,
/// `dweight = g^T @ x` ([`gradlab_tensor::kernels::reference::gemm`]), `dbias = Σ g` ([`gradlab_tensor::kernels::reference::sum`]).
struct LinearBackward;

impl BackwardOp for LinearBackward {
    fn name(&self) -> &'static str {
        "LinearBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        // Leading dims of x act as one batch dim (counted, not divided out:
        // any dim may be 0).
        let as_rows = |v: &Var| {
            let d = v.dims();
            let (lead, last) = d.split_at(d.len() - 1);
            v.reshape([lead.iter().product::<usize>(), last[0]])
        };
        let g2 = as_rows(g)?;
        let gx = if x.requires_grad() {
            Some(g2.matmul(w)?.reshape(x.shape())?)
        } else {
            None
        };
        let gw = if w.requires_grad() {
            Some(g2.t()?.matmul(&as_rows(x)?)?)
        } else {
            None
        };
        let mut grads = vec![gx, gw];
        if let Some(b) = inputs.get(2) {
            grads.push(
                b.requires_grad()
                    .then(|| g2.sum(Some(&[0]), false))
                    .transpose()?,
            );
        }
        Ok(grads)
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        // As `Var::linear` computes it: x @ weight^T, then the bias.
        let product = inputs[1].t().and_then(|wt| inputs[0].matmul(&wt));
        crate::graph::replay(match inputs.get(2) {
            Some(bias) => product.and_then(|p| p.add(bias)),
            None => product,
        })
    }
}

impl Var {
    /// Matrix product with `torch.matmul` rules.
    #[track_caller]
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self.data().matmul(&other.data())?;
        record(out, &[self, other], MatmulBackward, loc)
    }

    /// `torch.nn.functional.linear`: `x @ weight^T + bias`, weight `[out, in]`.
    #[track_caller]
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let loc = OpSite::caller();
        let (x, w) = (self.data(), weight.data());
        if w.rank() != 2 || x.rank() == 0 {
            return Err(gradlab_tensor::TensorError::shape(
                "linear",
                format!(
                    "expects an input [..., in] and a weight [out, in], got {} and {}",
                    x.shape(),
                    w.shape()
                ),
            )
            .into());
        }
        // weight^T is a strided view: the GEMM reads it in place.
        let mut out = x.matmul(&w.t()?)?;
        if let Some(b) = bias {
            let b = b.data();
            if b.dims() != [w.dims()[0]] {
                return Err(gradlab_tensor::TensorError::shape(
                    "linear",
                    format!(
                        "bias must have shape [{}] for weight {}, got {}",
                        w.dims()[0],
                        w.shape(),
                        b.shape()
                    ),
                )
                .into());
            }
            out = out.add(&b)?;
        }
        match bias {
            Some(b) => record(out, &[self, weight, b], LinearBackward, loc),
            None => record(out, &[self, weight], LinearBackward, loc),
        }
    }
}
