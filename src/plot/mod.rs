//! Pictures: line charts, scatter plots with labelled points, heat maps,
//! and graphs of boxes coloured by a value ([`GraphPicture`]), as SVG
//! (through `plotters`' SVG backend: no fonts or system libraries needed).
//! Training curves, benchmark sweeps, rooflines and the profile's pictures
//! are all drawn here, so they look alike.
//!
//! A [`Figure`] holds one or more panels side by side; each panel is a
//! [`Chart`] (series of points joined by lines, or bare points with labels)
//! or a [`Heatmap`] (a matrix of values, such as a confusion matrix).
//!
//! ```
//! use gradlab::plot::{Chart, Figure, Series};
//! let chart = Chart::new("loss", "epoch", "loss")
//!     .series(Series::line("train", vec![(1.0, 1.9), (2.0, 1.5), (3.0, 1.3)]))
//!     .series(Series::line("test", vec![(1.0, 1.8), (2.0, 1.6), (3.0, 1.5)]));
//! let svg = Figure::single(chart).to_svg().unwrap();
//! assert!(svg.trim_start().starts_with("<svg"));
//! // The legend names both series.
//! assert!(svg.contains("train") && svg.contains("test"));
//! ```

mod draw;
mod graph;
mod roofline;

pub use graph::{scale_colour, GraphBox, GraphPicture, ValueUnit};
pub use roofline::{roofline, RooflinePoint};

use std::path::Path;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Points joined by straight lines, in the order given.
    Line,
    /// Lines with a marker at every point.
    LineAndPoints,
    /// Markers only (a scatter plot).
    Points,
}

/// One named series of `(x, y)` points; optional per-point labels are
/// written beside the markers (node names on a roofline).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
    pub labels: Vec<String>,
}

impl Series {
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            style: Style::Line,
            labels: Vec::new(),
        }
    }

    pub fn line_and_points(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            style: Style::LineAndPoints,
            ..Series::line(name, points)
        }
    }

    pub fn points(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            style: Style::Points,
            ..Series::line(name, points)
        }
    }

    /// Labels written beside the points (one per point, in order).
    pub fn labelled(self, labels: Vec<String>) -> Series {
        Series { labels, ..self }
    }
}

/// Axes with any number of series.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Axis ranges; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

impl Chart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            x_range: None,
            y_range: None,
            series: Vec::new(),
        }
    }

    pub fn series(mut self, s: Series) -> Chart {
        self.series.push(s);
        self
    }

    /// Logarithmic axes (only positive values are drawn on a log axis).
    pub fn log_log(self) -> Chart {
        Chart {
            log_x: true,
            log_y: true,
            ..self
        }
    }

    pub fn with_y_range(self, low: f64, high: f64) -> Chart {
        Chart {
            y_range: Some((low, high)),
            ..self
        }
    }
}

/// A matrix of values drawn as coloured cells with the value in each
/// (a confusion matrix: rows are the true classes, columns the predicted).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub row_label: String,
    pub col_label: String,
    pub row_names: Vec<String>,
    pub col_names: Vec<String>,
    /// `values[row][col]`.
    pub values: Vec<Vec<f64>>,
}

/// One panel of a figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Panel {
    Chart(Chart),
    Heatmap(Heatmap),
}

/// Panels laid out in a grid, `columns` wide.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub panels: Vec<Panel>,
    pub columns: usize,
    /// Size of one panel in pixels.
    pub panel_size: (u32, u32),
}

impl Figure {
    pub fn single(chart: Chart) -> Figure {
        Figure::row(vec![Panel::Chart(chart)])
    }

    /// Panels side by side.
    pub fn row(panels: Vec<Panel>) -> Figure {
        let columns = panels.len().max(1);
        Figure {
            panels,
            columns,
            panel_size: (640, 420),
        }
    }

    /// The figure as an SVG document.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        draw::figure(self)
    }

    /// Writes the SVG to `path` through a temporary file and a rename, so a
    /// reader never sees half a picture.
    pub fn write(&self, path: &Path) -> Result<(), PlotError> {
        write_svg(path, &self.to_svg()?)
    }
}

/// Writes `svg` to `path` through a temporary file and a rename, so a
/// reader never sees half a picture.
fn write_svg(path: &Path, svg: &str) -> Result<(), PlotError> {
    let tmp = path.with_extension(format!("svg.tmp-{}", std::process::id()));
    std::fs::write(&tmp, svg)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            PlotError(format!("cannot write {}: {e}", path.display()))
        })
}

/// A picture that could not be drawn or written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(pub String);

#[cfg(test)]
mod tests;
