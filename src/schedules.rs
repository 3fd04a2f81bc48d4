//! Learning-rate schedules (`keras.optimizers.schedules`): the rate as a function of the optimizer's step,
//! evaluated at `iterations` before each update, with Keras's formulas.

use crate::error::{Error, Result};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    ExponentialDecay {
        initial: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    PiecewiseConstantDecay {
        boundaries: Vec<f64>,
        values: Vec<f64>,
    },
    PolynomialDecay {
        initial: f64,
        decay_steps: f64,
        end: f64,
        power: f64,
        cycle: bool,
    },
    InverseTimeDecay {
        initial: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    CosineDecay {
        initial: f64,
        decay_steps: f64,
        alpha: f64,
        warmup_target: Option<f64>,
        warmup_steps: f64,
    },
}

pub const NAMES: &[&str] = &[
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
];

impl Schedule {
    /// From Keras's serialized form `{"class_name": "ExponentialDecay", "config": {...}}`.
    pub fn from_value(v: &Value) -> Result<Self> {
        let name = v.get("class_name").and_then(Value::as_str).unwrap_or("");
        let cfg = v.get("config").cloned().unwrap_or(Value::Null);
        let num = |k: &str, default: Option<f64>| -> Result<f64> {
            match cfg.get(k) {
                Some(x) if !x.is_null() => x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                    Error::Value(format!(
                        "{name}: `{k}` expected a finite number, received {x}"
                    ))
                }),
                _ => default.ok_or_else(|| {
                    Error::Value(format!("{name}: missing required argument `{k}`"))
                }),
            }
        };
        let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
        let positive = |k: &str, x: f64| -> Result<f64> {
            if x > 0.0 {
                Ok(x)
            } else {
                Err(Error::Value(format!(
                    "{name}: `{k}` must be positive, received {x}"
                )))
            }
        };
        let list = |k: &str| -> Result<Vec<f64>> {
            cfg.get(k)
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                .ok_or_else(|| Error::Value(format!("{name}: `{k}` must be a list of numbers")))
        };
        let s = match name {
            "ExponentialDecay" => Schedule::ExponentialDecay {
                initial: num("initial_learning_rate", None)?,
                decay_steps: positive("decay_steps", num("decay_steps", None)?)?,
                decay_rate: num("decay_rate", None)?,
                staircase: flag("staircase"),
            },
            "PiecewiseConstantDecay" => {
                let boundaries = list("boundaries")?;
                let values = list("values")?;
                if values.len() != boundaries.len() + 1 {
                    return Err(Error::Value(format!(
                        "PiecewiseConstantDecay: the length of `values` ({}) must be one more than the length \
                         of `boundaries` ({})",
                        values.len(),
                        boundaries.len()
                    )));
                }
                Schedule::PiecewiseConstantDecay { boundaries, values }
            }
            "PolynomialDecay" => Schedule::PolynomialDecay {
                initial: num("initial_learning_rate", None)?,
                decay_steps: positive("decay_steps", num("decay_steps", None)?)?,
                end: num("end_learning_rate", Some(1e-4))?,
                power: num("power", Some(1.0))?,
                cycle: flag("cycle"),
            },
            "InverseTimeDecay" => Schedule::InverseTimeDecay {
                initial: num("initial_learning_rate", None)?,
                decay_steps: positive("decay_steps", num("decay_steps", None)?)?,
                decay_rate: num("decay_rate", None)?,
                staircase: flag("staircase"),
            },
            "CosineDecay" => Schedule::CosineDecay {
                initial: num("initial_learning_rate", None)?,
                decay_steps: positive("decay_steps", num("decay_steps", None)?)?,
                alpha: num("alpha", Some(0.0))?,
                warmup_target: match cfg.get("warmup_target") {
                    Some(x) if !x.is_null() => Some(num("warmup_target", None)?),
                    _ => None,
                },
                warmup_steps: num("warmup_steps", Some(0.0))?,
            },
            _ => {
                return Err(Error::Value(format!(
                    "Unknown learning rate schedule: '{name}'. Expected one of: {}",
                    NAMES.join(", ")
                )))
            }
        };
        Ok(s)
    }

    /// The learning rate at optimizer step `step` (0 for the first update).
    pub fn at(&self, step: u64) -> f32 {
        let step = step as f64;
        let lr = match *self {
            Schedule::ExponentialDecay {
                initial,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let p = step / decay_steps;
                initial * decay_rate.powf(if staircase { p.floor() } else { p })
            }
            Schedule::PiecewiseConstantDecay {
                ref boundaries,
                ref values,
            } => {
                let i = boundaries.iter().take_while(|&&b| step > b).count();
                values[i.min(values.len() - 1)]
            }
            Schedule::PolynomialDecay {
                initial,
                decay_steps,
                end,
                power,
                cycle,
            } => {
                let (s, d) = if cycle {
                    let mult = if step == 0.0 {
                        1.0
                    } else {
                        (step / decay_steps).ceil()
                    };
                    (step, decay_steps * mult)
                } else {
                    (step.min(decay_steps), decay_steps)
                };
                (initial - end) * (1.0 - s / d).powf(power) + end
            }
            Schedule::InverseTimeDecay {
                initial,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let p = step / decay_steps;
                initial / (1.0 + decay_rate * if staircase { p.floor() } else { p })
            }
            Schedule::CosineDecay {
                initial,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => match warmup_target {
                Some(target) if step < warmup_steps => {
                    initial + (target - initial) * step / warmup_steps
                }
                _ => {
                    let s = (step - warmup_steps).clamp(0.0, decay_steps);
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * s / decay_steps).cos());
                    warmup_target.unwrap_or(initial) * ((1.0 - alpha) * cosine + alpha)
                }
            },
        };
        lr as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sched(name: &str, cfg: Value) -> Schedule {
        Schedule::from_value(&json!({"class_name": name, "config": cfg})).unwrap()
    }

    #[test]
    fn keras_formulas_by_hand() {
        let e = sched(
            "ExponentialDecay",
            json!({"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}),
        );
        assert!((e.at(5) - 0.1 * 0.5f32.powf(0.5)).abs() < 1e-7);
        let e = sched(
            "ExponentialDecay",
            json!({"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": true}),
        );
        assert_eq!(e.at(19), 0.05);
        let p = sched(
            "PiecewiseConstantDecay",
            json!({"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}),
        );
        assert_eq!((p.at(10), p.at(11), p.at(21)), (1.0, 0.5, 0.1));
        let q = sched(
            "PolynomialDecay",
            json!({"initial_learning_rate": 1.0, "decay_steps": 10, "end_learning_rate": 0.0}),
        );
        assert!((q.at(5) - 0.5).abs() < 1e-7 && q.at(50) == 0.0);
        let i = sched(
            "InverseTimeDecay",
            json!({"initial_learning_rate": 1.0, "decay_steps": 1, "decay_rate": 0.5}),
        );
        assert!((i.at(2) - 0.5).abs() < 1e-7);
        let c = sched(
            "CosineDecay",
            json!({"initial_learning_rate": 1.0, "decay_steps": 10, "alpha": 0.1}),
        );
        assert!((c.at(5) - 0.55).abs() < 1e-6 && (c.at(10) - 0.1).abs() < 1e-7);
        let w = sched(
            "CosineDecay",
            json!({"initial_learning_rate": 0.0, "decay_steps": 10, "warmup_target": 1.0, "warmup_steps": 4}),
        );
        assert!((w.at(2) - 0.5).abs() < 1e-7 && (w.at(4) - 1.0).abs() < 1e-7);
        assert!(Schedule::from_value(&json!({"class_name": "Nope", "config": {}})).is_err());
    }
}
