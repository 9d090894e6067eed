//! `gradlab graph`: the graph of one training step, as Graphviz DOT (and SVG
//! when Graphviz is installed).

use super::step::step_graph;
use crate::train::args::value_name;
use crate::train::ModelKind;
use gradlab_autograd::NodeKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Flags of `gradlab graph`.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphArgs {
    /// The trainer's model whose training step (forward and cross-entropy
    /// loss on a CIFAR-10-shaped batch) is drawn.
    #[arg(long, value_enum, default_value = "lenet")]
    pub model: ModelKind,
    /// Where the DOT file goes (default: `<model>.dot`); an SVG is written
    /// next to it when `dot` is installed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images in the (random) batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Seed of the parameters and the batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl GraphArgs {
    /// The DOT file's path: `--out`, or `<model>.dot` in the working directory.
    pub fn dot_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.dot", value_name(self.model))))
    }
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

/// Writes the graph and, if possible, its SVG rendering.
pub fn write_graph(args: &GraphArgs) -> Result<GraphOutput, String> {
    let graph = step_graph(args.model, args.batch, args.seed)?;
    let out = args.dot_path();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("graph: cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&out, graph.to_dot())
        .map_err(|e| format!("graph: cannot write {}: {e}", out.display()))?;
    let (svg_path, svg_note) = match render_svg(&out) {
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
        dot_path: out,
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
