//! The graph nodes that user code (custom layers, subclassed models, `keras.ops` on symbolic tensors) adds
//! besides layers: op nodes, and the variables a custom layer made with `add_weight`.

use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::layers::{Param, Regularizer};
use crate::ops::arr::Arr;
use crate::ops::Op;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

/// One op call recorded while tracing: `{"name": .., "op": .., ...attributes}`.
#[derive(Clone, Debug)]
pub struct OpUnit {
    pub name: String,
    pub op: Op,
}

impl OpUnit {
    pub fn from_config(cfg: &Value) -> Result<Self> {
        Ok(OpUnit {
            name: cfg
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("op")
                .to_string(),
            op: Op::from_config(cfg)?,
        })
    }
}

/// What an op node keeps from a training forward pass for its backward.
#[derive(Default)]
pub struct OpCache {
    inputs: Vec<Arr<f32>>,
    output: Arr<f32>,
    saved: Option<Arr<f32>>,
    filled: bool,
}

pub fn arr(t: Tensor) -> Arr<f32> {
    Arr::new(t.shape, t.data)
}

pub fn tensor(a: Arr<f32>) -> Tensor {
    Tensor {
        shape: a.shape,
        data: a.data,
    }
}

impl OpCache {
    /// Forward on `xs`; a training pass keeps them for the backward (taking them out of `xs`), otherwise
    /// (and on an error) they stay with the caller, who may have lent some of them (`take_input`).
    pub fn forward(
        &mut self,
        op: &Op,
        xs: &mut Vec<Arr<f32>>,
        batch: usize,
        training: bool,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let refs: Vec<&Arr<f32>> = xs.iter().collect();
        let (y, saved) = op.forward(&refs, batch, rng)?;
        if training && op.differentiable() {
            self.inputs = std::mem::take(xs);
            self.output = if op.uses_output() {
                y.clone()
            } else {
                Arr::default()
            };
            self.saved = saved;
            self.filled = true;
        }
        Ok(tensor(y))
    }

    /// Gradients for the node's inputs (None for one that gets none, or that `need` leaves out).
    pub fn backward(&mut self, op: &Op, g: Tensor, need: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if !op.differentiable() {
            return Ok(Vec::new());
        }
        if !self.filled {
            return Err(Error::Runtime(
                "backward called without a matching training forward pass".into(),
            ));
        }
        let refs: Vec<&Arr<f32>> = self.inputs.iter().collect();
        let grads = op.backward(&refs, &self.output, self.saved.as_ref(), &arr(g), need)?;
        Ok(grads.into_iter().map(|g| g.map(tensor)).collect())
    }

    /// Kept input `i` of the last training forward.
    pub fn input(&self, i: usize) -> Option<&Arr<f32>> {
        self.inputs.get(i).filter(|_| self.filled)
    }

    /// The values of kept input `i` (a variable's, lent for the step), leaving an empty buffer in the cache.
    pub fn take_input(&mut self, i: usize) -> Vec<f32> {
        self.inputs
            .get_mut(i)
            .map(|a| std::mem::take(&mut a.data))
            .unwrap_or_default()
    }

    /// Lend kept input `i`'s values back for the backward.
    pub fn put_input(&mut self, i: usize, data: Vec<f32>) {
        if let Some(a) = self.inputs.get_mut(i) {
            a.data = data;
        }
    }

    pub fn clear(&mut self) {
        *self = OpCache::default();
    }
}

/// A custom layer's own variables (`add_weight`), in creation order: one unit, read by one node per use.
#[derive(Clone, Debug)]
pub struct WeightsUnit {
    pub name: String,
    pub params: Vec<Param>,
}

impl WeightsUnit {
    /// From `{"name": layer, "weights": [{"shape", "initializer", "trainable", "regularizer"}]}`.
    pub fn from_config(cfg: &Value, rng: &mut Rng) -> Result<Self> {
        let name = cfg
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("layer")
            .to_string();
        let list = cfg
            .get("weights")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Value(format!("layer '{name}': `weights` must be a list")))?;
        let mut params = Vec::with_capacity(list.len());
        for (i, w) in list.iter().enumerate() {
            let what = format!("layer '{name}' weight {i}");
            let shape: Vec<usize> = w
                .get("shape")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Value(format!("{what}: `shape` must be a list of sizes")))?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .filter(|&n| n < (1 << 31))
                        .map(|n| n as usize)
                        .ok_or_else(|| {
                            Error::Value(format!(
                                "{what}: `shape` must be a list of non-negative sizes, received {d}"
                            ))
                        })
                })
                .collect::<Result<_>>()?;
            let init = Initializer::from_value(w.get("initializer").unwrap_or(&Value::Null))
                .map_err(|e| Error::Value(format!("{what}: {e}")))?;
            let trainable = w.get("trainable").and_then(Value::as_bool).unwrap_or(true);
            let values = init.fill(&shape, rng)?;
            let mut p = Param::new("variable", shape, values, trainable);
            p.regularizer = Regularizer::from_value(w.get("regularizer").unwrap_or(&Value::Null))
                .map_err(|e| Error::Value(format!("{what}: {e}")))?;
            p.constraint = crate::constraints::Constraint::from_value(
                w.get("constraint").unwrap_or(&Value::Null),
            )
            .map_err(|e| Error::Value(format!("{what}: {e}")))?;
            if let Some(c) = &p.constraint {
                c.check_rank(&p.shape)
                    .map_err(|e| Error::Value(format!("{what}: {e}")))?;
            }
            params.push(p);
        }
        Ok(WeightsUnit { name, params })
    }

    /// The value of variable `i` as a tensor (its own shape: a variable has no batch axis).
    pub fn read(&self, i: usize) -> Result<Tensor> {
        let p = self.param(i)?;
        Ok(Tensor {
            shape: p.shape.clone(),
            data: p.value.clone(),
        })
    }

    /// Add dL/d(variable i).
    pub fn add_grad(&mut self, i: usize, g: Tensor) -> Result<()> {
        let p = self
            .params
            .get_mut(i)
            .ok_or_else(|| Error::Runtime(format!("kerust internal error: no variable {i}")))?;
        if g.data.len() != p.grad.len() {
            return Err(Error::Runtime(format!(
                "kerust internal error: a gradient of shape {:?} for a variable of shape {:?}",
                g.shape, p.shape
            )));
        }
        if p.trainable {
            p.grad.iter_mut().zip(&g.data).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }

    /// Move variable i's values out (for an op node to read in place); `restore` puts them back.
    pub fn lend(&mut self, i: usize) -> Result<Arr<f32>> {
        let p = self
            .params
            .get_mut(i)
            .ok_or_else(|| Error::Runtime(format!("kerust internal error: no variable {i}")))?;
        Ok(Arr::new(p.shape.clone(), std::mem::take(&mut p.value)))
    }

    pub fn restore(&mut self, i: usize, data: Vec<f32>) {
        if let Some(p) = self.params.get_mut(i) {
            p.value = data;
        }
    }

    pub fn param(&self, i: usize) -> Result<&Param> {
        self.params.get(i).ok_or_else(|| {
            Error::Value(format!(
                "layer '{}' has {} variable(s); variable {i} does not exist",
                self.name,
                self.params.len()
            ))
        })
    }
}
