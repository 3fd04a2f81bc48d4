//! Dropout: in training, zero each value with probability `rate` and scale the rest by 1 / (1 - rate).

use super::{Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

pub struct Dropout {
    name: String,
    rate: f32,
    /// Own stream when the user gave `seed=`; else masks come from the model's stream.
    own_rng: Option<Rng>,
    /// Keras's `noise_shape`, batch axis first: None keeps the input's size there, 1 shares one draw along it.
    noise_shape: Option<Vec<Option<usize>>>,
    mask: Vec<f32>,
}

impl Dropout {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Dropout", v)?;
        let rate = cfg.rate()?;
        let noise_shape = match cfg.raw("noise_shape") {
            None | Some(Value::Null) => None,
            Some(Value::Array(dims)) => Some(
                dims.iter()
                    .map(|d| match d {
                        Value::Null => Ok(None),
                        _ => d.as_u64().filter(|&n| n > 0 && n < 1 << 31).map(|n| Some(n as usize)).ok_or_else(
                            || {
                                Error::Value(format!(
                                    "Dropout '{}': `noise_shape` must hold positive sizes or None, received {d}",
                                    cfg.name
                                ))
                            },
                        ),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(Error::Value(format!(
                    "Dropout '{}': `noise_shape` must be a list of sizes or None, received {other}",
                    cfg.name
                )))
            }
        };
        let own_rng = cfg.raw("seed").and_then(Value::as_u64).map(Rng::new);
        Ok(Dropout {
            name: cfg.name,
            rate,
            own_rng,
            noise_shape,
            mask: Vec::new(),
        })
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Dropout"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        if let Some(noise) = &self.noise_shape {
            let ok = noise.len() == input_shape.len() + 1
                && noise[1..]
                    .iter()
                    .zip(input_shape)
                    .all(|(n, &d)| n.is_none_or(|n| n == 1 || n == d));
            if !ok {
                return Err(Error::Value(format!(
                    "Dropout '{}': `noise_shape` {noise:?} does not broadcast to the input shape (None, {})",
                    self.name,
                    input_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        if !ctx.training || self.rate == 0.0 {
            self.mask.clear();
            return Ok(x);
        }
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        let rng = self.own_rng.as_mut().unwrap_or(ctx.rng);
        self.mask.clear();
        match &self.noise_shape {
            None => self.mask.extend((0..x.data.len()).map(|_| {
                if rng.uniform() < keep {
                    scale
                } else {
                    0.0
                }
            })),
            Some(noise) => {
                // draw on the noise shape, then broadcast it over the axes where it is 1
                let drawn: Vec<usize> = noise
                    .iter()
                    .zip(&x.shape)
                    .map(|(n, &d)| if *n == Some(1) { 1 } else { d })
                    .collect();
                let small: Vec<f32> = (0..drawn.iter().product::<usize>())
                    .map(|_| if rng.uniform() < keep { scale } else { 0.0 })
                    .collect();
                let rank = x.shape.len();
                let mut coord = vec![0usize; rank];
                for _ in 0..x.data.len() {
                    let mut at = 0;
                    for d in 0..rank {
                        at = at * drawn[d] + if drawn[d] == 1 { 0 } else { coord[d] };
                    }
                    self.mask.push(small[at]);
                    for d in (0..rank).rev() {
                        coord[d] += 1;
                        if coord[d] < x.shape[d] {
                            break;
                        }
                        coord[d] = 0;
                    }
                }
            }
        }
        x.data.iter_mut().zip(&self.mask).for_each(|(v, m)| *v *= m);
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        if self.mask.len() == grad.data.len() {
            grad.data
                .iter_mut()
                .zip(&self.mask)
                .for_each(|(g, m)| *g *= m);
        }
        Ok(grad)
    }
    fn clear_cache(&mut self) {
        self.mask = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_expectation_and_checks_rate() {
        let mut d = Dropout::from_config(&json!({"rate": 0.25, "seed": 3})).unwrap();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = d
            .forward(
                Tensor::new(vec![1, 40000], vec![1.0; 40000]).unwrap(),
                &mut ctx,
            )
            .unwrap();
        let zeros = y.data.iter().filter(|&&v| v == 0.0).count() as f64 / 40000.0;
        assert!((zeros - 0.25).abs() < 0.01);
        let mean: f64 = y.data.iter().map(|&v| v as f64).sum::<f64>() / 40000.0;
        assert!((mean - 1.0).abs() < 0.02);
        assert!(y
            .data
            .iter()
            .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        assert!(Dropout::from_config(&json!({"rate": 1.0})).is_err());
        assert!(Dropout::from_config(&json!({"rate": -0.1})).is_err());
    }

    #[test]
    fn gradient_uses_the_same_mask() {
        // the seeded stream replays the same mask on every forward in the finite-difference loop
        let mut d = Dropout::from_config(&json!({"rate": 0.5})).unwrap();
        gradcheck::check(&mut d, gradcheck::input(&[2, 6], 1), 1e-2);
    }
}
