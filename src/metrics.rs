//! Metrics accumulated over an epoch as Keras's stateful metrics are: each keeps a small state vector
//! (sum and count for means, confusion counts for Precision/Recall/AUC) that batches add into.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    BinaryAccuracy {
        threshold: f32,
    },
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopK {
        k: usize,
        sparse: bool,
    },
    MeanSquaredError,
    MeanAbsoluteError,
    Precision {
        threshold: f32,
    },
    Recall {
        threshold: f32,
    },
    Auc {
        num_thresholds: usize,
    },
    /// A user function `fn(y_true, y_pred)` of `keras.ops`: the mean of its values (`Metric::traced`).
    Traced,
    /// A user `keras.metrics.Metric` subclass: its traced `update_state` and `result` (`Metric::stateful`).
    Stateful,
}

/// A traced graph shared by the copies of its `Metric`; copies are equal when they share it.
pub struct Shared<T>(pub std::sync::Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared<{}>", std::any::type_name::<T>())
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A metric function's traced graph.
pub type TracedMetric = Shared<crate::traced_loss::TracedLoss>;
/// A metric class's traced `update_state` and `result`.
pub type StatefulMetric = Shared<crate::state_metric::StateMetric>;

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// The History key: the name the user gave (`"accuracy"`, `"acc"`, `"mae"`) or the metric object's name.
    pub name: String,
    pub kind: MetricKind,
    pub traced: Option<TracedMetric>,
    pub stateful: Option<StatefulMetric>,
}

pub const NAMES: &[&str] = &[
    "accuracy",
    "acc",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
    "precision",
    "recall",
    "auc",
];

/// Check a metric spec at compile time (what "accuracy" means depends on the data, see `resolve`).
pub fn check(spec: &Value) -> Result<()> {
    if let Some(graph) = spec.get("graph") {
        // a traced function: its shapes are checked against the data in `resolve`
        let g = crate::graph::GraphSpec::from_value(graph)?;
        return crate::traced_loss::TracedLoss::from_spec(g).map(|_| ());
    }
    if let Some(traced) = spec.get("stateful") {
        return crate::state_metric::StateMetric::from_spec(traced).map(|_| ());
    }
    resolve(spec, &[1], &[2]).map(|_| ())
}

/// Check a metric name at compile time.
pub fn check_name(name: &str) -> Result<()> {
    check(&Value::String(name.to_string()))
}

fn accuracy_kind(y_sample: &[usize], out_sample: &[usize]) -> MetricKind {
    let out_last = out_sample.last().copied().unwrap_or(1);
    let sparse = y_sample.len() + 1 == out_sample.len()
        || (y_sample.len() == out_sample.len() && y_sample.last() == Some(&1) && out_last > 1);
    if out_last == 1 {
        MetricKind::BinaryAccuracy { threshold: 0.5 }
    } else if sparse {
        MetricKind::SparseCategoricalAccuracy
    } else {
        MetricKind::CategoricalAccuracy
    }
}

/// A traced metric's name, once the targets are of the sample shape it was traced for.
fn traced_name(spec: &Value, y_sample: &[usize], traced_for: &[usize]) -> Result<String> {
    let name = spec.get("name").and_then(Value::as_str).unwrap_or("metric");
    if y_sample != traced_for {
        return Err(Error::Value(format!(
            "metric '{name}' was traced for targets of shape {}, received targets of shape {}",
            crate::tensor::shape_str(traced_for),
            crate::tensor::shape_str(y_sample)
        )));
    }
    Ok(name.to_string())
}

/// A metric from a name or `{"class_name", "config": {"name", ...}}`, resolved against the targets' and
/// outputs' shapes (without batch) as Keras does for "accuracy".
pub fn resolve(spec: &Value, y_sample: &[usize], out_sample: &[usize]) -> Result<Metric> {
    use MetricKind::*;
    if let Some(graph) = spec.get("graph") {
        let traced =
            crate::traced_loss::TracedLoss::from_spec(crate::graph::GraphSpec::from_value(graph)?)?;
        let name = traced_name(spec, y_sample, traced.y_shape())?;
        return Ok(Metric {
            name,
            kind: Traced,
            traced: Some(Shared(std::sync::Arc::new(traced))),
            stateful: None,
        });
    }
    if let Some(traced) = spec.get("stateful") {
        let traced = crate::state_metric::StateMetric::from_spec(traced)?;
        let name = traced_name(spec, y_sample, traced.y_shape())?;
        return Ok(Metric {
            name,
            kind: Stateful,
            traced: None,
            stateful: Some(Shared(std::sync::Arc::new(traced))),
        });
    }
    let (key, cfg) = match spec {
        Value::String(s) => (s.clone(), &Value::Null),
        Value::Object(o) => (
            o.get("class_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            o.get("config").unwrap_or(&Value::Null),
        ),
        _ => {
            return Err(Error::Type(format!(
                "a metric must be a name or a metric object, received {spec}"
            )))
        }
    };
    let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
    let threshold = || -> Result<f32> {
        let t = match cfg.get("thresholds") {
            Some(Value::Array(a)) if a.len() == 1 => a[0].as_f64().unwrap_or(f64::NAN),
            Some(x) if !x.is_null() => x.as_f64().unwrap_or(f64::NAN),
            _ => 0.5,
        };
        if (0.0..=1.0).contains(&t) {
            Ok(t as f32)
        } else {
            Err(Error::Value(format!(
                "{key}: `thresholds` must be one value in [0, 1], received {cfg}"
            )))
        }
    };
    let k = || -> Result<usize> {
        let k = num("k", 5.0);
        if k >= 1.0 && k.fract() == 0.0 {
            Ok(k as usize)
        } else {
            Err(Error::Value(format!(
                "{key}: `k` must be a positive int, received {k}"
            )))
        }
    };
    let kind = match key.as_str() {
        "accuracy" | "acc" => accuracy_kind(y_sample, out_sample),
        "binary_accuracy" | "BinaryAccuracy" => BinaryAccuracy {
            threshold: num("threshold", 0.5) as f32,
        },
        "categorical_accuracy" | "CategoricalAccuracy" => CategoricalAccuracy,
        "sparse_categorical_accuracy" | "SparseCategoricalAccuracy" => SparseCategoricalAccuracy,
        "top_k_categorical_accuracy" | "TopKCategoricalAccuracy" => TopK {
            k: k()?,
            sparse: false,
        },
        "sparse_top_k_categorical_accuracy" | "SparseTopKCategoricalAccuracy" => TopK {
            k: k()?,
            sparse: true,
        },
        "mean_squared_error" | "mse" | "MeanSquaredError" => MeanSquaredError,
        "mean_absolute_error" | "mae" | "MeanAbsoluteError" => MeanAbsoluteError,
        "precision" | "Precision" => Precision {
            threshold: threshold()?,
        },
        "recall" | "Recall" => Recall {
            threshold: threshold()?,
        },
        "auc" | "AUC" => {
            let n = num("num_thresholds", 200.0);
            if !(n > 1.0 && n <= 100_000.0 && n.fract() == 0.0) {
                return Err(Error::Value(format!(
                    "AUC: `num_thresholds` must be an int > 1, received {n}"
                )));
            }
            if cfg
                .get("curve")
                .and_then(Value::as_str)
                .is_some_and(|c| c != "ROC")
            {
                return Err(Error::Value(
                    "AUC: only curve=\"ROC\" is supported by kerust yet".into(),
                ));
            }
            Auc {
                num_thresholds: n as usize,
            }
        }
        _ => {
            return Err(Error::Value(format!(
                "Unknown metric: '{key}'. Expected one of: {}",
                NAMES.join(", ")
            )))
        }
    };
    let name = cfg
        .get("name")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or(key);
    Ok(Metric {
        name,
        kind,
        traced: None,
        stateful: None,
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

/// Keras's AUC thresholds: `num - 2` evenly spaced inside (0, 1) plus one just below 0 and one just above 1.
fn auc_thresholds(n: usize) -> Vec<f32> {
    let mut t = vec![-1e-7f32];
    t.extend((1..n - 1).map(|i| i as f32 / (n - 1) as f32));
    t.push(1.0 + 1e-7);
    t
}

impl Metric {
    /// The state vector an epoch starts from, which `update` adds into.
    pub fn initial_state(&self) -> Vec<f64> {
        match (&self.stateful, self.kind) {
            (Some(s), _) => s.0.initial_state(),
            (None, MetricKind::Auc { num_thresholds }) => vec![0.0; 4 * num_thresholds],
            _ => vec![0.0; 2],
        }
    }

    /// Add one batch into `state`; `weights` scales each sample's contribution.
    pub fn update(
        &self,
        pred: &Tensor,
        y: &Tensor,
        weights: Option<&[f32]>,
        state: &mut [f64],
    ) -> Result<()> {
        if let Some(s) = &self.stateful {
            return s.0.update(pred, y, state);
        }
        if let Some(t) = &self.traced {
            // the function's values, averaged over every value (as Keras's MeanMetricWrapper)
            let values = t.0.values(pred, y)?;
            let per_sample = (values.data.len() / pred.batch().max(1)).max(1);
            for (i, &v) in values.data.iter().enumerate() {
                let w = weights
                    .and_then(|w| w.get(i / per_sample))
                    .map_or(1.0, |&w| w as f64);
                state[0] += w * v as f64;
                state[1] += w;
            }
            return Ok(());
        }
        let d = pred.last_dim().max(1);
        let rows = pred.data.len() / d;
        let per_sample = (rows / pred.batch().max(1)).max(1);
        let sparse_y = matches!(
            self.kind,
            MetricKind::SparseCategoricalAccuracy | MetricKind::TopK { sparse: true, .. }
        );
        let y_row = if sparse_y {
            y.data.len() / rows.max(1)
        } else {
            d
        };
        for r in 0..rows {
            let p = &pred.data[r * d..][..d];
            let t = &y.data[r * y_row..][..y_row];
            let w = weights.map(|w| w[r / per_sample] as f64).unwrap_or(1.0);
            let mean = |v: f64, state: &mut [f64]| {
                state[0] += w * v;
                state[1] += w;
            };
            match self.kind {
                MetricKind::Traced | MetricKind::Stateful => {}
                MetricKind::BinaryAccuracy { threshold } => {
                    let hits = p
                        .iter()
                        .zip(t)
                        .filter(|(a, b)| ((**a > threshold) as u8 as f32) == **b)
                        .count();
                    mean(hits as f64 / d as f64, state)
                }
                MetricKind::CategoricalAccuracy => {
                    mean((argmax(p) == argmax(t)) as u8 as f64, state)
                }
                MetricKind::SparseCategoricalAccuracy => {
                    mean((argmax(p) as f32 == t[0]) as u8 as f64, state)
                }
                MetricKind::TopK { k, sparse } => {
                    let target = if sparse { t[0] as usize } else { argmax(t) };
                    // in the top k when fewer than k classes score strictly higher (ties count in, as TF)
                    let above = p
                        .iter()
                        .filter(|&&v| v > p.get(target).copied().unwrap_or(f32::INFINITY))
                        .count();
                    mean((above < k) as u8 as f64, state)
                }
                MetricKind::MeanSquaredError => mean(
                    p.iter()
                        .zip(t)
                        .map(|(a, b)| ((a - b) * (a - b)) as f64)
                        .sum::<f64>()
                        / d as f64,
                    state,
                ),
                MetricKind::MeanAbsoluteError => mean(
                    p.iter()
                        .zip(t)
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        / d as f64,
                    state,
                ),
                MetricKind::Precision { threshold } | MetricKind::Recall { threshold } => {
                    let precision = matches!(self.kind, MetricKind::Precision { .. });
                    for (&pv, &tv) in p.iter().zip(t) {
                        let (pos, truth) = (pv > threshold, tv > 0.5);
                        // state: [true positives, true positives + (false positives | false negatives)]
                        if pos && truth {
                            state[0] += w;
                        }
                        if (precision && pos) || (!precision && truth) {
                            state[1] += w;
                        }
                    }
                }
                MetricKind::Auc { num_thresholds } => {
                    let th = auc_thresholds(num_thresholds);
                    let n = num_thresholds;
                    for (&pv, &tv) in p.iter().zip(t) {
                        let truth = tv > 0.5;
                        for (i, &thr) in th.iter().enumerate() {
                            let pos = pv > thr;
                            // state: [tp | fp | fn | tn] blocks of n
                            let block = match (pos, truth) {
                                (true, true) => 0,
                                (true, false) => 1,
                                (false, true) => 2,
                                (false, false) => 3,
                            };
                            state[block * n + i] += w;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn result(&self, state: &[f64]) -> f64 {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        match self.kind {
            // the result the last update computed (or that of the initial state)
            MetricKind::Stateful => state.last().copied().unwrap_or(0.0),
            MetricKind::Auc { num_thresholds: n } => {
                let (tp, fp, fneg, tn) = (
                    &state[..n],
                    &state[n..2 * n],
                    &state[2 * n..3 * n],
                    &state[3 * n..],
                );
                let tpr: Vec<f64> = (0..n).map(|i| div(tp[i], tp[i] + fneg[i])).collect();
                let fpr: Vec<f64> = (0..n).map(|i| div(fp[i], fp[i] + tn[i])).collect();
                // Keras's "interpolation" summation: trapezoids between consecutive thresholds
                (0..n - 1)
                    .map(|i| (fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2.0)
                    .sum()
            }
            _ => div(state[0], state[1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(spec: Value, y_sample: &[usize], p: &Tensor, y: &Tensor) -> f64 {
        let m = resolve(&spec, y_sample, &p.shape[1..]).unwrap();
        let mut state = m.initial_state();
        m.update(p, y, None, &mut state).unwrap();
        m.result(&state)
    }

    #[test]
    fn accuracy_resolution_follows_shapes() {
        let r = |y: &[usize], o: &[usize]| resolve(&json!("accuracy"), y, o).unwrap().kind;
        assert_eq!(r(&[], &[10]), MetricKind::SparseCategoricalAccuracy);
        assert_eq!(r(&[1], &[10]), MetricKind::SparseCategoricalAccuracy);
        assert_eq!(r(&[10], &[10]), MetricKind::CategoricalAccuracy);
        assert_eq!(r(&[1], &[1]), MetricKind::BinaryAccuracy { threshold: 0.5 });
        assert!(resolve(&json!("accuracyy"), &[1], &[1]).is_err());
    }

    #[test]
    fn values_by_hand() {
        let p = Tensor::new(vec![3, 2], vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4]).unwrap();
        let y = Tensor::new(vec![3], vec![0.0, 1.0, 1.0]).unwrap();
        assert!((value(json!("accuracy"), &[], &p, &y) - 2.0 / 3.0).abs() < 1e-12);
        let yb = Tensor::new(vec![3, 2], vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!((value(json!("binary_accuracy"), &[2], &p, &yb) - 2.0 / 3.0).abs() < 1e-12);
        // precision: predicted positive (>0.5) = {0.9, 0.8, 0.6}; true among them: 0.9 and 0.6 -> 2/3
        assert!((value(json!("precision"), &[2], &p, &yb) - 2.0 / 3.0).abs() < 1e-12);
        // recall: true positives 2 of 3 positives
        assert!(
            (value(
                json!({"class_name": "Recall", "config": {"name": "rec"}}),
                &[2],
                &p,
                &yb
            ) - 2.0 / 3.0)
                .abs()
                < 1e-12
        );
        let p3 = Tensor::new(vec![2, 3], vec![0.5, 0.3, 0.2, 0.1, 0.2, 0.7]).unwrap();
        let y3 = Tensor::new(vec![2], vec![1.0, 0.0]).unwrap();
        let top2 = json!({"class_name": "SparseTopKCategoricalAccuracy", "config": {"k": 2}});
        assert!((value(top2, &[], &p3, &y3) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn auc_of_separable_and_random_scores() {
        let p = Tensor::new(vec![4, 1], vec![0.1, 0.4, 0.35, 0.8]).unwrap();
        let y = Tensor::new(vec![4, 1], vec![0.0, 0.0, 1.0, 1.0]).unwrap();
        // the exact ROC AUC of these scores is 0.75; 200 thresholds reproduce it
        assert!((value(json!("auc"), &[1], &p, &y) - 0.75).abs() < 1e-9);
        let sep = Tensor::new(vec![4, 1], vec![0.1, 0.2, 0.7, 0.9]).unwrap();
        assert!((value(json!("auc"), &[1], &sep, &y) - 1.0).abs() < 1e-9);
    }
}
