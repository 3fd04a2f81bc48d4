//! A `keras.metrics.Metric` subclass written by the user: variables from `add_variable`, an `update_state` that
//! assigns them new values, and a `result` computed from them. Python traces `update_state` followed by
//! `result` into one small graph: its inputs are `(y_true, y_pred)`, its variables one `Weights` unit holding the
//! metric's state, its outputs each variable's new value and then the result. Each batch sets the unit from the
//! state vector, runs the graph, and writes the new values (and the result) back, so the epoch runs without Python.

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphSpec};
use crate::layers::Ctx;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;
use std::sync::Mutex;

pub struct StateMetric {
    graph: Mutex<Graph>,
    y_shape: Vec<usize>,
    /// The number of values of each variable, in the order of the graph's outputs.
    sizes: Vec<usize>,
    /// The state each epoch starts from (what `reset_state` leaves), then the result of that state.
    initial: Vec<f64>,
}

impl StateMetric {
    /// From `{"graph": spec, "initial": [[values of each variable]], "result": value of the initial state}`.
    pub fn from_spec(spec: &Value) -> Result<Self> {
        let bad = |what: &str| Error::Value(format!("a traced metric needs {what}"));
        let graph = GraphSpec::from_value(spec.get("graph").ok_or_else(|| bad("a `graph`"))?)?;
        let initial_vars = spec
            .get("initial")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`initial`: a list of its variables' values"))?;
        // JSON has no NaN: Python writes non-finite values as strings
        let result0 = match spec.get("result") {
            Some(Value::String(s)) if s == "nan" => Some(f64::NAN),
            Some(Value::String(s)) if s == "inf" => Some(f64::INFINITY),
            Some(Value::String(s)) if s == "-inf" => Some(f64::NEG_INFINITY),
            Some(v) => v.as_f64(),
            None => None,
        }
        .ok_or_else(|| bad("`result`: the result of its initial state"))?;
        if graph.inputs.len() != 2 || graph.outputs.len() != initial_vars.len() + 1 {
            return Err(Error::Value(format!(
                "a traced metric takes (y_true, y_pred) and returns the new value of each of its {} \
                 variables and its result; this graph has {} inputs and {} outputs",
                initial_vars.len(),
                graph.inputs.len(),
                graph.outputs.len()
            )));
        }
        let y_shape = graph.inputs[0].clone();
        let g = Graph::new_unchecked_outputs(graph, &mut Rng::shape_only())?;
        let mut sizes = Vec::with_capacity(initial_vars.len());
        let mut initial = Vec::new();
        let params: Vec<usize> = g.params().map(|p| p.value.len()).collect();
        if params.len() != initial_vars.len() {
            return Err(Error::Value(format!(
                "a traced metric's graph reads {} variables, its state has {}",
                params.len(),
                initial_vars.len()
            )));
        }
        for (i, (values, &n)) in initial_vars.iter().zip(&params).enumerate() {
            let values = values
                .as_array()
                .ok_or_else(|| bad("`initial` values as lists of numbers"))?;
            if values.len() != n {
                return Err(Error::Value(format!(
                    "a traced metric's variable {i} has {n} values, its initial state {}",
                    values.len()
                )));
            }
            for v in values {
                initial.push(v.as_f64().ok_or_else(|| bad("numeric initial values"))?);
            }
            sizes.push(n);
        }
        initial.push(result0);
        Ok(StateMetric {
            graph: Mutex::new(g),
            y_shape,
            sizes,
            initial,
        })
    }

    pub fn y_shape(&self) -> &[usize] {
        &self.y_shape
    }

    /// The state an epoch starts from: every variable's value, then the result.
    pub fn initial_state(&self) -> Vec<f64> {
        self.initial.clone()
    }

    /// Run `update_state` (and `result`) on one batch: `state` takes the variables' new values and the result.
    pub fn update(&self, pred: &Tensor, y: &Tensor, state: &mut [f64]) -> Result<()> {
        crate::traced_loss::check_traced_targets("metric", &self.y_shape, y)?;
        if state.len() != self.initial.len() {
            return Err(Error::Runtime(format!(
                "kerust internal error: a metric state of {} values, expected {}",
                state.len(),
                self.initial.len()
            )));
        }
        let mut g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = 0;
        for p in g.params_mut() {
            for (dst, &src) in p.value.iter_mut().zip(&state[at..]) {
                *dst = src as f32;
            }
            at += p.value.len();
        }
        let plan = g.plan(false, false);
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let outs = g.forward(vec![y.clone(), pred.clone()], &mut ctx, &plan, None, None);
        g.clear_caches();
        let outs = outs?;
        // check every output before writing any, so a failed batch leaves the state as it was
        for (i, (o, &n)) in outs.iter().zip(&self.sizes).enumerate() {
            if o.data.len() != n {
                return Err(Error::Value(format!(
                    "the custom metric's update_state gave variable {i} a value of shape {} ({} values), \
                     the variable holds {n}",
                    shape_str(&o.shape),
                    o.data.len()
                )));
            }
        }
        let result = outs.last().map(|r| r.data.as_slice()).unwrap_or(&[]);
        if result.len() != 1 {
            return Err(Error::Value(format!(
                "the custom metric's result() must be a scalar, it has {} values",
                result.len()
            )));
        }
        let mut at = 0;
        for o in &outs[..self.sizes.len()] {
            for (dst, &src) in state[at..].iter_mut().zip(&o.data) {
                *dst = src as f64;
            }
            at += o.data.len();
        }
        state[at] = result[0] as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `total += sum(y_pred)`, result `2 * total`, as Python traces it.
    fn spec(result0: Value) -> Value {
        json!({"graph": {
            "layers": [
                {"class_name": "Weights", "config": {"name": "s", "weights": [
                    {"shape": [], "initializer": "zeros", "trainable": false, "regularizer": null}]}},
                {"class_name": "Op", "config": {"name": "sum", "op": "sum", "axis": null, "keepdims": false}},
                {"class_name": "Op", "config": {"name": "add", "op": "add"}},
                {"class_name": "Op", "config": {"name": "c", "op": "constant", "shape": [], "values": [2.0]}},
                {"class_name": "Op", "config": {"name": "multiply", "op": "multiply"}}],
            "inputs": [[1], [1]],
            "nodes": [
                {"layer": 0, "inputs": [], "index": 0}, {"layer": 1, "inputs": [1]},
                {"layer": 2, "inputs": [2, 3]}, {"layer": 3, "inputs": []}, {"layer": 4, "inputs": [4, 5]}],
            "outputs": [4, 6]},
            "initial": [[0.5]], "result": result0})
    }

    #[test]
    fn batches_update_the_state_and_the_result() {
        let m = StateMetric::from_spec(&spec(json!(1.0))).unwrap();
        let mut state = m.initial_state();
        assert_eq!(state, vec![0.5, 1.0]);
        let p = Tensor::new(vec![3, 1], vec![1.0, 2.0, 3.0]).unwrap();
        let y = Tensor::zeros(vec![3, 1]);
        m.update(&p, &y, &mut state).unwrap();
        assert_eq!(state, vec![6.5, 13.0]);
        m.update(&p, &y, &mut state).unwrap();
        assert_eq!(state, vec![12.5, 25.0]);
    }

    #[test]
    fn bad_specs_and_targets_are_refused() {
        let nan = StateMetric::from_spec(&spec(json!("nan"))).unwrap();
        assert!(nan.initial_state()[1].is_nan());
        assert!(StateMetric::from_spec(&spec(json!(null))).is_err());
        let mut wrong = spec(json!(0.0));
        wrong["initial"] = json!([[0.0, 1.0]]);
        assert!(StateMetric::from_spec(&wrong).is_err());
        wrong["initial"] = json!([]);
        assert!(StateMetric::from_spec(&wrong).is_err());
        let m = StateMetric::from_spec(&spec(json!(0.0))).unwrap();
        let mut state = m.initial_state();
        let p = Tensor::zeros(vec![2, 1]);
        let err = m.update(&p, &Tensor::zeros(vec![2, 3]), &mut state);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("traced for targets of shape"));
        assert_eq!(state, m.initial_state());
    }
}
