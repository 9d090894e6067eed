//! Arithmetic operators on vars beside the named methods: `&a + &b`,
//! `&a - &b`, `&a * &b`, `&a / &b`, `-&a`, and the same with an `f64` on
//! either side. Each records the node its method records and returns the
//! same `Result` (as candle's tensors do): write `(&a * &b)?`.
//!
//! ```
//! use gradlab_autograd::{RequiresGrad, Var};
//! use gradlab_tensor::Tensor;
//! # fn main() -> gradlab_autograd::Result<()> {
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3])?.requires_grad_();
//! let y = ((&x * &x)? * 3.0)?.sum_all()?; // sum(3 x^2)
//! y.backward()?;
//! assert_eq!(x.grad().unwrap().to_vec::<f64>()?, [6.0, 12.0, 18.0]); // 6 x
//! # Ok(())
//! # }
//! ```
//!
//! With a scalar: `v + s` and `s + v` are [`Var::add_scalar`], `v * s` and
//! `s * v` [`Var::mul_scalar`], `v - s` adds `-s` and `s - v` adds `s` to
//! `-v`; `v / s` and `s / v` divide by or into a constant rank-0 var of
//! `v`'s dtype and device (see `gradlab_tensor::ops::operators`, whose
//! values these are, bit for bit).

use crate::{Result, Var};
use gradlab_tensor::{Shape, Tensor};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// `s` as a constant rank-0 var of `like`'s dtype and device.
fn scalar_like(s: f64, like: &Var) -> Result<Var> {
    let t = Tensor::full_on(Shape::scalar(), s, like.dtype(), like.device())?;
    Ok(Var::constant(t))
}

#[track_caller]
fn add_scalar(v: &Var, s: f64) -> Result<Var> {
    v.add_scalar(s)
}
#[track_caller]
fn scalar_add(s: f64, v: &Var) -> Result<Var> {
    v.add_scalar(s)
}
#[track_caller]
fn sub_scalar(v: &Var, s: f64) -> Result<Var> {
    v.add_scalar(-s)
}
#[track_caller]
fn scalar_sub(s: f64, v: &Var) -> Result<Var> {
    v.neg()?.add_scalar(s)
}
#[track_caller]
fn mul_scalar(v: &Var, s: f64) -> Result<Var> {
    v.mul_scalar(s)
}
#[track_caller]
fn scalar_mul(s: f64, v: &Var) -> Result<Var> {
    v.mul_scalar(s)
}
#[track_caller]
fn div_scalar(v: &Var, s: f64) -> Result<Var> {
    v.div(&scalar_like(s, v)?)
}
#[track_caller]
fn scalar_div(s: f64, v: &Var) -> Result<Var> {
    scalar_like(s, v)?.div(v)
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $named:ident, $with_scalar:ident, $scalar_with:ident) => {
        impl $trait<&Var> for &Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: &Var) -> Result<Var> {
                Var::$named(self, rhs)
            }
        }
        impl $trait<Var> for &Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: Var) -> Result<Var> {
                Var::$named(self, &rhs)
            }
        }
        impl $trait<&Var> for Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: &Var) -> Result<Var> {
                Var::$named(&self, rhs)
            }
        }
        impl $trait<Var> for Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: Var) -> Result<Var> {
                Var::$named(&self, &rhs)
            }
        }
        impl $trait<f64> for &Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: f64) -> Result<Var> {
                $with_scalar(self, rhs)
            }
        }
        impl $trait<f64> for Var {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: f64) -> Result<Var> {
                $with_scalar(&self, rhs)
            }
        }
        impl $trait<&Var> for f64 {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: &Var) -> Result<Var> {
                $scalar_with(self, rhs)
            }
        }
        impl $trait<Var> for f64 {
            type Output = Result<Var>;
            #[track_caller]
            fn $method(self, rhs: Var) -> Result<Var> {
                $scalar_with(self, &rhs)
            }
        }
    };
}

binary_operator!(Add, add, add, add_scalar, scalar_add);
binary_operator!(Sub, sub, sub, sub_scalar, scalar_sub);
binary_operator!(Mul, mul, mul, mul_scalar, scalar_mul);
binary_operator!(Div, div, div, div_scalar, scalar_div);

impl Neg for &Var {
    type Output = Result<Var>;
    #[track_caller]
    fn neg(self) -> Result<Var> {
        Var::neg(self)
    }
}

impl Neg for Var {
    type Output = Result<Var>;
    #[track_caller]
    fn neg(self) -> Result<Var> {
        Var::neg(&self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{RequiresGrad, Var};
    use gradlab_tensor::Tensor;

    fn leaf(values: &[f64]) -> Var {
        Tensor::from_vec(values.to_vec(), [values.len()])
            .unwrap()
            .requires_grad_()
    }

    fn values(v: &Var) -> Vec<f64> {
        v.data().to_vec::<f64>().unwrap()
    }

    fn grad(v: &Var) -> Vec<f64> {
        v.grad().unwrap().to_vec::<f64>().unwrap()
    }

    /// `f(a, b) = sum((a * b - a / b + 2 / a - 3) * -b) + sum(a / 4 - 1 + b)`
    /// through the operators, against its derivatives worked out by hand.
    #[test]
    fn operators_record_the_graph_of_their_methods() {
        let (av, bv) = ([1.5, -2.0, 0.5], [0.5, 4.0, -1.0]);
        let (a, b) = (leaf(&av), leaf(&bv));
        let inner = ((((&a * &b).unwrap() - (&a / &b).unwrap()).unwrap() + (2.0 / &a).unwrap())
            .unwrap()
            - 3.0)
            .unwrap();
        let first = (inner * (-&b).unwrap()).unwrap().sum_all().unwrap();
        let second = ((((&a / 4.0).unwrap() - 1.0).unwrap() + &b).unwrap())
            .sum_all()
            .unwrap();
        let f = (first + second).unwrap();
        f.backward().unwrap();
        for i in 0..3 {
            let (x, y) = (av[i], bv[i]);
            // d/da: (y - 1/y - 2/x^2) * -y + 1/4
            let da = (y - 1.0 / y - 2.0 / (x * x)) * -y + 0.25;
            // d/db: -(x*y - x/y + 2/x - 3) + (x + x/y^2) * -y + 1
            let db = -(x * y - x / y + 2.0 / x - 3.0) + (x + x / (y * y)) * -y + 1.0;
            assert!((grad(&a)[i] - da).abs() < 1e-12, "da[{i}]");
            assert!((grad(&b)[i] - db).abs() < 1e-12, "db[{i}]");
        }
    }

    #[test]
    fn values_are_the_tensor_operators_values() {
        let (a, b) = (leaf(&[1.5, -2.0, 3.0]), leaf(&[0.3, 4.0, -7.0]));
        let (ta, tb) = (a.data(), b.data());
        assert_eq!(
            values(&(&a / &b).unwrap()),
            (&ta / &tb).unwrap().to_vec::<f64>().unwrap()
        );
        assert_eq!(
            values(&(&a / 3.0).unwrap()),
            (&ta / 3.0).unwrap().to_vec::<f64>().unwrap()
        );
        assert_eq!(
            values(&(0.3 - &a).unwrap()),
            (0.3 - &ta).unwrap().to_vec::<f64>().unwrap()
        );
        assert_eq!(
            values(&(a.clone() * b.clone()).unwrap()),
            values(&a.mul(&b).unwrap())
        );
        assert_eq!(values(&(-a.clone()).unwrap()), values(&a.neg().unwrap()));
        assert!((&a + &leaf(&[1.0, 2.0])).is_err());
    }
}
