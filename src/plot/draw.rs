//! Drawing figures with plotters' SVG backend.

use super::{Chart, Figure, Heatmap, Panel, PlotError, Series, Style};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// A colour per series, distinguishable on white and in print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(super) fn figure(f: &Figure) -> Result<String, PlotError> {
    if f.panels.is_empty() {
        return Err(PlotError("a figure needs at least one panel".into()));
    }
    let columns = f.columns.max(1);
    let rows = f.panels.len().div_ceil(columns);
    let size = (
        f.panel_size.0 * columns as u32,
        f.panel_size.1 * rows as u32,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let areas = root.split_evenly((rows, columns));
        for (panel, area) in f.panels.iter().zip(&areas) {
            match panel {
                Panel::Chart(c) => chart(c, area)?,
                Panel::Heatmap(h) => heatmap(h, area)?,
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The range covering `values` (padded a little), or `given`.
fn range(values: impl Iterator<Item = f64>, log: bool, given: Option<(f64, f64)>) -> (f64, f64) {
    if let Some(r) = given {
        return r;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    }
}

fn chart(c: &Chart, area: &Area<'_>) -> Result<(), PlotError> {
    let points = || c.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(points().map(|p| p.0), c.log_x, c.x_range);
    let (y0, y1) = range(points().map(|p| p.1), c.log_y, c.y_range);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    // plotters types a chart by its coordinates: four combinations of
    // linear and log axes, each drawn by the same generic code.
    match (c.log_x, c.log_y) {
        (false, false) => draw_series(c, builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (true, false) => draw_series(
            c,
            builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(err)?,
        ),
        (false, true) => draw_series(
            c,
            builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(err)?,
        ),
        (true, true) => draw_series(
            c,
            builder
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(err)?,
        ),
    }
}

fn draw_series<'a, X, Y>(
    c: &Chart,
    mut ctx: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> Result<(), PlotError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    ctx.configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let visible = |p: &&(f64, f64)| {
        p.0.is_finite() && p.1.is_finite() && (!c.log_x || p.0 > 0.0) && (!c.log_y || p.1 > 0.0)
    };
    for (i, s) in c.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().filter(visible).copied().collect();
        let legend = move |(x, y): (i32, i32)| {
            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
        };
        if matches!(s.style, Style::Line | Style::LineAndPoints) {
            ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(&s.name)
                .legend(legend);
        }
        if matches!(s.style, Style::Points | Style::LineAndPoints) {
            let marked = ctx
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
            if s.style == Style::Points {
                marked.label(&s.name).legend(legend);
            }
        }
        draw_labels(&mut ctx, s, color)?;
    }
    if c.series.iter().any(|s| !s.name.is_empty()) {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn draw_labels<'a, X, Y>(
    ctx: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    s: &Series,
    color: RGBColor,
) -> Result<(), PlotError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = ("sans-serif", 11).into_font().color(&color);
    let labelled = s
        .points
        .iter()
        .zip(&s.labels)
        .filter(|(p, _)| p.0.is_finite() && p.1.is_finite());
    ctx.draw_series(
        labelled.map(|(&p, label)| {
            EmptyElement::at(p) + Text::new(label.clone(), (6, -6), style.clone())
        }),
    )
    .map_err(err)?;
    Ok(())
}

fn heatmap(h: &Heatmap, area: &Area<'_>) -> Result<(), PlotError> {
    let rows = h.values.len();
    let cols = h.values.iter().map(Vec::len).max().unwrap_or(0);
    if rows == 0 || cols == 0 {
        return Err(PlotError(format!("heat map '{}' has no values", h.title)));
    }
    let max = h
        .values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let mut ctx = ChartBuilder::on(area)
        .caption(&h.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (0..cols - 1).into_segmented(),
            (0..rows - 1).into_segmented(),
        )
        .map_err(err)?;
    // Names sit at the centre of their cell's segment; row 0 at the top,
    // as a matrix is read.
    let name = |names: &[String], v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) if *i < names.len() => {
            names[if flip { names.len() - 1 - i } else { *i }].clone()
        }
        _ => String::new(),
    };
    ctx.configure_mesh()
        .disable_mesh()
        .x_desc(&h.col_label)
        .y_desc(&h.row_label)
        .x_labels(cols)
        .y_labels(rows)
        .x_label_formatter(&|v| name(&h.col_names, v, false))
        .y_label_formatter(&|v| name(&h.row_names, v, true))
        .draw()
        .map_err(err)?;
    let cells = || {
        h.values.iter().enumerate().flat_map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(move |(c, &v)| (rows - 1 - r, c, v))
        })
    };
    ctx.draw_series(cells().map(|(y, c, v)| {
        let shade = if max > 0.0 {
            (v / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let fill = RGBColor(
            (255.0 - 224.0 * shade) as u8,
            (255.0 - 136.0 * shade) as u8,
            (255.0 - 75.0 * shade) as u8,
        );
        Rectangle::new(
            [
                (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
            ],
            fill.filled(),
        )
    }))
    .map_err(err)?;
    ctx.draw_series(cells().map(|(y, c, v)| {
        let text = if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        };
        let style = TextStyle::from(("sans-serif", 11).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        Text::new(
            text,
            (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
            style,
        )
    }))
    .map_err(err)?;
    Ok(())
}
