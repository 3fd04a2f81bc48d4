//! Dense: `y = act(x @ kernel + bias)` over the last axis; kernel `(in, out)` as Keras.

use super::{activation_of, Ctx, FusedActivation, KernelBias, Layer, Param};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::kernels::gemm::{matmul, Op};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

/// Rows per parallel GEMM in inference; fixed so results do not depend on the thread count.
pub(crate) const ROWS_PER_CHUNK: usize = 64;

pub struct Dense {
    name: String,
    units: usize,
    weights: KernelBias,
    act: FusedActivation,
    in_dim: usize,
    params: Vec<Param>,
    input: Tensor,
}

impl Dense {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Dense", v)?;
        Ok(Dense {
            units: cfg.positive_usize("units")?,
            weights: KernelBias::from_config(&cfg)?,
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name,
            in_dim: 0,
            params: Vec::new(),
            input: Tensor::default(),
        })
    }

    fn backward_linear(&mut self, g: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let x = std::mem::take(&mut self.input);
        if x.data.len() / self.in_dim.max(1) != g.data.len() / self.units {
            return Err(Error::Runtime(format!(
                "Dense '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let rows = g.data.len() / self.units;
        let (kernel, rest) = self.params.split_at_mut(1);
        matmul(
            self.in_dim,
            rows,
            self.units,
            &x.data,
            Op::T,
            &g.data,
            Op::N,
            &mut kernel[0].grad,
            true,
        );
        if let Some(bias) = rest.first_mut() {
            for row in g.data.chunks(self.units) {
                bias.grad.iter_mut().zip(row).for_each(|(b, v)| *b += v);
            }
        }
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        let mut dx = Tensor::zeros(x.shape);
        matmul(
            rows,
            self.units,
            self.in_dim,
            &g.data,
            Op::N,
            &kernel[0].value,
            Op::T,
            &mut dx.data,
            false,
        );
        Ok(dx)
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let Some(&in_dim) = input_shape.last() else {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (Dense) is incompatible with the layer: expected min_ndim=2, found ndim=1. \
                 Full shape received: (None,)",
                self.name
            )));
        };
        self.in_dim = in_dim;
        let kshape = vec![in_dim, self.units];
        self.params = self.weights.make(kshape, rng)?;
        let mut out = input_shape.to_vec();
        if let Some(last) = out.last_mut() {
            *last = self.units;
        }
        Ok(out)
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        if x.last_dim() != self.in_dim || x.shape.len() < 2 {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (Dense) is incompatible with the layer: expected axis -1 of input shape \
                 to have value {}, but received input with shape {}",
                self.name,
                self.in_dim,
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let mut out_shape = x.shape.clone();
        if let Some(last) = out_shape.last_mut() {
            *last = self.units;
        }
        let mut y = Tensor::zeros(out_shape);
        let (u, k) = (self.units, self.in_dim);
        let kernel = &self.params[0].value;
        y.data
            .par_chunks_mut(ROWS_PER_CHUNK * u)
            .zip(x.data.par_chunks(ROWS_PER_CHUNK * k))
            .for_each(|(yc, xc)| {
                matmul(
                    xc.len() / k.max(1),
                    k,
                    u,
                    xc,
                    Op::N,
                    kernel,
                    Op::N,
                    yc,
                    false,
                )
            });
        if let Some(bias) = self.params.get(1) {
            for row in y.data.chunks_mut(u) {
                row.iter_mut().zip(&bias.value).for_each(|(a, b)| *a += b);
            }
        }
        self.act.forward(&mut y, ctx.training);
        if ctx.training {
            self.input = x;
        }
        Ok(y)
    }

    fn backward(&mut self, mut grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.act.backward(&mut grad)?;
        self.backward_linear(grad, need_input_grad)
    }

    fn backward_preactivation(&mut self, grad_z: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.backward_linear(grad_z, need_input_grad)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn activation(&self) -> Activation {
        self.act.act
    }
    fn clear_cache(&mut self) {
        self.input = Tensor::default();
        self.act.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn dense(units: usize, act: &str, bias: bool, in_shape: &[usize]) -> Dense {
        let mut d =
            Dense::from_config(&json!({"units": units, "activation": act, "use_bias": bias}))
                .unwrap();
        let mut rng = Rng::new(1);
        d.build(in_shape, &mut rng).unwrap();
        // non-zero bias so its effect shows
        if let Some(b) = d.params.get_mut(1) {
            b.value
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.1 * i as f32);
        }
        d
    }

    #[test]
    fn forward_is_affine_map() {
        let mut d = dense(2, "linear", true, &[3]);
        d.params[0].value = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let y = d
            .forward(
                Tensor::new(vec![1, 3], vec![1.0, 1.0, 2.0]).unwrap(),
                &mut ctx,
            )
            .unwrap();
        assert_eq!(y.data, vec![14.0, 18.1]);
    }

    #[test]
    fn gradients_every_activation() {
        for act in [
            "linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu",
        ] {
            let mut d = dense(4, act, true, &[5]);
            gradcheck::check(&mut d, gradcheck::input(&[3, 5], 2), 2e-2);
        }
        let mut d = dense(3, "tanh", false, &[2, 4]);
        gradcheck::check(&mut d, gradcheck::input(&[2, 2, 4], 3), 2e-2);
    }

    #[test]
    fn wrong_feature_count_is_value_error() {
        let mut d = dense(4, "relu", true, &[5]);
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let err = d.forward(Tensor::zeros(vec![2, 6]), &mut ctx).unwrap_err();
        assert!(err
            .to_string()
            .contains("expected axis -1 of input shape to have value 5"));
    }
}
