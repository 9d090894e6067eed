//! The fast GEMM against its reference twin: random sizes (1, primes, tile
//! tails), random layouts (transposed and padded operands, column-major C),
//! alpha/beta/bias/ReLU, f32 and f64, every SIMD level this CPU supports.

use crate::common::{assert_close, for_each_level, random_vec, sum_tolerance};
use gradlab_cpu::{gemm, gemm_bias_act, reference, BiasAxis, Float, Rng, SimdLevel};
use proptest::prelude::*;

/// A matrix layout: row- or column-major with a padded leading dimension.
#[derive(Clone, Copy, Debug)]
struct Layout {
    transposed: bool,
    pad: usize,
}

impl Layout {
    fn strides(self, rows: usize, cols: usize) -> (usize, usize) {
        if self.transposed {
            (1, rows + self.pad)
        } else {
            (cols + self.pad, 1)
        }
    }
    fn len(self, rows: usize, cols: usize) -> usize {
        let (rs, cs) = self.strides(rows, cols);
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    alpha: f64,
    beta: f64,
    bias: Option<BiasAxis>,
    relu: bool,
    seed: u64,
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=20,
        prop::sample::select(vec![
            1, 2, 3, 5, 7, 13, 31, 61, 63, 64, 65, 97, 127, 129, 131, 200
        ]),
    ]
}

fn layout() -> impl Strategy<Value = Layout> {
    (any::<bool>(), prop_oneof![Just(0usize), 1usize..4])
        .prop_map(|(transposed, pad)| Layout { transposed, pad })
}

fn case() -> impl Strategy<Value = Case> {
    (
        (dim(), dim(), dim()),
        (layout(), layout(), layout()),
        prop::sample::select(vec![1.0, -0.5, 2.0]),
        prop::sample::select(vec![0.0, 1.0, 0.25]),
        prop::option::of(prop_oneof![Just(BiasAxis::Row), Just(BiasAxis::Col)]),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |((m, k, n), (la, lb, lc), alpha, beta, bias, relu, seed)| Case {
                m,
                k,
                n,
                la,
                lb,
                lc,
                alpha,
                beta,
                bias,
                relu,
                seed,
            },
        )
}

/// Runs the case through the fast kernel and the reference and compares.
fn check<T: Float>(case: &Case) {
    let Case {
        m,
        k,
        n,
        la,
        lb,
        lc,
        ..
    } = *case;
    let mut rng = Rng::new(case.seed);
    let (rsa, csa) = la.strides(m, k);
    let (rsb, csb) = lb.strides(k, n);
    let (rsc, csc) = lc.strides(m, n);
    let a: Vec<T> = random_vec(&mut rng, la.len(m, k));
    let b: Vec<T> = random_vec(&mut rng, lb.len(k, n));
    let mut c0: Vec<T> = random_vec(&mut rng, lc.len(m, n));
    if case.beta == 0.0 {
        // beta = 0 must overwrite without reading: NaNs there must not leak.
        c0.iter_mut()
            .step_by(3)
            .for_each(|v| *v = T::from_f64(f64::NAN));
    }
    let bias_len = match case.bias {
        Some(BiasAxis::Row) => m,
        Some(BiasAxis::Col) => n,
        None => 0,
    };
    let bias_values: Vec<T> = random_vec(&mut rng, bias_len);
    let (alpha, beta) = (T::from_f64(case.alpha), T::from_f64(case.beta));

    let mut want = c0.clone();
    reference::gemm(
        m, k, n, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut want, rsc, csc,
    );
    let mut scale = vec![1.0; want.len()];
    for i in 0..m {
        for j in 0..n {
            let at = i * rsc + j * csc;
            let mut v = want[at];
            match case.bias {
                Some(BiasAxis::Row) => v += bias_values[i],
                Some(BiasAxis::Col) => v += bias_values[j],
                None => {}
            }
            if case.relu && v < T::ZERO {
                v = T::ZERO;
            }
            want[at] = v;
            let products: f64 = (0..k)
                .map(|p| (a[i * rsa + p * csa] * b[p * rsb + j * csb]).to_f64().abs())
                .sum();
            scale[at] = case.alpha.abs() * products + 1.0;
        }
    }

    for_each_level(|level| {
        let mut got = c0.clone();
        let bias = case.bias.map(|axis| (bias_values.as_slice(), axis));
        gemm_bias_act(
            m, k, n, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut got, rsc, csc, bias, case.relu,
        );
        assert_close(
            &got,
            &want,
            &scale,
            sum_tolerance::<T>(k),
            &format!("{} {level} {case:?}", T::NAME),
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn fast_gemm_matches_reference_f32(case in case()) {
        check::<f32>(&case);
    }

    #[test]
    fn fast_gemm_matches_reference_f64(case in case()) {
        check::<f64>(&case);
    }
}

/// Sizes that cross every blocking boundary (KC, NC, the parallel threshold)
/// and the in-place-B path for short A, in a multi-threaded pool.
#[test]
fn large_blocked_problems_match_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let cases = [
        (300, 530, 270),
        (7, 600, 1100),
        (24, 257, 4500),
        (130, 40, 4200),
    ];
    pool.install(|| {
        for (i, &(m, k, n)) in cases.iter().enumerate() {
            for transposed in [false, true] {
                let lay = Layout { transposed, pad: 1 };
                let case = Case {
                    m,
                    k,
                    n,
                    la: lay,
                    lb: Layout {
                        transposed: false,
                        pad: 0,
                    },
                    lc: Layout {
                        transposed: false,
                        pad: 0,
                    },
                    alpha: 1.0,
                    beta: 0.25,
                    bias: Some(BiasAxis::Row),
                    relu: true,
                    seed: i as u64,
                };
                check::<f32>(&case);
                check::<f64>(&Case {
                    lb: lay,
                    ..case.clone()
                });
            }
        }
    });
}

/// Same inputs, 1, 2 and 3 threads: bit-identical results.
#[test]
fn results_do_not_depend_on_thread_count() {
    let (m, k, n) = (301, 700, 333);
    let mut rng = Rng::new(7);
    let a: Vec<f32> = random_vec(&mut rng, m * k);
    let b: Vec<f32> = random_vec(&mut rng, k * n);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut c = vec![0f32; m * n];
        pool.install(|| gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1));
        c
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn forcing_an_unsupported_level_is_an_error() {
    for level in SimdLevel::ALL {
        let forced = gradlab_cpu::with_simd_level(level, gradlab_cpu::simd_level);
        if level.is_supported() {
            assert_eq!(forced, Ok(level));
        } else {
            assert!(forced.is_err());
        }
    }
    assert_eq!(SimdLevel::supported()[0], SimdLevel::Scalar);
}

#[test]
#[should_panic(expected = "gemm: B is 4x5")]
fn short_operand_is_rejected_with_its_shape() {
    let a = vec![0f32; 12];
    let b = vec![0f32; 19];
    let mut c = vec![0f32; 15];
    gemm(3, 4, 5, 1.0, &a, 4, 1, &b, 5, 1, 0.0, &mut c, 5, 1);
}
