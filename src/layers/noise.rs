//! Training-time noise layers: SpatialDropout2D (whole channels) and GaussianNoise. Identity in inference.

use super::{expect_rank, Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

/// Drops whole feature maps: one keep/drop draw per (sample, channel), scaled by 1 / (1 - rate).
pub struct SpatialDropout2D {
    name: String,
    rate: f32,
    own_rng: Option<Rng>,
    channels: usize,
    mask: Vec<f32>,
}

impl SpatialDropout2D {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("SpatialDropout2D", v)?;
        cfg.channels_last()?;
        let rate = cfg.rate()?;
        Ok(SpatialDropout2D {
            own_rng: cfg.raw("seed").and_then(Value::as_u64).map(Rng::new),
            name: cfg.name,
            rate,
            channels: 0,
            mask: Vec::new(),
        })
    }
}

impl Layer for SpatialDropout2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "SpatialDropout2D"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        self.channels = input_shape[2];
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.mask.clear();
        if !ctx.training || self.rate == 0.0 {
            return Ok(x);
        }
        let (b, c) = (x.batch(), self.channels);
        let keep = 1.0 - self.rate;
        let rng = self.own_rng.as_mut().unwrap_or(ctx.rng);
        let draws: Vec<f32> = (0..b * c)
            .map(|_| {
                if rng.uniform() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        let per = x.sample_len();
        for (s, sample) in x.data.chunks_mut(per.max(1)).enumerate() {
            for px in sample.chunks_mut(c.max(1)) {
                px.iter_mut()
                    .zip(&draws[s * c..(s + 1) * c])
                    .for_each(|(v, m)| *v *= m);
            }
        }
        self.mask = draws;
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        let c = self.channels.max(1);
        if self.mask.len() == grad.batch() * self.channels {
            let per = grad.sample_len().max(1);
            for (s, sample) in grad.data.chunks_mut(per).enumerate() {
                for px in sample.chunks_mut(c) {
                    px.iter_mut()
                        .zip(&self.mask[s * c..(s + 1) * c])
                        .for_each(|(v, m)| *v *= m);
                }
            }
        }
        Ok(grad)
    }
    fn clear_cache(&mut self) {
        self.mask = Vec::new();
    }
}

/// Adds N(0, stddev^2) noise in training.
pub struct GaussianNoise {
    name: String,
    stddev: f32,
    own_rng: Option<Rng>,
}

impl GaussianNoise {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("GaussianNoise", v)?;
        let stddev = cfg.f32_or("stddev", f32::NAN)?;
        if stddev.is_nan() || stddev < 0.0 {
            return Err(Error::Value(format!(
                "GaussianNoise '{}': `stddev` must be a non-negative number, received {}",
                cfg.name,
                cfg.raw("stddev")
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "nothing".into())
            )));
        }
        Ok(GaussianNoise {
            own_rng: cfg.raw("seed").and_then(Value::as_u64).map(Rng::new),
            name: cfg.name,
            stddev,
        })
    }
}

impl Layer for GaussianNoise {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "GaussianNoise"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        if ctx.training && self.stddev > 0.0 {
            let rng = self.own_rng.as_mut().unwrap_or(ctx.rng);
            x.data
                .iter_mut()
                .for_each(|v| *v += self.stddev * rng.normal());
        }
        Ok(x)
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        Ok(grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spatial_dropout_drops_whole_channels() {
        let mut d = SpatialDropout2D::from_config(&json!({"rate": 0.5, "seed": 1})).unwrap();
        d.build(&[3, 3, 8], &mut Rng::new(0)).unwrap();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = d
            .forward(
                Tensor::new(vec![2, 3, 3, 8], vec![1.0; 144]).unwrap(),
                &mut ctx,
            )
            .unwrap();
        for s in 0..2 {
            for ch in 0..8 {
                let vals: Vec<f32> = (0..9).map(|p| y.data[s * 72 + p * 8 + ch]).collect();
                assert!(vals.iter().all(|&v| v == vals[0]) && (vals[0] == 0.0 || vals[0] == 2.0));
            }
        }
        let g = d
            .backward(Tensor::new(vec![2, 3, 3, 8], vec![1.0; 144]).unwrap(), true)
            .unwrap();
        assert_eq!(g.data, y.data);
        assert!(SpatialDropout2D::from_config(&json!({"rate": 1.0})).is_err());
    }

    #[test]
    fn gaussian_noise_statistics_and_inference_identity() {
        let mut n = GaussianNoise::from_config(&json!({"stddev": 0.5})).unwrap();
        let mut rng = Rng::new(3);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = n
            .forward(
                Tensor::new(vec![1, 20000], vec![1.0; 20000]).unwrap(),
                &mut ctx,
            )
            .unwrap();
        let mean: f64 = y.data.iter().map(|&v| v as f64).sum::<f64>() / 20000.0;
        let var: f64 = y
            .data
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / 20000.0;
        assert!((mean - 1.0).abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        assert_eq!(
            n.forward(Tensor::new(vec![1, 3], vec![1.0; 3]).unwrap(), &mut ctx)
                .unwrap()
                .data,
            vec![1.0; 3]
        );
        assert!(GaussianNoise::from_config(&json!({"stddev": -1.0})).is_err());
    }
}
