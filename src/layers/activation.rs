//! The `Activation` layer: an activation on its own.

use super::{activation_of, Ctx, FusedActivation, Layer};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

pub struct ActivationLayer {
    name: String,
    act: FusedActivation,
}

impl ActivationLayer {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Activation", v)?;
        if cfg.raw("activation").is_none() {
            return Err(crate::error::Error::Value(format!(
                "Activation '{}': missing required argument `activation`",
                cfg.name
            )));
        }
        Ok(ActivationLayer {
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name,
        })
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Activation"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.act.forward(&mut x, ctx.training);
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        self.act.backward(&mut grad)?;
        Ok(grad)
    }
    fn activation(&self) -> Activation {
        self.act.act
    }
    fn clear_cache(&mut self) {
        self.act.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn gradients() {
        // the same normal input, moved off the activations' kinks (0, +-0.5, +-1, +-3, 6), where a finite
        // difference straddles two pieces
        let mut x = gradcheck::input(&[2, 5], 4);
        for v in x.data.iter_mut() {
            for k in [0.0f32, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0] {
                if (*v - k).abs() < 0.05 {
                    *v = k + 0.1;
                }
            }
        }
        for act in crate::activations::NAMES {
            let mut l = ActivationLayer::from_config(&json!({"activation": act})).unwrap();
            gradcheck::check(&mut l, x.clone(), 2e-2);
        }
    }
}
