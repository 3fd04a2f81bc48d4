//! BatchNormalization over the last axis: batch statistics in training (and moving averages updated),
//! moving statistics in inference. Weights `[gamma, beta, moving_mean, moving_variance]` as Keras.

use super::{initializer_of, Ctx, Layer, Param};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

pub struct BatchNormalization {
    name: String,
    /// The layer's own flag: a frozen BatchNormalization runs in inference mode, even without gamma/beta.
    trainable: bool,
    axis: i64,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    inits: [crate::initializers::Initializer; 4],
    c: usize,
    params: Vec<Param>,
    // training cache
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
}

impl BatchNormalization {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("BatchNormalization", v)?;
        // -1 or the last axis' positive index (checked at build, when the rank is known)
        let axis = match cfg.raw("axis") {
            None => -1,
            Some(Value::Array(a)) if a.len() == 1 && a[0].as_i64().is_some() => {
                a[0].as_i64().unwrap_or(-1)
            }
            Some(x) if x.as_i64().is_some() => x.as_i64().unwrap_or(-1),
            Some(x) => return Err(cfg.err("axis", "an int", x)),
        };
        let momentum = cfg.f32_or("momentum", 0.99)?;
        let epsilon = cfg.f32_or("epsilon", 1e-3)?;
        if !(0.0..=1.0).contains(&momentum) || epsilon <= 0.0 {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': expected momentum in [0, 1] and epsilon > 0, received {momentum} and {epsilon}",
                cfg.name
            )));
        }
        Ok(BatchNormalization {
            trainable: true,
            axis,
            momentum,
            epsilon,
            center: cfg.bool_or("center", true)?,
            scale: cfg.bool_or("scale", true)?,
            inits: [
                initializer_of(&cfg, "gamma_initializer", "ones")?,
                initializer_of(&cfg, "beta_initializer", "zeros")?,
                initializer_of(&cfg, "moving_mean_initializer", "zeros")?,
                initializer_of(&cfg, "moving_variance_initializer", "ones")?,
            ],
            name: cfg.name,
            c: 0,
            params: Vec::new(),
            xhat: Vec::new(),
            inv_std: Vec::new(),
        })
    }

    fn idx(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    fn value(&self, name: &str, default: f32) -> Vec<f32> {
        match self.idx(name) {
            Some(i) => self.params[i].value.clone(),
            None => vec![default; self.c],
        }
    }

    /// Whether training-mode statistics apply: a frozen BatchNormalization runs in inference mode (as Keras).
    fn uses_batch_stats(&self, training: bool) -> bool {
        training && self.trainable
    }
}

impl Layer for BatchNormalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let Some(&c) = input_shape.last() else {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': input must have at least 2 dimensions, received (None,)",
                self.name
            )));
        };
        let rank = input_shape.len() as i64 + 1;
        if self.axis != -1 && self.axis != rank - 1 {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': only the last axis (channels-last) is supported: axis=-1 or {} for \
                 inputs of shape {}, received axis={}",
                self.name,
                rank - 1,
                shape_str(input_shape),
                self.axis
            )));
        }
        self.c = c;
        let shape = vec![c];
        let mut params = Vec::new();
        if self.scale {
            params.push(Param::new(
                "gamma",
                shape.clone(),
                self.inits[0].fill(&shape, rng)?,
                true,
            ));
        }
        if self.center {
            params.push(Param::new(
                "beta",
                shape.clone(),
                self.inits[1].fill(&shape, rng)?,
                true,
            ));
        }
        params.push(Param::new(
            "moving_mean",
            shape.clone(),
            self.inits[2].fill(&shape, rng)?,
            false,
        ));
        params.push(Param::new(
            "moving_variance",
            shape.clone(),
            self.inits[3].fill(&shape, rng)?,
            false,
        ));
        self.params = params;
        Ok(input_shape.to_vec())
    }

    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let c = self.c;
        if x.last_dim() != c || x.shape.len() < 2 {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (BatchNormalization) is incompatible with the layer: expected axis -1 \
                 to have value {c}, found shape {}",
                self.name,
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let rows = x.data.len() / c;
        let gamma = self.value("gamma", 1.0);
        let beta = self.value("beta", 0.0);
        let (mean, var) = if self.uses_batch_stats(ctx.training) && rows > 0 {
            let mut mean = vec![0.0f64; c];
            for row in x.data.chunks(c) {
                mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
            }
            mean.iter_mut().for_each(|m| *m /= rows as f64);
            let mut var = vec![0.0f64; c];
            for row in x.data.chunks(c) {
                var.iter_mut()
                    .zip(row)
                    .zip(&mean)
                    .for_each(|((s, &v), m)| *s += (v as f64 - m).powi(2));
            }
            var.iter_mut().for_each(|s| *s /= rows as f64);
            let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            let var: Vec<f32> = var.iter().map(|&v| v as f32).collect();
            let m = self.momentum;
            for (name, batch) in [("moving_mean", &mean), ("moving_variance", &var)] {
                if let Some(i) = self.idx(name) {
                    self.params[i]
                        .value
                        .iter_mut()
                        .zip(batch.iter())
                        .for_each(|(mv, &bv)| *mv = *mv * m + bv * (1.0 - m));
                }
            }
            (mean, var)
        } else {
            (
                self.value("moving_mean", 0.0),
                self.value("moving_variance", 1.0),
            )
        };
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / (v + self.epsilon).sqrt())
            .collect();
        let keep = ctx.training;
        if keep {
            self.xhat.resize(x.data.len(), 0.0);
        }
        for (r, row) in x.data.chunks_mut(c).enumerate() {
            for ch in 0..c {
                let xh = (row[ch] - mean[ch]) * inv_std[ch];
                if keep {
                    self.xhat[r * c + ch] = xh;
                }
                row[ch] = gamma[ch] * xh + beta[ch];
            }
        }
        if keep {
            self.inv_std = inv_std;
        }
        let _ = rows;
        Ok(x)
    }

    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        let c = self.c;
        if self.xhat.len() != grad.data.len() || c == 0 {
            return Err(Error::Runtime(format!(
                "BatchNormalization '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let rows = grad.data.len() / c;
        let gamma = self.value("gamma", 1.0);
        let mut sum_g = vec![0.0f64; c];
        let mut sum_gx = vec![0.0f64; c];
        for (row, xh) in grad.data.chunks(c).zip(self.xhat.chunks(c)) {
            for ch in 0..c {
                sum_g[ch] += row[ch] as f64;
                sum_gx[ch] += (row[ch] * xh[ch]) as f64;
            }
        }
        if let Some(i) = self.idx("gamma") {
            self.params[i]
                .grad
                .iter_mut()
                .zip(&sum_gx)
                .for_each(|(g, s)| *g += *s as f32);
        }
        if let Some(i) = self.idx("beta") {
            self.params[i]
                .grad
                .iter_mut()
                .zip(&sum_g)
                .for_each(|(g, s)| *g += *s as f32);
        }
        let batch_stats = self.trainable;
        let n = rows as f32;
        for (row, xh) in grad.data.chunks_mut(c).zip(self.xhat.chunks(c)) {
            for ch in 0..c {
                let k = gamma[ch] * self.inv_std[ch];
                row[ch] = if batch_stats {
                    k * (row[ch] - (sum_g[ch] as f32 + xh[ch] * sum_gx[ch] as f32) / n)
                } else {
                    k * row[ch]
                };
            }
        }
        Ok(grad)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
        for p in self.params.iter_mut() {
            p.trainable = trainable && p.trainable_kind;
        }
    }
    fn clear_cache(&mut self) {
        self.xhat = Vec::new();
        self.inv_std = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_and_updates_moving_stats() {
        let mut bn = BatchNormalization::from_config(&json!({})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[2], &mut rng).unwrap();
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![4, 2], vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]).unwrap();
        let y = bn.forward(x, &mut ctx).unwrap();
        let col0: Vec<f32> = y.data.iter().step_by(2).copied().collect();
        let expect = 1.0 / (1.25f32 + 1e-3).sqrt();
        assert!((col0[0] + 1.5 * expect).abs() < 1e-5);
        // moving_mean = 0.99 * 0 + 0.01 * 2.5
        assert!((bn.params[2].value[0] - 0.025).abs() < 1e-7);
        // moving_variance = 0.99 * 1 + 0.01 * 1.25 (biased batch variance)
        assert!((bn.params[3].value[0] - 1.0025).abs() < 1e-6);
    }

    #[test]
    fn without_gamma_and_beta_still_uses_batch_statistics() {
        let mut bn =
            BatchNormalization::from_config(&json!({"scale": false, "center": false})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[1], &mut rng).unwrap();
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = bn
            .forward(Tensor::new(vec![2, 1], vec![1.0, 3.0]).unwrap(), &mut ctx)
            .unwrap();
        let k = 1.0 / (1.0f32 + 1e-3).sqrt();
        assert!((y.data[0] + k).abs() < 1e-6 && (y.data[1] - k).abs() < 1e-6);
        assert!((bn.params[0].value[0] - 0.02).abs() < 1e-7);
        bn.set_trainable(false);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = bn
            .forward(Tensor::new(vec![2, 1], vec![1.0, 3.0]).unwrap(), &mut ctx)
            .unwrap();
        assert!((y.data[0] - (1.0 - 0.02) / (1.0f32 + 1e-3).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn gradients() {
        let mut bn = BatchNormalization::from_config(&json!({})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[2, 3], &mut rng).unwrap();
        bn.params[0].value = vec![0.5, 1.5, -1.0];
        bn.params[1].value = vec![0.1, -0.2, 0.3];
        gradcheck::check(&mut bn, gradcheck::input(&[4, 2, 3], 8), 2e-2);
    }
}
