//! Arithmetic operators beside the named methods: `&a + &b`, `&a - &b`,
//! `&a * &b`, `&a / &b`, `-&a`, and the same with an `f64` on either side.
//!
//! Each returns the `Result` its method returns (as candle's tensors do):
//! shapes may not broadcast and dtypes or devices may differ, so the error
//! stays an error instead of becoming a panic; write `(&a * &b)?`. Operands
//! may be borrowed or owned.
//!
//! ```
//! use gradlab_tensor::Tensor;
//! # fn main() -> gradlab_tensor::Result<()> {
//! let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3])?;
//! let b = Tensor::from_vec(vec![4.0f64, 5.0, 6.0], [3])?;
//! let c = ((&a * &b)? + 1.0)?; // a.mul(&b)?.add_scalar(1.0)?
//! assert_eq!(c.to_vec::<f64>()?, [5.0, 11.0, 19.0]);
//! assert_eq!((2.0 / &a)?.to_vec::<f64>()?, [2.0, 1.0, 2.0 / 3.0]);
//! assert_eq!((-(&b - &a)?)?.to_vec::<f64>()?, [-3.0, -3.0, -3.0]);
//! # Ok(())
//! # }
//! ```
//!
//! With a scalar: `t + s` and `s + t` are [`Tensor::add_scalar`], `t * s`
//! and `s * t` [`Tensor::mul_scalar`], `t - s` adds `-s` and `s - t` adds
//! `s` to `-t` (both exact: IEEE subtraction is addition of the negation);
//! `t / s` and `s / t` divide by or into a rank-0 tensor of `t`'s dtype
//! and device, so that `t / 3.0` rounds as division does (multiplying by
//! `1.0 / 3.0` would not).

use crate::{Result, Shape, Tensor};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// `s` as a rank-0 tensor of `like`'s dtype and device.
fn scalar_like(s: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::full_on(Shape::scalar(), s, like.dtype(), like.device())
}

fn add_scalar(t: &Tensor, s: f64) -> Result<Tensor> {
    t.add_scalar(s)
}
fn scalar_add(s: f64, t: &Tensor) -> Result<Tensor> {
    t.add_scalar(s)
}
fn sub_scalar(t: &Tensor, s: f64) -> Result<Tensor> {
    t.add_scalar(-s)
}
fn scalar_sub(s: f64, t: &Tensor) -> Result<Tensor> {
    t.neg()?.add_scalar(s)
}
fn mul_scalar(t: &Tensor, s: f64) -> Result<Tensor> {
    t.mul_scalar(s)
}
fn scalar_mul(s: f64, t: &Tensor) -> Result<Tensor> {
    t.mul_scalar(s)
}
fn div_scalar(t: &Tensor, s: f64) -> Result<Tensor> {
    t.div(&scalar_like(s, t)?)
}
fn scalar_div(s: f64, t: &Tensor) -> Result<Tensor> {
    scalar_like(s, t)?.div(t)
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $named:ident, $with_scalar:ident, $scalar_with:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$named(self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$named(self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$named(&self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$named(&self, &rhs)
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f64) -> Result<Tensor> {
                $with_scalar(self, rhs)
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f64) -> Result<Tensor> {
                $with_scalar(&self, rhs)
            }
        }
        impl $trait<&Tensor> for f64 {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                $scalar_with(self, rhs)
            }
        }
        impl $trait<Tensor> for f64 {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                $scalar_with(self, &rhs)
            }
        }
    };
}

binary_operator!(Add, add, add, add_scalar, scalar_add);
binary_operator!(Sub, sub, sub, sub_scalar, scalar_sub);
binary_operator!(Mul, mul, mul, mul_scalar, scalar_mul);
binary_operator!(Div, div, div, div_scalar, scalar_div);

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    fn t(values: &[f64]) -> Tensor {
        Tensor::from_vec(values.to_vec(), [values.len()]).unwrap()
    }

    fn bits(t: crate::Result<Tensor>) -> Vec<u64> {
        t.unwrap()
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Every operator gives bitwise what its named method gives, for
    /// borrowed and owned operands alike.
    #[test]
    fn operators_are_their_named_methods() {
        let (a, b) = (t(&[1.5, -2.0, 3.25, 0.1]), t(&[0.3, 4.0, -1.0, 7.0]));
        assert_eq!(bits(&a + &b), bits(a.add(&b)));
        assert_eq!(bits(&a - &b), bits(a.sub(&b)));
        assert_eq!(bits(&a * &b), bits(a.mul(&b)));
        assert_eq!(bits(&a / &b), bits(a.div(&b)));
        assert_eq!(bits(-&a), bits(a.neg()));
        assert_eq!(bits(a.clone() * b.clone()), bits(a.mul(&b)));
        assert_eq!(bits(&a * b.clone()), bits(a.mul(&b)));
        assert_eq!(bits(a.clone() / &b), bits(a.div(&b)));
        assert_eq!(bits(-a.clone()), bits(a.neg()));
        assert_eq!(bits(&a + 0.7), bits(a.add_scalar(0.7)));
        assert_eq!(bits(0.7 + &a), bits(a.add_scalar(0.7)));
        assert_eq!(bits(&a * 3.0), bits(a.mul_scalar(3.0)));
        assert_eq!(bits(3.0 * a.clone()), bits(a.mul_scalar(3.0)));
    }

    /// Scalar subtraction and division agree with the same arithmetic on
    /// each element, bit for bit.
    #[test]
    fn scalar_operands_round_as_the_elementwise_arithmetic() {
        let values = [1.5, -2.0, 3.25, 0.1, 1e-300, 7.0];
        let a = t(&values);
        let each =
            |f: &dyn Fn(f64) -> f64| values.iter().map(|&v| f(v).to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a - 0.3), each(&|v| v - 0.3));
        assert_eq!(bits(0.3 - &a), each(&|v| 0.3 - v));
        assert_eq!(bits(&a / 3.0), each(&|v| v / 3.0));
        assert_eq!(bits(3.0 / &a), each(&|v| 3.0 / v));
        // f32 tensors divide by the scalar rounded to f32, as PyTorch does.
        let a32 = a.to_dtype(DType::F32).unwrap();
        let got = (&a32 / 3.0).unwrap().to_vec::<f32>().unwrap();
        let want: Vec<f32> = values.iter().map(|&v| v as f32 / 3.0f32).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn errors_stay_errors() {
        let (a, b) = (t(&[1.0, 2.0, 3.0]), t(&[1.0, 2.0]));
        let err = (&a + &b).unwrap_err().to_string();
        assert!(err.contains("add"), "{err}");
        let ints = Tensor::from_vec(vec![1i64, 2], [2]).unwrap();
        assert!((&ints / 2.0).is_err());
    }
}
