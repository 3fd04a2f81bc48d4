//! LayerNormalization over the trailing axes `axis` names (Keras's default: the last), per sample:
//! `(x - mean) / sqrt(var + epsilon) * gamma + beta`; with `rms_scaling`, `x / sqrt(var + epsilon) * gamma`
//! (Keras 3.15 divides by the variance there too, not by the mean square). Weights `[gamma, beta]` as Keras.

use super::{initializer_of, regularizer_of, Ctx, Layer, Param};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

pub struct LayerNormalization {
    name: String,
    axes: Vec<i64>,
    epsilon: f32,
    center: bool,
    scale: bool,
    rms: bool,
    inits: [crate::initializers::Initializer; 2],
    regs: [Option<crate::layers::Regularizer>; 2],
    /// Values normalised together (the product of the normalised axes).
    group: usize,
    params: Vec<Param>,
    // training cache: the normalised values (before gamma and beta) and each group's 1 / std
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
}

impl LayerNormalization {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("LayerNormalization", v)?;
        let axes = match cfg.raw("axis") {
            None => vec![-1],
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|x| x.as_i64().is_some()) => {
                a.iter().filter_map(Value::as_i64).collect()
            }
            Some(x) if x.as_i64().is_some() => vec![x.as_i64().unwrap_or(-1)],
            Some(x) => return Err(cfg.err("axis", "an int or a list of ints", x)),
        };
        let epsilon = cfg.f32_or("epsilon", 1e-3)?;
        if epsilon.is_nan() || epsilon <= 0.0 {
            return Err(Error::Value(format!(
                "LayerNormalization '{}': expected epsilon > 0, received {epsilon}",
                cfg.name
            )));
        }
        Ok(LayerNormalization {
            axes,
            epsilon,
            center: cfg.bool_or("center", true)?,
            scale: cfg.bool_or("scale", true)?,
            rms: cfg.bool_or("rms_scaling", false)?,
            inits: [
                initializer_of(&cfg, "gamma_initializer", "ones")?,
                initializer_of(&cfg, "beta_initializer", "zeros")?,
            ],
            regs: [
                regularizer_of(&cfg, "gamma_regularizer")?,
                regularizer_of(&cfg, "beta_regularizer")?,
            ],
            name: cfg.name,
            group: 0,
            params: Vec::new(),
            xhat: Vec::new(),
            inv_std: Vec::new(),
        })
    }

    fn has_gamma(&self) -> bool {
        self.scale || self.rms
    }

    fn has_beta(&self) -> bool {
        self.center && !self.rms
    }
}

impl Layer for LayerNormalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "LayerNormalization"
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        // axes count the batch axis (0) as Keras's do; they must be a block of trailing axes
        let rank = input_shape.len() as i64 + 1;
        let mut axes: Vec<i64> = Vec::with_capacity(self.axes.len());
        for &a in &self.axes {
            let p = if a < 0 { a + rank } else { a };
            if p <= 0 || p >= rank {
                return Err(Error::Value(format!(
                    "LayerNormalization '{}': axis {a} is out of bounds for inputs of rank {rank} (sample shape \
                     {}; axis 0 is the batch axis, which is not normalised)",
                    self.name,
                    shape_str(input_shape)
                )));
            }
            axes.push(p);
        }
        axes.sort_unstable();
        axes.dedup();
        let first = rank - axes.len() as i64;
        if axes.iter().enumerate().any(|(i, &a)| a != first + i as i64) {
            return Err(Error::Value(format!(
                "LayerNormalization '{}': kerust normalises over trailing axes only (such as axis=-1 or \
                 [-2, -1]), received axis={:?}",
                self.name, self.axes
            )));
        }
        let shape: Vec<usize> = input_shape[(first - 1) as usize..].to_vec();
        self.group = shape.iter().product();
        let mut params = Vec::new();
        if self.has_gamma() {
            let mut p = Param::new(
                "gamma",
                shape.clone(),
                self.inits[0].fill(&shape, rng)?,
                true,
            );
            p.regularizer = self.regs[0];
            params.push(p);
        }
        if self.has_beta() {
            let mut p = Param::new(
                "beta",
                shape.clone(),
                self.inits[1].fill(&shape, rng)?,
                true,
            );
            p.regularizer = self.regs[1];
            params.push(p);
        }
        self.params = params;
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let n = self.group.max(1);
        let groups = x.data.len() / n;
        let mut out = x;
        let mut inv_std = vec![0.0f32; groups];
        for (row, s) in out.data.chunks_mut(n).zip(inv_std.iter_mut()) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + self.epsilon as f64).sqrt();
            let shift = if self.rms { 0.0 } else { mean };
            row.iter_mut()
                .for_each(|v| *v = ((*v as f64 - shift) * inv) as f32);
            *s = inv as f32;
        }
        if ctx.training {
            self.xhat = out.data.clone();
            self.inv_std = inv_std;
        }
        let gamma = self.has_gamma().then(|| &self.params[0].value);
        let beta = self
            .has_beta()
            .then(|| &self.params[self.params.len() - 1].value);
        for row in out.data.chunks_mut(n) {
            if let Some(g) = gamma {
                row.iter_mut().zip(g).for_each(|(v, g)| *v *= g);
            }
            if let Some(b) = beta {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        Ok(out)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let n = self.group.max(1);
        let xhat = std::mem::take(&mut self.xhat);
        let inv_std = std::mem::take(&mut self.inv_std);
        if xhat.len() != grad.data.len() || inv_std.len() * n != xhat.len() {
            return Err(Error::Runtime(format!(
                "LayerNormalization '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let (has_gamma, has_beta) = (self.has_gamma(), self.has_beta());
        let last = self.params.len().saturating_sub(1);
        for (g, xh) in grad.data.chunks(n).zip(xhat.chunks(n)) {
            if has_gamma {
                let dg = &mut self.params[0].grad;
                dg.iter_mut()
                    .zip(g.iter().zip(xh))
                    .for_each(|(d, (g, x))| *d += g * x);
            }
            if has_beta {
                let db = &mut self.params[last].grad;
                db.iter_mut().zip(g).for_each(|(d, g)| *d += g);
            }
        }
        let gamma = has_gamma.then(|| self.params[0].value.as_slice());
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        // dx = inv / n * (n dxh - sum(dxh) - xhat sum(dxh xhat)), dxh = g * gamma (without the mean
        // term under rms_scaling, whose xhat is not centred: there the mean of x still enters the variance)
        let mut dx = Tensor::zeros(grad.shape.clone());
        let mut dxh = vec![0.0f64; n]; // one group's dL/d(xhat), reused
        for ((out, (g, xh)), &inv) in dx
            .data
            .chunks_mut(n)
            .zip(grad.data.chunks(n).zip(xhat.chunks(n)))
            .zip(&inv_std)
        {
            for (k, d) in dxh.iter_mut().enumerate() {
                *d = (g[k] * gamma.map_or(1.0, |w| w[k])) as f64;
            }
            let sum: f64 = dxh.iter().sum();
            let dot: f64 = dxh.iter().zip(xh).map(|(d, &x)| d * x as f64).sum();
            let nf = n as f64;
            if self.rms {
                // y = x inv, var over centred x: dy/dx = inv (I - (x - mean) x^T inv^2 / n)
                let xm: f64 = xh.iter().map(|&v| v as f64).sum::<f64>() / nf;
                for ((o, &d), &x) in out.iter_mut().zip(&dxh).zip(xh) {
                    *o = (inv as f64 * (d - (x as f64 - xm) * dot / nf)) as f32;
                }
            } else {
                for ((o, &d), &x) in out.iter_mut().zip(&dxh).zip(xh) {
                    *o = (inv as f64 / nf * (nf * d - sum - x as f64 * dot)) as f32;
                }
            }
        }
        Ok(dx)
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
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
    fn gradients_match_finite_differences() {
        let x = gradcheck::normal_input(&[2, 3, 4], 4);
        for cfg in [
            json!({"gamma_initializer": "random_normal", "beta_initializer": "random_normal"}),
            json!({"axis": [-2, -1], "gamma_initializer": "random_normal"}),
            json!({"rms_scaling": true, "gamma_initializer": "random_normal"}),
        ] {
            let mut l = LayerNormalization::from_config(&cfg).unwrap();
            l.build(&[3, 4], &mut Rng::new(1)).unwrap();
            gradcheck::check(&mut l, x.clone(), 2e-2);
        }
    }
}
