//! Several profiled steps reduced to one row per node (means over the
//! steps), and the table, the verdicts and the coloured graph drawn from it.

use super::report::{KernelTotal, NodeProfile, ParameterGradient, StepProfile, Warning};
use super::stats::ValueStats;
use crate::dot::{Highlight, NodeKind, RecordedGraph};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;

/// The machine's measured roofs: FMA peak and streaming bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Roof {
    pub gflops: f64,
    pub gbps: f64,
}

impl Roof {
    /// The arithmetic intensity (FLOP/byte) where the two roofs meet.
    pub fn ridge(&self) -> f64 {
        self.gflops / self.gbps
    }

    /// The best GFLOP/s the machine allows at `intensity`.
    pub fn attainable(&self, intensity: f64) -> f64 {
        self.gflops.min(intensity * self.gbps)
    }
}

/// What bounds a node on the roofline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Its intensity is above the ridge point: FLOPs limit it at best.
    Compute,
    /// Below the ridge: bytes moved limit it at best.
    Memory,
}

/// One node, over every profiled step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSummary {
    pub index: usize,
    pub title: String,
    pub op: &'static str,
    pub layer: Option<String>,
    pub location: String,
    pub output_shape: Vec<usize>,
    /// Means over the steps.
    pub forward_seconds: f64,
    pub backward_seconds: f64,
    /// FLOPs and bytes of one step's forward and backward.
    pub flops: f64,
    pub bytes: f64,
    pub saved_bytes: usize,
    /// The kernels of forward and backward, by primitive (last step).
    pub kernels: Vec<KernelTotal>,
    /// Statistics of the output (last step, when inspected).
    pub activation: Option<ValueStats>,
}

impl NodeSummary {
    pub fn seconds(&self) -> f64 {
        self.forward_seconds + self.backward_seconds
    }
    pub fn gflops(&self) -> Option<f64> {
        (self.seconds() > 0.0).then(|| self.flops / self.seconds() / 1e9)
    }
    pub fn gbps(&self) -> Option<f64> {
        (self.seconds() > 0.0).then(|| self.bytes / self.seconds() / 1e9)
    }
    pub fn intensity(&self) -> Option<f64> {
        (self.bytes > 0.0).then(|| self.flops / self.bytes)
    }

    /// Compute- or memory-bound by the machine's ridge point (`None` for a
    /// node that moves nothing, such as a view).
    pub fn bound(&self, roof: &Roof) -> Option<Bound> {
        let intensity = self.intensity()?;
        Some(if intensity >= roof.ridge() {
            Bound::Compute
        } else {
            Bound::Memory
        })
    }

    /// Achieved throughput over what the roofline allows at the node's
    /// intensity: FLOP/s against the attainable FLOP/s, or for a node
    /// without arithmetic bytes/s against the bandwidth.
    pub fn roof_share(&self, roof: &Roof) -> Option<f64> {
        let intensity = self.intensity()?;
        if self.flops > 0.0 {
            Some(self.gflops()? / roof.attainable(intensity))
        } else {
            Some(self.gbps()? / roof.gbps)
        }
    }

    /// The kernel that took most of the node's time.
    pub fn dominant_kernel(&self) -> Option<&KernelTotal> {
        self.kernels
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
    }
}

/// Every profiled step reduced to one row per node.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub steps: usize,
    /// Sorted by time, costliest first.
    pub nodes: Vec<NodeSummary>,
    /// Means over the steps: the step's own time (wall time less the
    /// profiler's), its wall time, the profiler's time, and the kernels
    /// that ran outside any node.
    pub step_seconds: f64,
    pub wall_seconds: f64,
    pub profiler_seconds: f64,
    pub outside_seconds: f64,
    pub outside_kernels: Vec<KernelTotal>,
    pub saved_peak_bytes: usize,
    pub saved_peak_activation_bytes: usize,
    pub parameters: Vec<ParameterGradient>,
    pub warnings: Vec<Warning>,
}

/// Means, not medians: the mean of the steps' totals is the total of the
/// nodes' means, so the table's rows add up to its totals.
fn mean(values: Vec<f64>) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Forward and backward kernels of a node, added up by primitive.
fn node_kernels(node: &NodeProfile) -> Vec<KernelTotal> {
    let mut all: Vec<KernelTotal> = Vec::new();
    for k in [&node.forward, &node.backward]
        .into_iter()
        .flatten()
        .flat_map(|p| &p.kernels)
    {
        match all.iter_mut().find(|t| t.primitive == k.primitive) {
            Some(t) => {
                t.calls += k.calls;
                t.seconds += k.seconds;
                t.flops += k.flops;
                t.bytes += k.bytes;
            }
            None => all.push(k.clone()),
        }
    }
    all
}

fn megabytes(bytes: f64) -> f64 {
    bytes / 1e6
}

impl Summary {
    /// The steps reduced: nodes matched by their position in the forward
    /// order (the same model gives the same order every step).
    pub fn of(steps: &[StepProfile]) -> Summary {
        let last = steps.last();
        let mut nodes = Vec::new();
        if let Some(last) = last {
            for node in &last.nodes {
                let same =
                    |s: &StepProfile| s.nodes.get(node.index).filter(|n| n.op == node.op).cloned();
                let matched: Vec<NodeProfile> = steps.iter().filter_map(same).collect();
                let cost = node.cost();
                nodes.push(NodeSummary {
                    index: node.index,
                    title: node.title(),
                    op: node.op,
                    layer: node.layer.clone(),
                    location: node.location.clone(),
                    output_shape: node.output_shape.clone(),
                    forward_seconds: mean(matched.iter().map(|n| n.forward_seconds()).collect()),
                    backward_seconds: mean(matched.iter().map(|n| n.backward_seconds()).collect()),
                    flops: cost.flops,
                    bytes: cost.bytes,
                    saved_bytes: node.saved_bytes,
                    kernels: node_kernels(node),
                    activation: node.activation.clone(),
                });
            }
        }
        nodes.sort_by(|a, b| b.seconds().total_cmp(&a.seconds()));
        let mut warnings: Vec<Warning> = Vec::new();
        for w in steps.iter().flat_map(|s| &s.warnings) {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        Summary {
            steps: steps.len(),
            nodes,
            step_seconds: mean(steps.iter().map(StepProfile::seconds).collect()),
            wall_seconds: mean(steps.iter().map(|s| s.wall_seconds).collect()),
            profiler_seconds: mean(steps.iter().map(|s| s.profiler_seconds).collect()),
            outside_seconds: mean(steps.iter().map(|s| s.outside.seconds).collect()),
            outside_kernels: last.map(|s| s.outside.kernels.clone()).unwrap_or_default(),
            saved_peak_bytes: steps.iter().map(|s| s.saved_peak_bytes).max().unwrap_or(0),
            saved_peak_activation_bytes: steps
                .iter()
                .map(|s| s.saved_peak_activation_bytes)
                .max()
                .unwrap_or(0),
            parameters: last.map(|s| s.parameters.clone()).unwrap_or_default(),
            warnings,
        }
    }

    /// Time in nodes (mean step).
    pub fn node_seconds(&self) -> f64 {
        self.nodes.iter().map(NodeSummary::seconds).sum()
    }

    /// The table sorted by time: forward and backward ms, share of the
    /// step, GFLOP/s, share of the roofline at the node's intensity and
    /// what bounds it (with `roof`), and the MB the node holds for its
    /// backward; then totals.
    pub fn table(&self, roof: Option<&Roof>) -> String {
        let mut out = String::new();
        let step_ms = self.step_seconds * 1e3;
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>11} {:>6} {:>8} {:>7} {:>7} {:>8}",
            "node", "forward ms", "backward ms", "step", "GFLOP/s", "roof", "bound", "saved MB"
        );
        for n in &self.nodes {
            let share = if step_ms > 0.0 {
                format!("{:.1}%", 100.0 * n.seconds() * 1e3 / step_ms)
            } else {
                "-".into()
            };
            let gflops = n.gflops().map_or("-".into(), |g| format!("{g:.2}"));
            let (roof_share, bound) = match roof {
                Some(r) => (
                    n.roof_share(r)
                        .map_or("-".into(), |s| format!("{:.0}%", 100.0 * s)),
                    n.bound(r).map_or("-", |b| match b {
                        Bound::Compute => "compute",
                        Bound::Memory => "memory",
                    }),
                ),
                None => ("-".into(), "-"),
            };
            let _ = writeln!(
                out,
                "{:<24} {:>10.3} {:>11.3} {:>6} {:>8} {:>7} {:>7} {:>8.3}",
                truncate(&n.title, 24),
                n.forward_seconds * 1e3,
                n.backward_seconds * 1e3,
                share,
                gflops,
                roof_share,
                bound,
                megabytes(n.saved_bytes as f64)
            );
        }
        let forward: f64 = self.nodes.iter().map(|n| n.forward_seconds).sum();
        let backward: f64 = self.nodes.iter().map(|n| n.backward_seconds).sum();
        let flops: f64 = self.nodes.iter().map(|n| n.flops).sum();
        let _ = writeln!(
            out,
            "{:<24} {:>10.3} {:>11.3} {:>6} {:>8}",
            format!("total ({} nodes)", self.nodes.len()),
            forward * 1e3,
            backward * 1e3,
            if step_ms > 0.0 {
                format!("{:.1}%", 100.0 * (forward + backward) * 1e3 / step_ms)
            } else {
                "-".into()
            },
            if forward + backward > 0.0 {
                format!("{:.2}", flops / (forward + backward) / 1e9)
            } else {
                "-".into()
            },
        );
        if self.outside_seconds > 0.0 {
            let names: Vec<String> = self
                .outside_kernels
                .iter()
                .map(|k| format!("{} x{}", k.primitive, k.calls))
                .collect();
            let _ = writeln!(
                out,
                "outside the graph: {:.3} ms of kernels ({})",
                self.outside_seconds * 1e3,
                names.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "step: {:.3} ms (mean of {}; the profiler's own {:.3} ms left out); {:.1} GFLOP; saved for backward at peak {:.2} MB ({:.2} MB without parameters)",
            step_ms,
            self.steps,
            self.profiler_seconds * 1e3,
            flops / 1e9,
            megabytes(self.saved_peak_bytes as f64),
            megabytes(self.saved_peak_activation_bytes as f64),
        );
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }

    /// One line for each of the `n` costliest nodes naming what limits it.
    pub fn limits(&self, n: usize, roof: Option<&Roof>) -> Vec<String> {
        self.nodes
            .iter()
            .take(n)
            .enumerate()
            .map(|(rank, node)| {
                format!(
                    "{}. {}",
                    rank + 1,
                    limit_line(node, self.step_seconds, roof)
                )
            })
            .collect()
    }

    /// Per-node activation statistics in forward order (when inspected).
    pub fn activations_table(&self) -> String {
        let mut rows: Vec<&NodeSummary> = self
            .nodes
            .iter()
            .filter(|n| n.activation.is_some())
            .collect();
        rows.sort_by_key(|n| n.index);
        let mut out = String::new();
        if rows.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "{:<24} {:<18} {:>11} {:>11} {:>11} {:>7}",
            "activation", "shape", "mean", "std", "max |x|", "zeros"
        );
        for n in rows {
            let s = n.activation.as_ref().expect("filtered");
            let _ = writeln!(
                out,
                "{:<24} {:<18} {:>11.4e} {:>11.4e} {:>11.4e} {:>6.1}%{}",
                truncate(&n.title, 24),
                format!("{:?}", n.output_shape),
                s.mean,
                s.std,
                s.max_abs,
                100.0 * s.zero_fraction,
                if s.non_finite > 0 {
                    format!("  {} NaN/inf", s.non_finite)
                } else {
                    String::new()
                }
            );
        }
        out
    }

    /// `graph` as DOT with every op node filled by `metric` (white to
    /// red, the costliest node darkest) and its value in the label.
    /// `var_ids` maps the graph's var ids to the nodes' indices.
    pub fn to_dot(
        &self,
        graph: &RecordedGraph,
        var_ids: &HashMap<usize, usize>,
        metric: DotMetric,
    ) -> String {
        let value = |n: &NodeSummary| match metric {
            DotMetric::Time => n.seconds() * 1e3,
            DotMetric::SavedMemory => megabytes(n.saved_bytes as f64),
        };
        let by_index: HashMap<usize, &NodeSummary> =
            self.nodes.iter().map(|n| (n.index, n)).collect();
        let top = self.nodes.iter().map(value).fold(0.0, f64::max);
        graph.to_dot_highlighted(|g| {
            if g.kind != NodeKind::Op {
                return None;
            }
            let node = by_index.get(var_ids.get(&g.var_id)?)?;
            let v = value(node);
            let unit = match metric {
                DotMetric::Time => format!("{v:.3} ms"),
                DotMetric::SavedMemory => format!("{v:.3} MB saved"),
            };
            let note = match &node.layer {
                Some(layer) => format!("{layer}: {unit}"),
                None => unit,
            };
            Some(Highlight {
                fill: heat_colour(if top > 0.0 { v / top } else { 0.0 }),
                note,
            })
        })
    }
}

/// What the coloured graph shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotMetric {
    /// Forward plus backward time.
    Time,
    /// Bytes the node holds until its backward runs.
    SavedMemory,
}

/// White (0) to dark red (1), as `#rrggbb`.
fn heat_colour(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let r = 255.0 - 55.0 * t;
    let gb = 255.0 * (1.0 - t);
    format!("#{:02x}{:02x}{:02x}", r as u8, gb as u8, gb as u8)
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// Names what limits `node`.
fn limit_line(node: &NodeSummary, step_seconds: f64, roof: Option<&Roof>) -> String {
    let share = if step_seconds > 0.0 {
        100.0 * node.seconds() / step_seconds
    } else {
        0.0
    };
    let mut line = format!(
        "{}: {:.3} ms ({:.1}% of the step; forward {:.3}, backward {:.3})",
        node.title,
        node.seconds() * 1e3,
        share,
        node.forward_seconds * 1e3,
        node.backward_seconds * 1e3
    );
    let kernel_seconds: f64 = node.kernels.iter().map(|k| k.seconds).sum();
    let dominant = node
        .dominant_kernel()
        .filter(|_| kernel_seconds > 0.0)
        .map(|k| {
            format!(
                "; {:.0}% of its kernel time in {} ({} call{})",
                100.0 * k.seconds / kernel_seconds,
                k.primitive,
                k.calls,
                if k.calls == 1 { "" } else { "s" }
            )
        });
    let verdict = match (roof, node.intensity()) {
        (_, None) => "moves no data: a view or bookkeeping, limited by per-op overhead".to_string(),
        (None, Some(i)) => format!("intensity {i:.2} FLOP/B (no measured roof to compare)"),
        (Some(r), Some(i)) => {
            let achieved = node.roof_share(r).unwrap_or(0.0);
            match node.bound(r) {
                Some(Bound::Compute) if achieved >= 0.5 => format!(
                    "compute-bound: intensity {i:.1} FLOP/B is above the ridge ({:.1}) and it runs at {:.0}% of the {:.0} GFLOP/s FMA peak: arithmetic limits it",
                    r.ridge(),
                    100.0 * achieved,
                    r.gflops
                ),
                Some(Bound::Compute) => format!(
                    "compute-bound by intensity ({i:.1} FLOP/B, ridge {:.1}) yet at {:.0}% of the {:.0} GFLOP/s peak: the kernel's efficiency limits it, not the machine",
                    r.ridge(),
                    100.0 * achieved,
                    r.gflops
                ),
                _ if achieved >= 0.5 => format!(
                    "memory-bound: intensity {i:.2} FLOP/B is below the ridge ({:.1}); it moves {:.2} MB at {:.1} GB/s, {:.0}% of the roof: memory traffic limits it",
                    r.ridge(),
                    megabytes(node.bytes),
                    node.gbps().unwrap_or(0.0),
                    100.0 * achieved
                ),
                _ => format!(
                    "memory-bound by intensity ({i:.2} FLOP/B, ridge {:.1}) yet at {:.0}% of the roof ({:.1} GB/s): per-call overhead, allocation or a serial pass limits it, not bandwidth",
                    r.ridge(),
                    100.0 * achieved,
                    node.gbps().unwrap_or(0.0)
                ),
            }
        }
    };
    line.push_str(": ");
    line.push_str(&verdict);
    if let Some(d) = dominant {
        line.push_str(&d);
    }
    line
}
