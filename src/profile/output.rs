//! The files `gradlab profile` writes: JSON, the roofline SVG and the
//! coloured graphs (DOT, and SVG drawn by [`crate::plot`]). Each is written to a temporary file and renamed, so no
//! reader sees half of one.

use super::{ProfileArgs, ProfileRun};
use crate::plot::{roofline, Figure, GraphBox, GraphPicture, RooflinePoint, ValueUnit};
use gradlab_autograd::profile::{DotMetric, NodeSummary};
use gradlab_autograd::NodeKind;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `write_outputs` wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    pub dots: Vec<PathBuf>,
    pub graph_svgs: Vec<PathBuf>,
}

impl Written {
    /// `wrote ...` lines.
    pub fn lines(&self) -> Vec<String> {
        self.json
            .iter()
            .chain(&self.svg)
            .chain(&self.dots)
            .chain(&self.graph_svgs)
            .map(|p| format!("wrote {}", p.display()))
            .collect()
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

#[derive(Serialize)]
struct ProfileJson<'a> {
    setup: &'a str,
    machine: &'a crate::bench::Fingerprint,
    roof: &'a gradlab_autograd::profile::Roof,
    summary: gradlab_autograd::profile::Summary,
    steps: &'a [gradlab_autograd::profile::StepProfile],
}

/// The profile as JSON: setup, machine, roofs, the per-node summary and
/// every node of every step.
pub fn to_json(run: &ProfileRun) -> Result<String, String> {
    let doc = ProfileJson {
        setup: &run.setup,
        machine: &run.machine,
        roof: &run.roof,
        summary: run.profile.summary(),
        steps: &run.profile.steps,
    };
    serde_json::to_string_pretty(&doc).map_err(|e| format!("cannot encode the profile: {e}"))
}

/// The roofline with every node of the summary placed (forward and
/// backward together).
pub fn roofline_figure(run: &ProfileRun) -> Figure {
    let points = run
        .profile
        .summary()
        .nodes
        .iter()
        .filter_map(|n| {
            Some(RooflinePoint {
                label: n.title.clone(),
                intensity: n.intensity()?,
                gflops: n.gflops()?,
            })
        })
        .collect();
    let chart = roofline(
        &format!("roofline: {}", run.setup),
        run.roof.gflops,
        run.roof.gbps,
        vec![("nodes (forward + backward)".into(), points)],
    );
    let mut figure = Figure::single(chart);
    figure.panel_size = (900, 600);
    figure
}

/// The last profiled step's graph with every op's box coloured by
/// `metric` (means over the steps): forward plus backward milliseconds, or
/// the bytes it saves for its backward. Leaves are grey boxes with their
/// shape. `None` when no backward pass ran.
pub fn graph_picture(run: &ProfileRun, metric: DotMetric) -> Option<GraphPicture> {
    let last = run.profile.steps.iter().rev().find(|s| s.graph.is_some())?;
    let graph = last.graph.as_ref()?;
    let summary = run.profile.summary();
    let by_var: HashMap<usize, &NodeSummary> = {
        let by_index: HashMap<usize, &NodeSummary> =
            summary.nodes.iter().map(|n| (n.index, n)).collect();
        last.nodes
            .iter()
            .filter_map(|n| Some((n.var_id, *by_index.get(&n.index)?)))
            .collect()
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|g| match (g.kind, by_var.get(&g.var_id)) {
            (NodeKind::Op, Some(node)) => {
                let value = match metric {
                    DotMetric::Time => node.seconds() * 1e3,
                    DotMetric::SavedMemory => node.saved_bytes as f64,
                };
                GraphBox::valued(node.title.clone(), value, g.inputs.clone())
            }
            (kind, _) => {
                let what = match kind {
                    NodeKind::Parameter => "parameter",
                    NodeKind::Constant => "constant",
                    // An op the profile did not see (made before it began).
                    NodeKind::Op => "not profiled",
                };
                GraphBox {
                    inputs: g.inputs.clone(),
                    ..GraphBox::leaf(g.title(), format!("{:?} {what}", g.shape))
                }
            }
        })
        .collect();
    let (what, unit) = match metric {
        DotMetric::Time => ("forward + backward time", ValueUnit::Milliseconds),
        DotMetric::SavedMemory => ("bytes saved for backward", ValueUnit::Bytes),
    };
    Some(GraphPicture {
        title: format!("{what}: {}", run.setup),
        unit,
        nodes,
    })
}

/// Writes what `args` asks for, and the two coloured graphs as DOT and
/// SVG: `<PREFIX>-time.{dot,svg}` and `<PREFIX>-saved.{dot,svg}`.
pub fn write_outputs(args: &ProfileArgs, run: &ProfileRun) -> Result<Written, String> {
    let mut written = Written::default();
    if let Some(path) = &args.json {
        write_atomically(path, to_json(run)?.as_bytes())?;
        written.json = Some(path.clone());
    }
    if let Some(path) = &args.svg {
        roofline_figure(run)
            .write(path)
            .map_err(|e| e.to_string())?;
        written.svg = Some(path.clone());
    }
    let prefix = args.dot.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-profile",
            crate::train::args::value_name(args.model)
        ))
    });
    let stem = prefix
        .file_name()
        .map_or("profile".into(), |n| n.to_string_lossy().into_owned());
    for (metric, suffix) in [(DotMetric::Time, "time"), (DotMetric::SavedMemory, "saved")] {
        let (Some(dot), Some(picture)) = (run.profile.to_dot(metric), graph_picture(run, metric))
        else {
            continue;
        };
        let path = prefix.with_file_name(format!("{stem}-{suffix}.dot"));
        write_atomically(&path, dot.as_bytes())?;
        written.dots.push(path);
        let svg = prefix.with_file_name(format!("{stem}-{suffix}.svg"));
        if let Some(parent) = svg.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        picture.write(&svg).map_err(|e| e.to_string())?;
        written.graph_svgs.push(svg);
    }
    Ok(written)
}
