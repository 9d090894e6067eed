//! Graphs drawn as boxes and arrows, each box filled by a value on a
//! sequential colour scale: the profiler's training step coloured by time
//! and by saved memory, without Graphviz.
//!
//! Layout: every box sits in a row given by its topological depth, the
//! longest path from the graph's inputs, so that every arrow points down.
//! A leaf (a parameter or constant) is moved down to the row just above
//! the first op that uses it, so that a weight sits next to its layer
//! rather than in a long first row of every leaf. Within a row, boxes keep
//! the order of [`GraphPicture::nodes`] and the row is centred.
//!
//! ```
//! use gradlab::plot::{GraphBox, GraphPicture, ValueUnit};
//! let picture = GraphPicture {
//!     title: "step by time".into(),
//!     unit: ValueUnit::Milliseconds,
//!     nodes: vec![
//!         GraphBox::leaf("w", "[3] parameter"),
//!         GraphBox::valued("MulBackward", 0.25, vec![0]),
//!         GraphBox::valued("SumBackward", 0.05, vec![1]),
//!     ],
//! };
//! let svg = picture.to_svg().unwrap();
//! assert!(svg.contains("MulBackward") && svg.contains("0.250 ms"));
//! ```

use super::{write_svg, PlotError};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// How the values of a [`GraphPicture`] are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueUnit {
    /// Milliseconds: `0.412 ms`.
    Milliseconds,
    /// Bytes, written in B, KB, MB or GB (powers of 1000).
    Bytes,
}

impl ValueUnit {
    /// The value as written in a box and on the legend.
    pub fn format(self, value: f64) -> String {
        match self {
            ValueUnit::Milliseconds => format!("{value:.3} ms"),
            ValueUnit::Bytes => {
                let (scaled, unit) = match value.abs() {
                    v if v >= 1e9 => (value / 1e9, "GB"),
                    v if v >= 1e6 => (value / 1e6, "MB"),
                    v if v >= 1e3 => (value / 1e3, "KB"),
                    _ => return format!("{value:.0} B"),
                };
                format!("{scaled:.2} {unit}")
            }
        }
    }
}

/// One box: a name and either a value (coloured by the scale) or a detail
/// line (drawn grey, off the scale: leaves).
#[derive(Clone, Debug, PartialEq)]
pub struct GraphBox {
    pub name: String,
    pub value: Option<f64>,
    /// The second line when there is no value.
    pub detail: String,
    /// Indices of the boxes this one uses; each must come before it.
    pub inputs: Vec<usize>,
}

impl GraphBox {
    /// A box coloured by `value`.
    pub fn valued(name: impl Into<String>, value: f64, inputs: Vec<usize>) -> GraphBox {
        GraphBox {
            name: name.into(),
            value: Some(value),
            detail: String::new(),
            inputs,
        }
    }

    /// A grey box without inputs or value.
    pub fn leaf(name: impl Into<String>, detail: impl Into<String>) -> GraphBox {
        GraphBox {
            name: name.into(),
            value: None,
            detail: detail.into(),
            inputs: Vec::new(),
        }
    }
}

/// A directed graph whose boxes are coloured by a value.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphPicture {
    pub title: String,
    pub unit: ValueUnit,
    /// In topological order: every input before the boxes that use it.
    pub nodes: Vec<GraphBox>,
}

/// The sequential scale from 0 (pale yellow) to 1 (dark brown), through
/// orange: light to dark, so that it reads in grey print too.
pub fn scale_colour(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [
        (255.0, 247.0, 188.0),
        (254.0, 153.0, 41.0),
        (153.0, 52.0, 4.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let scaled = t * (STOPS.len() - 1) as f64;
    let k = (scaled.floor() as usize).min(STOPS.len() - 2);
    let f = scaled - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Fill of a box without a value.
const LEAF_FILL: RGBColor = RGBColor(228, 232, 238);
const EDGE: RGBColor = RGBColor(110, 110, 110);

const BOX_HEIGHT: i32 = 38;
const ROW_GAP: i32 = 34;
const COLUMN_GAP: i32 = 18;
const MARGIN: i32 = 20;
const TITLE_HEIGHT: i32 = 40;
const LEGEND_WIDTH: i32 = 150;
/// Names longer than this are cut, so one long name does not widen every box.
const MAX_NAME_CHARS: usize = 30;

impl GraphPicture {
    /// Row of every box: the longest path from the inputs, leaves moved
    /// down to just above their first user.
    fn rows(&self) -> Vec<usize> {
        let mut depth = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            depth[i] = node.inputs.iter().map(|&j| depth[j] + 1).max().unwrap_or(0);
        }
        let mut first_use = vec![usize::MAX; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &j in &node.inputs {
                first_use[j] = first_use[j].min(depth[i]);
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.inputs.is_empty() && first_use[i] != usize::MAX {
                depth[i] = first_use[i] - 1;
            }
        }
        depth
    }

    fn check(&self) -> Result<(), PlotError> {
        if self.nodes.is_empty() {
            return Err(PlotError(format!("graph '{}' has no nodes", self.title)));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(&bad) = node.inputs.iter().find(|&&j| j >= i) {
                return Err(PlotError(format!(
                    "graph '{}': node {i} ({}) uses node {bad}, which does not come before it",
                    self.title, node.name
                )));
            }
        }
        Ok(())
    }

    fn second_line(&self, node: &GraphBox) -> String {
        match node.value {
            Some(v) => self.unit.format(v),
            None => node.detail.clone(),
        }
    }

    /// The graph as an SVG document.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        self.check()?;
        let rows = self.rows();
        let row_count = rows.iter().max().map_or(0, |&r| r + 1);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); row_count];
        for (i, &r) in rows.iter().enumerate() {
            members[r].push(i);
        }
        let longest_text = self
            .nodes
            .iter()
            .map(|n| {
                n.name
                    .chars()
                    .count()
                    .min(MAX_NAME_CHARS)
                    .max(self.second_line(n).chars().count())
            })
            .max()
            .unwrap_or(0);
        // About 7 pixels a character at 12 px sans-serif.
        let box_width = (longest_text as i32 * 7 + 16).max(90);
        let widest_row = members.iter().map(Vec::len).max().unwrap_or(1) as i32;
        let graph_width = widest_row * box_width + (widest_row - 1) * COLUMN_GAP;
        let width = MARGIN * 2 + graph_width + LEGEND_WIDTH;
        let height = TITLE_HEIGHT
            + MARGIN
            + row_count as i32 * BOX_HEIGHT
            + (row_count as i32 - 1) * ROW_GAP;
        let height = height.max(TITLE_HEIGHT + 260);

        // Top-left corner of every box.
        let mut corner = vec![(0, 0); self.nodes.len()];
        for (r, row) in members.iter().enumerate() {
            let row_width = row.len() as i32 * box_width + (row.len() as i32 - 1) * COLUMN_GAP;
            let x0 = MARGIN + (graph_width - row_width) / 2;
            let y = TITLE_HEIGHT + r as i32 * (BOX_HEIGHT + ROW_GAP);
            for (k, &i) in row.iter().enumerate() {
                corner[i] = (x0 + k as i32 * (box_width + COLUMN_GAP), y);
            }
        }
        let top = self
            .nodes
            .iter()
            .filter_map(|n| n.value)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);

        let err = |e: plotters::drawing::DrawingAreaErrorKind<_>| PlotError(e.to_string());
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32))
                .into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let centred = |size: u32| {
                TextStyle::from(("sans-serif", size).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Center))
            };
            root.draw(&Text::new(
                self.title.clone(),
                (MARGIN + graph_width / 2, TITLE_HEIGHT / 2),
                centred(16),
            ))
            .map_err(err)?;
            // Edges under the boxes: from the bottom of the input to the
            // top of its user, with an arrow head.
            for (i, node) in self.nodes.iter().enumerate() {
                let (cx, cy) = corner[i];
                let end = (cx + box_width / 2, cy);
                for &j in &node.inputs {
                    let (sx, sy) = corner[j];
                    let start = (sx + box_width / 2, sy + BOX_HEIGHT);
                    root.draw(&PathElement::new(vec![start, end], EDGE.stroke_width(1)))
                        .map_err(err)?;
                    root.draw(&arrow_head(start, end)).map_err(err)?;
                }
            }
            for (i, node) in self.nodes.iter().enumerate() {
                let (x, y) = corner[i];
                let fill = match node.value {
                    Some(v) if top > 0.0 => scale_colour(v / top),
                    Some(_) => scale_colour(0.0),
                    None => LEAF_FILL,
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + box_width, y + BOX_HEIGHT)],
                    fill.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + box_width, y + BOX_HEIGHT)],
                    EDGE.stroke_width(1),
                ))
                .map_err(err)?;
                let ink = if luminance(fill) < 0.45 { WHITE } else { BLACK };
                let name: String = node.name.chars().take(MAX_NAME_CHARS).collect();
                let mid = x + box_width / 2;
                for (text, dy) in [(name, 12), (self.second_line(node), 27)] {
                    root.draw(&Text::new(text, (mid, y + dy), centred(12).color(&ink)))
                        .map_err(err)?;
                }
            }
            self.legend(&root, MARGIN * 2 + graph_width, top)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    /// A vertical colour bar from the scale's top value down to 0.
    fn legend(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        x: i32,
        top: f64,
    ) -> Result<(), PlotError> {
        let err = |e: plotters::drawing::DrawingAreaErrorKind<_>| PlotError(e.to_string());
        const STEPS: i32 = 20;
        const STEP_HEIGHT: i32 = 9;
        let y0 = TITLE_HEIGHT + 20;
        let left =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for k in 0..STEPS {
            let t = 1.0 - k as f64 / (STEPS - 1) as f64;
            let y = y0 + k * STEP_HEIGHT;
            root.draw(&Rectangle::new(
                [(x, y), (x + 18, y + STEP_HEIGHT)],
                scale_colour(t).filled(),
            ))
            .map_err(err)?;
        }
        let bottom = y0 + STEPS * STEP_HEIGHT;
        root.draw(&Rectangle::new(
            [(x, y0), (x + 18, bottom)],
            EDGE.stroke_width(1),
        ))
        .map_err(err)?;
        let label = match self.unit {
            ValueUnit::Milliseconds => "time",
            ValueUnit::Bytes => "bytes",
        };
        root.draw(&Text::new(label, (x, y0 - 12), left.clone()))
            .map_err(err)?;
        root.draw(&Text::new(
            self.unit.format(top),
            (x + 24, y0 + STEP_HEIGHT / 2),
            left.clone(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            self.unit.format(0.0),
            (x + 24, bottom - STEP_HEIGHT / 2),
            left,
        ))
        .map_err(err)?;
        Ok(())
    }

    /// Writes the SVG to `path` through a temporary file and a rename.
    pub fn write(&self, path: &Path) -> Result<(), PlotError> {
        write_svg(path, &self.to_svg()?)
    }
}

/// A filled triangle at `end`, pointing along the line from `start`.
fn arrow_head(start: (i32, i32), end: (i32, i32)) -> Polygon<(i32, i32)> {
    let (dx, dy) = ((end.0 - start.0) as f64, (end.1 - start.1) as f64);
    let length = dx.hypot(dy).max(1.0);
    let (ux, uy) = (dx / length, dy / length);
    let (size, half) = (8.0, 4.0);
    let back = (end.0 as f64 - ux * size, end.1 as f64 - uy * size);
    let point = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    Polygon::new(
        vec![
            end,
            point(back.0 - uy * half, back.1 + ux * half),
            point(back.0 + uy * half, back.1 - ux * half),
        ],
        EDGE.filled(),
    )
}

/// Relative luminance (0 black, 1 white), to pick the text's ink.
fn luminance(c: RGBColor) -> f64 {
    (0.2126 * c.0 as f64 + 0.7152 * c.1 as f64 + 0.0722 * c.2 as f64) / 255.0
}
