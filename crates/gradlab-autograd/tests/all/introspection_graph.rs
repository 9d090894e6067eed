//! Seeing inside backprop: graph export (DOT and tree), the backward trace,
//! and gradient hooks.

use gradlab_autograd::{capture_trace, topological_order, NodeKind, Var};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Tensor};

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `loss = sum(relu(w * x + b) * w)`: w is used twice, x is a constant.
fn small_graph() -> (Var, Var, Var) {
    let w = Var::named_parameter(t(&[1.0, -2.0, 3.0], &[3]), "w");
    let b = Var::named_parameter(t(&[0.5], &[1]), "b");
    let x = Var::constant(t(&[2.0, 1.0, -1.0], &[3]));
    let h = w.mul(&x).unwrap().add(&b).unwrap().relu().unwrap();
    h.set_name("h");
    let loss = h.mul(&w).unwrap().sum_all().unwrap();
    (loss, w, b)
}

#[test]
fn dot_of_a_small_graph_has_every_node_and_edge() {
    let (loss, _, _) = small_graph();
    let dot = loss.to_dot();
    let file = file!();
    let expected_nodes = [
        "  n0 [label=\"w\\n[3] f64\", shape=box, style=filled, fillcolor=lightblue];".to_string(),
        "  n1 [label=\"constant\\n[3] f64\", shape=box, style=filled, fillcolor=lightgrey];".to_string(),
        format!("  n2 [label=\"MulBackward\\n[3] f64\", shape=ellipse, tooltip=\"{file}:"),
        "  n3 [label=\"b\\n[1] f64\", shape=box, style=filled, fillcolor=lightblue];".to_string(),
        format!("  n4 [label=\"AddBackward\\n[3] f64\", shape=ellipse, tooltip=\"{file}:"),
        format!("  n5 [label=\"ReluBackward\\nh\\n[3] f64\", shape=ellipse, tooltip=\"{file}:"),
        format!("  n6 [label=\"MulBackward\\n[3] f64\", shape=ellipse, tooltip=\"{file}:"),
        format!("  n7 [label=\"SumBackward\\n[] f64\", shape=ellipse, style=filled, fillcolor=darkolivegreen1, tooltip=\"{file}:"),
    ];
    let lines: Vec<&str> = dot.lines().collect();
    assert_eq!(lines[0], "digraph gradlab {");
    assert_eq!(*lines.last().unwrap(), "}");
    let node_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("[label="))
        .collect();
    assert_eq!(node_lines.len(), expected_nodes.len(), "{dot}");
    for (line, want) in node_lines.iter().zip(&expected_nodes) {
        assert!(
            line.starts_with(want.as_str()),
            "{line}\nshould start with\n{want}"
        );
    }
    let edges: Vec<&str> = lines.iter().copied().filter(|l| l.contains("->")).collect();
    assert_eq!(
        edges,
        [
            "  n0 -> n2;",
            "  n1 -> n2;",
            "  n2 -> n4;",
            "  n3 -> n4;",
            "  n4 -> n5;",
            "  n5 -> n6;",
            "  n0 -> n6;",
            "  n6 -> n7;"
        ]
    );
}

#[test]
fn recorded_graph_names_kinds_and_locations() {
    let (w, x) = (
        Var::parameter(t(&[1.0, 2.0], &[2])),
        Var::constant(t(&[3.0, 4.0], &[2])),
    );
    let line = line!() + 1;
    let y = w.mul(&x).unwrap();
    let g = y.graph();
    assert_eq!(g.nodes.len(), 3);
    assert_eq!(g.root, 2);
    assert_eq!(g.nodes[0].kind, NodeKind::Parameter);
    assert_eq!(g.nodes[0].var_id, w.id());
    assert_eq!(g.nodes[1].kind, NodeKind::Constant);
    assert_eq!(g.nodes[2].kind, NodeKind::Op);
    assert_eq!(g.nodes[2].op, Some("MulBackward"));
    assert_eq!(g.nodes[2].inputs, vec![0, 1]);
    assert_eq!(g.edges(), vec![(0, 2), (1, 2)]);
    let location = g.nodes[2].location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{}:{line}:", file!())),
        "{location}"
    );
}

#[test]
fn tree_prints_shared_subgraphs_once() {
    let (loss, _, _) = small_graph();
    assert_eq!(
        loss.graph_tree(),
        "SumBackward [] f64\n\
         └── MulBackward [3] f64\n    \
             ├── ReluBackward \"h\" [3] f64\n    \
             │   └── AddBackward [3] f64\n    \
             │       ├── MulBackward [3] f64\n    \
             │       │   ├── w @1 [3] f64 (parameter)\n    \
             │       │   └── constant [3] f64\n    \
             │       └── b [1] f64 (parameter)\n    \
             └── w @1 (shown above)\n"
    );
}

/// The graph of a small LeNet-like step: conv, pool, linear, cross-entropy.
fn conv_net_loss() -> Var {
    let mut rng = Rng::new(7);
    let x = Var::constant(Tensor::randn([2, 3, 8, 8], 0.0, 1.0, DType::F32, &mut rng));
    let conv_w = Var::named_parameter(
        Tensor::randn([4, 3, 3, 3], 0.0, 0.2, DType::F32, &mut rng),
        "conv1.weight",
    );
    let conv_b = Var::named_parameter(Tensor::zeros([4], DType::F32), "conv1.bias");
    let fc_w = Var::named_parameter(
        Tensor::randn([5, 36], 0.0, 0.2, DType::F32, &mut rng),
        "fc1.weight",
    );
    let target = Tensor::from_vec(vec![1i64, 3], [2]).unwrap();
    let h = x
        .conv2d(&conv_w, Some(&conv_b), Conv2dParams::default())
        .unwrap()
        .relu()
        .unwrap();
    let p = h
        .max_pool2d(MaxPool2dParams::square(2))
        .unwrap()
        .flatten(1)
        .unwrap();
    p.linear(&fc_w, None)
        .unwrap()
        .cross_entropy(&target, Reduction::Mean, 0.0)
        .unwrap()
}

#[test]
fn dot_of_a_conv_net_shows_ops_shapes_and_parameter_names() {
    let loss = conv_net_loss();
    let dot = loss.to_dot();
    for needle in [
        "[label=\"conv1.weight\\n[4, 3, 3, 3] f32\", shape=box",
        "[label=\"conv1.bias\\n[4] f32\", shape=box",
        "[label=\"fc1.weight\\n[5, 36] f32\", shape=box",
        "[label=\"constant\\n[2, 3, 8, 8] f32\", shape=box",
        "[label=\"Conv2dBackward\\n[2, 4, 6, 6] f32\"",
        "[label=\"ReluBackward\\n[2, 4, 6, 6] f32\"",
        "[label=\"MaxPool2dBackward\\n[2, 4, 3, 3] f32\"",
        "[label=\"ReshapeBackward\\n[2, 36] f32\"",
        "[label=\"LinearBackward\\n[2, 5] f32\"",
        "[label=\"CrossEntropyBackward\\n[] f32\", shape=ellipse, style=filled",
    ] {
        assert!(dot.contains(needle), "missing {needle} in\n{dot}");
    }
    let g = loss.graph();
    let titles: Vec<String> = g.nodes.iter().map(|n| n.title()).collect();
    let pos = |name: &str| titles.iter().position(|t| t == name).unwrap();
    // conv takes (input, weight, bias) in argument order.
    let conv = &g.nodes[pos("Conv2dBackward")];
    let conv_inputs: Vec<String> = conv.inputs.iter().map(|&i| titles[i].clone()).collect();
    assert_eq!(conv_inputs, ["constant", "conv1.weight", "conv1.bias"]);
    assert_eq!(g.edges().len(), 3 + 1 + 1 + 1 + 2 + 1);
}

#[test]
fn graph_export_of_a_deep_chain_does_not_recurse() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let x = Var::parameter(t(&[1.0], &[1]));
            let mut y = x.clone();
            for _ in 0..20_000 {
                y = y.add_scalar(1.0).unwrap();
            }
            let g = y.graph();
            assert_eq!(g.nodes.len(), 20_001);
            assert_eq!(y.to_dot().matches("->").count(), 20_000);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn trace_runs_nodes_in_topological_order_with_shapes_and_grad_norms() {
    let (loss, w, b) = small_graph();
    let order: Vec<usize> = topological_order(&loss)
        .iter()
        .filter(|v| !v.is_leaf())
        .map(|v| v.id())
        .collect();
    let graph = loss.graph();
    let ((), events) = capture_trace(|| loss.backward().unwrap());
    assert_eq!(events.iter().map(|e| e.var_id).collect::<Vec<_>>(), order);
    assert_eq!(events.len(), 5);
    for (k, e) in events.iter().enumerate() {
        assert_eq!((e.step, e.total), (k + 1, 5));
        let node = graph.nodes.iter().find(|n| n.var_id == e.var_id).unwrap();
        assert_eq!(Some(e.op), node.op);
        assert_eq!(e.output_shape, node.shape);
        let input_shapes: Vec<Vec<usize>> = node
            .inputs
            .iter()
            .map(|&i| graph.nodes[i].shape.clone())
            .collect();
        assert_eq!(e.input_shapes, input_shapes);
        assert_eq!(e.grad_norms.len(), node.inputs.len());
    }
    assert_eq!(
        events.iter().map(|e| e.op).collect::<Vec<_>>(),
        [
            "SumBackward",
            "MulBackward",
            "ReluBackward",
            "AddBackward",
            "MulBackward"
        ]
    );
    // Hand-derived gradients. w*x + b = [2.5, -1.5, -2.5], relu mask [1, 0, 0],
    // h = [2.5, 0, 0]. loss = sum(h * w).
    // Sum: d/dh*w = ones[3].                          norm sqrt(3)
    // Mul(h, w): dh = w = [1, -2, 3]; dw_direct = h.  norms |w|, |h|
    // Relu: d(pre) = [1, 0, 0].                       norm 1
    // Add: d(w*x) = [1, 0, 0]; db = 1 (summed).       norms 1, 1
    // Mul(w, x): dw = x * [1,0,0] = [2, 0, 0]; x needs none.
    let expect: [&[Option<f64>]; 5] = [
        &[Some(3f64.sqrt())],
        &[Some(norm(&[1.0, -2.0, 3.0])), Some(2.5)],
        &[Some(1.0)],
        &[Some(1.0), Some(1.0)],
        &[Some(2.0), None],
    ];
    for (e, want) in events.iter().zip(expect) {
        assert_eq!(e.grad_norms.len(), want.len());
        for (got, want) in e.grad_norms.iter().zip(want) {
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{e}"),
                (None, None) => {}
                _ => panic!("{e}: expected {want:?}"),
            }
        }
    }
    assert_eq!(
        w.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![4.5, 0.0, 0.0]
    );
    assert_eq!(b.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0]);
    let line = events[1].to_string();
    assert!(
        line.starts_with("[backward   2/5] MulBackward") && line.contains("out [3] <- in [3], [3]"),
        "{line}"
    );
}

#[test]
fn trace_of_a_conv_net_follows_the_topological_order() {
    let loss = conv_net_loss();
    let order: Vec<&'static str> = topological_order(&loss)
        .iter()
        .filter_map(|v| v.op_name())
        .collect();
    let ((), events) = capture_trace(|| loss.backward().unwrap());
    assert_eq!(events.iter().map(|e| e.op).collect::<Vec<_>>(), order);
    assert_eq!(order.first(), Some(&"CrossEntropyBackward"));
    assert_eq!(order.last(), Some(&"Conv2dBackward"));
    let conv = events.last().unwrap();
    assert_eq!(
        conv.input_shapes,
        vec![vec![2, 3, 8, 8], vec![4, 3, 3, 3], vec![4]]
    );
    // The image is a constant: no gradient; weight and bias get one.
    assert!(conv.grad_norms[0].is_none());
    assert!(conv.grad_norms[1].unwrap() > 0.0 && conv.grad_norms[2].unwrap() > 0.0);
}

#[test]
fn a_hooks_replacement_gradient_reaches_the_leaves() {
    // y = 3 * exp(x); a hook on the exp output doubles its gradient, so every
    // leaf gradient below it doubles: dx = 2 * 3 * exp(x).
    let x = Var::parameter(t(&[0.0, 1.0], &[2]));
    let e = x.exp().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_in_hook = seen.clone();
    e.register_hook(move |g| {
        seen_in_hook
            .lock()
            .unwrap()
            .push(g.to_vec::<f64>().unwrap());
        Some(g.mul_scalar(2.0).unwrap())
    });
    e.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![vec![3.0, 3.0]]);
    let got = x.grad().unwrap().to_vec::<f64>().unwrap();
    let want = [6.0, 6.0 * 1f64.exp()];
    assert!(
        (got[0] - want[0]).abs() < 1e-12 && (got[1] - want[1]).abs() < 1e-12,
        "{got:?}"
    );
    // Not retained: the hook saw the gradient, the non-leaf keeps none.
    assert!(e.grad().is_none());
}

#[test]
fn hooks_on_a_leaf_run_in_order_and_may_zero_it() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    x.register_hook(|g| Some(g.add_scalar(1.0).unwrap()));
    x.register_hook(|g| Some(g.mul_scalar(10.0).unwrap()));
    x.mul(&x).unwrap().sum_all().unwrap().backward().unwrap();
    // (2x + 1) * 10
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![30.0, 50.0]);
    let y = Var::parameter(t(&[1.0, 2.0], &[2]));
    y.register_hook(|g| g.zeros_like().ok());
    y.exp().unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(y.grad().unwrap().to_vec::<f64>().unwrap(), vec![0.0, 0.0]);
}

#[test]
fn a_hook_returning_a_wrong_shape_is_an_error() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    let e = x.exp().unwrap();
    e.register_hook(|_| Some(Tensor::zeros([3], DType::F64)));
    let err = e.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(
        err.contains("hook") && err.contains("[2]") && err.contains("[3]"),
        "{err}"
    );
}

#[test]
fn retain_grad_keeps_a_non_leaf_gradient() {
    // h = x * x; loss = sum(h * c): dloss/dh = c, dloss/dx = 2 x c.
    let x = Var::parameter(t(&[1.0, -3.0], &[2]));
    let c = Var::constant(t(&[5.0, 7.0], &[2]));
    let h = x.mul(&x).unwrap();
    h.retain_grad();
    let other = x.exp().unwrap(); // not retained
    h.mul(&c)
        .unwrap()
        .add(&other)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(h.grad().unwrap().to_vec::<f64>().unwrap(), vec![5.0, 7.0]);
    assert!(other.grad().is_none());
    let gx = x.grad().unwrap().to_vec::<f64>().unwrap();
    let want = [10.0 + 1f64.exp(), -42.0 + (-3f64).exp()];
    assert!(
        (gx[0] - want[0]).abs() < 1e-12 && (gx[1] - want[1]).abs() < 1e-12,
        "{gx:?}"
    );
}
