//! The files `gradlab profile` writes: JSON, the roofline SVG and the
//! coloured graphs. Each is written to a temporary file and renamed, so no
//! reader sees half of one.

use super::{ProfileArgs, ProfileRun};
use crate::plot::{roofline, Figure, RooflinePoint};
use gradlab_autograd::profile::DotMetric;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `write_outputs` wrote (and why an SVG of a graph is missing).
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    pub dots: Vec<PathBuf>,
    pub graph_svgs: Vec<PathBuf>,
    pub notes: Vec<String>,
}

impl Written {
    /// `wrote ...` lines.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .json
            .iter()
            .chain(&self.svg)
            .chain(&self.dots)
            .chain(&self.graph_svgs)
            .map(|p| format!("wrote {}", p.display()))
            .collect();
        lines.extend(self.notes.iter().cloned());
        lines
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

/// Writes what `args` asks for, and the two coloured graphs.
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
    for (metric, suffix) in [(DotMetric::Time, "time"), (DotMetric::SavedMemory, "saved")] {
        let Some(dot) = run.profile.to_dot(metric) else {
            continue;
        };
        let name = format!(
            "{}-{suffix}.dot",
            prefix
                .file_name()
                .map_or("profile".into(), |n| n.to_string_lossy())
        );
        let path = prefix.with_file_name(name);
        write_atomically(&path, dot.as_bytes())?;
        match crate::introspect::render_svg(&path) {
            Ok(svg) => written.graph_svgs.push(svg),
            Err(note) => {
                if written.notes.is_empty() {
                    written.notes.push(note);
                }
            }
        }
        written.dots.push(path);
    }
    Ok(written)
}
