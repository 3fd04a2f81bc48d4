//! Layers that move values without arithmetic: Permute (reorder the sample axes), RepeatVector (repeat a
//! vector n times along a new axis) and Identity.

use super::{Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

pub struct Permute {
    name: String,
    /// 1-based sample axes, as Keras's `dims`.
    dims: Vec<usize>,
    in_shape: Vec<usize>,
    /// For every output value of one sample, where it reads from in the input sample.
    map: Vec<usize>,
}

impl Permute {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Permute", v)?;
        let raw = cfg.raw("dims").ok_or_else(|| {
            Error::Value(format!(
                "Permute '{}': missing required argument `dims`",
                cfg.name
            ))
        })?;
        let dims: Option<Vec<usize>> = raw
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let dims = dims.ok_or_else(|| cfg.err("dims", "a tuple of axis indices", raw))?;
        let mut sorted = dims.clone();
        sorted.sort_unstable();
        if sorted != (1..=dims.len()).collect::<Vec<_>>() {
            return Err(Error::Value(format!(
                "Permute '{}': Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` \
                 must be consecutive and start from 1. Received dims={raw}",
                cfg.name
            )));
        }
        Ok(Permute {
            name: cfg.name,
            dims,
            in_shape: Vec::new(),
            map: Vec::new(),
        })
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl Layer for Permute {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Permute"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        if input_shape.len() != self.dims.len() {
            return Err(Error::Value(format!(
                "Permute '{}': dims {:?} do not match an input of shape {}",
                self.name,
                self.dims,
                shape_str(input_shape)
            )));
        }
        let out: Vec<usize> = self.dims.iter().map(|&d| input_shape[d - 1]).collect();
        let in_strides = strides(input_shape);
        let n: usize = out.iter().product();
        let mut idx = vec![0usize; out.len()];
        self.map = Vec::with_capacity(n);
        for _ in 0..n {
            self.map.push(
                idx.iter()
                    .zip(&self.dims)
                    .map(|(i, &d)| i * in_strides[d - 1])
                    .sum(),
            );
            for ax in (0..out.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < out[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        self.in_shape = input_shape.to_vec();
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let len = self.map.len();
        let b = x.batch();
        let mut data = vec![0.0f32; b * len];
        for (out, inp) in data.chunks_mut(len.max(1)).zip(x.data.chunks(len.max(1))) {
            for (o, &m) in out.iter_mut().zip(&self.map) {
                *o = inp[m];
            }
        }
        let mut shape = vec![b];
        shape.extend(self.dims.iter().map(|&d| self.in_shape[d - 1]));
        Tensor::new(shape, data)
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        let len = self.map.len();
        let b = grad.batch();
        let mut data = vec![0.0f32; b * len];
        for (dx, g) in data
            .chunks_mut(len.max(1))
            .zip(grad.data.chunks(len.max(1)))
        {
            for (&gv, &m) in g.iter().zip(&self.map) {
                dx[m] = gv;
            }
        }
        let mut shape = vec![b];
        shape.extend_from_slice(&self.in_shape);
        Tensor::new(shape, data)
    }
}

pub struct RepeatVector {
    name: String,
    n: usize,
    dim: usize,
}

impl RepeatVector {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("RepeatVector", v)?;
        Ok(RepeatVector {
            n: cfg.positive_usize("n")?,
            name: cfg.name,
            dim: 0,
        })
    }
}

impl Layer for RepeatVector {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "RepeatVector"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        super::expect_rank(self, input_shape, 1, "(batch, features)")?;
        self.dim = input_shape[0];
        Ok(vec![self.n, self.dim])
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let b = x.batch();
        let mut data = Vec::with_capacity(b * self.n * self.dim);
        for row in x.data.chunks(self.dim.max(1)) {
            for _ in 0..self.n {
                data.extend_from_slice(row);
            }
        }
        Tensor::new(vec![b, self.n, self.dim], data)
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        let b = grad.batch();
        let d = self.dim.max(1);
        let mut data = vec![0.0f32; b * self.dim];
        for (dx, g) in data.chunks_mut(d).zip(grad.data.chunks(self.n * d)) {
            for rep in g.chunks(d) {
                dx.iter_mut().zip(rep).for_each(|(a, v)| *a += v);
            }
        }
        Tensor::new(vec![b, self.dim], data)
    }
}

pub struct Identity {
    name: String,
}

impl Identity {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Identity", v)?;
        Ok(Identity { name: cfg.name })
    }
}

impl Layer for Identity {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Identity"
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, x: Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        Ok(x)
    }
    fn backward(&mut self, grad: Tensor, _need: bool) -> Result<Tensor> {
        Ok(grad)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn permute_moves_axes_and_its_gradient_back() {
        let mut p = Permute::from_config(&json!({"dims": [2, 1]})).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(p.build(&[2, 3], &mut rng).unwrap(), vec![3, 2]);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![1, 2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let y = p.forward(x, &mut ctx).unwrap();
        assert_eq!(y.data, vec![1., 4., 2., 5., 3., 6.]);
        gradcheck::check(&mut p, gradcheck::input(&[2, 2, 3], 3), 1e-2);
        assert!(Permute::from_config(&json!({"dims": [1, 3]})).is_err());
    }

    #[test]
    fn repeat_vector_sums_its_copies_gradients() {
        let mut r = RepeatVector::from_config(&json!({"n": 3})).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(r.build(&[2], &mut rng).unwrap(), vec![3, 2]);
        gradcheck::check(&mut r, gradcheck::input(&[2, 2], 4), 1e-2);
        let mut i = Identity::from_config(&json!({})).unwrap();
        i.build(&[4], &mut rng).unwrap();
        gradcheck::check(&mut i, gradcheck::input(&[2, 4], 5), 1e-2);
    }
}
