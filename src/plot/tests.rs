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

/// `(x, y, width, height, fill)` of every `<rect>`.
fn rects(svg: &str) -> Vec<(f64, f64, f64, f64, String)> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| {
            (
                num(&n, "x"),
                num(&n, "y"),
                num(&n, "width"),
                num(&n, "height"),
                n.attribute("fill").unwrap_or("none").to_ascii_lowercase(),
            )
        })
        .collect()
}

/// `(text, x, y)` of every `<text>`.
fn placed_texts(svg: &str) -> Vec<(String, f64, f64)> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let num = |a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
            (
                n.text().unwrap_or("").trim().to_string(),
                num("x"),
                num("y"),
            )
        })
        .collect()
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

#[test]
fn graph_pictures_draw_one_coloured_box_per_node() {
    // A small two-layer step: x, w1 -> matmul -> relu; w2 -> matmul -> loss.
    let nodes = vec![
        GraphBox::leaf("input", "[4, 3] constant"),
        GraphBox::leaf("fc1.weight", "[2, 3] parameter"),
        GraphBox::valued("fc1 Linear", 0.9, vec![0, 1]),
        GraphBox::valued("act Relu", 0.1, vec![2]),
        GraphBox::leaf("fc2.weight", "[1, 2] parameter"),
        GraphBox::valued("fc2 Linear", 2.5, vec![3, 4]),
        GraphBox::valued("loss Sum", 0.0, vec![5]),
    ];
    let picture = GraphPicture {
        title: "step by time".into(),
        unit: ValueUnit::Milliseconds,
        nodes: nodes.clone(),
    };
    let svg = picture.to_svg().unwrap();
    let t = texts(&svg);
    for n in &nodes {
        assert_eq!(
            t.iter().filter(|s| **s == n.name).count(),
            1,
            "{} in {t:?}",
            n.name
        );
    }
    assert!(t.iter().any(|s| s == "2.500 ms") && t.iter().any(|s| s == "0.000 ms"));
    // Each name sits in exactly one box (a rect of box height around it),
    // and each box holds one name: one box per node.
    let rects = rects(&svg);
    let texts = placed_texts(&svg);
    let box_of = |name: &str| {
        let (_, x, y) = texts.iter().find(|(s, _, _)| s == name).unwrap();
        let around: Vec<_> = rects
            .iter()
            .filter(|r| r.4 != "none" && r.3 == 38.0)
            .filter(|r| r.0 <= *x && *x <= r.0 + r.2 && r.1 <= *y && *y <= r.1 + r.3)
            .collect();
        assert_eq!(around.len(), 1, "{name}: {around:?}");
        around[0].clone()
    };
    let boxes: Vec<_> = nodes.iter().map(|n| box_of(&n.name)).collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            assert!((a.0, a.1) != (b.0, b.1), "two names share a box");
        }
    }
    // The costliest node has the scale's end colour, the cheapest its
    // start, and the legend shows both ends.
    assert_eq!(boxes[5].4, hex(scale_colour(1.0)));
    assert_eq!(boxes[6].4, hex(scale_colour(0.0)));
    assert_ne!(boxes[2].4, boxes[5].4);
    assert!(t.iter().filter(|s| *s == "0.000 ms").count() >= 2, "{t:?}");
    assert!(t.iter().filter(|s| *s == "2.500 ms").count() >= 2, "{t:?}");
    // Rows by depth: each op lies below its inputs; a weight sits in the
    // row just above its layer, not in the first row.
    assert!(boxes[2].1 > boxes[0].1 && boxes[5].1 > boxes[3].1 && boxes[6].1 > boxes[5].1);
    assert_eq!(boxes[4].1, boxes[3].1);
    // One arrow head per edge.
    let heads = roxmltree::Document::parse(&svg)
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("polygon"))
        .count();
    assert_eq!(heads, 6);
}

#[test]
fn graph_pictures_refuse_bad_input_and_write_bytes() {
    let forward = GraphPicture {
        title: "bad".into(),
        unit: ValueUnit::Bytes,
        nodes: vec![GraphBox::valued("a", 1.0, vec![1]), GraphBox::leaf("b", "")],
    };
    assert!(forward
        .to_svg()
        .unwrap_err()
        .0
        .contains("does not come before"));
    let empty = GraphPicture {
        nodes: vec![],
        ..forward.clone()
    };
    assert!(empty.to_svg().is_err());
    assert_eq!(ValueUnit::Bytes.format(1_572_864.0), "1.57 MB");
    assert_eq!(ValueUnit::Bytes.format(512.0), "512 B");
    let one = GraphPicture {
        nodes: vec![GraphBox::valued("only", 2048.0, vec![])],
        ..forward
    };
    let t = texts(&one.to_svg().unwrap());
    assert!(t.iter().any(|s| s == "2.05 KB"), "{t:?}");
}
