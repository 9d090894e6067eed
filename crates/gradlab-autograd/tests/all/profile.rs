//! The profiler against hand counts: node pairing, saved bytes, FLOPs,
//! time accounting and warnings.

use gradlab_autograd::profile::{layer, profile, profile_with, ProfileOptions, Warning};
use gradlab_autograd::{no_grad, Var};
use gradlab_tensor::{DType, Rng, Tensor};

fn tensor(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F32, &mut Rng::new(seed))
}

#[test]
fn forward_and_backward_are_paired_by_node() {
    let a = Var::named_parameter(tensor(&[3, 4], 1), "a");
    let b = Var::named_parameter(tensor(&[4, 5], 2), "b");
    let (result, report) = profile(|| {
        let p = a.matmul(&b)?; // MatmulBackward
        let e = p.exp()?; // ExpBackward
        let s = e.mul(&p)?; // MulBackward: uses p twice over the graph
        let loss = s.sum_all()?; // SumBackward
        loss.backward()?;
        Ok::<_, gradlab_autograd::AutogradError>([p.id(), e.id(), s.id(), loss.id()])
    });
    let ids = result.unwrap();
    assert_eq!(report.steps.len(), 1);
    let nodes = &report.steps[0].nodes;
    let ops: Vec<&str> = nodes.iter().map(|n| n.op).collect();
    assert_eq!(
        ops,
        [
            "MatmulBackward",
            "ExpBackward",
            "MulBackward",
            "SumBackward"
        ]
    );
    for (node, id) in nodes.iter().zip(ids) {
        assert_eq!(node.var_id, id, "{}", node.op);
        let forward = node.forward.as_ref().expect("forward recorded");
        let backward = node.backward.as_ref().expect("backward recorded");
        assert!(
            forward.seconds > 0.0 && backward.seconds > 0.0,
            "{}",
            node.op
        );
        assert!(node.location.contains("profile.rs"), "{}", node.location);
    }
    assert_eq!(nodes[0].input_shapes, vec![vec![3, 4], vec![4, 5]]);
    assert_eq!(nodes[0].output_shape, vec![3, 5]);
    assert_eq!(
        (nodes[0].dtype.as_str(), nodes[0].device.as_str()),
        ("f32", "cpu")
    );
    // The forward matmul: 3 x 5 outputs of 4 multiply-adds.
    assert_eq!(
        nodes[0].forward.as_ref().unwrap().flops,
        2.0 * 3.0 * 4.0 * 5.0
    );
    // Its backward: dA = g @ B^T (3x5 @ 5x4) and dB = A^T @ g (4x3 @ 3x5).
    let backward = nodes[0].backward.as_ref().unwrap();
    let matmul = backward
        .kernels
        .iter()
        .find(|k| k.primitive == "matmul")
        .expect("the backward ran products");
    assert_eq!(matmul.calls, 2);
    assert_eq!(matmul.flops, 2.0 * (3.0 * 5.0 * 4.0 + 4.0 * 3.0 * 5.0));
    // The parameters got their norms.
    let names: Vec<&str> = report.steps[0]
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let expected = a.grad().unwrap().to_vec_f64().unwrap();
    let norm = expected.iter().map(|v| v * v).sum::<f64>().sqrt();
    let got = report.steps[0].parameters[0].norm.unwrap();
    assert!((got - norm).abs() <= 1e-9 * norm, "{got} vs {norm}");
}

#[test]
fn saved_bytes_of_a_two_layer_mlp_match_a_hand_count() {
    // x [8, 5] -> linear(W1 [6, 5], b1 [6]) -> relu -> linear(W2 [3, 6], b2 [3]) -> sum.
    let x = Var::constant(tensor(&[8, 5], 3));
    let w1 = Var::named_parameter(tensor(&[6, 5], 4), "fc1.weight");
    let b1 = Var::named_parameter(tensor(&[6], 5), "fc1.bias");
    let w2 = Var::named_parameter(tensor(&[3, 6], 6), "fc2.weight");
    let b2 = Var::named_parameter(tensor(&[3], 7), "fc2.bias");
    let (result, report) = profile(|| {
        let h = x.linear(&w1, Some(&b1))?;
        let r = h.relu()?;
        let y = r.linear(&w2, Some(&b2))?;
        y.sum_all()?.backward()
    });
    result.unwrap();
    let step = &report.steps[0];
    let saved: Vec<(&str, usize, usize)> = step
        .nodes
        .iter()
        .map(|n| (n.op, n.saved_bytes, n.saved_parameter_bytes))
        .collect();
    let f = 4; // bytes per f32
    assert_eq!(
        saved,
        [
            // x, W1, b1
            ("LinearBackward", (40 + 30 + 6) * f, (30 + 6) * f),
            // h
            ("ReluBackward", 48 * f, 0),
            // r, W2, b2
            ("LinearBackward", (48 + 18 + 3) * f, (18 + 3) * f),
            // y
            ("SumBackward", 24 * f, 0),
        ]
    );
    // At the end of the forward every buffer is held, each once.
    let all = (40 + 30 + 6 + 48 + 48 + 18 + 3 + 24) * f;
    assert_eq!(step.saved_peak_bytes, all);
    assert_eq!(step.saved_peak_activation_bytes, (40 + 48 + 48 + 24) * f);
    // The layers were named after their parameters.
    let titles: Vec<String> = step.nodes.iter().map(|n| n.title()).collect();
    assert_eq!(titles, ["fc1 Linear", "#1 Relu", "fc2 Linear", "#3 Sum"]);
}

#[test]
fn shared_buffers_are_counted_once_and_op_state_is_counted() {
    let x = Var::parameter(tensor(&[2, 3, 4, 4], 8));
    let (result, report) = profile(|| {
        let pooled = x.max_pool2d(gradlab_tensor::MaxPool2dParams::square(2))?;
        let sq = pooled.mul(&pooled)?; // one buffer, held once
        sq.sum_all()?.backward()
    });
    result.unwrap();
    let nodes = &report.steps[0].nodes;
    // The pool keeps its input (96 f32) and its argmax (24 i64).
    assert_eq!(nodes[0].op, "MaxPool2dBackward");
    assert_eq!(nodes[0].saved_bytes, 96 * 4 + 24 * 8);
    assert_eq!(nodes[1].op, "MulBackward");
    assert_eq!(nodes[1].saved_bytes, 24 * 4);
}

/// Forward, backward: a few milliseconds of products, so that the step is
/// mostly kernels.
fn mlp_step(x: &Var, weights: &[Var]) -> gradlab_autograd::Result<()> {
    let mut h = x.clone();
    for (i, w) in weights.iter().enumerate() {
        h = layer(&format!("fc{i}"), || h.matmul(w))?;
        h = h.relu()?;
    }
    h.sum_all()?.backward()
}

#[test]
fn node_times_cover_the_step_and_never_exceed_it() {
    let x = Var::constant(tensor(&[128, 256], 9));
    let weights: Vec<Var> = (0..4)
        .map(|i| Var::parameter(tensor(&[256, 256], 10 + i)))
        .collect();
    mlp_step(&x, &weights).unwrap();
    let mut best = 0.0f64;
    for _ in 0..5 {
        let (result, report) =
            profile_with(ProfileOptions::timing_only(), || mlp_step(&x, &weights));
        result.unwrap();
        let step = &report.steps[0];
        let covered = step.node_seconds() + step.outside.seconds;
        // Node intervals and the profiler's own stretches never overlap.
        assert!(
            covered <= step.seconds() * (1.0 + 1e-9),
            "nodes {covered} s > step {} s",
            step.seconds()
        );
        best = best.max(step.node_seconds() / step.seconds());
    }
    // A scheduler may preempt between two nodes on a busy machine; one
    // clean run out of five is enough to show the accounting is whole.
    assert!(
        best >= 0.9,
        "the nodes cover only {:.1}% of the step",
        100.0 * best
    );
}

#[test]
fn a_parameter_left_out_of_the_loss_is_reported() {
    let used = Var::named_parameter(tensor(&[3], 11), "used");
    let unused = Var::named_parameter(tensor(&[3], 12), "unused");
    let cut = Var::named_parameter(tensor(&[3], 13), "cut");
    let options = ProfileOptions::default().parameters(vec![
        ("used".into(), used.clone()),
        ("unused".into(), unused.clone()),
        ("cut".into(), cut.clone()),
    ]);
    let (result, report) = profile_with(options, || {
        let through_cut = cut.exp()?.detach(); // the graph is cut here
        used.mul(&through_cut)?.sum_all()?.backward()
    });
    result.unwrap();
    let warnings = report.warnings();
    assert_eq!(
        warnings[0],
        &Warning::NoGradient {
            parameter: "unused".into(),
            used_by: None
        }
    );
    match warnings[1] {
        Warning::NoGradient {
            parameter,
            used_by: Some(by),
        } => {
            assert_eq!(parameter, "cut");
            assert!(
                by.starts_with("#0 Exp at ") && by.contains("profile.rs"),
                "{by}"
            );
        }
        other => panic!("expected the cut parameter, got {other:?}"),
    }
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0]
        .to_string()
        .contains("no recorded op of this step used it"));
}

#[test]
fn zero_gradients_and_non_finite_values_are_reported_with_their_node() {
    let dead = Var::named_parameter(Tensor::from_vec(vec![-1.0f32, -2.0], [2]).unwrap(), "dead");
    let inspecting = || ProfileOptions::default().inspecting();
    let (result, report) = profile_with(inspecting(), || dead.relu()?.sum_all()?.backward());
    result.unwrap();
    assert_eq!(
        report.warnings(),
        [&Warning::ZeroGradient {
            parameter: "dead".into()
        }]
    );
    // relu of negative values: every output is an exact zero.
    assert_eq!(
        report.steps[0].nodes[0]
            .activation
            .as_ref()
            .unwrap()
            .zero_fraction,
        1.0
    );
    // Without inspection (the default) the parameter warnings stay, the
    // extra pass over the activations goes.
    let (result, report) = profile(|| dead.relu()?.sum_all()?.backward());
    result.unwrap();
    assert_eq!(report.warnings().len(), 1);
    assert!(report.steps[0].nodes[0].activation.is_none());

    let x = Var::named_parameter(Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap(), "x");
    let (result, report) = profile_with(inspecting(), || x.log()?.sum_all()?.backward());
    result.unwrap();
    let warnings = report.warnings();
    match warnings[0] {
        Warning::NonFinite {
            node, phase, count, ..
        } => {
            assert_eq!(
                (node.as_str(), *phase, *count),
                ("#0 Log", "forward output", 1)
            );
        }
        other => panic!("expected the log node, got {other:?}"),
    }
}

#[test]
fn no_grad_work_and_plain_kernels_stay_outside_the_nodes() {
    let w = Var::parameter(tensor(&[16, 16], 14));
    let (result, report) = profile(|| {
        let y = w.matmul(&w)?;
        // Plain tensor work between ops belongs to no node.
        let _ = no_grad(|| w.matmul(&w))?;
        let loss = y.sum_all()?;
        loss.backward()
    });
    result.unwrap();
    let step = &report.steps[0];
    assert_eq!(step.nodes.len(), 2);
    let outside: Vec<&str> = step.outside.kernels.iter().map(|k| k.primitive).collect();
    assert!(outside.contains(&"matmul"), "{outside:?}");
    assert_eq!(step.nodes[1].forward.as_ref().unwrap().kernels.len(), 1);
}

#[test]
fn steps_are_split_at_the_next_forward_after_a_backward() {
    let w = Var::parameter(tensor(&[4], 15));
    let (result, report) = profile(|| {
        for _ in 0..3 {
            w.mul(&w)?.sum_all()?.backward()?;
        }
        Ok::<_, gradlab_autograd::AutogradError>(())
    });
    result.unwrap();
    assert_eq!(report.steps.len(), 3);
    assert!(report
        .steps
        .iter()
        .all(|s| s.nodes.len() == 2 && s.backward_passes == 1));
    let summary = report.summary();
    assert_eq!(summary.steps, 3);
    assert_eq!(summary.nodes.len(), 2);
    let table = summary.table(None);
    assert!(table.contains("total (2 nodes)"), "{table}");
}

#[test]
fn profiling_is_off_outside_the_closure() {
    assert!(!gradlab_autograd::profile::is_profiling());
    let w = Var::parameter(tensor(&[4], 16));
    let ((), report) = profile(|| assert!(gradlab_autograd::profile::is_profiling()));
    assert!(report.steps[0].nodes.is_empty());
    assert!(!gradlab_autograd::profile::is_profiling());
    assert!(!gradlab_tensor::backend::meter::is_metering());
    // Nothing recorded after the profile ended.
    w.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
}
