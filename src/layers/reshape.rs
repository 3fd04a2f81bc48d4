//! Flatten and Reshape: no arithmetic, only a new shape for the same row-major values.

use super::{Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

fn with_batch(batch: usize, sample: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(sample.len() + 1);
    s.push(batch);
    s.extend_from_slice(sample);
    s
}

pub struct Flatten {
    name: String,
    in_shape: Vec<usize>,
}

impl Flatten {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Flatten", v)?;
        cfg.channels_last()?;
        Ok(Flatten {
            name: cfg.name,
            in_shape: Vec::new(),
        })
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Flatten"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.in_shape = input_shape.to_vec();
        Ok(vec![input_shape.iter().product()])
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let (b, n) = (x.batch(), x.sample_len());
        x.reshaped(vec![b, n])
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        let b = grad.batch();
        grad.reshaped(with_batch(b, &self.in_shape))
    }
}

pub struct Reshape {
    name: String,
    target: Vec<i64>,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

impl Reshape {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Reshape", v)?;
        let raw = cfg.raw("target_shape").ok_or_else(|| {
            Error::Value(format!(
                "Reshape '{}': missing required argument `target_shape`",
                cfg.name
            ))
        })?;
        let target: Option<Vec<i64>> = raw
            .as_array()
            .map(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>())
            .unwrap_or(None);
        let target = target
            .filter(|t| {
                t.iter().all(|&d| d > 0 || d == -1) && t.iter().filter(|&&d| d == -1).count() <= 1
            })
            .ok_or_else(|| {
                cfg.err(
                    "target_shape",
                    "a tuple of positive integers (at most one -1)",
                    raw,
                )
            })?;
        Ok(Reshape {
            name: cfg.name,
            target,
            in_shape: Vec::new(),
            out_shape: Vec::new(),
        })
    }
}

impl Layer for Reshape {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Reshape"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let total: usize = input_shape.iter().product();
        let known: usize = self
            .target
            .iter()
            .filter(|&&d| d > 0)
            .map(|&d| d as usize)
            .product();
        let bad = || {
            Error::Value(format!(
                "Reshape '{}': cannot reshape input of shape {} ({} values per sample) to target_shape {:?}",
                self.name,
                shape_str(input_shape),
                total,
                self.target
            ))
        };
        let out: Vec<usize> = if self.target.contains(&-1) {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(bad());
            }
            self.target
                .iter()
                .map(|&d| if d == -1 { total / known } else { d as usize })
                .collect()
        } else {
            if known != total {
                return Err(bad());
            }
            self.target.iter().map(|&d| d as usize).collect()
        };
        self.in_shape = input_shape.to_vec();
        self.out_shape = out.clone();
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let b = x.batch();
        x.reshaped(with_batch(b, &self.out_shape))
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        let b = grad.batch();
        grad.reshaped(with_batch(b, &self.in_shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reshape_infers_minus_one_and_rejects_mismatch() {
        let mut r = Reshape::from_config(&json!({"target_shape": [-1, 4]})).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(r.build(&[2, 6], &mut rng).unwrap(), vec![3, 4]);
        let mut r = Reshape::from_config(&json!({"target_shape": [5]})).unwrap();
        assert!(r.build(&[2, 6], &mut rng).is_err());
        assert!(Reshape::from_config(&json!({"target_shape": [-1, -1]})).is_err());
    }

    #[test]
    fn flatten_round_trips_shape() {
        let mut f = Flatten::from_config(&json!({})).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(f.build(&[3, 3, 2], &mut rng).unwrap(), vec![18]);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = f
            .forward(Tensor::zeros(vec![2, 3, 3, 2]), &mut ctx)
            .unwrap();
        assert_eq!(y.shape, vec![2, 18]);
        assert_eq!(f.backward(y, true).unwrap().shape, vec![2, 3, 3, 2]);
    }
}
