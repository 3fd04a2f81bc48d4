//! A loss written by the user as a function of `(y_true, y_pred)` made of `keras.ops`, traced by Python into a
//! small graph with those two inputs. Its output holds per-sample (or per-element) losses, which are reduced as
//! Keras's `reduction` says (by default "sum_over_batch_size": the sample-weighted sum over every value, divided
//! by their count).

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphSpec};
use crate::layers::Ctx;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use std::sync::Mutex;

/// Targets of the sample shape a custom loss or metric was traced for, or a ValueError with both shapes.
pub fn check_traced_targets(what: &str, traced_for: &[usize], y: &Tensor) -> Result<()> {
    let y_sample = y.shape.get(1..).unwrap_or(&[]);
    if y_sample != traced_for {
        return Err(Error::Value(format!(
            "the custom {what} was traced for targets of shape {}, received targets of shape {}",
            shape_str(traced_for),
            shape_str(y_sample)
        )));
    }
    Ok(())
}

/// How a loss's values become the batch's loss (Keras's `reduction`): the weighted sum over every value, divided
/// by the number of values, by nothing, or by the sum of the values' weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    SumOverBatchSize,
    Sum,
    MeanWithSampleWeight,
}

impl Reduction {
    /// From Keras's name; `None`/"none" (unreduced values) is refused here: the caller reduces those values as
    /// "sum_over_batch_size" does when a scalar loss is needed for training.
    pub fn from_name(name: Option<&str>) -> Result<Self> {
        match name {
            None | Some("sum_over_batch_size") | Some("mean") | Some("none") => {
                Ok(Reduction::SumOverBatchSize)
            }
            Some("sum") => Ok(Reduction::Sum),
            Some("mean_with_sample_weight") => Ok(Reduction::MeanWithSampleWeight),
            Some(other) => Err(Error::Value(format!(
                "Invalid value for argument `reduction`. Expected one of 'sum', 'sum_over_batch_size', \
                 'mean', 'mean_with_sample_weight', 'none', None. Received: reduction={other}"
            ))),
        }
    }
}

pub struct TracedLoss {
    graph: Mutex<Graph>,
    y_shape: Vec<usize>,
    reduction: Reduction,
}

impl TracedLoss {
    /// From `{"graph": spec}` whose inputs are `[y_true sample shape, y_pred sample shape]`.
    pub fn from_spec(spec: GraphSpec) -> Result<Self> {
        if spec.inputs.len() != 2 || spec.outputs.len() != 1 {
            return Err(Error::Value(
                "a traced loss takes (y_true, y_pred) and returns one tensor".into(),
            ));
        }
        let y_shape = spec.inputs[0].clone();
        let graph = Graph::new_unchecked_outputs(spec, &mut Rng::shape_only())?;
        Ok(TracedLoss {
            graph: Mutex::new(graph),
            y_shape,
            reduction: Reduction::SumOverBatchSize,
        })
    }

    /// The same loss reduced another way (training uses it; metrics always average).
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    pub fn y_shape(&self) -> &[usize] {
        &self.y_shape
    }

    pub fn check_targets(&self, y: &Tensor) -> Result<()> {
        check_traced_targets("loss", &self.y_shape, y)
    }

    /// The function's values for one batch (inference mode, no gradient): what a traced metric averages.
    pub fn values(&self, pred: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.check_targets(y)?;
        let mut g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let plan = g.plan(false, false);
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let out = g.forward(vec![y.clone(), pred.clone()], &mut ctx, &plan, None, None)?;
        Ok(out.into_iter().next().unwrap_or_default())
    }

    /// (mean loss, dL/d(prediction)).
    pub fn forward_backward(
        &self,
        pred: &Tensor,
        y: &Tensor,
        sample_weight: Option<&[f32]>,
    ) -> Result<(f64, Tensor)> {
        self.check_targets(y)?;
        let mut g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let plan = g.plan(true, false);
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let out = g
            .forward(vec![y.clone(), pred.clone()], &mut ctx, &plan, None, None)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let n = out.data.len().max(1);
        let batch = pred.shape.first().copied().unwrap_or(1).max(1);
        // the weight of each value: its sample's weight (a scalar loss takes the mean weight)
        let per_sample = if out.shape.first() == Some(&batch) {
            n / batch
        } else {
            0
        };
        let weight_of = |i: usize| -> f32 {
            match sample_weight {
                None => 1.0,
                Some(sw) if per_sample > 0 => sw[i / per_sample],
                Some(sw) => sw.iter().sum::<f32>() / sw.len().max(1) as f32,
            }
        };
        let divisor = match self.reduction {
            Reduction::SumOverBatchSize => n as f64,
            Reduction::Sum => 1.0,
            Reduction::MeanWithSampleWeight => {
                (0..out.data.len()).map(|i| weight_of(i) as f64).sum()
            }
        };
        // Keras divides with divide_no_nan: a zero divisor gives a zero loss
        let scale = if divisor == 0.0 { 0.0 } else { 1.0 / divisor };
        let mut total = 0.0f64;
        let mut grad_out = Tensor::zeros(out.shape.clone());
        for (i, (&l, gv)) in out.data.iter().zip(grad_out.data.iter_mut()).enumerate() {
            let w = weight_of(i);
            total += (w * l) as f64;
            *gv = (w as f64 * scale) as f32;
        }
        let grads = g.backward(vec![Some(grad_out)], &[false], &plan, true, None)?;
        g.clear_caches();
        let dpred = grads.into_iter().nth(1).unwrap_or_default();
        let dpred = if dpred.data.len() == pred.data.len() {
            dpred
        } else {
            // the loss did not depend on the prediction
            Tensor::zeros(pred.shape.clone())
        };
        Ok((total * scale, dpred))
    }
}
