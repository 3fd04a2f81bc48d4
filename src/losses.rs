//! Losses with Keras's formulas and `sum_over_batch_size` reduction: the mean over every row of the last
//! axis, optionally weighted per sample. Each returns the gradient with respect to the prediction, or, when
//! fused with the output layer's softmax/sigmoid, with respect to that layer's pre-activation.

use crate::activations::{sigmoid, softmax_row, Activation};
use crate::error::{Error, Result};
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

/// Keras's `backend.epsilon()`: probabilities are clipped to [EPSILON, 1 - EPSILON].
pub const EPSILON: f32 = 1e-7;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    MeanSquaredError,
    MeanAbsoluteError,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    BinaryCrossentropy,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub from_logits: bool,
}

pub const NAMES: &[&str] = &[
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
];

impl Loss {
    /// From a Keras name (`"mse"`, `"MeanSquaredError"`) or `{"class_name": ..., "config": {"from_logits": ...}}`.
    pub fn from_value(v: &Value) -> Result<Self> {
        let (name, cfg) = match v {
            Value::String(s) => (s.as_str(), &Value::Null),
            Value::Object(o) => (
                o.get("class_name").and_then(Value::as_str).unwrap_or(""),
                o.get("config").unwrap_or(&Value::Null),
            ),
            _ => {
                return Err(Error::Type(format!(
                    "loss must be a name or a dict, received {v}"
                )))
            }
        };
        use LossKind::*;
        let kind = match name {
            "mean_squared_error" | "mse" | "MeanSquaredError" => MeanSquaredError,
            "mean_absolute_error" | "mae" | "MeanAbsoluteError" => MeanAbsoluteError,
            "categorical_crossentropy" | "CategoricalCrossentropy" => CategoricalCrossentropy,
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
                SparseCategoricalCrossentropy
            }
            "binary_crossentropy" | "BinaryCrossentropy" => BinaryCrossentropy,
            _ => {
                return Err(Error::Value(format!(
                    "Unknown loss: '{name}'. Expected one of: {}",
                    NAMES.join(", ")
                )))
            }
        };
        let from_logits = cfg
            .get("from_logits")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Loss { kind, from_logits })
    }

    /// The output activation this loss fuses with (the gradient then skips that activation's derivative).
    pub fn fuses_with(&self, act: Activation) -> bool {
        use LossKind::*;
        !self.from_logits
            && matches!(
                (self.kind, act),
                (
                    CategoricalCrossentropy | SparseCategoricalCrossentropy,
                    Activation::Softmax
                ) | (BinaryCrossentropy, Activation::Sigmoid)
            )
    }

    /// Check targets against the model's output shape (without batch) before any training.
    pub fn check_targets(&self, y: &Tensor, out_shape: &[usize]) -> Result<()> {
        let y_sample = y.shape.get(1..).unwrap_or(&[]);
        match self.kind {
            LossKind::SparseCategoricalCrossentropy => {
                let classes = out_shape.last().copied().unwrap_or(1);
                let lead = &out_shape[..out_shape.len().saturating_sub(1)];
                let ok = y_sample == lead || (y_sample.split_last() == Some((&1, lead)));
                if !ok {
                    return Err(Error::Value(format!(
                        "sparse_categorical_crossentropy expects integer labels of shape {} (or {}), \
                         received labels of shape {}",
                        shape_str(lead),
                        shape_str(&[lead, &[1]].concat()),
                        shape_str(y_sample)
                    )));
                }
                if let Some(bad) = y
                    .data
                    .iter()
                    .find(|&&l| !(l >= 0.0 && l < classes as f32 && l.fract() == 0.0))
                {
                    return Err(Error::Value(format!(
                        "Received a label value of {bad} which is outside the valid range of [0, {}). \
                         Labels for sparse_categorical_crossentropy must be integers from 0 to {} (the model \
                         outputs {classes} classes).",
                        classes,
                        classes - 1
                    )));
                }
            }
            _ => {
                if y_sample != out_shape {
                    return Err(Error::Value(format!(
                        "Arguments `target` and `output` must have the same shape. Received: target.shape={}, \
                         output.shape={}{}",
                        shape_str(y_sample),
                        shape_str(out_shape),
                        if self.kind == LossKind::CategoricalCrossentropy && y_sample.len() + 1 == out_shape.len() {
                            ". Integer labels need loss=\"sparse_categorical_crossentropy\", or one-hot labels \
                             from kerust.utils.to_categorical"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
        Ok(())
    }

    /// Mean loss over the rows (weighted per sample when `sample_weight` is given) and its gradient.
    /// `pred` is the model output; with `fused` it is the output of the fused softmax/sigmoid.
    pub fn forward_backward(
        &self,
        pred: &Tensor,
        y: &Tensor,
        fused: bool,
        sample_weight: Option<&[f32]>,
    ) -> Result<(f64, Tensor)> {
        let d = pred.last_dim().max(1);
        let rows = pred.data.len() / d;
        let batch = pred.batch().max(1);
        let rows_per_sample = rows / batch;
        let sparse = self.kind == LossKind::SparseCategoricalCrossentropy;
        let y_row = if sparse { 1 } else { d };
        if y.data.len() != rows * y_row {
            return Err(Error::Value(format!(
                "targets of shape {} do not match predictions of shape {}",
                shape_str(y.shape.get(1..).unwrap_or(&[])),
                shape_str(pred.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let mut grad = Tensor::zeros(pred.shape.clone());
        let mut total = 0.0f64;
        let mut work = vec![0.0f32; d];
        for r in 0..rows {
            let p = &pred.data[r * d..][..d];
            let t = &y.data[r * y_row..][..y_row];
            let g = &mut grad.data[r * d..][..d];
            let w = sample_weight
                .map(|sw| sw[r / rows_per_sample.max(1)])
                .unwrap_or(1.0);
            let l = self.row(p, t, g, fused, &mut work)?;
            total += (w * l) as f64;
            let scale = w / rows as f32;
            g.iter_mut().for_each(|v| *v *= scale);
        }
        Ok((total / rows.max(1) as f64, grad))
    }

    /// One row: returns its loss and writes d(loss)/d(input) (unscaled) into `g`.
    fn row(
        &self,
        p: &[f32],
        t: &[f32],
        g: &mut [f32],
        fused: bool,
        work: &mut [f32],
    ) -> Result<f32> {
        let d = p.len() as f32;
        Ok(match self.kind {
            LossKind::MeanSquaredError => {
                let mut s = 0.0;
                for ((gi, &pi), &ti) in g.iter_mut().zip(p).zip(t) {
                    let e = pi - ti;
                    s += e * e;
                    *gi = 2.0 * e / d;
                }
                s / d
            }
            LossKind::MeanAbsoluteError => {
                let mut s = 0.0;
                for ((gi, &pi), &ti) in g.iter_mut().zip(p).zip(t) {
                    let e = pi - ti;
                    s += e.abs();
                    *gi = if e > 0.0 {
                        1.0 / d
                    } else if e < 0.0 {
                        -1.0 / d
                    } else {
                        0.0
                    };
                }
                s / d
            }
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                let sparse = self.kind == LossKind::SparseCategoricalCrossentropy;
                let label = if sparse { t[0] as usize } else { 0 };
                let target = |j: usize| -> f32 {
                    if sparse {
                        (j == label) as u8 as f32
                    } else {
                        t[j]
                    }
                };
                if self.from_logits || fused {
                    // softmax cross-entropy on logits: gradient p * sum(y) - y
                    let probs: &[f32] = if self.from_logits {
                        work.copy_from_slice(p);
                        softmax_row(work);
                        work
                    } else {
                        p
                    };
                    let ysum: f32 = if sparse { 1.0 } else { t.iter().sum() };
                    let mut l = 0.0;
                    for j in 0..p.len() {
                        let yj = target(j);
                        if yj != 0.0 {
                            l -= yj * probs[j].clamp(f32::MIN_POSITIVE, 1.0).ln();
                            // NaN stays NaN
                        }
                        g[j] = probs[j] * ysum - yj;
                    }
                    l
                } else if sparse {
                    // TensorFlow: log of clipped probabilities fed to softmax cross-entropy, i.e.
                    // -log(c_y / sum(c)) with c = clip(p, eps, 1 - eps).
                    let c: Vec<f32> = p.iter().map(|v| v.clamp(EPSILON, 1.0 - EPSILON)).collect();
                    let s: f32 = c.iter().sum();
                    for j in 0..p.len() {
                        let inside = p[j] >= EPSILON && p[j] <= 1.0 - EPSILON;
                        let dc = 1.0 / s - if j == label { 1.0 / c[j] } else { 0.0 };
                        g[j] = if inside { dc } else { 0.0 };
                    }
                    -(c[label] / s).ln()
                } else {
                    // Keras: renormalise, clip, -sum(y log c); gradient back through clip and renormalisation.
                    let s: f32 = p.iter().sum();
                    let mut l = 0.0;
                    let mut dot = 0.0;
                    for j in 0..p.len() {
                        let q = p[j] / s;
                        let c = q.clamp(EPSILON, 1.0 - EPSILON);
                        l -= t[j] * c.ln();
                        let inside = (EPSILON..=1.0 - EPSILON).contains(&q);
                        work[j] = if inside { -t[j] / c } else { 0.0 };
                        dot += work[j] * q;
                    }
                    for j in 0..p.len() {
                        g[j] = (work[j] - dot) / s;
                    }
                    l
                }
            }
            LossKind::BinaryCrossentropy => {
                let mut s = 0.0;
                for j in 0..p.len() {
                    let (pj, yj) = (p[j], t[j]);
                    if self.from_logits {
                        // TensorFlow's sigmoid_cross_entropy_with_logits, stable for large |z|
                        s += pj.max(0.0) - pj * yj + (-pj.abs()).exp().ln_1p();
                        g[j] = (sigmoid(pj) - yj) / d;
                    } else if fused {
                        let c = pj.clamp(f32::MIN_POSITIVE, 1.0);
                        let c1 = (1.0 - pj).clamp(f32::MIN_POSITIVE, 1.0);
                        s -= yj * c.ln() + (1.0 - yj) * c1.ln();
                        g[j] = (pj - yj) / d;
                    } else {
                        let c = pj.clamp(EPSILON, 1.0 - EPSILON);
                        s -= yj * c.ln() + (1.0 - yj) * (1.0 - c).ln();
                        let inside = (EPSILON..=1.0 - EPSILON).contains(&pj);
                        g[j] = if inside {
                            (-(yj / c) + (1.0 - yj) / (1.0 - c)) / d
                        } else {
                            0.0
                        };
                    }
                }
                s / d
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor::new(shape, data).unwrap()
    }

    /// Finite differences of the mean loss against the returned gradient (non-fused paths).
    #[test]
    fn gradients_match_finite_differences() {
        let probs = t(vec![2, 3], vec![0.2, 0.5, 0.3, 0.6, 0.1, 0.3]);
        let onehot = t(vec![2, 3], vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        let labels = t(vec![2], vec![1.0, 0.0]);
        let real = t(vec![2, 3], vec![0.5, -1.0, 2.0, 0.1, 0.2, -0.3]);
        let bin = t(vec![2, 3], vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let cases: Vec<(&str, bool, &Tensor, &Tensor)> = vec![
            ("mse", false, &real, &onehot),
            ("mae", false, &real, &onehot),
            ("categorical_crossentropy", false, &probs, &onehot),
            ("categorical_crossentropy", true, &real, &onehot),
            ("sparse_categorical_crossentropy", false, &probs, &labels),
            ("sparse_categorical_crossentropy", true, &real, &labels),
            ("binary_crossentropy", false, &probs, &bin),
            ("binary_crossentropy", true, &real, &bin),
        ];
        for (name, logits, pred, y) in cases {
            let loss = Loss::from_value(
                &json!({"class_name": name_to_class(name), "config": {"from_logits": logits}}),
            )
            .unwrap();
            let w = [0.7f32, 1.3];
            let (_, g) = loss.forward_backward(pred, y, false, Some(&w)).unwrap();
            for i in 0..pred.data.len() {
                let h = 1e-3;
                let mut pp = pred.clone();
                pp.data[i] += h;
                let mut pm = pred.clone();
                pm.data[i] -= h;
                let lp = loss.forward_backward(&pp, y, false, Some(&w)).unwrap().0;
                let lm = loss.forward_backward(&pm, y, false, Some(&w)).unwrap().0;
                let num = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (num - g.data[i] as f64).abs() < 3e-3,
                    "{name} logits={logits} [{i}]: {num} vs {}",
                    g.data[i]
                );
            }
        }
    }

    fn name_to_class(n: &str) -> &'static str {
        match n {
            "mse" => "MeanSquaredError",
            "mae" => "MeanAbsoluteError",
            "categorical_crossentropy" => "CategoricalCrossentropy",
            "sparse_categorical_crossentropy" => "SparseCategoricalCrossentropy",
            _ => "BinaryCrossentropy",
        }
    }

    #[test]
    fn keras_values_and_clipping() {
        let cce = Loss::from_value(&json!("categorical_crossentropy")).unwrap();
        // unnormalised probabilities are renormalised: [2, 6, 2] -> [0.2, 0.6, 0.2]
        let (l, _) = cce
            .forward_backward(
                &t(vec![1, 3], vec![2.0, 6.0, 2.0]),
                &t(vec![1, 3], vec![0.0, 1.0, 0.0]),
                false,
                None,
            )
            .unwrap();
        assert!((l - (-(0.6f64).ln())).abs() < 1e-6);
        // a zero probability is clipped to 1e-7
        let (l, _) = cce
            .forward_backward(
                &t(vec![1, 2], vec![1.0, 0.0]),
                &t(vec![1, 2], vec![0.0, 1.0]),
                false,
                None,
            )
            .unwrap();
        assert!((l - 16.118_095).abs() < 1e-4);
        let mse = Loss::from_value(&json!("mse")).unwrap();
        let (l, _) = mse
            .forward_backward(
                &t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                &t(vec![2, 2], vec![0.0; 4]),
                false,
                None,
            )
            .unwrap();
        assert!((l - 7.5).abs() < 1e-6);
    }

    #[test]
    fn fused_softmax_gradient_is_p_minus_y_over_batch() {
        let sce = Loss::from_value(&json!("sparse_categorical_crossentropy")).unwrap();
        assert!(sce.fuses_with(Activation::Softmax));
        let p = t(vec![2, 3], vec![0.2, 0.5, 0.3, 0.6, 0.1, 0.3]);
        let (l, g) = sce
            .forward_backward(&p, &t(vec![2], vec![1.0, 0.0]), true, None)
            .unwrap();
        assert!((l - (-(0.5f64.ln() + 0.6f64.ln()) / 2.0)).abs() < 1e-6);
        let want = [0.1, -0.25, 0.15, -0.2, 0.05, 0.15];
        for (a, b) in g.data.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn target_checks() {
        let sce = Loss::from_value(&json!("sparse_categorical_crossentropy")).unwrap();
        let err = sce
            .check_targets(&t(vec![2], vec![1.0, 10.0]), &[10])
            .unwrap_err()
            .to_string();
        assert!(err.contains("label value of 10"), "{err}");
        assert!(sce
            .check_targets(&t(vec![2, 1], vec![1.0, 9.0]), &[10])
            .is_ok());
        let cce = Loss::from_value(&json!("categorical_crossentropy")).unwrap();
        let err = cce
            .check_targets(&t(vec![2, 9], vec![0.0; 18]), &[10])
            .unwrap_err()
            .to_string();
        assert!(err.contains("target.shape=(None, 9)"), "{err}");
        assert!(Loss::from_value(&json!("hinge_typo")).is_err());
    }
}
