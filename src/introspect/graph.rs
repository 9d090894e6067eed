//! `gradlab graph`: the graph of one training step, as Graphviz DOT (and SVG
//! when Graphviz is installed).

use super::lenet::LeNet;
use gradlab_autograd::{NodeKind, RecordedGraph};
use gradlab_tensor::{DType, Rng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Models `gradlab graph` can draw.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphModel {
    /// LeNet-5 on a CIFAR-10-shaped batch, with its cross-entropy loss.
    Lenet,
}

/// Flags of `gradlab graph`.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphArgs {
    /// The model whose training step is drawn.
    #[arg(long, value_enum, default_value = "lenet")]
    pub model: GraphModel,
    /// Where the DOT file goes; an SVG is written next to it when `dot` is installed.
    #[arg(long, default_value = "lenet.dot")]
    pub out: PathBuf,
    /// Images in the (random) batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Seed of the parameters and the batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What `gradlab graph` wrote.
#[derive(Clone, Debug)]
pub struct GraphOutput {
    pub dot_path: PathBuf,
    /// The SVG, when the `dot` program was found and succeeded.
    pub svg_path: Option<PathBuf>,
    /// Why no SVG was written, when none was.
    pub svg_note: Option<String>,
    /// Node count per op name (leaves counted as `parameter` / `constant`).
    pub op_counts: BTreeMap<String, usize>,
    pub nodes: usize,
    pub edges: usize,
}

/// The graph of one LeNet training step: forward and mean cross-entropy on
/// a random batch of `batch` images.
///
/// ```
/// use gradlab::autograd::NodeKind;
/// let graph = gradlab::introspect::lenet_step_graph(2, 0).unwrap();
/// let root = &graph.nodes[graph.root];
/// assert_eq!(root.op, Some("CrossEntropyBackward"));
/// let parameters = graph.nodes.iter().filter(|n| n.kind == NodeKind::Parameter).count();
/// assert_eq!(parameters, 10);
/// assert!(graph.to_dot().contains("fc3.bias"));
/// ```
pub fn lenet_step_graph(batch: usize, seed: u64) -> Result<RecordedGraph, String> {
    if batch == 0 {
        return Err("graph: --batch must be at least 1".into());
    }
    let mut rng = Rng::new(seed);
    let net = LeNet::new(DType::F32, &mut rng);
    let (x, target) = LeNet::random_batch(batch, DType::F32, &mut rng);
    x.set_name("images");
    let loss = net
        .loss(&x, &target)
        .map_err(|e| format!("graph: LeNet forward failed: {e}"))?;
    Ok(loss.graph())
}

/// Writes the graph and, if possible, its SVG rendering.
pub fn write_graph(args: &GraphArgs) -> Result<GraphOutput, String> {
    let graph = match args.model {
        GraphModel::Lenet => lenet_step_graph(args.batch, args.seed)?,
    };
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("graph: cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&args.out, graph.to_dot())
        .map_err(|e| format!("graph: cannot write {}: {e}", args.out.display()))?;
    let (svg_path, svg_note) = match render_svg(&args.out) {
        Ok(svg) => (Some(svg), None),
        Err(note) => (None, Some(note)),
    };
    let mut op_counts = BTreeMap::new();
    for node in &graph.nodes {
        let kind = match node.kind {
            NodeKind::Op => node.title(),
            NodeKind::Parameter => "parameter".to_string(),
            NodeKind::Constant => "constant".to_string(),
        };
        *op_counts.entry(kind).or_insert(0) += 1;
    }
    Ok(GraphOutput {
        dot_path: args.out.clone(),
        svg_path,
        svg_note,
        op_counts,
        nodes: graph.nodes.len(),
        edges: graph.edges().len(),
    })
}

/// Runs `dot -Tsvg` on `dot_path`, writing the SVG beside it.
fn render_svg(dot_path: &Path) -> Result<PathBuf, String> {
    let found = Command::new("which")
        .arg("dot")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        return Err(
            "no SVG: the Graphviz `dot` program is not installed (e.g. `apt-get install graphviz`)"
                .into(),
        );
    }
    let svg = dot_path.with_extension("svg");
    let status = Command::new("dot")
        .arg("-Tsvg")
        .arg(dot_path)
        .arg("-o")
        .arg(&svg)
        .status()
        .map_err(|e| format!("no SVG: running dot failed: {e}"))?;
    if status.success() {
        Ok(svg)
    } else {
        Err(format!("no SVG: dot exited with {status}"))
    }
}

/// `gradlab graph`: writes the DOT file (and SVG) and prints a summary.
pub fn run(args: &GraphArgs) -> Result<ExitCode, String> {
    let out = write_graph(args)?;
    println!(
        "wrote {} ({} nodes, {} edges)",
        out.dot_path.display(),
        out.nodes,
        out.edges
    );
    for (op, count) in &out.op_counts {
        println!("  {count:>3} x {op}");
    }
    match (&out.svg_path, &out.svg_note) {
        (Some(svg), _) => println!("wrote {}", svg.display()),
        (None, Some(note)) => println!("{note}"),
        (None, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}
