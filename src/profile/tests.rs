use super::*;

/// The SVG parses as XML; returns the text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

fn small_args(dir: &std::path::Path) -> ProfileArgs {
    ProfileArgs {
        model: ModelKind::Lenet,
        batch: 4,
        steps: 2,
        threads: Some(1),
        device: "cpu".into(),
        json: Some(dir.join("p.json")),
        svg: Some(dir.join("p.svg")),
        dot: Some(dir.join("lenet-profile")),
        seed: 0,
    }
}

#[test]
fn a_lenet_profile_pairs_every_node_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("gradlab-profile-{}", std::process::id()));
    let args = small_args(&dir);
    let run = measure(&args).unwrap();
    assert_eq!(run.profile.steps.len(), 2);
    let step = &run.profile.steps[1];
    // Every forward op of the step has its backward, and the optimizer's
    // updates ran outside the graph.
    assert!(step
        .nodes
        .iter()
        .all(|n| n.forward.is_some() && n.backward.is_some()));
    let layers: Vec<Option<&str>> = step.nodes.iter().map(|n| n.layer.as_deref()).collect();
    assert_eq!(layers[0], Some("conv1"));
    assert_eq!(layers[layers.len() - 1], Some("loss"));
    assert!(step
        .outside
        .kernels
        .iter()
        .any(|k| k.primitive == "sgd_step"));
    assert!(
        run.profile.warnings().is_empty(),
        "{:?}",
        run.profile.warnings()
    );
    assert_eq!(step.parameters.len(), 10);

    let report = render(&run);
    assert!(report.contains("conv1 Conv2d"), "{report}");
    assert!(
        report.contains("the three costliest nodes:\n1. "),
        "{report}"
    );

    let written = write_outputs(&args, &run).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("p.json")).unwrap()).unwrap();
    assert_eq!(json["steps"].as_array().unwrap().len(), 2);
    assert!(json["machine"]["cpu_model"].is_string());
    let nodes = json["summary"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), step.nodes.len());
    // The roofline: two roofs and one series of nodes, each labelled.
    let t = texts(&std::fs::read_to_string(dir.join("p.svg")).unwrap());
    assert!(t.iter().any(|s| s.starts_with("FMA peak")), "{t:?}");
    assert!(t.iter().any(|s| s.starts_with("bandwidth")), "{t:?}");
    assert_eq!(
        t.iter()
            .filter(|s| *s == "nodes (forward + backward)")
            .count(),
        1
    );
    assert!(t.iter().any(|s| s == "conv1 Conv2d"), "{t:?}");
    // The coloured graphs.
    assert_eq!(written.dots.len(), 2);
    let time = std::fs::read_to_string(dir.join("lenet-profile-time.dot")).unwrap();
    assert!(time.starts_with("digraph gradlab {"));
    assert!(time.contains("conv1: ") && time.contains(" ms"), "{time}");
    let saved = std::fs::read_to_string(dir.join("lenet-profile-saved.dot")).unwrap();
    assert!(saved.contains("MB saved"));
    // ... and the same graphs drawn as SVG beside them, a box per op named
    // as in the table, a box per parameter.
    assert_eq!(written.graph_svgs.len(), 2);
    let graph = step.graph.as_ref().unwrap();
    for (file, unit) in [
        ("lenet-profile-time.svg", " ms"),
        ("lenet-profile-saved.svg", "B"),
    ] {
        let t = texts(&std::fs::read_to_string(dir.join(file)).unwrap());
        for n in &run.profile.summary().nodes {
            assert_eq!(
                t.iter().filter(|s| **s == n.title).count(),
                1,
                "{} in {file}",
                n.title
            );
        }
        assert!(t.iter().any(|s| s == "conv1.weight"), "{t:?}");
        let boxes = t.iter().filter(|s| s.ends_with(unit)).count();
        // Every op's value plus the legend's two ends.
        assert_eq!(boxes, step.nodes.len() + 2, "{file}: {t:?}");
        assert!(graph.nodes.len() > step.nodes.len());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The profile runs the step training runs: in the convnet, each batch
/// norm and the ReLU after it are one node, profiled as the layer
/// `bnN+reluN`, as `gradlab graph` draws them and the trainer executes them.
#[test]
fn a_convnet_profile_shows_batch_norm_and_relu_fused_as_training_runs_them() {
    let dir = std::env::temp_dir().join(format!("gradlab-profile-cn-{}", std::process::id()));
    let args = ProfileArgs {
        model: ModelKind::Convnet,
        batch: 2,
        steps: 1,
        json: None,
        svg: None,
        dot: Some(dir.join("convnet-profile")),
        ..small_args(&dir)
    };
    let run = measure(&args).unwrap();
    let step = &run.profile.steps[0];
    let layers: Vec<(&str, &str)> = step
        .nodes
        .iter()
        .map(|n| (n.layer.as_deref().unwrap_or(""), n.op))
        .collect();
    for n in 1..=3 {
        let fused = format!("bn{n}+relu{n}");
        assert!(
            layers
                .iter()
                .any(|&(l, op)| l == fused && op == "BatchNormReluBackward"),
            "{layers:?}"
        );
        assert!(
            !layers.iter().any(|&(l, _)| l == format!("relu{n}")),
            "{layers:?}"
        );
    }
    assert!(
        !layers.iter().any(|&(_, op)| op == "ReluBackward"),
        "{layers:?}"
    );
    assert!(render(&run).contains("bn1+relu1 BatchNormRelu"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_options_are_errors() {
    let dir = std::env::temp_dir();
    let mut args = small_args(&dir);
    args.batch = 0;
    assert!(measure(&args).unwrap_err().contains("--batch"));
    let mut args = small_args(&dir);
    args.steps = 0;
    assert!(measure(&args).unwrap_err().contains("--steps"));
    let mut args = small_args(&dir);
    args.device = "tpu".into();
    assert!(measure(&args).is_err());
}
