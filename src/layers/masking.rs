//! Masking: a step whose every feature equals `mask_value` becomes zeros (the mask that tells later layers to
//! skip it is computed beside it, in the graph, as Keras computes it: `any(x != mask_value, axis=-1)`).

use super::{Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

pub struct Masking {
    name: String,
    mask_value: f32,
    features: usize,
    /// Per step of the last training pass: whether it was kept.
    kept: Vec<bool>,
}

impl Masking {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Masking", v)?;
        Ok(Masking {
            mask_value: cfg.f32_or("mask_value", 0.0)?,
            name: cfg.name,
            features: 0,
            kept: Vec::new(),
        })
    }
}

impl Layer for Masking {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Masking"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.features = *input_shape.last().ok_or_else(|| {
            Error::Value(format!(
                "Masking '{}': needs inputs with a feature axis, received a scalar per sample",
                self.name
            ))
        })?;
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let f = self.features.max(1);
        let v = self.mask_value;
        let kept: Vec<bool> = x
            .data
            .chunks_mut(f)
            .map(|row| {
                let keep = row.iter().any(|&a| a != v);
                if !keep {
                    row.fill(0.0);
                }
                keep
            })
            .collect();
        if ctx.training {
            self.kept = kept;
        }
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        let f = self.features.max(1);
        if grad.data.len() != self.kept.len() * f {
            return Err(Error::Runtime(format!(
                "Masking '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        for (row, &keep) in grad.data.chunks_mut(f).zip(&self.kept) {
            if !keep {
                row.fill(0.0);
            }
        }
        Ok(grad)
    }
    fn clear_cache(&mut self) {
        self.kept = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_equal_to_the_mask_value_become_zeros() {
        let mut m = Masking::from_config(&json!({"mask_value": 2.0})).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(m.build(&[3, 2], &mut rng).unwrap(), vec![3, 2]);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![1, 3, 2], vec![2., 2., 2., 1., 5., 2.]).unwrap();
        assert_eq!(
            m.forward(x, &mut ctx).unwrap().data,
            vec![0., 0., 2., 1., 5., 2.]
        );
        gradcheck::check(&mut m, gradcheck::input(&[2, 3, 2], 3), 1e-2);
    }
}
