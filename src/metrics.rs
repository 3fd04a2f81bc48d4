//! Metrics accumulated over an epoch as (sum, count), as Keras's stateful metrics do.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    MeanSquaredError,
    MeanAbsoluteError,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// The History key: the name the user gave (`"accuracy"`, `"acc"`, `"mae"`, ...).
    pub name: String,
    pub kind: MetricKind,
}

pub const NAMES: &[&str] = &[
    "accuracy",
    "acc",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
];

/// Check a metric name at compile time (its kind may depend on the data, see `resolve`).
pub fn check_name(name: &str) -> Result<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(Error::Value(format!(
            "Unknown metric: '{name}'. Expected one of: {}",
            NAMES.join(", ")
        )))
    }
}

/// Resolve a name against the targets' and outputs' shapes (without batch), as Keras does for "accuracy".
pub fn resolve(name: &str, y_sample: &[usize], out_sample: &[usize]) -> Result<Metric> {
    check_name(name)?;
    use MetricKind::*;
    let kind = match name {
        "accuracy" | "acc" => {
            let out_last = out_sample.last().copied().unwrap_or(1);
            let sparse = y_sample.len() + 1 == out_sample.len()
                || (y_sample.len() == out_sample.len()
                    && y_sample.last() == Some(&1)
                    && out_last > 1);
            if out_last == 1 {
                BinaryAccuracy
            } else if sparse {
                SparseCategoricalAccuracy
            } else {
                CategoricalAccuracy
            }
        }
        "binary_accuracy" => BinaryAccuracy,
        "categorical_accuracy" => CategoricalAccuracy,
        "sparse_categorical_accuracy" => SparseCategoricalAccuracy,
        "mean_squared_error" | "mse" => MeanSquaredError,
        _ => MeanAbsoluteError,
    };
    Ok(Metric {
        name: name.to_string(),
        kind,
    })
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl Metric {
    /// (sum of per-row values, number of rows) for one batch; `weights` scales each sample's rows.
    pub fn update(&self, pred: &Tensor, y: &Tensor, weights: Option<&[f32]>) -> (f64, f64) {
        let d = pred.last_dim().max(1);
        let rows = pred.data.len() / d;
        let per_sample = (rows / pred.batch().max(1)).max(1);
        let sparse = self.kind == MetricKind::SparseCategoricalAccuracy;
        let y_row = if sparse {
            y.data.len() / rows.max(1)
        } else {
            d
        };
        let (mut sum, mut count) = (0.0f64, 0.0f64);
        for r in 0..rows {
            let p = &pred.data[r * d..][..d];
            let t = &y.data[r * y_row..][..y_row];
            let w = weights.map(|w| w[r / per_sample] as f64).unwrap_or(1.0);
            let v = match self.kind {
                MetricKind::BinaryAccuracy => {
                    p.iter()
                        .zip(t)
                        .filter(|(a, b)| ((**a > 0.5) as u8 as f32) == **b)
                        .count() as f64
                        / d as f64
                }
                MetricKind::CategoricalAccuracy => (argmax(p) == argmax(t)) as u8 as f64,
                MetricKind::SparseCategoricalAccuracy => (argmax(p) as f32 == t[0]) as u8 as f64,
                MetricKind::MeanSquaredError => {
                    p.iter()
                        .zip(t)
                        .map(|(a, b)| ((a - b) * (a - b)) as f64)
                        .sum::<f64>()
                        / d as f64
                }
                MetricKind::MeanAbsoluteError => {
                    p.iter()
                        .zip(t)
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        / d as f64
                }
            };
            sum += w * v;
            count += w;
        }
        (sum, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_resolution_follows_shapes() {
        assert_eq!(
            resolve("accuracy", &[], &[10]).unwrap().kind,
            MetricKind::SparseCategoricalAccuracy
        );
        assert_eq!(
            resolve("accuracy", &[1], &[10]).unwrap().kind,
            MetricKind::SparseCategoricalAccuracy
        );
        assert_eq!(
            resolve("accuracy", &[10], &[10]).unwrap().kind,
            MetricKind::CategoricalAccuracy
        );
        assert_eq!(
            resolve("acc", &[1], &[1]).unwrap().kind,
            MetricKind::BinaryAccuracy
        );
        assert!(resolve("accuracyy", &[1], &[1]).is_err());
    }

    #[test]
    fn values() {
        let p = Tensor::new(vec![3, 2], vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4]).unwrap();
        let y = Tensor::new(vec![3], vec![0.0, 1.0, 1.0]).unwrap();
        let m = resolve("accuracy", &[], &[2]).unwrap();
        assert_eq!(m.update(&p, &y, None), (2.0, 3.0));
        let b = resolve("binary_accuracy", &[2], &[2]).unwrap();
        let yb = Tensor::new(vec![3, 2], vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
        assert_eq!(b.update(&p, &yb, None), (2.0, 3.0));
    }
}
