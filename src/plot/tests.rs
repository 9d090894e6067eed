use super::*;

/// The SVG parses as XML; returns the text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn charts_are_xml_with_a_legend_entry_per_series() {
    let chart = Chart::new("GEMM", "n", "GFLOP/s")
        .log_log()
        .series(Series::line_and_points(
            "fast",
            vec![(64.0, 20.0), (256.0, 90.0), (1024.0, 110.0)],
        ))
        .series(Series::line(
            "reference",
            vec![(64.0, 1.0), (256.0, 1.1), (1024.0, 0.9)],
        ))
        .series(
            Series::points("nodes", vec![(1.0, 5.0), (10.0, 50.0)])
                .labelled(vec!["conv1".into(), "fc1".into()]),
        );
    let t = texts(&Figure::single(chart).to_svg().unwrap());
    for name in [
        "fast",
        "reference",
        "nodes",
        "conv1",
        "fc1",
        "GEMM",
        "GFLOP/s",
    ] {
        assert_eq!(
            t.iter().filter(|s| *s == name).count(),
            1,
            "{name} in {t:?}"
        );
    }
}

#[test]
fn heatmaps_write_every_cell() {
    let h = Heatmap {
        title: "confusion".into(),
        row_label: "true".into(),
        col_label: "predicted".into(),
        row_names: vec!["cat".into(), "dog".into()],
        col_names: vec!["cat".into(), "dog".into()],
        values: vec![vec![7.0, 3.0], vec![1.0, 9.0]],
    };
    let t = texts(&Figure::row(vec![Panel::Heatmap(h)]).to_svg().unwrap());
    for cell in ["7", "3", "1", "9", "true", "predicted"] {
        assert_eq!(
            t.iter().filter(|s| *s == cell).count(),
            1,
            "{cell} in {t:?}"
        );
    }
    for name in ["cat", "dog"] {
        assert_eq!(
            t.iter().filter(|s| *s == name).count(),
            2,
            "{name} in {t:?}"
        );
    }
}

#[test]
fn empty_or_degenerate_data_still_draws() {
    let chart = Chart::new("one point", "x", "y")
        .series(Series::line("a", vec![(1.0, 1.0)]))
        .series(Series::line("nan", vec![(f64::NAN, 2.0)]));
    texts(&Figure::single(chart).to_svg().unwrap());
    assert!(Figure::row(vec![]).to_svg().is_err());
}

#[test]
fn writing_leaves_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("gradlab-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.svg");
    Figure::single(
        Chart::new("t", "x", "y").series(Series::line("s", vec![(0.0, 0.0), (1.0, 1.0)])),
    )
    .write(&path)
    .unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("c.svg")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "writes demo pictures to /tmp for a look"]
fn demo_pictures() {
    let chart = Chart::new("loss", "epoch", "loss")
        .series(Series::line_and_points(
            "train",
            vec![(1.0, 1.9), (2.0, 1.5), (3.0, 1.3)],
        ))
        .series(Series::line_and_points(
            "test",
            vec![(1.0, 1.8), (2.0, 1.6), (3.0, 1.5)],
        ));
    let roof = Chart::new("roofline", "FLOP/byte", "GFLOP/s")
        .log_log()
        .series(Series::line(
            "compute roof",
            vec![(0.1, 100.0), (100.0, 100.0)],
        ))
        .series(
            Series::points("nodes", vec![(1.0, 5.0), (10.0, 50.0)])
                .labelled(vec!["conv1".into(), "fc1".into()]),
        );
    let h = Heatmap {
        title: "confusion".into(),
        row_label: "true".into(),
        col_label: "predicted".into(),
        row_names: vec!["cat".into(), "dog".into(), "car".into()],
        col_names: vec!["cat".into(), "dog".into(), "car".into()],
        values: vec![
            vec![7.0, 3.0, 0.0],
            vec![1.0, 9.0, 2.0],
            vec![0.0, 1.0, 12.0],
        ],
    };
    Figure::row(vec![
        Panel::Chart(chart),
        Panel::Chart(roof),
        Panel::Heatmap(h),
    ])
    .write(std::path::Path::new("/tmp/demo.svg"))
    .unwrap();
}
