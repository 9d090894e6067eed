//! Test-set evaluation: loss, accuracy, per-class accuracy and the confusion matrix.

use gradlab_autograd::{no_grad, Var};
use gradlab_data::{Batch, DataLoader};
use gradlab_nn::{predictions, Module};
use gradlab_tensor::{Reduction, Tensor};
use std::fmt::Write;

/// The images of a batch as an `[N, C, H, W]` f32 tensor and its labels as i64.
pub fn batch_tensors(batch: &Batch) -> Result<(Tensor, Tensor), String> {
    let images = Tensor::from_slice(&batch.images, batch.shape).map_err(|e| e.to_string())?;
    let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    let n = labels.len();
    let labels = Tensor::from_vec(labels, [n]).map_err(|e| e.to_string())?;
    Ok((images, labels))
}

/// How a model did on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over all images.
    pub loss: f64,
    /// `confusion[truth][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub class_names: Vec<String>,
}

impl Evaluation {
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    pub fn correct(&self) -> usize {
        (0..self.confusion.len())
            .map(|c| self.confusion[c][c])
            .sum()
    }

    /// Fraction of images classified correctly.
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// Accuracy of each class (None for a class with no test image).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }

    /// Per-class accuracy and the confusion matrix as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self
            .class_names
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(out, "per-class accuracy:");
        for (name, acc) in self.class_names.iter().zip(self.per_class_accuracy()) {
            match acc {
                Some(a) => writeln!(out, "  {name:>width$}  {:6.2}%", 100.0 * a),
                None => writeln!(out, "  {name:>width$}     n/a"),
            }
            .ok();
        }
        let _ = writeln!(
            out,
            "confusion matrix (rows: true class, columns: predicted):"
        );
        let labels: Vec<String> = self
            .class_names
            .iter()
            .enumerate()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let width = labels.iter().map(|l| l.len()).max().unwrap_or(0);
        let _ = write!(out, "  {:>width$}", "");
        for c in 0..self.confusion.len() {
            let _ = write!(out, " {c:>5}");
        }
        let _ = writeln!(out);
        for (c, row) in self.confusion.iter().enumerate() {
            let _ = write!(out, "  {:<width$}", labels[c]);
            for n in row {
                let _ = write!(out, " {n:>5}");
            }
            let _ = writeln!(out);
        }
        out
    }
}

/// Runs `model` in eval mode over every batch of `loader` without recording a graph.
pub fn evaluate(model: &dyn Module, loader: &DataLoader) -> Result<Evaluation, String> {
    let was_training = model.is_training();
    model.set_training(false);
    let result = no_grad(|| {
        let classes = loader.dataset().num_classes();
        let mut confusion = vec![vec![0usize; classes]; classes];
        let mut loss_sum = 0.0;
        let mut batch = Batch::default();
        let mut batches = loader.epoch(0);
        let device = model
            .parameters()
            .first()
            .map_or(gradlab_tensor::Device::Cpu, |(_, p)| p.device());
        while batches.next_into(&mut batch) {
            let (images, labels) = batch_tensors(&batch)?;
            let on_device = |t: Tensor| t.to_device(device).map_err(|e| e.to_string());
            let (images, labels) = (on_device(images)?, on_device(labels)?);
            let logits = model
                .forward(&Var::constant(images))
                .map_err(|e| e.to_string())?
                .data();
            let loss = logits
                .cross_entropy(&labels, Reduction::Sum, 0.0)
                .map_err(|e| e.to_string())?;
            loss_sum += loss.item_f64().map_err(|e| e.to_string())?;
            for (&truth, predicted) in batch
                .labels
                .iter()
                .zip(predictions(&logits).map_err(|e| e.to_string())?)
            {
                confusion[truth][predicted.min(classes - 1)] += 1;
            }
        }
        let total: usize = confusion.iter().flatten().sum();
        Ok(Evaluation {
            loss: loss_sum / total.max(1) as f64,
            confusion,
            class_names: loader.dataset().class_names().to_vec(),
        })
    });
    model.set_training(was_training);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_per_class_from_the_confusion_matrix() {
        let e = Evaluation {
            loss: 0.0,
            confusion: vec![vec![3, 1, 0], vec![0, 0, 0], vec![2, 0, 4]],
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        assert_eq!((e.correct(), e.total()), (7, 10));
        assert!((e.accuracy() - 0.7).abs() < 1e-15);
        assert_eq!(
            e.per_class_accuracy(),
            vec![Some(0.75), None, Some(4.0 / 6.0)]
        );
        let text = e.render();
        assert!(text.contains("      a   75.00%"), "{text}");
        assert!(text.contains("      b     n/a"), "{text}");
        assert!(text.contains("  2 c     2     0     4"), "{text}");
    }
}
