//! Keras's weight constraints (`kernel_constraint=`, `bias_constraint=`, ...): a projection applied to a weight
//! after each optimizer update, as Keras's optimizer does (`variable.assign(constraint(variable))`).
//! Norms are taken over `axis` (an int, a list, negative from the end, or null for every axis) with the other
//! axes kept, and Keras's epsilon (1e-7) in the denominators.

use crate::error::{Error, Result};
use serde_json::Value;

const EPSILON: f32 = 1e-7;

#[derive(Clone, Debug, PartialEq)]
pub enum Axes {
    All,
    List(Vec<i64>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// `w * clip(norm, 0, max_value) / (eps + norm)`
    MaxNorm { max_value: f32, axes: Axes },
    /// `max(w, 0)`
    NonNeg,
    /// `w / (eps + norm)`
    UnitNorm { axes: Axes },
    /// `w * (rate * clip(norm, min, max) + (1 - rate) * norm) / (eps + norm)`
    MinMaxNorm {
        min_value: f32,
        max_value: f32,
        rate: f32,
        axes: Axes,
    },
    /// Keras's base `Constraint`: the identity.
    Identity,
}

fn number(name: &str, cfg: &Value, key: &str, default: f32) -> Result<f32> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f as f32)
            .ok_or_else(|| Error::Value(format!("{name}: `{key}` must be a number, received {v}"))),
    }
}

fn axes(name: &str, cfg: &Value) -> Result<Axes> {
    let bad = |v: &Value| {
        Error::Value(format!(
            "{name}: `axis` must be an int, a list of ints or None, received {v}"
        ))
    };
    match cfg.get("axis") {
        None => Ok(Axes::List(vec![0])),
        Some(Value::Null) => Ok(Axes::All),
        Some(v @ Value::Number(_)) => Ok(Axes::List(vec![v.as_i64().ok_or_else(|| bad(v))?])),
        Some(v @ Value::Array(items)) => Ok(Axes::List(
            items
                .iter()
                .map(|a| a.as_i64().ok_or_else(|| bad(v)))
                .collect::<Result<_>>()?,
        )),
        Some(v) => Err(bad(v)),
    }
}

impl Constraint {
    /// From a name (`"max_norm"`, `"MaxNorm"`, ...) or `{"class_name": .., "config": {..}}`; None for null.
    pub fn from_value(v: &Value) -> Result<Option<Self>> {
        let Some((name, cfg)) = crate::config::class_and_config(v, "constraint")? else {
            return Ok(None);
        };
        let c = match name {
            "MaxNorm" | "max_norm" => Constraint::MaxNorm {
                max_value: number(name, cfg, "max_value", 2.0)?,
                axes: axes(name, cfg)?,
            },
            "NonNeg" | "non_neg" => Constraint::NonNeg,
            "UnitNorm" | "unit_norm" => Constraint::UnitNorm {
                axes: axes(name, cfg)?,
            },
            "MinMaxNorm" | "min_max_norm" => Constraint::MinMaxNorm {
                min_value: number(name, cfg, "min_value", 0.0)?,
                max_value: number(name, cfg, "max_value", 1.0)?,
                rate: number(name, cfg, "rate", 1.0)?,
                axes: axes(name, cfg)?,
            },
            "Constraint" | "constraint" => Constraint::Identity,
            _ => {
                return Err(Error::Value(format!(
                "Could not interpret constraint identifier: '{name}'. Expected one of: max_norm, \
                     non_neg, unit_norm, min_max_norm (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)"
            )))
            }
        };
        Ok(Some(c))
    }

    /// Check the axes against a weight's rank (at build, so a bad axis fails before training).
    pub fn check_rank(&self, shape: &[usize]) -> Result<()> {
        let list = match self {
            Constraint::MaxNorm { axes, .. }
            | Constraint::UnitNorm { axes }
            | Constraint::MinMaxNorm { axes, .. } => axes,
            _ => return Ok(()),
        };
        if let Axes::List(list) = list {
            let rank = shape.len() as i64;
            for &a in list {
                if a >= rank || a < -rank {
                    return Err(Error::Value(format!(
                        "constraint axis {a} is out of bounds for a weight of rank {rank} (shape {shape:?})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Project `w` (of `shape`) in place.
    pub fn apply(&self, w: &mut [f32], shape: &[usize]) {
        let scale = |norm: f32| -> f32 {
            match self {
                Constraint::MaxNorm { max_value, .. } => {
                    norm.clamp(0.0, *max_value) / (EPSILON + norm)
                }
                Constraint::UnitNorm { .. } => 1.0 / (EPSILON + norm),
                Constraint::MinMaxNorm {
                    min_value,
                    max_value,
                    rate,
                    ..
                } => {
                    let desired = rate * norm.clamp(*min_value, *max_value) + (1.0 - rate) * norm;
                    desired / (EPSILON + norm)
                }
                _ => 1.0,
            }
        };
        let axes = match self {
            Constraint::NonNeg => {
                w.iter_mut().for_each(|v| *v = v.max(0.0));
                return;
            }
            Constraint::Identity => return,
            Constraint::MaxNorm { axes, .. }
            | Constraint::UnitNorm { axes }
            | Constraint::MinMaxNorm { axes, .. } => axes,
        };
        let group = group_of(shape, axes);
        let groups = group.iter().copied().max().map_or(0, |g| g + 1);
        let mut sums = vec![0.0f64; groups];
        for (&v, &g) in w.iter().zip(&group) {
            sums[g] += (v as f64) * (v as f64);
        }
        let factors: Vec<f32> = sums.iter().map(|&s| scale((s as f32).sqrt())).collect();
        for (v, &g) in w.iter_mut().zip(&group) {
            *v *= factors[g];
        }
    }
}

/// The config key of a layer's constraint on its weight `param` (Keras's argument names: `kernel_constraint`,
/// `recurrent_constraint`, `depthwise_constraint`, `embeddings_constraint`, ...).
fn config_key(class_name: &str, param: &str) -> String {
    match param {
        "kernel" if class_name == "DepthwiseConv2D" => "depthwise_constraint".into(),
        "recurrent_kernel" => "recurrent_constraint".into(),
        "depthwise_kernel" => "depthwise_constraint".into(),
        "pointwise_kernel" => "pointwise_constraint".into(),
        other => format!("{other}_constraint"),
    }
}

/// Give a built layer's weights the constraints its config names (checked against each weight's rank).
pub fn attach(class_name: &str, cfg: &Value, params: &mut [crate::layers::Param]) -> Result<()> {
    if class_name == "Bidirectional" {
        // the forward layer's weights, then the backward layer's, each with its own config
        let half = params.len() / 2;
        let (fwd, bwd) = params.split_at_mut(half);
        for (key, part) in [("layer", fwd), ("backward_layer", bwd)] {
            // without `backward_layer`, the backward layer is a copy of `layer`
            if let Some(sub) = cfg.get(key).or_else(|| cfg.get("layer")) {
                let class = sub.get("class_name").and_then(Value::as_str).unwrap_or("");
                attach(class, sub.get("config").unwrap_or(&Value::Null), part)?;
            }
        }
        return Ok(());
    }
    for p in params.iter_mut() {
        let key = config_key(class_name, p.name);
        let Some(v) = cfg.get(&key) else { continue };
        let who = || {
            format!(
                "{class_name} '{}': `{key}`",
                cfg.get("name").and_then(Value::as_str).unwrap_or("")
            )
        };
        p.constraint =
            Constraint::from_value(v).map_err(|e| Error::Value(format!("{}: {e}", who())))?;
        if let Some(c) = &p.constraint {
            c.check_rank(&p.shape)
                .map_err(|e| Error::Value(format!("{}: {e}", who())))?;
        }
    }
    Ok(())
}

/// For every element of an array of `shape`, the index of its norm group: its position with the reduced axes
/// dropped (row-major over the kept axes).
fn group_of(shape: &[usize], axes: &Axes) -> Vec<usize> {
    let rank = shape.len();
    let reduced: Vec<bool> = (0..rank)
        .map(|d| match axes {
            Axes::All => true,
            Axes::List(list) => list.iter().any(|&a| {
                let a = if a < 0 { a + rank as i64 } else { a };
                a == d as i64
            }),
        })
        .collect();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; rank];
    for _ in 0..n {
        let mut g = 0;
        for d in 0..rank {
            if !reduced[d] {
                g = g * shape[d] + coord[d];
            }
        }
        out.push(g);
        // next coordinate, last axis fastest
        for d in (0..rank).rev() {
            coord[d] += 1;
            if coord[d] < shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_norm_scales_columns_over_axis_0() {
        // (2, 2): column 0 has norm 5 (scaled to 2), column 1 norm 1 (kept)
        let c = Constraint::from_value(
            &json!({"class_name": "MaxNorm", "config": {"max_value": 2, "axis": 0}}),
        )
        .unwrap()
        .unwrap();
        let mut w = vec![3.0, 0.0, 4.0, 1.0];
        c.apply(&mut w, &[2, 2]);
        let f = 2.0 / (5.0 + EPSILON);
        assert_eq!(w, vec![3.0 * f, 0.0, 4.0 * f, 1.0 / (1.0 + EPSILON)]);
    }

    #[test]
    fn unit_norm_over_several_axes_and_non_neg() {
        let c =
            Constraint::from_value(&json!({"class_name": "UnitNorm", "config": {"axis": [0, 1]}}))
                .unwrap()
                .unwrap();
        let mut w: Vec<f32> = (0..12).map(|i| i as f32 - 5.0).collect();
        c.apply(&mut w, &[2, 3, 2]);
        for j in 0..2 {
            let s: f32 = (0..6).map(|i| w[i * 2 + j] * w[i * 2 + j]).sum();
            assert!((s - 1.0).abs() < 1e-5, "{s}");
        }
        let mut v = vec![-1.0, 2.0];
        Constraint::from_value(&json!("non_neg"))
            .unwrap()
            .unwrap()
            .apply(&mut v, &[2]);
        assert_eq!(v, vec![0.0, 2.0]);
    }

    #[test]
    fn bad_names_and_axes_are_refused() {
        assert!(Constraint::from_value(&json!("nope")).is_err());
        let c = Constraint::from_value(&json!({"class_name": "MaxNorm", "config": {"axis": 3}}))
            .unwrap()
            .unwrap();
        assert!(c.check_rank(&[2, 2]).is_err());
        assert!(c.check_rank(&[2, 2, 2, 2]).is_ok());
    }
}
