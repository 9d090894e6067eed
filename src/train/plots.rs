//! The pictures of a run, drawn with [`crate::plot`]: its curves after every
//! epoch (`curves.svg`) and its latest confusion matrix (`confusion.svg`).

use super::evaluate::Evaluation;
use super::trainer::EpochMetrics;
use crate::plot::{Chart, Figure, Heatmap, Panel, Series};

/// The training loss along the steps of `epochs`: each epoch's
/// [`EpochMetrics::loss_curve`], or its mean at its last step for metrics
/// written without one.
pub fn training_loss_by_step(epochs: &[EpochMetrics]) -> Vec<(f64, f64)> {
    epochs
        .iter()
        .flat_map(|m| {
            if m.loss_curve.is_empty() {
                vec![(m.step as f64, m.train_loss)]
            } else {
                m.loss_curve
                    .iter()
                    .map(|&(step, loss)| (step as f64, loss))
                    .collect()
            }
        })
        .collect()
}

/// Three panels: the training loss by step with the test loss at each
/// epoch's end (marked `epoch N`); training and test loss by epoch; test
/// accuracy by epoch. Every epoch is a marked point.
pub fn curves(title: &str, epochs: &[EpochMetrics]) -> Figure {
    let by_epoch = |f: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let test_at_steps: Vec<(f64, f64)> = epochs
        .iter()
        .map(|m| (m.step as f64, m.test_loss))
        .collect();
    let epoch_names = epochs
        .iter()
        .map(|m| format!("epoch {}", m.epoch))
        .collect();
    let steps = Chart::new(format!("{title}: loss by step"), "step", "loss")
        .series(Series::line("train", training_loss_by_step(epochs)))
        .series(Series::points("test", test_at_steps).labelled(epoch_names));
    let losses = Chart::new("loss by epoch", "epoch", "loss")
        .series(Series::line_and_points(
            "train (epoch mean)",
            by_epoch(&|m| m.train_loss),
        ))
        .series(Series::line_and_points("test", by_epoch(&|m| m.test_loss)));
    let accuracy = Chart::new("test accuracy by epoch", "epoch", "accuracy (%)").series(
        Series::line_and_points("test accuracy", by_epoch(&|m| 100.0 * m.test_accuracy)),
    );
    Figure::row(vec![
        Panel::Chart(steps),
        Panel::Chart(losses),
        Panel::Chart(accuracy),
    ])
}

/// The confusion matrix of `evaluation` (after epoch `epoch`): rows the true
/// classes, columns the predicted ones, counts in the cells.
pub fn confusion(evaluation: &Evaluation, epoch: usize) -> Figure {
    let names = evaluation.class_names.clone();
    let heatmap = Heatmap {
        title: format!(
            "confusion after epoch {epoch}: {:.2}% correct",
            100.0 * evaluation.accuracy()
        ),
        row_label: "true class".into(),
        col_label: "predicted class".into(),
        row_names: names.clone(),
        col_names: names,
        values: evaluation
            .confusion
            .iter()
            .map(|row| row.iter().map(|&n| n as f64).collect())
            .collect(),
    };
    Figure {
        panel_size: (720, 640),
        ..Figure::row(vec![Panel::Heatmap(heatmap)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: usize) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            train_loss: 2.0 / n as f64,
            test_loss: 2.1 / n as f64,
            test_accuracy: 0.3 + 0.1 * n as f64,
            images_per_sec: 1000.0,
            seconds: 1.0,
            eval_seconds: 0.1,
            lr: 0.01,
            step: 10 * n,
            rss_mib: None,
            loss_curve: vec![(10 * n - 5, 2.1 / n as f64), (10 * n, 1.9 / n as f64)],
        }
    }

    /// The SVG as XML: the number of `<circle>` markers and every `<text>`.
    fn parse(svg: &str) -> (usize, Vec<String>) {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        let circles = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        let texts = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_string()))
            .collect();
        (circles, texts)
    }

    #[test]
    fn every_epoch_is_a_point_of_every_curve() {
        let epochs: Vec<EpochMetrics> = (1..=3).map(epoch).collect();
        let (circles, texts) = parse(&curves("lenet-x", &epochs).to_svg().unwrap());
        // Test loss by step, train and test loss by epoch, accuracy by epoch.
        assert_eq!(circles, 4 * epochs.len());
        for text in [
            "lenet-x: loss by step",
            "loss by epoch",
            "test accuracy by epoch",
            "epoch 1",
            "epoch 3",
            "train (epoch mean)",
        ] {
            assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
        }
        assert_eq!(
            training_loss_by_step(&epochs[..2]),
            [(5.0, 2.1), (10.0, 1.9), (15.0, 1.05), (20.0, 0.95)]
        );
    }

    #[test]
    fn the_confusion_matrix_has_a_cell_per_pair_of_classes() {
        let e = Evaluation {
            loss: 1.0,
            confusion: vec![vec![7, 3], vec![1, 9]],
            class_names: vec!["cat".into(), "dog".into()],
        };
        let (_, texts) = parse(&confusion(&e, 2).to_svg().unwrap());
        for text in [
            "7",
            "3",
            "1",
            "9",
            "confusion after epoch 2: 80.00% correct",
        ] {
            assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
        }
    }
}
