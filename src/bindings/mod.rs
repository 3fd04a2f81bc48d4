//! The only pyo3 code: NumPy in and out, the GIL released around the loops, Python hooks, error mapping.
//! Every entry point runs inside `guard`, so a Rust panic becomes a RuntimeError instead of crossing over.

use crate::error::Error;
use crate::model::{Data, Logs, Model};
use crate::tensor::Tensor;
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn to_py(e: Error, stash: Option<PyErr>) -> PyErr {
    match e {
        Error::Value(m) => PyValueError::new_err(m),
        Error::Type(m) => PyTypeError::new_err(m),
        Error::Runtime(m) => PyRuntimeError::new_err(m),
        Error::Interrupted => stash.unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")),
    }
}

/// Run `f`, turning a panic into a RuntimeError (a bug report, never a crash).
fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e, None)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!(
                "kerust internal error (please report): {msg}"
            )))
        }
    }
}

fn parse_json(what: &str, s: &str) -> PyResult<Value> {
    serde_json::from_str(s).map_err(|e| PyValueError::new_err(format!("{what}: invalid JSON: {e}")))
}

fn data<'a>(name: &str, a: &'a PyReadonlyArrayDyn<'_, f32>) -> PyResult<Data<'a>> {
    let slice = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!("`{name}` must be a C-contiguous float32 array"))
    })?;
    Data::new(a.shape(), slice).map_err(|e| to_py(e, None))
}

fn weights_slice<'a>(w: &'a Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Option<&'a [f32]>> {
    match w {
        None => Ok(None),
        Some(a) => a.as_slice().map(Some).map_err(|_| {
            PyValueError::new_err("`sample_weight` must be a contiguous float32 array")
        }),
    }
}

/// Run a loop with the GIL released; `progress(step, logs)` is called from it with the GIL held,
/// after checking for Ctrl-C. A Python exception from either stops the loop and is re-raised.
fn run_detached<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    body: impl FnOnce(&mut dyn FnMut(usize, &Logs) -> Result<(), Error>) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let mut stash: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut hook = |step: usize, logs: &Logs| -> Result<(), Error> {
            Python::attach(|py| {
                if let Err(e) = py.check_signals() {
                    stash = Some(e);
                    return Err(Error::Interrupted);
                }
                if let Some(cb) = &progress {
                    if let Err(e) = cb.call1(py, (step, logs.clone())) {
                        stash = Some(e);
                        return Err(Error::Interrupted);
                    }
                }
                Ok(())
            })
        };
        catch_unwind(AssertUnwindSafe(|| body(&mut hook)))
    });
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e, stash)),
        Err(_) => Err(PyRuntimeError::new_err(
            "kerust internal error during a training loop (please report)",
        )),
    }
}

fn tensor_to_py<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let arr = ndarray::ArrayD::from_shape_vec(t.shape, t.data)
        .map_err(|e| PyRuntimeError::new_err(format!("kerust internal error: {e}")))?;
    Ok(arr.into_pyarray(py))
}

/// The compiled model: owns every weight, gradient and optimizer slot.
#[pyclass(name = "CoreModel", module = "kerust._core")]
pub struct CoreModel {
    inner: Model,
}

#[pymethods]
impl CoreModel {
    /// `layers_json`: a JSON list of `{"class_name", "config"}`; `input_shape` excludes the batch axis.
    #[new]
    #[pyo3(signature = (layers_json, input_shape, seed=None))]
    fn new(layers_json: &str, input_shape: Vec<usize>, seed: Option<u64>) -> PyResult<Self> {
        let v = parse_json("layers", layers_json)?;
        guard(|| {
            let list = v
                .as_array()
                .ok_or_else(|| Error::Value("layers must be a JSON list".into()))?;
            let specs = list
                .iter()
                .map(|item| {
                    let class =
                        item.get("class_name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                Error::Value(format!("layer entry without `class_name`: {item}"))
                            })?;
                    Ok((
                        class.to_string(),
                        item.get("config").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let seed = seed.unwrap_or_else(crate::rng::next_seed);
            Ok(CoreModel {
                inner: Model::new(&specs, &input_shape, seed)?,
            })
        })
    }

    /// Per layer: (name, class_name, output_shape, params, trainable_params).
    fn layer_info(&self) -> Vec<(String, String, Vec<usize>, usize, usize)> {
        self.inner
            .layer_info()
            .into_iter()
            .map(|l| {
                (
                    l.name,
                    l.class_name.to_string(),
                    l.output_shape,
                    l.params,
                    l.trainable_params,
                )
            })
            .collect()
    }

    fn output_shape(&self) -> Vec<usize> {
        self.inner.output_shape().to_vec()
    }

    /// `metrics_json`: a JSON list of metric names or `{"class_name", "config"}` dicts.
    fn compile(
        &mut self,
        loss_json: &str,
        optimizer_json: &str,
        metrics_json: &str,
    ) -> PyResult<()> {
        let loss = parse_json("loss", loss_json)?;
        let opt = parse_json("optimizer", optimizer_json)?;
        let metrics = parse_json("metrics", metrics_json)?;
        guard(|| {
            let list = metrics
                .as_array()
                .ok_or_else(|| Error::Type("metrics must be a list".into()))?;
            self.inner.compile(&loss, &opt, list)
        })
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn prepare(
        &mut self,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<()> {
        let (xd, yd) = (data("x", &x)?, data("y", &y)?);
        let sw = weights_slice(&sample_weight)?;
        guard(|| self.inner.prepare(&xd, &yd, sw))
    }

    fn begin_epoch(&mut self, n: usize, shuffle: bool) {
        self.inner.begin_epoch(n, shuffle)
    }

    /// Up to `max_steps` batches of the current epoch with the GIL released. Returns (steps, finished, logs).
    #[pyo3(signature = (x, y, sample_weight, batch_size, max_steps, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_steps(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArray1<'_, f32>>,
        batch_size: usize,
        max_steps: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(usize, bool, Logs)> {
        let (xd, yd) = (data("x", &x)?, data("y", &y)?);
        let sw = weights_slice(&sample_weight)?;
        let inner = &mut self.inner;
        run_detached(py, progress, move |hook| {
            inner.train_steps(&xd, &yd, sw, batch_size, max_steps, hook)
        })
    }

    #[pyo3(signature = (x, y, sample_weight, batch_size, progress=None))]
    fn evaluate(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArray1<'_, f32>>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Logs> {
        let (xd, yd) = (data("x", &x)?, data("y", &y)?);
        let sw = weights_slice(&sample_weight)?;
        let inner = &mut self.inner;
        run_detached(py, progress, move |hook| {
            inner.evaluate(&xd, &yd, sw, batch_size, hook)
        })
    }

    #[pyo3(signature = (x, batch_size, progress=None))]
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let xd = data("x", &x)?;
        let inner = &mut self.inner;
        let out = run_detached(py, progress, move |hook| {
            inner.predict(&xd, batch_size, hook)
        })?;
        tensor_to_py(py, out)
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_on_batch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<Logs> {
        let (xd, yd) = (data("x", &x)?, data("y", &y)?);
        let sw = weights_slice(&sample_weight)?;
        let inner = &mut self.inner;
        run_detached(py, None, move |_| inner.train_on_batch(&xd, &yd, sw))
    }

    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        self.inner
            .weights()
            .into_iter()
            .map(|(shape, data)| tensor_to_py(py, Tensor { shape, data }))
            .collect()
    }

    /// Replace `expected` weights starting at `first`; `who` names the model or layer in errors.
    fn set_weights(
        &mut self,
        first: usize,
        weights: Vec<PyReadonlyArrayDyn<'_, f32>>,
        expected: usize,
        who: &str,
    ) -> PyResult<()> {
        let new: Vec<(Vec<usize>, Vec<f32>)> = weights
            .iter()
            .map(|w| (w.shape().to_vec(), w.as_array().iter().copied().collect()))
            .collect();
        guard(|| self.inner.set_weights(first, &new, expected, who))
    }

    fn layer_weight_ranges(&self) -> Vec<(usize, usize)> {
        self.inner.layer_weight_ranges()
    }

    fn set_layer_trainable(&mut self, index: usize, trainable: bool) -> PyResult<()> {
        guard(|| self.inner.set_layer_trainable(index, trainable))
    }

    /// (iterations, slot names, per trainable weight its slot arrays shaped like the weight).
    #[allow(clippy::type_complexity)]
    fn get_optimizer_state<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(u64, Vec<String>, Vec<Vec<Bound<'py, PyArrayDyn<f32>>>>)> {
        let shapes: Vec<Vec<usize>> = self
            .inner
            .weights_info()
            .into_iter()
            .filter(|(_, trainable)| *trainable)
            .map(|(shape, _)| shape)
            .collect();
        let (it, names, slots) = guard(|| self.inner.optimizer_state())?;
        let arrays = slots
            .into_iter()
            .zip(&shapes)
            .map(|(s, shape)| {
                s.into_iter()
                    .map(|data| {
                        tensor_to_py(
                            py,
                            Tensor {
                                shape: shape.clone(),
                                data,
                            },
                        )
                    })
                    .collect::<PyResult<Vec<_>>>()
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok((it, names.into_iter().map(String::from).collect(), arrays))
    }

    fn set_optimizer_state(
        &mut self,
        iterations: u64,
        slots: Vec<Vec<PyReadonlyArrayDyn<'_, f32>>>,
    ) -> PyResult<()> {
        let values: Vec<Vec<Vec<f32>>> = slots
            .iter()
            .map(|s| {
                s.iter()
                    .map(|a| a.as_array().iter().copied().collect())
                    .collect()
            })
            .collect();
        guard(|| self.inner.set_optimizer_state(iterations, values))
    }

    #[getter]
    fn learning_rate(&self) -> Option<f32> {
        self.inner.compiled().map(|c| match &c.optimizer.schedule {
            Some(s) => s.at(c.optimizer.iterations),
            None => c.optimizer.learning_rate,
        })
    }

    #[setter]
    fn set_learning_rate(&mut self, lr: f32) -> PyResult<()> {
        guard(|| {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(Error::Value(format!(
                    "learning_rate must be a non-negative number, received {lr}"
                )));
            }
            let opt = self.inner.optimizer_mut()?;
            if opt.schedule.is_some() {
                return Err(Error::Type(
                    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` \
                     constructor argument, hence its learning rate is not settable. If you need the learning \
                     rate to be settable, you should instantiate the optimizer with a float `learning_rate` \
                     argument."
                        .into(),
                ));
            }
            opt.learning_rate = lr;
            Ok(())
        })
    }

    #[getter]
    fn iterations(&self) -> u64 {
        self.inner
            .compiled()
            .map(|c| c.optimizer.iterations)
            .unwrap_or(0)
    }
}

/// Make every model built from now on reproducible.
#[pyfunction]
fn set_random_seed(seed: u64) {
    crate::rng::set_global_seed(seed)
}

/// The mean loss of `loss_json` on NumPy arrays (what `kerust.losses.X()(y_true, y_pred)` returns).
#[pyfunction]
fn loss_value(
    loss_json: &str,
    y_true: PyReadonlyArrayDyn<'_, f32>,
    y_pred: PyReadonlyArrayDyn<'_, f32>,
) -> PyResult<f64> {
    let v = parse_json("loss", loss_json)?;
    let (yt, yp) = (data("y_true", &y_true)?, data("y_pred", &y_pred)?);
    guard(|| {
        let loss = crate::losses::Loss::from_value(&v)?;
        let pred = Tensor::new(yp.shape.to_vec(), yp.data.to_vec())?;
        let y = Tensor::new(yt.shape.to_vec(), yt.data.to_vec())?;
        loss.check_targets(&y, &yp.shape[1..])?;
        Ok(loss.forward_backward(&pred, &y, false, None)?.0)
    })
}

/// A schedule's learning rate at `step` (what `schedule(step)` returns in Python).
#[pyfunction]
fn schedule_value(schedule_json: &str, step: u64) -> PyResult<f32> {
    let v = parse_json("schedule", schedule_json)?;
    guard(|| Ok(crate::schedules::Schedule::from_value(&v)?.at(step)))
}

/// Check a name or config with the engine's own parser (the one source of truth for what is valid).
/// `kind`: "layer:<ClassName>", "loss", "optimizer", "metric", "activation", "initializer".
#[pyfunction]
fn validate(kind: &str, json: &str) -> PyResult<()> {
    let v = parse_json(kind, json)?;
    guard(|| match kind {
        "loss" => crate::losses::Loss::from_value(&v).map(|_| ()),
        "optimizer" => crate::optimizers::Optimizer::from_value(&v).map(|_| ()),
        "metric" => crate::metrics::check(&v),
        "activation" => {
            crate::activations::Activation::from_name(v.as_str().unwrap_or_default()).map(|_| ())
        }
        "initializer" => crate::initializers::Initializer::from_value(&v).map(|_| ()),
        "schedule" => crate::schedules::Schedule::from_value(&v).map(|_| ()),
        k => match k.strip_prefix("layer:") {
            Some(class) => crate::layers::from_config(class, &v).map(|_| ()),
            None => Err(Error::Value(format!("unknown validation kind '{k}'"))),
        },
    })
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreModel>()?;
    m.add_function(wrap_pyfunction!(set_random_seed, m)?)?;
    m.add_function(wrap_pyfunction!(loss_value, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(schedule_value, m)?)?;
    m.add("simd_level", crate::kernels::simd::level())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
