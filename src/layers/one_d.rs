//! The 1-D convolution and pooling layers over `(batch, steps, channels)`: Conv1D, MaxPooling1D,
//! AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D and SpatialDropout1D. Each runs its 2-D counterpart on the sequence
//! viewed as an image one row high, `(batch, 1, steps, channels)`, with a window one row high. A view only: no
//! value is copied, and Conv1D's kernel `(kernel_size, in, filters)` is the 2-D kernel `(1, kernel_size, in,
//! filters)` under Keras's 1-D shape.

use super::{Conv2D, Ctx, GlobalPool2D, Layer, Param, Pool2D, SpatialDropout2D};
use crate::activations::Activation;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

pub struct OneD {
    class: &'static str,
    inner: Box<dyn Layer>,
    /// The inner layer's output sample shape, and this layer's.
    inner_out: Vec<usize>,
    out: Vec<usize>,
    input: Vec<usize>,
}

/// A 1-D size argument (`3` or `[3]`) as the 2-D pair `[1, 3]`.
fn as_pair(class: &str, key: &str, v: &Value) -> Result<Value> {
    let n = match v {
        Value::Array(a) if a.len() == 1 => a[0].clone(),
        Value::Array(_) => {
            return Err(Error::Value(format!(
                "{class}: `{key}` must be an int or a list of one int, received {v}"
            )))
        }
        other => other.clone(),
    };
    Ok(Value::Array(vec![Value::from(1), n]))
}

impl OneD {
    /// `class`: "Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D" or
    /// "SpatialDropout1D".
    pub fn from_config(class: &'static str, v: &Value) -> Result<Self> {
        let mut cfg = v.clone();
        let obj = cfg.as_object_mut().ok_or_else(|| {
            Error::Value(format!(
                "{class}: the config must be an object, received {v}"
            ))
        })?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(class)
            .to_string();
        if obj.get("padding").and_then(Value::as_str) == Some("causal") {
            return Err(Error::Value(format!(
                "{class} '{name}': padding=\"causal\" is not supported by kerust yet"
            )));
        }
        let unit = |x: &Value| {
            x.as_u64() == Some(1)
                || x.as_array()
                    .is_some_and(|a| a.len() == 1 && a[0].as_u64() == Some(1))
        };
        if obj.get("dilation_rate").is_some_and(|d| !unit(d)) {
            return Err(Error::Value(format!(
                "{class} '{name}': dilation_rate other than 1 is not supported by kerust yet"
            )));
        }
        obj.remove("dilation_rate");
        for key in ["kernel_size", "strides", "pool_size"] {
            match obj.get(key) {
                Some(Value::Null) => {
                    obj.remove(key); // the default (a pool's strides: its pool_size)
                }
                Some(x) => {
                    let pair = as_pair(class, key, x)?;
                    obj.insert(key.to_string(), pair);
                }
                None => {}
            }
        }
        let inner: Box<dyn Layer> = match class {
            "Conv1D" => Box::new(Conv2D::from_config(&cfg)?),
            "MaxPooling1D" => Box::new(Pool2D::from_config(&cfg, true)?),
            "AveragePooling1D" => Box::new(Pool2D::from_config(&cfg, false)?),
            "GlobalAveragePooling1D" => Box::new(GlobalPool2D::from_config(&cfg, false)?),
            "GlobalMaxPooling1D" => Box::new(GlobalPool2D::from_config(&cfg, true)?),
            // whole channels dropped over every step: SpatialDropout2D's maps on a one-row image
            "SpatialDropout1D" => Box::new(SpatialDropout2D::from_config(&cfg)?),
            other => {
                return Err(Error::Value(format!(
                    "kerust internal error: no 1-D layer '{other}'"
                )))
            }
        };
        Ok(OneD {
            class,
            inner,
            inner_out: Vec::new(),
            out: Vec::new(),
            input: Vec::new(),
        })
    }

    fn view(t: Tensor, sample: &[usize]) -> Result<Tensor> {
        let b = t.batch();
        Tensor::new([&[b][..], sample].concat(), t.data)
    }
}

impl Layer for OneD {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn class_name(&self) -> &'static str {
        self.class
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        super::expect_rank(self, input_shape, 2, "(batch, steps, channels)")?;
        self.input = input_shape.to_vec();
        let inner_out = self
            .inner
            .build(&[1, input_shape[0], input_shape[1]], rng)?;
        // (1, steps', c) -> (steps', c), and a global pool's keepdims (1, 1, c) -> (1, c); a global pool's (c)
        // stays
        self.out = if inner_out.len() == 3 {
            inner_out[1..].to_vec()
        } else {
            inner_out.clone()
        };
        self.inner_out = inner_out;
        if self.class == "Conv1D" {
            if let Some(kernel) = self.inner.params_mut().first_mut() {
                kernel.shape.remove(0); // (1, k, in, filters) -> Keras's (k, in, filters)
            }
        }
        Ok(self.out.clone())
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let x = Self::view(x, &[1, self.input[0], self.input[1]])?;
        let y = self.inner.forward(x, ctx)?;
        Self::view(y, &self.out)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let g = Self::view(grad, &self.inner_out)?;
        let dx = self.inner.backward(g, need_input_grad)?;
        if !need_input_grad {
            return Ok(dx);
        }
        Self::view(dx, &self.input)
    }
    fn backward_preactivation(&mut self, grad_z: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let g = Self::view(grad_z, &self.inner_out)?;
        let dx = self.inner.backward_preactivation(g, need_input_grad)?;
        if !need_input_grad {
            return Ok(dx);
        }
        Self::view(dx, &self.input)
    }
    fn activation(&self) -> Activation {
        self.inner.activation()
    }
    fn params(&self) -> &[Param] {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut [Param] {
        self.inner.params_mut()
    }
    fn set_trainable(&mut self, trainable: bool) {
        self.inner.set_trainable(trainable)
    }
    fn clear_cache(&mut self) {
        self.inner.clear_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn input(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n = shape.iter().product();
        // values 0.1 apart in scrambled order keep every max unique for the finite differences
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
        rng.shuffle(&mut v);
        Tensor::new(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn shapes_and_gradients() {
        let cases = [
            (
                "Conv1D",
                json!({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
                vec![4, 3],
            ),
            (
                "Conv1D",
                json!({"filters": 2, "kernel_size": [2]}),
                vec![6, 2],
            ),
            ("MaxPooling1D", json!({"pool_size": 2}), vec![3, 2]),
            (
                "AveragePooling1D",
                json!({"pool_size": 3, "strides": 1, "padding": "same"}),
                vec![7, 2],
            ),
            ("GlobalAveragePooling1D", json!({}), vec![2]),
            ("GlobalMaxPooling1D", json!({}), vec![2]),
        ];
        for (class, cfg, out) in cases {
            let mut l = OneD::from_config(class, &cfg).unwrap();
            assert_eq!(l.build(&[7, 2], &mut Rng::new(1)).unwrap(), out, "{class}");
            gradcheck::check(&mut l, input(&[2, 7, 2], 3), 2e-2);
        }
        let mut conv =
            OneD::from_config("Conv1D", &json!({"filters": 4, "kernel_size": 3})).unwrap();
        conv.build(&[5, 2], &mut Rng::new(0)).unwrap();
        assert_eq!(conv.params()[0].shape, vec![3, 2, 4]);
        for bad in [
            json!({"filters": 2, "kernel_size": 2, "padding": "causal"}),
            json!({"filters": 2, "kernel_size": 2, "dilation_rate": 2}),
            json!({"filters": 2, "kernel_size": [2, 2]}),
        ] {
            assert!(OneD::from_config("Conv1D", &bad).is_err(), "{bad}");
        }
    }
}
