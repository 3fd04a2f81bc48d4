//! Embedding: integer ids `(batch, ...)` to rows of `embeddings (input_dim, output_dim)`, as Keras. The ids
//! arrive as float32 (every tensor does); each must be a whole number in `[0, input_dim)`.

use super::{initializer_of, regularizer_of, Ctx, Layer, Param};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

pub struct Embedding {
    name: String,
    input_dim: usize,
    output_dim: usize,
    init: crate::initializers::Initializer,
    reg: Option<crate::layers::Regularizer>,
    params: Vec<Param>,
    /// The ids of the last training batch (for the backward scatter).
    ids: Vec<usize>,
}

impl Embedding {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Embedding", v)?;
        // mask_zero: the mask (`ids != 0`) is computed beside the layer, in the graph
        cfg.bool_or("mask_zero", false)?;
        Ok(Embedding {
            input_dim: cfg.positive_usize("input_dim")?,
            output_dim: cfg.positive_usize("output_dim")?,
            init: initializer_of(&cfg, "embeddings_initializer", "uniform")?,
            reg: regularizer_of(&cfg, "embeddings_regularizer")?,
            name: cfg.name,
            params: Vec::new(),
            ids: Vec::new(),
        })
    }

    /// The ids as row indices; the first one that is not a whole number in range is a ValueError.
    fn ids(&self, x: &Tensor) -> Result<Vec<usize>> {
        let n = self.input_dim;
        x.data
            .iter()
            .map(|&v| {
                if v >= 0.0 && v.fract() == 0.0 && (v as usize) < n {
                    Ok(v as usize)
                } else {
                    Err(Error::Value(format!(
                        "Embedding '{}': input ids must be integers in [0, {n}) (input_dim={n}), received {v}",
                        self.name
                    )))
                }
            })
            .collect()
    }
}

impl Layer for Embedding {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Embedding"
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let shape = vec![self.input_dim, self.output_dim];
        crate::initializers::checked_numel(
            &format!("Embedding '{}' embeddings", self.name),
            &shape,
        )?;
        let mut p = Param::new(
            "embeddings",
            shape.clone(),
            self.init.fill(&shape, rng)?,
            true,
        );
        p.regularizer = self.reg;
        self.params = vec![p];
        let mut out = input_shape.to_vec();
        out.push(self.output_dim);
        crate::initializers::checked_numel(&format!("Embedding '{}' output", self.name), &out)?;
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let ids = self.ids(&x)?;
        let d = self.output_dim;
        let table = &self.params[0].value;
        let mut data = Vec::with_capacity(ids.len() * d);
        for &i in &ids {
            data.extend_from_slice(&table[i * d..(i + 1) * d]);
        }
        let mut shape = x.shape;
        shape.push(d);
        if ctx.training {
            self.ids = ids;
        }
        Tensor::new(shape, data)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let d = self.output_dim;
        let ids = std::mem::take(&mut self.ids);
        if ids.len() * d != grad.data.len() {
            return Err(Error::Runtime(format!(
                "Embedding '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let g = &mut self.params[0].grad;
        for (&i, row) in ids.iter().zip(grad.data.chunks(d)) {
            g[i * d..(i + 1) * d]
                .iter_mut()
                .zip(row)
                .for_each(|(a, b)| *a += b);
        }
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        // ids are not differentiable: their gradient is zero (as Keras's)
        let mut shape = grad.shape;
        shape.pop();
        Ok(Tensor::zeros(shape))
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn clear_cache(&mut self) {
        self.ids = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_looked_up_and_gradients_scattered() {
        let mut l = Embedding::from_config(&json!({"input_dim": 3, "output_dim": 2})).unwrap();
        assert_eq!(l.build(&[4], &mut Rng::new(0)).unwrap(), vec![4, 2]);
        l.params[0].value = vec![0., 1., 10., 11., 20., 21.];
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![1, 4], vec![2., 0., 2., 1.]).unwrap();
        let y = l.forward(x, &mut ctx).unwrap();
        assert_eq!(y.data, vec![20., 21., 0., 1., 20., 21., 10., 11.]);
        l.backward(Tensor::new(vec![1, 4, 2], vec![1.0; 8]).unwrap(), false)
            .unwrap();
        assert_eq!(l.params[0].grad, vec![1., 1., 1., 1., 2., 2.]);
        for bad in [3.0, -1.0, 0.5, f32::NAN] {
            let x = Tensor::new(vec![1, 4], vec![0., bad, 1., 1.]).unwrap();
            assert!(l.forward(x, &mut ctx).is_err(), "{bad}");
        }
    }
}
