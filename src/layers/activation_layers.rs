//! Activation layers with arguments: LeakyReLU, ReLU, ELU, Softmax and PReLU (whose slope is a weight).

use super::{initializer_of, Ctx, Layer, Param};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Keras 3 ReLU: `max_value` above, `x` strictly above `threshold`, `slope * (x - threshold)` at or below.
    Relu {
        max_value: Option<f32>,
        slope: f32,
        threshold: f32,
    },
    Elu {
        alpha: f32,
    },
    Softmax,
}

/// LeakyReLU, ReLU, ELU and Softmax as layers.
pub struct ParamActivation {
    name: String,
    class_name: &'static str,
    kind: Kind,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl ParamActivation {
    pub fn from_config(class_name: &'static str, v: &Value) -> Result<Self> {
        let cfg = Cfg::new(class_name, v)?;
        for key in ["negative_slope", "threshold", "alpha"] {
            if v.get(key) == Some(&Value::Null) {
                return Err(Error::Value(format!(
                    "{class_name} '{}': `{key}` must be a number, received None",
                    cfg.name
                )));
            }
        }
        let non_negative = |key: &str, x: f32| -> Result<f32> {
            if x >= 0.0 {
                Ok(x)
            } else {
                Err(Error::Value(format!(
                    "{class_name} '{}': `{key}` must be >= 0, received {x}",
                    cfg.name
                )))
            }
        };
        let kind = match class_name {
            "LeakyReLU" => {
                // Keras 3 renamed `alpha` to `negative_slope` (default 0.3); accept both
                let old = cfg.f32_or("alpha", 0.3)?;
                Kind::Relu {
                    max_value: None,
                    slope: non_negative("negative_slope", cfg.f32_or("negative_slope", old)?)?,
                    threshold: 0.0,
                }
            }
            "ReLU" => Kind::Relu {
                max_value: match cfg.raw("max_value") {
                    None => None,
                    Some(_) => Some(non_negative("max_value", cfg.f32_or("max_value", 0.0)?)?),
                },
                slope: non_negative("negative_slope", cfg.f32_or("negative_slope", 0.0)?)?,
                threshold: non_negative("threshold", cfg.f32_or("threshold", 0.0)?)?,
            },
            "ELU" => Kind::Elu {
                alpha: cfg.f32_or("alpha", 1.0)?,
            },
            _ => {
                let axis = cfg.raw("axis").cloned().unwrap_or(Value::from(-1));
                let ok = axis.as_i64() == Some(-1)
                    || axis.as_array().is_some_and(|a| a.len() == 1 && a[0] == -1);
                if !ok {
                    return Err(Error::Value(format!(
                        "Softmax '{}': only axis=-1 is supported, received {axis}",
                        cfg.name
                    )));
                }
                Kind::Softmax
            }
        };
        Ok(ParamActivation {
            name: cfg.name,
            class_name,
            kind,
            input: Vec::new(),
            output: Vec::new(),
        })
    }
}

impl Layer for ParamActivation {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        self.class_name
    }
    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let row = x.last_dim();
        if ctx.training {
            self.input.clone_from(&x.data);
        }
        match self.kind {
            Kind::Relu {
                max_value,
                slope,
                threshold,
            } => x.data.iter_mut().for_each(|v| {
                *v = if *v <= threshold {
                    slope * (*v - threshold)
                } else {
                    max_value.map_or(*v, |m| v.min(m))
                }
            }),
            Kind::Elu { alpha } => x.data.iter_mut().for_each(|v| {
                if *v <= 0.0 {
                    *v = alpha * v.exp_m1()
                }
            }),
            Kind::Softmax => Activation::Softmax.forward(&mut x.data, row),
        }
        if ctx.training {
            self.output.clone_from(&x.data);
        }
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        if self.input.len() != grad.data.len() {
            return Err(Error::Runtime(format!(
                "{} '{}': backward called without a matching training forward pass",
                self.class_name, self.name
            )));
        }
        let row = grad.last_dim();
        let pairs = grad
            .data
            .iter_mut()
            .zip(self.input.iter().zip(&self.output));
        match self.kind {
            Kind::Relu {
                max_value,
                slope,
                threshold,
            } => pairs.for_each(|(g, (&x, _))| {
                *g *= if x <= threshold {
                    slope
                } else if max_value.is_some_and(|m| x >= m) {
                    0.0
                } else {
                    1.0
                }
            }),
            Kind::Elu { alpha } => pairs.for_each(|(g, (&x, &y))| {
                if x <= 0.0 {
                    *g *= y + alpha
                }
            }),
            Kind::Softmax => Activation::Softmax.backward(&[], &self.output, &mut grad.data, row),
        }
        Ok(grad)
    }
    fn clear_cache(&mut self) {
        self.input = Vec::new();
        self.output = Vec::new();
    }
}

/// PReLU: `x` for x > 0, `alpha * x` below, with a learned `alpha` (shared over `shared_axes`).
pub struct PReLU {
    name: String,
    init: crate::initializers::Initializer,
    shared_axes: Vec<usize>,
    in_shape: Vec<usize>,
    params: Vec<Param>,
    input: Vec<f32>,
}

impl PReLU {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("PReLU", v)?;
        for key in ["alpha_regularizer", "alpha_constraint"] {
            if let Some(x) = cfg.raw(key) {
                return Err(Error::Value(format!(
                    "PReLU '{}': `{key}` is not supported by kerust yet, received {x}",
                    cfg.name
                )));
            }
        }
        let shared_axes = match cfg.raw("shared_axes") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_u64().filter(|&d| d >= 1).map(|d| d as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    cfg.err(
                        "shared_axes",
                        "a list of axis indices >= 1",
                        &Value::Array(a.clone()),
                    )
                })?,
            Some(x) => match x.as_u64() {
                Some(d) if d >= 1 => vec![d as usize],
                _ => return Err(cfg.err("shared_axes", "axis indices >= 1", x)),
            },
        };
        Ok(PReLU {
            init: initializer_of(&cfg, "alpha_initializer", "zeros")?,
            name: cfg.name,
            shared_axes,
            in_shape: Vec::new(),
            params: Vec::new(),
            input: Vec::new(),
        })
    }

    /// Index of the alpha used by flat sample position `i` (shared axes collapse to index 0).
    fn alpha_index(&self, mut i: usize) -> usize {
        let shape = &self.params[0].shape;
        let (mut idx, mut stride) = (0, 1);
        for (&full, &a) in self.in_shape.iter().zip(shape).rev() {
            let coord = i % full;
            i /= full;
            idx += if a == 1 { 0 } else { coord * stride };
            stride *= a;
        }
        idx
    }
}

impl Layer for PReLU {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "PReLU"
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let mut shape = input_shape.to_vec();
        for &axis in &self.shared_axes {
            match shape.get_mut(axis - 1) {
                Some(d) => *d = 1,
                None => {
                    return Err(Error::Value(format!(
                        "PReLU '{}': shared axis {axis} is out of range for inputs of rank {}",
                        self.name,
                        input_shape.len() + 1
                    )))
                }
            }
        }
        self.in_shape = input_shape.to_vec();
        self.params = vec![Param::new(
            "alpha",
            shape.clone(),
            self.init.fill(&shape, rng)?,
            true,
        )];
        Ok(input_shape.to_vec())
    }
    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let per = x.sample_len();
        if per != self.in_shape.iter().product::<usize>() {
            return Err(Error::Value(format!(
                "PReLU '{}': expected {} values per sample, received {per}",
                self.name,
                self.in_shape.iter().product::<usize>()
            )));
        }
        if ctx.training {
            self.input.clone_from(&x.data);
        }
        let map: Vec<usize> = (0..per).map(|i| self.alpha_index(i)).collect();
        let alpha = &self.params[0].value;
        for sample in x.data.chunks_mut(per.max(1)) {
            for (v, &a) in sample.iter_mut().zip(&map) {
                if *v < 0.0 {
                    *v *= alpha[a];
                }
            }
        }
        Ok(x)
    }
    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        if self.input.len() != grad.data.len() {
            return Err(Error::Runtime(format!(
                "PReLU '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let per = grad.sample_len().max(1);
        let map: Vec<usize> = (0..per).map(|i| self.alpha_index(i)).collect();
        let p = &mut self.params[0];
        for (gs, xs) in grad.data.chunks_mut(per).zip(self.input.chunks(per)) {
            for ((g, &x), &a) in gs.iter_mut().zip(xs).zip(&map) {
                if x < 0.0 {
                    p.grad[a] += *g * x;
                    *g *= p.value[a];
                }
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
    fn clear_cache(&mut self) {
        self.input = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    /// Normal values pushed at least 0.1 away from the kink at 0 (finite differences use h = 0.01).
    fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
        let mut t = gradcheck::input(shape, seed);
        t.data.iter_mut().for_each(|v| *v += 0.1f32.copysign(*v));
        t
    }

    fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
        l.build(shape, &mut Rng::new(0)).unwrap();
        l
    }

    #[test]
    fn values_and_gradients() {
        let x = Tensor::new(vec![1, 5], vec![-2.0, -0.5, 0.5, 3.0, 8.0]).unwrap();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let mut relu = built(
            ParamActivation::from_config(
                "ReLU",
                &json!({"max_value": 6.0, "negative_slope": 0.1, "threshold": 1.0}),
            )
            .unwrap(),
            &[5],
        );
        let y = relu.forward(x.clone(), &mut ctx).unwrap();
        let want = [-0.3, -0.15, -0.05, 3.0, 6.0];
        for (a, b) in y.data.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", y.data);
        }
        let mut leaky = built(
            ParamActivation::from_config("LeakyReLU", &json!({})).unwrap(),
            &[5],
        );
        assert!((leaky.forward(x.clone(), &mut ctx).unwrap().data[0] + 0.6).abs() < 1e-6);
        for (class, cfg) in [
            ("LeakyReLU", json!({})),
            ("ELU", json!({"alpha": 0.7})),
            ("Softmax", json!({})),
        ] {
            let mut l = built(ParamActivation::from_config(class, &cfg).unwrap(), &[6]);
            gradcheck::check(&mut l, away_from_zero(&[3, 6], 2), 2e-2);
        }
        assert!(ParamActivation::from_config("ReLU", &json!({"max_value": -1.0})).is_err());
    }

    #[test]
    fn prelu_alpha_is_learned_and_shared() {
        let mut p = PReLU::from_config(&json!({"alpha_initializer": {"class_name": "Constant", "config": {"value": 0.25}}, "shared_axes": [1, 2]})).unwrap();
        p.build(&[2, 3, 4], &mut Rng::new(0)).unwrap();
        assert_eq!(p.params[0].shape, vec![1, 1, 4]);
        gradcheck::check(&mut p, away_from_zero(&[2, 2, 3, 4], 5), 2e-2);
        let mut q = PReLU::from_config(&json!({})).unwrap();
        q.build(&[3], &mut Rng::new(0)).unwrap();
        q.params[0].value = vec![0.1, 0.2, 0.3];
        gradcheck::check(&mut q, away_from_zero(&[4, 3], 6), 2e-2);
    }
}
