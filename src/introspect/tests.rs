//! The `graph` and `gradcheck` subcommands, driven as the binary drives them.

use super::*;
use crate::train::{build_model, ModelKind};
use clap::Parser;
use gradlab_autograd::{BackwardOp, GradcheckOptions, NodeKind, Var};
use gradlab_data::CIFAR10_DIMS;
use gradlab_nn::Module;
use gradlab_tensor::{DType, Tensor};
use std::process::ExitCode;

/// The two subcommands' flags as the binary parses them.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    Graph(GraphArgs),
    // Boxed as in the binary: the flags make a large struct.
    Gradcheck(Box<GradcheckArgs>),
}

fn gradcheck_args(line: &str) -> GradcheckArgs {
    let argv = std::iter::once("gradlab").chain(line.split_whitespace());
    match Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .command
    {
        Command::Gradcheck(args) => *args,
        Command::Graph(_) => panic!("not a gradcheck line: {line}"),
    }
}

fn check(line: &str) -> (String, ExitCode) {
    let args = gradcheck_args(line);
    let case = GradcheckCase::from_args(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
    check_case(&case, args.second_order, args.options()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn the_documented_max_pool_check_passes() {
    let args = gradcheck_args(
        "gradcheck --op max_pool2d --shape 2,3,9,9 --kernel 3 --stride 2 --padding 1",
    );
    assert_eq!(args.shapes, vec![vec![2, 3, 9, 9]]);
    assert_eq!(
        (args.kernel, args.stride, args.padding),
        (Some((3, 3)), Some((2, 2)), Some((1, 1)))
    );
    let case = GradcheckCase::from_args(&args).unwrap();
    // Distinct input values: no ties inside any window.
    let mut values = case.inputs[0].1.to_vec::<f64>().unwrap();
    values.sort_by(f64::total_cmp);
    assert!(values.windows(2).all(|w| w[1] - w[0] >= 1e-3));
    let (text, code) = check_case(&case, false, args.options()).unwrap();
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains("input 0: x [2, 3, 9, 9]"), "{text}");
    assert!(
        text.contains("max abs err") && text.trim_end().ends_with("within tolerance"),
        "{text}"
    );
}

#[test]
fn every_op_passes_first_and_second_order_checks_with_its_defaults() {
    for op in GRADCHECK_OPS {
        for order in ["", " --second-order"] {
            let line = format!("gradcheck --op {op}{order}");
            let (text, code) = check(&line);
            assert_eq!(code, ExitCode::SUCCESS, "{line}\n{text}");
        }
    }
}

#[test]
fn op_attributes_reach_the_op() {
    for line in [
        "gradcheck --op conv2d --shape 1,4,7,7 --kernel 3,2 --stride 2,1 --padding 1 --dilation 2 --groups 2 --out-channels 4",
        "gradcheck --op conv2d --shape 1,2,5,5 --shape 3,2,2,2 --no-bias --second-order",
        "gradcheck --op max_pool2d --shape 1,2,7,6 --kernel 2 --stride 2 --ceil-mode --second-order",
        "gradcheck --op sum --shape 2,3,4 --dims 0,2 --keepdim",
        "gradcheck --op max_dim --shape 3,4 --dim 0",
        "gradcheck --op softmax --shape 3,4 --dim 0 --second-order",
        "gradcheck --op cross_entropy --shape 5,3 --reduction sum --label-smoothing 0.1 --second-order",
        "gradcheck --op pow --exponent -1.5",
        "gradcheck --op reshape --shape 2,3,4 --to 4,-1",
        "gradcheck --op permute --shape 2,3,4 --perm 1,2,0",
        "gradcheck --op transpose --shape 2,3,4 --dim0 0 --dim1 1",
        "gradcheck --op narrow --shape 2,5 --dim 1 --start 1 --length 3",
        "gradcheck --op cat --shape 2,1 --shape 2,3 --dim 1",
        "gradcheck --op matmul --shape 2,3,4 --shape 4,5",
        "gradcheck --op linear --shape 2,2,3 --out-features 4",
    ] {
        let (text, code) = check(line);
        assert_eq!(code, ExitCode::SUCCESS, "{line}\n{text}");
    }
    // The attributes are really used: the case's shapes follow them.
    let args = gradcheck_args(
        "gradcheck --op conv2d --shape 1,4,7,7 --kernel 3,2 --groups 2 --out-channels 6",
    );
    let case = GradcheckCase::from_args(&args).unwrap();
    let dims: Vec<Vec<usize>> = case.inputs.iter().map(|(_, t)| t.dims().to_vec()).collect();
    assert_eq!(dims, vec![vec![1, 4, 7, 7], vec![6, 2, 3, 2], vec![6]]);
    let args = gradcheck_args("gradcheck --op log --shape 50");
    let case = GradcheckCase::from_args(&args).unwrap();
    assert!(case.inputs[0]
        .1
        .to_vec::<f64>()
        .unwrap()
        .iter()
        .all(|&v| v >= 0.5));
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for (line, needle) in [
        ("gradcheck --op nope", "unknown op 'nope'"),
        ("gradcheck --op conv2d --shape 2,3", "must have 4 dims"),
        ("gradcheck --op conv2d --shape 1,3,4,4 --groups 2", "conv2d"),
        ("gradcheck --op cross_entropy --shape 4", "must have 2 dims"),
        (
            "gradcheck --op cross_entropy --reduction median",
            "unknown reduction",
        ),
        (
            "gradcheck --op reshape --shape 2,3 --to 4,-1",
            "cannot reshape 6 elements",
        ),
        ("gradcheck --op matmul --shape 2,3 --shape 4,5", "matmul"),
        (
            "gradcheck --op max_pool2d --shape 1,1,2,2 --kernel 5",
            "max_pool2d",
        ),
        ("gradcheck --op pow --exponent inf", "must be finite"),
    ] {
        let args = gradcheck_args(line);
        let err = match GradcheckCase::from_args(&args) {
            Err(e) => e,
            Ok(case) => case
                .check(false, args.options())
                .err()
                .unwrap_or_else(|| panic!("{line} should fail")),
        };
        assert!(err.contains(needle), "{line}: {err}");
    }
    let argv = [
        "gradlab",
        "gradcheck",
        "--op",
        "conv2d",
        "--kernel",
        "1,2,3",
    ];
    let err = Cli::try_parse_from(argv).err().unwrap().to_string();
    assert!(err.contains("expected one or two sizes"), "{err}");
}

#[test]
fn tolerances_too_tight_for_finite_differences_fail_with_a_non_zero_exit() {
    // A huge step makes the central difference of exp visibly wrong.
    let (text, code) = check("gradcheck --op exp --eps 0.5 --atol 0 --rtol 0");
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert!(
        text.contains("FAIL")
            && text.contains("FAILED: input 0 out of tolerance; node 1 ExpBackward disagrees"),
        "{text}"
    );
}

/// `x²` with the derivative written wrong on purpose: `3x` instead of `2x`.
struct BrokenSquareBackward;

impl BackwardOp for BrokenSquareBackward {
    fn name(&self) -> &'static str {
        "BrokenSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> gradlab_autograd::Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul(&inputs[0].mul_scalar(3.0)?)?)])
    }
}

#[test]
fn a_wrong_backward_fails_the_check() {
    let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0, 1.5, -0.25, 3.0], [2, 3]).unwrap();
    let case = GradcheckCase::new("broken_square", vec![("x".into(), x)], |v| {
        let d = v[0].data();
        Var::from_op(d.mul(&d)?, &[&v[0]], BrokenSquareBackward)
    });
    let (text, code) = check_case(&case, false, GradcheckOptions::default()).unwrap();
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    let report = case.check(false, GradcheckOptions::default()).unwrap();
    let row = &report.inputs[0];
    assert!(!row.passed);
    // analytic / numeric = 3x / 2x at every element.
    assert!((row.analytic / row.numeric - 1.5).abs() < 1e-6, "{text}");
    let table_row = text.lines().find(|l| l.starts_with("0 ")).unwrap();
    assert!(
        table_row.contains("[2, 3]") && table_row.ends_with("FAIL"),
        "{text}"
    );
    assert!(text.contains("FAILED: input 0 out of tolerance"), "{text}");
}

#[test]
fn graph_writes_lenet_dot_with_named_parameters() {
    let dir = std::env::temp_dir().join(format!("gradlab-graph-test-{}", std::process::id()));
    let out = dir.join("nested").join("lenet.dot");
    let argv = [
        "gradlab",
        "graph",
        "--model",
        "lenet",
        "--batch",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let args = match Cli::try_parse_from(argv).unwrap().command {
        Command::Graph(args) => args,
        Command::Gradcheck(_) => unreachable!(),
    };
    let written = write_graph(&args).unwrap();
    let dot = std::fs::read_to_string(&out).unwrap();
    for name in [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ] {
        assert!(
            dot.contains(&format!("[label=\"{name}\\n")),
            "{name} missing"
        );
    }
    assert!(dot.contains("[label=\"images\\n[2, 3, 32, 32] f32\", shape=box"));
    assert!(dot.contains("[label=\"Conv2dBackward\\n[2, 6, 28, 28] f32\""));
    assert!(dot.contains("[label=\"MaxPool2dBackward\\n[2, 16, 5, 5] f32\""));
    assert!(dot.contains("[label=\"CrossEntropyBackward\\n[] f32\""));
    let counts = &written.op_counts;
    assert_eq!(counts["Conv2dBackward"], 2);
    assert_eq!(counts["MaxPool2dBackward"], 2);
    assert_eq!(counts["ReluBackward"], 4);
    assert_eq!(counts["LinearBackward"], 3);
    assert_eq!(counts["ReshapeBackward"], 1);
    assert_eq!(counts["CrossEntropyBackward"], 1);
    assert_eq!(counts["parameter"], 10);
    assert_eq!(counts["constant"], 1);
    assert_eq!(written.nodes, 24);
    // conv: 3 inputs each, linear: 3 each, relu/pool/reshape/loss: 1 each.
    assert_eq!(written.edges, 2 * 3 + 3 * 3 + 4 + 2 + 1 + 1);
    assert!(written.svg_path.is_some() || written.svg_note.as_deref().unwrap().contains("dot"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lenet_graph_structure() {
    let graph = step_graph(ModelKind::Lenet, 1, 3).unwrap();
    let titles: Vec<String> = graph.nodes.iter().map(|n| n.title()).collect();
    let root = &graph.nodes[graph.root];
    assert_eq!(root.op, Some("CrossEntropyBackward"));
    // Walk from the loss down the first input of each op: the forward pass in reverse.
    let mut chain = Vec::new();
    let mut at = graph.root;
    while graph.nodes[at].kind == NodeKind::Op {
        chain.push(titles[at].as_str());
        at = graph.nodes[at].inputs[0];
    }
    chain.push(titles[at].as_str());
    assert_eq!(
        chain,
        [
            "CrossEntropyBackward",
            "LinearBackward",
            "ReluBackward",
            "LinearBackward",
            "ReluBackward",
            "LinearBackward",
            "ReshapeBackward",
            "MaxPool2dBackward",
            "ReluBackward",
            "Conv2dBackward",
            "MaxPool2dBackward",
            "ReluBackward",
            "Conv2dBackward",
            "images"
        ]
    );
    assert!(step_graph(ModelKind::Lenet, 0, 0)
        .unwrap_err()
        .contains("--batch"));
}

/// Every parameter of the trainer's model (as `gradlab train` builds it)
/// appears in the graph under its `state_dict` name and with its shape.
fn assert_graph_holds_the_trainer_parameters(
    kind: ModelKind,
    graph: &gradlab_autograd::RecordedGraph,
) {
    let trainer_model =
        build_model(kind, CIFAR10_DIMS, 10, &mut gradlab_tensor::Rng::new(0)).unwrap();
    let mut expected: Vec<(String, Vec<usize>)> = trainer_model
        .parameters()
        .into_iter()
        .map(|(name, p)| (name, p.dims()))
        .collect();
    let mut drawn: Vec<(String, Vec<usize>)> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Parameter)
        .map(|n| (n.name.clone().expect("named parameter"), n.shape.clone()))
        .collect();
    expected.sort();
    drawn.sort();
    assert_eq!(drawn, expected, "{kind:?}");
}

#[test]
fn graphs_are_of_the_trainer_models() {
    let lenet = step_graph(ModelKind::Lenet, 2, 0).unwrap();
    assert_graph_holds_the_trainer_parameters(ModelKind::Lenet, &lenet);

    let convnet = step_graph(ModelKind::Convnet, 2, 0).unwrap();
    assert_graph_holds_the_trainer_parameters(ModelKind::Convnet, &convnet);
    let node = |i: usize| &convnet.nodes[i];
    let loss = node(convnet.root);
    assert_eq!(loss.op, Some("CrossEntropyBackward"));
    // The head: global average pooling of the last block's [2, 256, 4, 4]
    // maps to 256 features per image, then one linear layer.
    let head = node(loss.inputs[0]);
    assert_eq!(
        (head.op, head.shape.as_slice()),
        (Some("LinearBackward"), &[2, 10][..])
    );
    let titles: Vec<String> = head.inputs.iter().map(|&i| node(i).title()).collect();
    assert_eq!(titles, ["MeanBackward", "fc.weight", "fc.bias"]);
    let pooled = node(head.inputs[0]);
    assert_eq!(pooled.shape, [2, 256]);
    let last_block = node(pooled.inputs[0]);
    assert_eq!(
        (last_block.op, last_block.shape.as_slice()),
        (Some("MaxPool2dBackward"), &[2, 256, 4, 4][..])
    );
    let count = |op: &str| convnet.nodes.iter().filter(|n| n.op == Some(op)).count();
    assert_eq!(
        (
            count("Conv2dBackward"),
            count("NativeBatchNormBackward"),
            count("MaxPool2dBackward"),
            count("ReluBackward")
        ),
        (3, 3, 3, 3)
    );
}

#[test]
fn the_dot_file_is_named_after_the_model_unless_out_is_given() {
    let args = |line: &str| {
        let argv = std::iter::once("gradlab").chain(line.split_whitespace());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Graph(args) => args,
            Command::Gradcheck(_) => unreachable!(),
        }
    };
    assert_eq!(args("graph").dot_path(), std::path::Path::new("lenet.dot"));
    assert_eq!(
        args("graph --model convnet").dot_path(),
        std::path::Path::new("convnet.dot")
    );
    assert_eq!(
        args("graph --model convnet --out g/c.dot").dot_path(),
        std::path::Path::new("g/c.dot")
    );
}

#[test]
fn gradcheck_knows_every_single_op_of_the_fixture_format() {
    let programs: Vec<&str> = crate::fixtures::KNOWN_OPS
        .iter()
        .copied()
        .filter(|op| !GRADCHECK_OPS.contains(op))
        .collect();
    assert_eq!(programs, ["lenet_loss", "sgd_steps"]);
    assert_eq!(GRADCHECK_OPS.len() + 2, crate::fixtures::KNOWN_OPS.len());
}

fn execute(line: &str) -> (String, ExitCode) {
    execute_gradcheck(&gradcheck_args(line)).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The op names of the rows of a per-node table, in order.
fn node_table_ops(text: &str) -> Vec<String> {
    let start = text
        .lines()
        .position(|l| l.starts_with("node  op"))
        .unwrap_or_else(|| panic!("no per-node table:\n{text}"));
    text.lines()
        .skip(start + 1)
        .map_while(|l| {
            let mut cells = l.split_whitespace();
            let number = cells.next()?;
            number.parse::<usize>().ok()?;
            cells.next().map(str::to_string)
        })
        .collect()
}

#[test]
fn lenet_localize_checks_every_node_of_the_training_step_and_passes() {
    let (text, code) = execute("gradcheck --model lenet --localize");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    // Every parameter along random directions, named.
    for name in ["conv1.weight", "conv2.bias", "fc1.weight", "fc3.bias"] {
        let row = text.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(row.contains("3 dirs") && row.ends_with("ok"), "{row}");
    }
    // Then every node of the step alone, in topological order.
    assert_eq!(
        node_table_ops(&text),
        [
            "Conv2dBackward",
            "ReluBackward",
            "MaxPool2dBackward",
            "Conv2dBackward",
            "ReluBackward",
            "MaxPool2dBackward",
            "ReshapeBackward",
            "LinearBackward",
            "ReluBackward",
            "LinearBackward",
            "ReluBackward",
            "LinearBackward",
            "CrossEntropyBackward"
        ]
    );
    assert!(
        text.contains("every node agrees (13 nodes checked)"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("every node agrees (13 nodes)"),
        "{text}"
    );
    // Call sites point at the layers that called each op.
    assert!(
        text.contains("crates/gradlab-nn/src/layers/conv.rs:"),
        "{text}"
    );
}

#[test]
fn a_wrong_op_in_lenet_fails_and_is_named_with_its_call_site() {
    let (text, code) = execute("gradcheck --model lenet --localize --inject-wrong-op");
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    // It sits after relu1: the parameters upstream of it (conv1) fail.
    for name in ["conv1.weight", "conv1.bias"] {
        let row = text.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(row.ends_with("FAIL"), "{row}");
    }
    let row = text.lines().find(|l| l.starts_with("fc1.weight")).unwrap();
    assert!(row.ends_with("ok"), "{row}");
    assert!(
        text.contains("first node that disagrees: node 3 MisscaledBackward, called at src/introspect/model_check.rs:"),
        "{text}"
    );
    assert!(
        text.contains("  feeds node 4 MaxPool2dBackward (crates/gradlab-nn/src/layers/pool.rs:"),
        "{text}"
    );
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("FAILED: input conv1.weight, conv1.bias out of tolerance; node 3 MisscaledBackward disagrees"),
        "{last}"
    );
    // Without --localize the failing parameters still trigger localisation.
    let (text, code) = execute("gradcheck --model lenet --inject-wrong-op");
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert!(text.contains("node 3 MisscaledBackward"), "{text}");
}

#[test]
fn convnet_localize_checks_batch_norm_nodes_too() {
    // A small sample per node input keeps the larger network quick.
    let (text, code) = execute("gradcheck --model convnet --localize --node-elements 32");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    let ops = node_table_ops(&text);
    assert_eq!(ops.len(), 15, "{text}");
    assert_eq!(
        ops.iter()
            .filter(|op| *op == "NativeBatchNormBackward")
            .count(),
        3
    );
    assert!(text.contains("32/131072+2d"), "{text}");
}

#[test]
fn lenet_drift_names_every_node_with_finite_numbers_and_f64_against_itself_is_zero() {
    let step = model_check::ModelStep::new(ModelKind::Lenet, 2, 0, false).unwrap();
    let report = step.drift(0).unwrap();
    let ops: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.location.is_some())
        .map(|r| r.what.as_str())
        .collect();
    assert_eq!(ops.len(), 13, "{report}");
    assert_eq!(ops[0], "Conv2dBackward");
    assert_eq!(ops[12], "CrossEntropyBackward");
    let leaves: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.location.is_none())
        .map(|r| r.what.as_str())
        .collect();
    assert_eq!(leaves.len(), 11, "{report}");
    assert_eq!(leaves[0], "images");
    assert!(leaves.contains(&"fc2.weight"));
    for r in &report.rows {
        assert!(
            r.output_rel_error.is_finite() && r.grad_rel_error.is_finite(),
            "{report}"
        );
        // f32 rounding through a dozen ops, not more.
        assert!(
            r.output_rel_error < 1e-5 && r.grad_rel_error < 1e-5,
            "{report}"
        );
    }
    assert!(report.rows.iter().any(|r| r.output_rel_error > 0.0));
    let same = step.drift_against(DType::F64, 0).unwrap();
    assert_eq!(same.rows.len(), report.rows.len());
    for r in &same.rows {
        assert_eq!((r.output_rel_error, r.grad_rel_error), (0.0, 0.0), "{same}");
    }
    let (text, code) = execute("gradcheck --model lenet --drift");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains("largest output error: node "), "{text}");
}

#[test]
fn op_checks_localise_and_drift_on_request() {
    let (text, code) = execute("gradcheck --op softmax --localize");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert_eq!(node_table_ops(&text), ["SoftmaxBackward"]);
    assert!(
        text.trim_end().ends_with("every node agrees (1 node)"),
        "{text}"
    );

    let (text, code) = execute("gradcheck --op conv2d --inject-wrong-op");
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert_eq!(
        node_table_ops(&text),
        ["Conv2dBackward", "MisscaledBackward"]
    );
    assert!(
        text.contains("first node that disagrees: node 2 MisscaledBackward"),
        "{text}"
    );

    let (text, code) = execute("gradcheck --op max_pool2d --drift");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(
        text.starts_with("drift max_pool2d:") && text.contains("MaxPool2dBackward"),
        "{text}"
    );

    // The fast mode from the command line.
    let (text, code) = execute("gradcheck --op relu --shape 2,3 --directions 2");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains("2 dirs"), "{text}");
}

#[test]
fn model_and_mode_flags_are_checked() {
    for argv in [
        vec!["gradlab", "gradcheck"],
        vec!["gradlab", "gradcheck", "--op", "exp", "--model", "lenet"],
        vec!["gradlab", "gradcheck", "--model", "resnet"],
    ] {
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    }
    for (line, needle) in [
        ("gradcheck --model lenet --second-order", "not a --model"),
        ("gradcheck --model lenet --batch 0", "at least 1"),
        (
            "gradcheck --model lenet --directions 0",
            "at least one direction",
        ),
    ] {
        let err = execute_gradcheck(&gradcheck_args(line)).unwrap_err();
        assert!(err.contains(needle), "{line}: {err}");
    }
    // The test aid stays out of the help text.
    use clap::CommandFactory;
    let help = Cli::command()
        .find_subcommand_mut("gradcheck")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        help.contains("--localize") && help.contains("--drift"),
        "{help}"
    );
    assert!(!help.contains("inject"), "{help}");
}

#[test]
fn kinks_fail_makes_lenets_tied_pool_windows_failures() {
    // ReLU zeros tie in LeNet's max-pool windows: non-differentiable points,
    // reported apart by default and failures with --kinks-fail.
    let (text, code) = execute("gradcheck --model lenet --localize");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(
        text.contains("of node 3 MaxPool2dBackward (not counted as failures)"),
        "{text}"
    );
    let (text, code) = execute("gradcheck --model lenet --localize --kinks-fail");
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert!(
        text.contains("first node that disagrees: node 3 MaxPool2dBackward")
            && text.contains("(counted as failures)"),
        "{text}"
    );
}
