//! Keras initializers: names, defaults and fan rules (`(kh, kw, in, out)` kernels count the receptive field).

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde_json::Value;

/// Keras divides the truncated-normal stddev by this so the truncated distribution keeps the target variance.
const TRUNC_STD_CORRECTION: f32 = 0.879_625_7;

#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f32),
    RandomNormal {
        mean: f32,
        stddev: f32,
    },
    RandomUniform {
        minval: f32,
        maxval: f32,
    },
    TruncatedNormal {
        mean: f32,
        stddev: f32,
    },
    /// Keras's OrthogonalInitializer (recurrent kernels): the Q of a QR decomposition of a normal matrix.
    Orthogonal {
        gain: f32,
    },
    /// Keras's VarianceScaling, which glorot_*, he_* and lecun_* are.
    VarianceScaling {
        scale: f32,
        mode: FanMode,
        uniform: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FanMode {
    In,
    Out,
    Avg,
}

pub const NAMES: &[&str] = &[
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
];

fn vs(scale: f32, mode: FanMode, uniform: bool) -> Initializer {
    Initializer::VarianceScaling {
        scale,
        mode,
        uniform,
    }
}

/// Keras class names and snake-case names map to the same thing.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

impl Initializer {
    /// From a Keras name (`"he_normal"`, `"HeNormal"`) or a serialized `{"class_name", "config"}` dict.
    pub fn from_value(v: &Value) -> Result<Self> {
        let (name, cfg) = match v {
            Value::String(s) => (s.as_str(), &Value::Null),
            Value::Object(o) => match o.get("class_name").and_then(Value::as_str) {
                Some(c) => (c, o.get("config").unwrap_or(&Value::Null)),
                None => {
                    return Err(Error::Value(format!(
                        "initializer dict needs a `class_name`, received {v}"
                    )))
                }
            },
            _ => {
                return Err(Error::Value(format!(
                    "initializer must be a name or a dict, received {v}"
                )))
            }
        };
        let num = |k: &str, d: f32| -> f32 {
            cfg.get(k)
                .and_then(Value::as_f64)
                .map(|x| x as f32)
                .unwrap_or(d)
        };
        use FanMode::*;
        Ok(match normalise(name).as_str() {
            "zeros" | "zero" => Initializer::Zeros,
            "ones" | "one" => Initializer::Ones,
            "constant" => Initializer::Constant(num("value", 0.0)),
            // "normal" and "uniform" are Keras's aliases of the random ones (Embedding's default is "uniform")
            "random_normal" | "normal" => Initializer::RandomNormal {
                mean: num("mean", 0.0),
                stddev: num("stddev", 0.05),
            },
            "random_uniform" | "uniform" => Initializer::RandomUniform {
                minval: num("minval", -0.05),
                maxval: num("maxval", 0.05),
            },
            "truncated_normal" => Initializer::TruncatedNormal {
                mean: num("mean", 0.0),
                stddev: num("stddev", 0.05),
            },
            "orthogonal" | "orthogonal_initializer" => Initializer::Orthogonal {
                gain: num("gain", 1.0),
            },
            "glorot_uniform" => vs(1.0, Avg, true),
            "glorot_normal" => vs(1.0, Avg, false),
            "he_normal" => vs(2.0, In, false),
            "he_uniform" => vs(2.0, In, true),
            "lecun_normal" => vs(1.0, In, false),
            "lecun_uniform" => vs(1.0, In, true),
            "variance_scaling" => {
                let mode = match cfg.get("mode").and_then(Value::as_str).unwrap_or("fan_in") {
                    "fan_in" => In,
                    "fan_out" => Out,
                    "fan_avg" => Avg,
                    m => return Err(Error::Value(format!("VarianceScaling: unknown mode '{m}'"))),
                };
                let uniform = cfg.get("distribution").and_then(Value::as_str) == Some("uniform");
                vs(num("scale", 1.0), mode, uniform)
            }
            _ => {
                return Err(Error::Value(format!(
                    "Unknown initializer: '{name}'. Expected one of: {}",
                    NAMES.join(", ")
                )))
            }
        })
    }

    /// Values for a weight of `shape`; a shape too large to allocate is a ValueError, never an abort.
    pub fn fill(&self, shape: &[usize], rng: &mut Rng) -> Result<Vec<f32>> {
        let n = checked_numel("weight", shape)?;
        if rng.is_shape_only() {
            return Ok(vec![0.0; n]); // a build for its shapes only (`Rng::shape_only`)
        }
        Ok(match *self {
            Initializer::Zeros => vec![0.0; n],
            Initializer::Ones => vec![1.0; n],
            Initializer::Constant(c) => vec![c; n],
            Initializer::RandomNormal { mean, stddev } => {
                (0..n).map(|_| mean + stddev * rng.normal()).collect()
            }
            Initializer::RandomUniform { minval, maxval } => (0..n)
                .map(|_| minval + (maxval - minval) * rng.uniform())
                .collect(),
            Initializer::TruncatedNormal { mean, stddev } => (0..n)
                .map(|_| mean + stddev * rng.truncated_normal())
                .collect(),
            Initializer::Orthogonal { gain } => orthogonal(shape, gain, rng),
            Initializer::VarianceScaling {
                scale,
                mode,
                uniform,
            } => {
                let (fan_in, fan_out) = fans(shape);
                let denom = match mode {
                    FanMode::In => fan_in,
                    FanMode::Out => fan_out,
                    FanMode::Avg => (fan_in + fan_out) / 2.0,
                }
                .max(1.0);
                let var = scale / denom;
                if uniform {
                    let limit = (3.0 * var).sqrt();
                    (0..n)
                        .map(|_| limit * (2.0 * rng.uniform() - 1.0))
                        .collect()
                } else {
                    let std = var.sqrt() / TRUNC_STD_CORRECTION;
                    (0..n).map(|_| std * rng.truncated_normal()).collect()
                }
            }
        })
    }
}

/// Keras's orthogonal rule: the weight as a (rows = product of all but the last axis, cols = last axis) matrix
/// whose rows (or columns, whichever are fewer) are orthonormal, times `gain`: the Q of a normal matrix's QR, by
/// Gram-Schmidt in f64 (re-orthogonalised once). Gram-Schmidt's R has a positive diagonal, which is the sign
/// Keras gives Q (it multiplies Q by the signs of R's diagonal).
fn orthogonal(shape: &[usize], gain: f32, rng: &mut Rng) -> Vec<f32> {
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let rows = (shape.iter().product::<usize>() / cols).max(1);
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` orthonormal vectors of length `long`
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(short);
    while q.len() < short {
        let mut v: Vec<f64> = (0..long).map(|_| rng.normal() as f64).collect();
        for _ in 0..2 {
            for u in &q {
                let d: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(x, a)| *x -= d * a);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(v.iter().map(|x| x / norm).collect());
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for (j, u) in q.iter().enumerate() {
        for (i, &x) in u.iter().enumerate() {
            // q has orthonormal columns (long x short): element (i, j); transposed when rows < cols
            let (r, c) = if rows >= cols { (i, j) } else { (j, i) };
            out[r * cols + c] = gain * x as f32;
        }
    }
    out
}

/// Largest number of values kerust allocates for one weight or one sample's activation (1 GiB of f32).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The product of `shape`, or a ValueError when it overflows or exceeds `MAX_ELEMENTS`.
pub fn checked_numel(what: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            Error::Value(format!(
                "{what} of shape {shape:?} is too large: kerust allocates at most {MAX_ELEMENTS} values per \
                 weight or per sample"
            ))
        })
}

/// Keras's `compute_fans`: the last two axes are (in, out); the rest is the receptive field.
pub fn fans(shape: &[usize]) -> (f32, f32) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f32, shape[0] as f32),
        2 => (shape[0] as f32, shape[1] as f32),
        r => {
            let receptive: usize = shape[..r - 2].iter().product();
            (
                (shape[r - 2] * receptive) as f32,
                (shape[r - 1] * receptive) as f32,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glorot_uniform_limit_and_spread() {
        let init = Initializer::from_value(&json!("glorot_uniform")).unwrap();
        let mut rng = Rng::new(0);
        let w = init.fill(&[784, 128], &mut rng).unwrap();
        let limit = (6.0f32 / (784.0 + 128.0)).sqrt();
        assert!(w.iter().all(|&v| v.abs() <= limit));
        let max = w.iter().fold(0.0f32, |a, &b| a.max(b.abs()));
        assert!(max > 0.99 * limit);
    }

    #[test]
    fn he_normal_std_and_truncation() {
        let init =
            Initializer::from_value(&json!({"class_name": "HeNormal", "config": {"seed": null}}))
                .unwrap();
        let mut rng = Rng::new(0);
        let w = init.fill(&[3, 3, 64, 64], &mut rng).unwrap();
        let fan_in = 3.0 * 3.0 * 64.0;
        let target = (2.0f64 / fan_in).sqrt();
        let var: f64 = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            (var.sqrt() / target - 1.0).abs() < 0.03,
            "{} vs {}",
            var.sqrt(),
            target
        );
        let bound = 2.0 * target / TRUNC_STD_CORRECTION as f64;
        assert!(w.iter().all(|&v| (v as f64).abs() <= bound + 1e-6));
    }

    #[test]
    fn fans_of_conv_kernel() {
        assert_eq!(fans(&[3, 3, 32, 64]), (288.0, 576.0));
        assert!(Initializer::from_value(&json!("bogus")).is_err());
        assert!(checked_numel("w", &[1 << 40, 1 << 30]).is_err());
        assert!(Initializer::Zeros
            .fill(&[1 << 20, 1 << 20], &mut Rng::new(0))
            .is_err());
    }
}
