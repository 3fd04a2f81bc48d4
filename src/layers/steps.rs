//! Layers that move whole steps of a sequence `(batch, steps, features)`: UpSampling1D (each step `size`
//! times), ZeroPadding1D (zero steps before and after), Cropping1D (steps cut from both ends). Each output step
//! is one input step or zeros, so forward copies rows and backward adds them back.

use super::{Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    UpSampling { size: usize },
    ZeroPadding { before: usize, after: usize },
    Cropping { start: usize, end: usize },
}

pub struct StepLayer {
    name: String,
    class: &'static str,
    kind: Kind,
    steps: usize,
    features: usize,
    out_steps: usize,
}

/// An int or a pair `[a, b]` (Keras's `padding` / `cropping`).
fn pair(cfg: &Cfg, key: &str, default: usize) -> Result<(usize, usize)> {
    let bad = |v: &Value| cfg.err(key, "a non-negative int or a pair of them", v);
    match cfg.raw(key) {
        None => Ok((default, default)),
        Some(v) => {
            let one = |x: &Value| x.as_u64().map(|n| n as usize).ok_or_else(|| bad(v));
            match v {
                Value::Array(a) if a.len() == 2 => Ok((one(&a[0])?, one(&a[1])?)),
                Value::Array(_) => Err(bad(v)),
                x => {
                    let n = one(x)?;
                    Ok((n, n))
                }
            }
        }
    }
}

impl StepLayer {
    /// `class`: "UpSampling1D", "ZeroPadding1D" or "Cropping1D".
    pub fn from_config(class: &'static str, v: &Value) -> Result<Self> {
        let cfg = Cfg::new(class, v)?;
        let kind = match class {
            "UpSampling1D" => Kind::UpSampling {
                size: cfg
                    .positive_usize("size")
                    .or_else(|e| match cfg.raw("size") {
                        None => Ok(2),
                        Some(_) => Err(e),
                    })?,
            },
            "ZeroPadding1D" => {
                let (before, after) = pair(&cfg, "padding", 1)?;
                Kind::ZeroPadding { before, after }
            }
            _ => {
                let (start, end) = pair(&cfg, "cropping", 1)?;
                Kind::Cropping { start, end }
            }
        };
        Ok(StepLayer {
            name: cfg.name,
            class,
            kind,
            steps: 0,
            features: 0,
            out_steps: 0,
        })
    }

    /// The input step that output step `j` copies (None: zeros).
    fn source(&self, j: usize) -> Option<usize> {
        match self.kind {
            Kind::UpSampling { size } => Some(j / size),
            Kind::ZeroPadding { before, .. } => j.checked_sub(before).filter(|&i| i < self.steps),
            Kind::Cropping { start, .. } => Some(j + start),
        }
    }
}

impl Layer for StepLayer {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        self.class
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        super::expect_rank(self, input_shape, 2, "(batch, steps, features)")?;
        self.steps = input_shape[0];
        self.features = input_shape[1];
        self.out_steps = match self.kind {
            Kind::UpSampling { size } => self.steps.checked_mul(size),
            Kind::ZeroPadding { before, after } => self.steps.checked_add(before + after),
            Kind::Cropping { start, end } => self.steps.checked_sub(start + end).filter(|&n| n > 0),
        }
        .ok_or_else(|| {
            Error::Value(format!(
                "{} '{}': cannot make an output from {} steps with {:?}",
                self.class, self.name, self.steps, self.kind
            ))
        })?;
        let out = vec![self.out_steps, self.features];
        crate::initializers::checked_numel(
            &format!("{} '{}' output", self.class, self.name),
            &out,
        )?;
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let (f, t) = (self.features, self.steps);
        let b = x.batch();
        let mut out = vec![0.0f32; b * self.out_steps * f];
        for (dst, src) in out.chunks_mut(self.out_steps * f).zip(x.data.chunks(t * f)) {
            for j in 0..self.out_steps {
                if let Some(i) = self.source(j) {
                    dst[j * f..(j + 1) * f].copy_from_slice(&src[i * f..(i + 1) * f]);
                }
            }
        }
        Tensor::new(vec![b, self.out_steps, f], out)
    }
    fn backward(&mut self, grad: Tensor, _need_input_grad: bool) -> Result<Tensor> {
        let (f, t) = (self.features, self.steps);
        let b = grad.batch();
        let mut dx = vec![0.0f32; b * t * f];
        for (dst, g) in dx
            .chunks_mut(t * f)
            .zip(grad.data.chunks(self.out_steps * f))
        {
            for j in 0..self.out_steps {
                if let Some(i) = self.source(j) {
                    dst[i * f..(i + 1) * f]
                        .iter_mut()
                        .zip(&g[j * f..(j + 1) * f])
                        .for_each(|(a, v)| *a += v);
                }
            }
        }
        Tensor::new(vec![b, t, f], dx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_move_and_gradients_add_back() {
        let x = Tensor::new(vec![1, 3, 1], vec![1.0, 2.0, 3.0]).unwrap();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        for (class, cfg, want) in [
            (
                "UpSampling1D",
                json!({"size": 2}),
                vec![1., 1., 2., 2., 3., 3.],
            ),
            (
                "ZeroPadding1D",
                json!({"padding": [1, 2]}),
                vec![0., 1., 2., 3., 0., 0.],
            ),
            ("Cropping1D", json!({"cropping": [1, 0]}), vec![2., 3.]),
        ] {
            let mut l = StepLayer::from_config(class, &cfg).unwrap();
            l.build(&[3, 1], &mut Rng::new(0)).unwrap();
            assert_eq!(
                l.forward(x.clone(), &mut ctx).unwrap().data,
                want,
                "{class}"
            );
            let xs = Tensor::new(vec![2, 3, 2], (0..12).map(|v| v as f32 * 0.3).collect()).unwrap();
            l.build(&[3, 2], &mut Rng::new(0)).unwrap();
            gradcheck::check(&mut l, xs, 1e-2);
        }
        let mut crop = StepLayer::from_config("Cropping1D", &json!({"cropping": 2})).unwrap();
        assert!(crop.build(&[4, 1], &mut Rng::new(0)).is_err());
        assert!(StepLayer::from_config("ZeroPadding1D", &json!({"padding": -1})).is_err());
    }
}
