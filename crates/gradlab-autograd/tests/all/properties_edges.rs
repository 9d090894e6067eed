//! Property tests at the edges of PyTorch's semantics: every op that takes
//! a dim is drawn with negative dims too, shapes are drawn with size-0 and
//! size-1 dims, conv2d and max_pool2d take unbatched images, and
//! cross-entropy takes per-pixel targets with class weights, ignored
//! targets and label smoothing. Gradients are checked against central
//! differences in f64; forward values against naive twins written here.

use gradlab_autograd::testing::{
    assert_gradcheck, conv2d_case, distinct_tensor, max_pool2d_case, random_tensor,
};
use gradlab_autograd::Var;
use gradlab_tensor::{CrossEntropyOptions, Reduction, Tensor};
use proptest::prelude::*;

const CASES: u32 = 24;

/// Dim `d` of a tensor of `rank` as PyTorch may name it: `d`, or `d - rank`.
fn signed(d: usize, rank: usize, negative: bool) -> isize {
    if negative {
        d as isize - rank as isize
    } else {
        d as isize
    }
}

/// Shapes of rank 1-`max_rank` whose dims are 0-`max_dim` (size 0 and 1
/// drawn often).
fn shape_with_empty(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=max_dim, 1..=max_rank)
}

/// Row-major multi-index of flat position `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Naive twin of `sum` over the (resolved) `dims`, kept as size 1.
fn naive_sum_keepdim(x: &[f64], shape: &[usize], dims: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let out_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if dims.contains(&d) { 1 } else { n })
        .collect();
    let mut out = vec![0.0; out_shape.iter().product()];
    for (i, &v) in x.iter().enumerate() {
        let idx = unravel(i, shape);
        let o = idx
            .iter()
            .zip(&out_shape)
            .fold(0, |acc, (&k, &n)| acc * n + if n == 1 { 0 } else { k });
        out[o] += v;
    }
    (out_shape, out)
}

fn assert_values(got: &Tensor, want: &[f64], what: &str) {
    let got = got.to_vec_f64().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-12 * (1.0 + w.abs());
        assert!(same, "{what}[{i}]: {g} vs {w}");
    }
}

/// Naive twin of the per-row weighted, smoothed cross-entropy (PyTorch's
/// definition), reduced; `logits` as `[N, C, positions]` flattened.
fn naive_cross_entropy(
    logits: &[f64],
    (n, c, positions): (usize, usize, usize),
    target: &[i64],
    weight: &[f64],
    opts: &CrossEntropyOptions,
) -> Vec<f64> {
    let eps = opts.label_smoothing;
    let (mut losses, mut total) = (Vec::new(), 0.0);
    for b in 0..n {
        for p in 0..positions {
            let t = target[b * positions + p];
            if t == opts.ignore_index {
                losses.push(0.0);
                continue;
            }
            let x: Vec<f64> = (0..c)
                .map(|k| logits[(b * c + k) * positions + p])
                .collect();
            let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            let loss: f64 = (0..c)
                .map(|k| {
                    let hot = if k as i64 == t { 1.0 } else { 0.0 };
                    weight[k] * ((1.0 - eps) * hot + eps / c as f64) * (lse - x[k])
                })
                .sum();
            losses.push(loss);
            total += weight[t as usize];
        }
    }
    match opts.reduction {
        Reduction::None => losses,
        Reduction::Sum => vec![losses.iter().sum()],
        Reduction::Mean => vec![losses.iter().sum::<f64>() / total],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// sum and mean over signed dims of shapes with size-0 and size-1
    /// dims: values against a naive twin (a mean over nothing is NaN), and
    /// the gradient of `sum(out)` is 1 (sum) or 1/count (mean) everywhere.
    #[test]
    fn reductions_on_empty_and_size_one_dims(s in shape_with_empty(3, 3), mask in any::<u8>(), negative in any::<u8>(), keepdim in any::<bool>(), mean in any::<bool>(), seed in any::<u64>()) {
        let rank = s.len();
        let resolved: Vec<usize> = (0..rank).filter(|d| mask & (1 << d) != 0).collect();
        let dims: Vec<isize> = resolved.iter().map(|&d| signed(d, rank, negative & (1 << d) != 0)).collect();
        let all: Vec<usize> = if resolved.is_empty() { (0..rank).collect() } else { resolved.clone() };
        let x = Var::parameter(random_tensor(&s, seed));
        let out = if mean { x.mean(Some(&dims), keepdim) } else { x.sum(Some(&dims), keepdim) }.unwrap();
        let (kept_shape, mut want) = naive_sum_keepdim(&x.data().to_vec_f64().unwrap(), &s, &all);
        let count: usize = all.iter().map(|&d| s[d]).product();
        if mean {
            want.iter_mut().for_each(|v| *v /= count as f64);
        }
        let want_shape: Vec<usize> = if keepdim {
            kept_shape
        } else {
            (0..rank).filter(|d| !all.contains(d)).map(|d| s[d]).collect()
        };
        prop_assert_eq!(out.dims(), want_shape);
        assert_values(&out.data(), &want, "reduction");
        out.sum_all().unwrap().backward().unwrap();
        let g = x.grad().unwrap();
        prop_assert_eq!(g.dims(), &s[..]);
        let each = if mean { 1.0 / count as f64 } else { 1.0 };
        assert_values(&g, &vec![each; g.numel()], "gradient");
    }

    /// max, softmax and log_softmax along a signed dim match the same op
    /// along the resolved dim, and their gradients check.
    #[test]
    fn dim_ops_with_negative_dims(s in proptest::collection::vec(1usize..=3, 1..=3), pick in any::<usize>(), seed in any::<u64>()) {
        let rank = s.len();
        let d = pick % rank;
        let neg = d as isize - rank as isize;
        let x = distinct_tensor(&s, seed);
        let v = Var::constant(x.clone());
        assert_values(&v.softmax(neg).unwrap().data(), &v.softmax(d).unwrap().data().to_vec_f64().unwrap(), "softmax");
        assert_values(&v.log_softmax(neg).unwrap().data(), &v.log_softmax(d).unwrap().data().to_vec_f64().unwrap(), "log_softmax");
        assert_values(&v.max_dim(neg, true).unwrap().0.data(), &v.max_dim(d, true).unwrap().0.data().to_vec_f64().unwrap(), "max");
        assert_gradcheck(|v| v[0].softmax(neg)?.mul(&v[0].log_softmax(neg)?)?.add(&v[0].max_dim(neg, true)?.0), &[x]);
    }

    /// Shape ops with signed dims on shapes with size-0 and size-1 dims:
    /// the result is the op on the resolved dims, and gradients check
    /// (they are checked on the non-empty shapes; on empty ones the
    /// gradient must have the input's shape).
    #[test]
    fn shape_ops_with_signed_dims(s in shape_with_empty(4, 3), a in any::<usize>(), b in any::<usize>(), negative in any::<u8>(), seed in any::<u64>()) {
        let rank = s.len();
        let (da, db) = (a % rank, b % rank);
        let (sa, sb) = (signed(da, rank, negative & 1 != 0), signed(db, rank, negative & 2 != 0));
        let x = random_tensor(&s, seed);
        let v = Var::constant(x.clone());
        // transpose, permute (a rotation), flatten between two dims, narrow, squeeze, unsqueeze.
        let rotation: Vec<isize> = (0..rank).map(|i| signed((i + da) % rank, rank, negative & (4 << (i % 4)) != 0)).collect();
        let resolved: Vec<usize> = (0..rank).map(|i| (i + da) % rank).collect();
        let (lo, hi) = (da.min(db), da.max(db));
        let (slo, shi) = if da <= db { (sa, sb) } else { (sb, sa) };
        let half = s[da] / 2;
        let pairs: Vec<(&str, Var, Tensor)> = vec![
            ("transpose", v.transpose(sa, sb).unwrap(), x.transpose(da, db).unwrap()),
            ("permute", v.permute(&rotation).unwrap(), x.permute(&resolved).unwrap()),
            ("flatten", v.flatten_range(slo, shi).unwrap(), x.flatten_range(lo, hi).unwrap()),
            ("narrow", v.narrow(sa, half, s[da] - half).unwrap(), x.narrow(da, half, s[da] - half).unwrap()),
            ("squeeze", v.squeeze(sa).unwrap(), x.squeeze(da).unwrap()),
            ("unsqueeze", v.unsqueeze(signed(da, rank + 1, negative & 1 != 0)).unwrap(), x.unsqueeze(da).unwrap()),
        ];
        for (name, got, want) in &pairs {
            prop_assert_eq!(got.dims(), want.dims().to_vec(), "{}", name);
            assert_values(&got.data(), &want.to_vec_f64().unwrap(), name);
        }
        let f = |v: &[Var]| {
            let y = v[0].transpose(sa, sb)?.flatten_range(slo.min(0), -1)?;
            let z = v[0].narrow(sa, half, s[da] - half)?.unsqueeze(-1)?.squeeze(-1)?;
            y.tanh()?.sum_all()?.add(&z.mul(&z)?.sum_all()?)
        };
        if x.numel() > 0 {
            assert_gradcheck(f, &[x]);
        } else {
            let p = Var::parameter(x.clone());
            f(std::slice::from_ref(&p)).unwrap().backward().unwrap();
            prop_assert_eq!(p.grad().unwrap().dims().to_vec(), s.clone());
        }
    }

    /// cat along a signed dim with parts of size 0 and 1 along it.
    #[test]
    fn cat_with_signed_dims_and_empty_parts(s in proptest::collection::vec(1usize..=3, 1..=3), sizes in proptest::collection::vec(0usize..=2, 3), pick in any::<usize>(), negative in any::<bool>(), seed in any::<u64>()) {
        let rank = s.len();
        let d = pick % rank;
        let parts: Vec<Tensor> = sizes.iter().enumerate().map(|(i, &n)| {
            let mut p = s.clone();
            p[d] = n;
            random_tensor(&p, seed ^ i as u64)
        }).collect();
        let dim = signed(d, rank, negative);
        let joined = Var::cat(&parts.iter().map(|t| Var::constant(t.clone())).collect::<Vec<_>>().iter().collect::<Vec<_>>(), dim).unwrap();
        prop_assert_eq!(joined.dims()[d], sizes.iter().sum::<usize>());
        if parts.iter().all(|p| p.numel() > 0) {
            assert_gradcheck(|v| Var::cat(&[&v[0], &v[1], &v[2]], dim)?.tanh(), &parts);
        } else {
            let vars: Vec<Var> = parts.iter().map(|t| Var::parameter(t.clone())).collect();
            Var::cat(&vars.iter().collect::<Vec<_>>(), dim).unwrap().tanh().unwrap().sum_all().unwrap().backward().unwrap();
            for (v, p) in vars.iter().zip(&parts) {
                prop_assert_eq!(v.grad().unwrap().dims().to_vec(), p.dims().to_vec());
            }
        }
    }

    /// linear and matmul with any of batch, in and out features 0: the
    /// output is the bias broadcast when `in` is 0, and gradients check
    /// (the bias's, and every input's shape).
    #[test]
    fn linear_with_zero_size_dims(lead in proptest::collection::vec(0usize..=2, 0..=2), fin in 0usize..=2, fout in 0usize..=2, seed in any::<u64>()) {
        let mut xs = lead.clone();
        xs.push(fin);
        let (x, w, b) = (random_tensor(&xs, seed), random_tensor(&[fout, fin], seed ^ 1), random_tensor(&[fout], seed ^ 2));
        let vars: Vec<Var> = [&x, &w, &b].iter().map(|t| Var::parameter((*t).clone())).collect();
        let y = vars[0].linear(&vars[1], Some(&vars[2])).unwrap();
        let mut ys = lead.clone();
        ys.push(fout);
        prop_assert_eq!(y.dims(), ys.clone());
        if fin == 0 {
            let bias = b.broadcast_to(ys).unwrap().to_vec_f64().unwrap();
            assert_values(&y.data(), &bias, "linear with no input features");
        }
        y.tanh().unwrap().sum_all().unwrap().backward().unwrap();
        for (v, t) in vars.iter().zip([&x, &w, &b]) {
            prop_assert_eq!(v.grad().unwrap().dims().to_vec(), t.dims().to_vec());
        }
        if b.numel() > 0 {
            assert_gradcheck(|v| v[0].linear(&v[1], Some(&v[2]))?.tanh(), &[x, w, b]);
        }
    }

    /// conv2d on one unbatched image `[C, H, W]` is conv2d on a batch of
    /// one, squeezed: values and every gradient; and its gradients check.
    #[test]
    fn conv2d_on_an_unbatched_image(case in conv2d_case(), seed in any::<u64>()) {
        let mut t = case.tensors(seed);
        let image = t[0].narrow(0, 0, 1).unwrap().squeeze(0).unwrap().contiguous().unwrap();
        t[0] = image.clone();
        let unbatched: Vec<Var> = t.iter().map(|x| Var::parameter(x.clone())).collect();
        let y = case.apply(&unbatched).unwrap();
        let mut batched_inputs = t.clone();
        batched_inputs[0] = image.unsqueeze(0).unwrap();
        let batched: Vec<Var> = batched_inputs.iter().map(|x| Var::parameter(x.clone())).collect();
        let yb = case.apply(&batched).unwrap();
        prop_assert_eq!(y.dims(), yb.dims()[1..].to_vec());
        assert_values(&y.data(), &yb.data().to_vec_f64().unwrap(), "conv2d");
        y.tanh().unwrap().sum_all().unwrap().backward().unwrap();
        yb.tanh().unwrap().sum_all().unwrap().backward().unwrap();
        for (u, b) in unbatched.iter().zip(&batched) {
            let (gu, gb) = (u.grad().unwrap(), b.grad().unwrap());
            assert_values(&gu, &gb.to_vec_f64().unwrap(), "conv2d gradient");
        }
        assert_gradcheck(|v| case.apply(v), &t);
    }

    /// max_pool2d on one unbatched image, as on a batch of one.
    #[test]
    fn max_pool2d_on_an_unbatched_image(case in max_pool2d_case(), seed in any::<u64>()) {
        let image = case.tensor(seed).narrow(0, 0, 1).unwrap().squeeze(0).unwrap().contiguous().unwrap();
        let y = Var::constant(image.clone()).max_pool2d(case.params).unwrap();
        let yb = Var::constant(image.unsqueeze(0).unwrap()).max_pool2d(case.params).unwrap();
        prop_assert_eq!(y.dims(), yb.dims()[1..].to_vec());
        assert_values(&y.data(), &yb.data().to_vec_f64().unwrap(), "max_pool2d");
        assert_gradcheck(|v| v[0].max_pool2d(case.params), &[image]);
    }

    /// Cross-entropy on logits `[N, C, d...]` (or unbatched `[C]`) with
    /// per-position targets, some ignored, class weights, smoothing and
    /// every reduction: values against the naive twin, gradients checked.
    #[test]
    fn cross_entropy_per_position(n in 1usize..=2, c in 1usize..=4, spatial in proptest::collection::vec(0usize..=2, 0..=2), unbatched in any::<bool>(), ignore_class in any::<bool>(), weighted in any::<bool>(), eps in prop_oneof![Just(0.0), 0.0f64..0.5], reduction in prop_oneof![Just(Reduction::None), Just(Reduction::Mean), Just(Reduction::Sum)], seed in any::<u64>()) {
        let unbatched = unbatched && spatial.is_empty();
        let positions: usize = spatial.iter().product();
        let (logit_shape, target_shape) = if unbatched {
            (vec![c], vec![])
        } else {
            let mut l = vec![n, c];
            l.extend(&spatial);
            let mut t = vec![n];
            t.extend(&spatial);
            (l, t)
        };
        let n = if unbatched { 1 } else { n };
        // The ignored index is -100, or class 0 (then no target is -100).
        let ignore_index = if ignore_class { 0 } else { -100 };
        let target: Vec<i64> = (0..n * positions).map(|i| {
            let r = (seed as usize).wrapping_add(i * 7) % (c + 1);
            if r == c { ignore_index } else { r as i64 }
        }).collect();
        let weight: Vec<f64> = (0..c).map(|k| if weighted { 0.5 + k as f64 * 0.3 } else { 1.0 }).collect();
        let logits = random_tensor(&logit_shape, seed);
        let opts = CrossEntropyOptions {
            reduction,
            label_smoothing: eps,
            ignore_index,
            weight: weighted.then(|| Tensor::from_vec(weight.clone(), [c]).unwrap()),
        };
        let target = Tensor::from_vec(target.clone(), target_shape.clone()).unwrap();
        let got = Var::constant(logits.clone()).cross_entropy_with(&target, &opts).unwrap();
        let want = naive_cross_entropy(&logits.to_vec_f64().unwrap(), (n, c, positions), &target.to_vec::<i64>().unwrap(), &weight, &opts);
        if reduction == Reduction::None {
            prop_assert_eq!(got.dims(), target_shape.clone());
        }
        assert_values(&got.data(), &want, "cross_entropy");
        let counted = want.iter().any(|v| !v.is_nan());
        if logits.numel() > 0 && counted {
            assert_gradcheck(|v| v[0].cross_entropy_with(&target, &opts), &[logits]);
        }
    }
}
