//! The only pyo3 code: NumPy in and out, the GIL released around the loops, Python hooks, error mapping.
//! Every entry point runs inside `guard`, so a Rust panic becomes a RuntimeError instead of crossing over.
//!
//! Threads: a `CoreModel` holds its `Model` in a `Mutex`. Reading calls (predict, evaluate, get_weights, ...)
//! wait for it with the GIL released (and stay interruptible by Ctrl-C while they wait); changing calls
//! (train_steps, train_on_batch, set_weights, ...) raise a RuntimeError saying the model is busy when another
//! changing call holds it, or while another thread's `fit` has claimed the model (`claim_training`); a reading
//! call holding it is waited for. The numeric work runs on kerust's own rayon pool, created per process (a
//! pool inherited through `fork()` has no threads and is never touched), while progress hooks and Ctrl-C
//! checks run on the calling Python thread.

use crate::error::Error;
use crate::graph::GraphSpec;
use crate::model::{Data, HeadSpec, Logs, Model};
use crate::tensor::Tensor;
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

fn to_py(e: Error, stash: Option<PyErr>) -> PyErr {
    match e {
        Error::Value(m) => PyValueError::new_err(m),
        Error::Type(m) => PyTypeError::new_err(m),
        Error::Runtime(m) => PyRuntimeError::new_err(m),
        Error::Interrupted => stash.unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn internal_error(msg: &str) -> Error {
    Error::Runtime(format!("kerust internal error (please report): {msg}"))
}

/// Run `f`, turning a panic into a RuntimeError (a bug report, never a crash).
fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    catch(f).map_err(|e| to_py(e, None))
}

/// `guard` without the conversion to a Python exception (usable with the GIL released).
fn catch<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(internal_error(&panic_message(&*panic))),
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

/// One float32 array, or a list/tuple of them (one per model input or output), as the engine reads them.
fn array_list<'py>(
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Vec<PyReadonlyArrayDyn<'py, f32>>> {
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        return Ok(vec![a]);
    }
    obj.extract::<Vec<PyReadonlyArrayDyn<'py, f32>>>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "`{name}` must be a float32 array or a list of float32 arrays"
            ))
        })
}

fn data_list<'a>(name: &str, arrays: &'a [PyReadonlyArrayDyn<'_, f32>]) -> PyResult<Vec<Data<'a>>> {
    arrays.iter().map(|a| data(name, a)).collect()
}

/// `sample_weight`: None, one float32 vector (the only output's), or a list with a vector or None per output.
fn weight_list<'py>(
    obj: Option<&Bound<'py, PyAny>>,
) -> PyResult<Vec<Option<PyReadonlyArray1<'py, f32>>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f32>>() {
        return Ok(vec![Some(a)]);
    }
    obj.extract::<Vec<Option<PyReadonlyArray1<'py, f32>>>>()
        .map_err(|_| {
            PyTypeError::new_err(
                "`sample_weight` must be a float32 vector or a list of them (or None) per output",
            )
        })
}

/// The arrays of one engine call (inputs, targets, sample weights), held while the engine reads them in place.
struct CallArrays<'py> {
    x: Vec<PyReadonlyArrayDyn<'py, f32>>,
    y: Vec<PyReadonlyArrayDyn<'py, f32>>,
    w: Vec<Option<PyReadonlyArray1<'py, f32>>>,
}

/// What the engine reads: one `Data` per input and per target, one weight slice (or none) per output.
type CallViews<'a> = (Vec<Data<'a>>, Vec<Data<'a>>, Vec<Option<&'a [f32]>>);

impl<'py> CallArrays<'py> {
    fn new(
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        Ok(CallArrays {
            x: array_list("x", x)?,
            y: array_list("y", y)?,
            w: weight_list(sample_weight)?,
        })
    }

    fn views(&self) -> PyResult<CallViews<'_>> {
        Ok((
            data_list("x", &self.x)?,
            data_list("y", &self.y)?,
            weight_slices(&self.w)?,
        ))
    }
}

fn weight_slices<'a>(
    w: &'a [Option<PyReadonlyArray1<'_, f32>>],
) -> PyResult<Vec<Option<&'a [f32]>>> {
    w.iter()
        .map(|a| match a {
            None => Ok(None),
            Some(a) => a.as_slice().map(Some).map_err(|_| {
                PyValueError::new_err("`sample_weight` must be a contiguous float32 array")
            }),
        })
        .collect()
}

// ---- the per-process thread pool ------------------------------------------------------------------------------

/// Threads asked for by `set_num_threads`; 0 means the default (`RAYON_NUM_THREADS`, else one per CPU).
static REQUESTED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// kerust's rayon pool for this process. rayon's global pool cannot be used: after `fork()` the child inherits
/// the pool's bookkeeping but none of its threads, so the first parallel loop would wait forever. A pool made
/// by another process (the parent, before a fork) is leaked, never dropped: its threads do not exist here.
/// Its size follows `set_num_threads`, else `RAYON_NUM_THREADS`, else one thread per CPU. A pool replaced
/// by `set_num_threads` lives on until the calls still running on it finish (they hold an `Arc`).
fn pool() -> Result<Arc<ThreadPool>, Error> {
    static POOL: Mutex<Option<(u32, usize, Arc<ThreadPool>)>> = Mutex::new(None);
    let pid = std::process::id();
    let requested = REQUESTED_THREADS.load(Ordering::SeqCst);
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, size, p)) = slot.as_ref() {
        if *owner == pid && *size == requested {
            return Ok(p.clone());
        }
    }
    if let Some(old) = slot.take() {
        if old.0 != pid {
            std::mem::forget(old);
        }
    }
    let p = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(requested)
            .thread_name(|i| format!("kerust-{i}"))
            .build()
            .map_err(|e| Error::Runtime(format!("kerust: cannot start its worker threads: {e}")))?,
    );
    *slot = Some((pid, requested, p.clone()));
    Ok(p)
}

/// Set the number of worker threads kerust's numeric work runs on (0: back to the default). Results do not
/// depend on it: work is split in fixed chunks whatever the thread count.
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    const MAX_THREADS: i64 = 1024;
    if !(0..=MAX_THREADS).contains(&n) {
        return Err(PyValueError::new_err(format!(
            "set_num_threads: expected a thread count between 1 and {MAX_THREADS} (or 0 for the default), got {n}"
        )));
    }
    REQUESTED_THREADS.store(n as usize, Ordering::SeqCst);
    Ok(())
}

/// The number of worker threads kerust's numeric work runs on in this process.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    guard(|| pool().map(|p| p.current_num_threads()))
}

type HookFn<'a> = dyn FnMut(usize, &Logs) -> Result<(), Error> + 'a;

/// Run `body` on kerust's pool while this (calling) thread serves its hook calls: the hook needs the calling
/// thread, the one Python delivers signals to. A worker waiting for the hook's answer keeps running other
/// kerust jobs meanwhile, so a hook that itself calls into kerust cannot starve the pool.
fn on_pool<T: Send>(
    hook: &mut HookFn<'_>,
    body: impl FnOnce(&mut HookFn<'_>) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    let pool = pool()?;
    let (to_caller, from_worker) = mpsc::channel::<(usize, Logs)>();
    let (to_worker, from_caller) = mpsc::channel::<Result<(), Error>>();
    let mut out: Option<Result<T, Error>> = None;
    let slot = &mut out;
    pool.in_place_scope(|scope| {
        scope.spawn(move |_| {
            let mut remote = move |step: usize, logs: &Logs| -> Result<(), Error> {
                if to_caller.send((step, logs.clone())).is_err() {
                    return Err(Error::Interrupted);
                }
                loop {
                    match from_caller.try_recv() {
                        Ok(r) => return r,
                        Err(mpsc::TryRecvError::Disconnected) => return Err(Error::Interrupted),
                        Err(mpsc::TryRecvError::Empty) => {}
                    }
                    if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                        continue;
                    }
                    match from_caller.recv_timeout(Duration::from_millis(1)) {
                        Ok(r) => return r,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(Error::Interrupted)
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                }
            };
            *slot = Some(catch(|| body(&mut remote)));
            // `remote` (and with it `to_caller`) is dropped here: the caller's loop below ends
        });
        while let Ok((step, logs)) = from_worker.recv() {
            if to_worker.send(hook(step, &logs)).is_err() {
                break;
            }
        }
    });
    out.unwrap_or_else(|| Err(internal_error("a worker job did not finish")))
}

// ---- the model lock --------------------------------------------------------------------------------------------

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}
fn this_thread() -> u64 {
    THREAD.with(|t| *t)
}

#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Wait for the model (predict, evaluate, reading weights).
    Wait = 1,
    /// Changing the model (training, writing weights): "busy" when another change holds it; a running read is
    /// waited for (reads never wait for changes, so this cannot deadlock, and a predict in another thread
    /// between two epochs does not break a fit).
    Try = 2,
}

/// The locked model; remembers who holds it, so a call from the holder's own progress hook fails instead of
/// waiting for itself, and a forked child does not wait for a thread that exists only in its parent.
struct Held<'a> {
    guard: MutexGuard<'a, Model>,
    core: &'a CoreModel,
    /// The mutex was poisoned (a panic while held): recovered, and reported to Python as a warning.
    poisoned: bool,
}

/// How long a change (a fit's next engine call) gives way to reads that are waiting for the model.
const READ_PRIORITY: Duration = Duration::from_millis(50);

/// Counts one waiting read while it lives.
struct WaitingRead<'a>(&'a AtomicU32);

impl<'a> WaitingRead<'a> {
    fn new(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        WaitingRead(counter)
    }
}

impl Drop for WaitingRead<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.core.holder.store(0, Ordering::SeqCst);
        self.core.owner.store(0, Ordering::SeqCst);
        self.core.owner_pid.store(0, Ordering::SeqCst);
    }
}

impl CoreModel {
    fn busy(&self) -> Error {
        Error::Runtime(format!(
            "model '{}' is busy: another thread is running fit/evaluate/predict on it",
            self.name
        ))
    }

    fn held<'a>(
        &'a self,
        guard: MutexGuard<'a, Model>,
        access: Access,
        poisoned: bool,
    ) -> Held<'a> {
        self.holder.store(access as u8, Ordering::SeqCst);
        self.owner.store(this_thread(), Ordering::SeqCst);
        self.owner_pid.store(std::process::id(), Ordering::SeqCst);
        Held {
            guard,
            core: self,
            poisoned,
        }
    }

    /// `Ok(None)`: held by someone else right now, worth waiting for; `Err`: busy for good (a change wanted
    /// while another change runs), or a call that would wait for itself. With `defer`, a change also steps
    /// aside (`Ok(None)`) while a read is waiting, so that reads get their turn between a fit's engine calls.
    fn try_acquire(&self, access: Access, defer: bool) -> Result<Option<Held<'_>>, Error> {
        if access == Access::Try {
            let trainer = self.trainer.load(Ordering::SeqCst);
            if trainer != 0 && trainer != this_thread() {
                return Err(self.busy());
            }
            if defer && self.readers_waiting.load(Ordering::SeqCst) > 0 {
                return Ok(None);
            }
        }
        match self.inner.try_lock() {
            Ok(g) => Ok(Some(self.held(g, access, false))),
            Err(TryLockError::Poisoned(p)) => {
                let g = p.into_inner();
                self.inner.clear_poison();
                Ok(Some(self.held(g, access, true)))
            }
            Err(TryLockError::WouldBlock) => {
                if self.owner.load(Ordering::SeqCst) == this_thread() {
                    return Err(Error::Runtime(format!(
                        "model '{}' was called from inside one of its own fit/evaluate/predict calls (from a \
                         progress callback); call it after that call returns",
                        self.name
                    )));
                }
                let pid = self.owner_pid.load(Ordering::SeqCst);
                if pid != 0 && pid != std::process::id() {
                    return Err(Error::Runtime(format!(
                        "model '{}' was in use by another thread when this process was forked; it cannot be \
                         used in the child process (build or load the model again)",
                        self.name
                    )));
                }
                if access == Access::Try && self.holder.load(Ordering::SeqCst) == Access::Try as u8
                {
                    return Err(self.busy());
                }
                Ok(None)
            }
        }
    }

    /// Take the model, waiting as `try_acquire` allows (GIL released: call inside `py.detach`). While waiting,
    /// Ctrl-C is checked every 50 ms; a KeyboardInterrupt is left in `stash`.
    fn acquire(&self, access: Access, stash: &mut Option<PyErr>) -> Result<Held<'_>, Error> {
        let start = Instant::now();
        let mut checked = start;
        let mut nap = Duration::from_micros(20);
        // a waiting read is counted, and changes give way to it for a while (bounded: no starving a fit)
        let _waiting = (access == Access::Wait).then(|| WaitingRead::new(&self.readers_waiting));
        loop {
            let defer = start.elapsed() < READ_PRIORITY;
            if let Some(h) = self.try_acquire(access, defer)? {
                return Ok(h);
            }
            if checked.elapsed() >= Duration::from_millis(50) {
                checked = Instant::now();
                Python::attach(|py| py.check_signals()).map_err(|e| {
                    *stash = Some(e);
                    Error::Interrupted
                })?;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    /// Run a short `f` on the model: without releasing the GIL when the model is free, else with the GIL
    /// released while waiting (as `try_acquire` allows; a change meeting another change fails at once).
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        access: Access,
        f: impl FnOnce(&mut Model) -> Result<R, Error> + Send,
    ) -> PyResult<R> {
        let mut stash = None;
        let (result, poisoned) = match self.try_acquire(access, true) {
            Ok(Some(mut h)) => (catch(|| f(&mut h.guard)), h.poisoned),
            Ok(None) => py.detach(|| match self.acquire(access, &mut stash) {
                Ok(mut h) => (catch(|| f(&mut h.guard)), h.poisoned),
                Err(e) => (Err(e), false),
            }),
            Err(e) => (Err(e), false),
        };
        self.report_poison(py, poisoned)?;
        result.map_err(|e| to_py(e, stash))
    }

    /// Run a loop on the model with the GIL released and the work on kerust's pool. `progress(step, logs)` is
    /// called from it with the GIL held, after checking for Ctrl-C; a Python exception from either stops the
    /// loop (after the current batch) and is re-raised.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        access: Access,
        progress: Option<Py<PyAny>>,
        body: impl FnOnce(&mut Model, &mut HookFn<'_>) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let mut stash: Option<PyErr> = None;
        let (result, poisoned) = py.detach(|| {
            let mut held = match self.acquire(access, &mut stash) {
                Ok(h) => h,
                Err(e) => return (Err(e), false),
            };
            let poisoned = held.poisoned;
            let model: &mut Model = &mut held.guard;
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
            (on_pool(&mut hook, move |h| body(model, h)), poisoned)
        });
        self.report_poison(py, poisoned)?;
        result.map_err(|e| to_py(e, stash))
    }

    fn report_poison(&self, py: Python<'_>, poisoned: bool) -> PyResult<()> {
        if !poisoned {
            return Ok(());
        }
        let msg = format!(
            "model '{}': an earlier call failed with a kerust internal error while changing the model; its \
             weights or optimizer state may be partly updated (please report the earlier error)",
            self.name
        );
        let msg = std::ffi::CString::new(msg.replace('\0', " "))
            .unwrap_or_else(|_| c"kerust internal error".to_owned());
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)
    }
}

fn tensor_to_py<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (shape, len) = (t.shape.clone(), t.data.len());
    let arr = ndarray::ArrayD::from_shape_vec(t.shape, t.data).map_err(|e| {
        PyRuntimeError::new_err(format!(
            "kerust internal error: {e} (shape {shape:?}, {len} values)"
        ))
    })?;
    Ok(arr.into_pyarray(py))
}

/// The compiled model: owns every weight, gradient and optimizer slot.
#[pyclass(name = "CoreModel", module = "kerust._core", frozen)]
pub struct CoreModel {
    inner: Mutex<Model>,
    name: String,
    /// Fixed at construction, so reading them never waits for a running loop.
    ranges: Vec<(usize, usize)>,
    out_shapes: Vec<Vec<usize>>,
    /// `this_thread()` of the holder of `inner` (0: none), its process id, and its `Access` (0: none).
    owner: AtomicU64,
    holder: AtomicU8,
    /// `this_thread()` of the thread whose `fit` claimed the model (`claim_training`), 0: none. Changing calls
    /// from any other thread are "busy" until it releases the claim, also between the fit's engine calls.
    trainer: AtomicU64,
    /// Reads waiting for `inner` now (changes give way to them for up to `READ_PRIORITY`).
    readers_waiting: AtomicU32,
    owner_pid: AtomicU32,
}

#[pymethods]
impl CoreModel {
    /// `spec_json`: a JSON list of `{"class_name", "config"}` (a Sequential model over samples of
    /// `input_shape`), or a graph `{"layers", "inputs", "nodes", "outputs"}` (see `graph::GraphSpec`; then
    /// `input_shape` is ignored); `name` is the Python model's name (for error messages).
    #[new]
    #[pyo3(signature = (spec_json, input_shape, seed=None, name=None))]
    fn new(
        spec_json: &str,
        input_shape: Vec<usize>,
        seed: Option<u64>,
        name: Option<String>,
    ) -> PyResult<Self> {
        let v = parse_json("layers", spec_json)?;
        guard(|| {
            let spec = match &v {
                Value::Array(_) => {
                    let chain = GraphSpec::from_value(&serde_json::json!({
                        "layers": v, "inputs": [], "nodes": [], "outputs": []
                    }))?;
                    if chain.layers.is_empty() {
                        return Err(Error::Value(
                            "a Sequential model needs at least one layer".into(),
                        ));
                    }
                    GraphSpec::chain(&chain.layers, &input_shape)
                }
                Value::Object(_) => GraphSpec::from_value(&v)?,
                _ => {
                    return Err(Error::Value(
                        "layers must be a JSON list or a graph dict".into(),
                    ))
                }
            };
            let seed = seed.unwrap_or_else(crate::rng::next_seed);
            let model = Model::from_graph(spec, seed)?;
            Ok(CoreModel {
                ranges: model.layer_weight_ranges(),
                out_shapes: model.output_shapes().to_vec(),
                inner: Mutex::new(model),
                name: name.unwrap_or_else(|| "sequential".to_string()),
                owner: AtomicU64::new(0),
                holder: AtomicU8::new(0),
                trainer: AtomicU64::new(0),
                readers_waiting: AtomicU32::new(0),
                owner_pid: AtomicU32::new(0),
            })
        })
    }

    /// Per layer: (name, class_name, output_shape, params, trainable_params).
    #[allow(clippy::type_complexity)]
    fn layer_info(
        &self,
        py: Python<'_>,
    ) -> PyResult<Vec<(String, String, Vec<usize>, usize, usize)>> {
        self.with(py, Access::Wait, |m| {
            Ok(m.layer_info()
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
                .collect())
        })
    }

    /// The first output's sample shape.
    fn output_shape(&self) -> Vec<usize> {
        self.out_shapes.first().cloned().unwrap_or_default()
    }

    /// Every output's sample shape.
    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.out_shapes.clone()
    }

    /// `metrics_json`: a JSON list of metric names or `{"class_name", "config"}` dicts.
    fn compile(
        &self,
        py: Python<'_>,
        loss_json: &str,
        optimizer_json: &str,
        metrics_json: &str,
    ) -> PyResult<()> {
        let loss = parse_json("loss", loss_json)?;
        let opt = parse_json("optimizer", optimizer_json)?;
        let metrics = parse_json("metrics", metrics_json)?;
        self.with(py, Access::Try, move |m| {
            let list = metrics
                .as_array()
                .ok_or_else(|| Error::Type("metrics must be a list".into()))?;
            m.compile(&loss, &opt, list)
        })
    }

    /// Several outputs: `heads_json` is a JSON list with one `{"loss": spec or null, "weight": number,
    /// "loss_name": str or null, "metrics": [specs]}` per output.
    fn compile_heads(
        &self,
        py: Python<'_>,
        heads_json: &str,
        optimizer_json: &str,
    ) -> PyResult<()> {
        let heads = parse_json("heads", heads_json)?;
        let opt = parse_json("optimizer", optimizer_json)?;
        self.with(py, Access::Try, move |m| {
            let list = heads
                .as_array()
                .ok_or_else(|| Error::Type("heads must be a list".into()))?;
            let specs = list
                .iter()
                .map(|h| {
                    let loss = h.get("loss").cloned().filter(|v| !v.is_null());
                    let weight = match h.get("weight") {
                        None | Some(Value::Null) => 1.0,
                        Some(w) => w.as_f64().ok_or_else(|| {
                            Error::Type(format!("loss_weights must be numbers, received {w}"))
                        })?,
                    };
                    let metrics = match h.get("metrics") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a.clone(),
                        Some(v) => {
                            return Err(Error::Type(format!(
                                "metrics must be a list, received {v}"
                            )))
                        }
                    };
                    Ok(HeadSpec {
                        loss,
                        weight,
                        loss_name: h.get("loss_name").and_then(Value::as_str).map(String::from),
                        metrics,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            m.compile_heads(specs, &opt)
        })
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn prepare(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let arrays = CallArrays::new(x, y, sample_weight)?;
        let (xd, yd, sw) = arrays.views()?;
        self.with(py, Access::Try, move |m| m.prepare(&xd, &yd, &sw))
    }

    fn begin_epoch(&self, py: Python<'_>, n: usize, shuffle: bool) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            m.begin_epoch(n, shuffle);
            Ok(())
        })
    }

    /// A new pass over the data that keeps the epoch's running logs (for `steps_per_epoch`).
    fn begin_pass(&self, py: Python<'_>, n: usize, shuffle: bool) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            m.begin_pass(n, shuffle);
            Ok(())
        })
    }

    /// Reset the running loss and metrics for a new epoch, keeping the position in the data.
    fn reset_logs(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            m.reset_logs();
            Ok(())
        })
    }

    /// Up to `max_steps` batches of the current epoch with the GIL released. Returns (steps, finished, logs).
    #[pyo3(signature = (x, y, sample_weight, batch_size, max_steps, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_steps(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
        max_steps: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(usize, bool, Logs)> {
        let arrays = CallArrays::new(x, y, sample_weight)?;
        let (xd, yd, sw) = arrays.views()?;
        self.run(py, Access::Try, progress, move |m, hook| {
            m.train_steps(&xd, &yd, &sw, batch_size, max_steps, hook)
        })
    }

    #[pyo3(signature = (x, y, sample_weight, batch_size, progress=None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Logs> {
        let arrays = CallArrays::new(x, y, sample_weight)?;
        let (xd, yd, sw) = arrays.views()?;
        self.run(py, Access::Wait, progress, move |m, hook| {
            m.evaluate(&xd, &yd, &sw, batch_size, hook)
        })
    }

    #[pyo3(signature = (x, batch_size, progress=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let xa = array_list("x", x)?;
        let xd = data_list("x", &xa)?;
        let out = self.run(py, Access::Wait, progress, move |m, hook| {
            m.predict(&xd, batch_size, hook)
        })?;
        out.into_iter().map(|t| tensor_to_py(py, t)).collect()
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_on_batch(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Logs> {
        let arrays = CallArrays::new(x, y, sample_weight)?;
        let (xd, yd, sw) = arrays.views()?;
        self.run(py, Access::Try, None, move |m, _| {
            m.train_on_batch(&xd, &yd, &sw)
        })
    }

    /// One side-effect-free training-mode forward/backward pass (see `Model::inspect`): (loss, layer outputs,
    /// gradients at the layer outputs, gradient at the input, weight gradients). Without `with_grads` the lists
    /// are empty and the input gradient is None.
    #[pyo3(signature = (x, y, sample_weight=None, with_grads=true))]
    #[allow(clippy::type_complexity)]
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        with_grads: bool,
    ) -> PyResult<(
        f64,
        Vec<Bound<'py, PyArrayDyn<f32>>>,
        Vec<Bound<'py, PyArrayDyn<f32>>>,
        Option<Vec<Bound<'py, PyArrayDyn<f32>>>>,
        Vec<Bound<'py, PyArrayDyn<f32>>>,
    )> {
        let arrays = CallArrays::new(x, y, sample_weight)?;
        let (xd, yd, sw) = arrays.views()?;
        // on kerust's pool (its thread count, fork-safe), like training
        let ins = self.run(py, Access::Try, None, move |m, _| {
            m.inspect(&xd, &yd, &sw, with_grads)
        })?;
        let arrays = |ts: Vec<Tensor>| -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
            ts.into_iter().map(|t| tensor_to_py(py, t)).collect()
        };
        let input_grad = if with_grads {
            Some(arrays(ins.input_grads)?)
        } else {
            None
        };
        Ok((
            ins.loss,
            arrays(ins.outputs)?,
            arrays(ins.output_grads)?,
            input_grad,
            arrays(ins.weight_grads)?,
        ))
    }

    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        self.with(py, Access::Wait, |m| Ok(m.weights()))?
            .into_iter()
            .map(|(shape, data)| tensor_to_py(py, Tensor { shape, data }))
            .collect()
    }

    /// Replace `expected` weights starting at `first`; `who` names the model or layer in errors.
    fn set_weights(
        &self,
        py: Python<'_>,
        first: usize,
        weights: Vec<PyReadonlyArrayDyn<'_, f32>>,
        expected: usize,
        who: &str,
    ) -> PyResult<()> {
        let new: Vec<(Vec<usize>, Vec<f32>)> = weights
            .iter()
            .map(|w| (w.shape().to_vec(), w.as_array().iter().copied().collect()))
            .collect();
        self.with(py, Access::Try, move |m| {
            m.set_weights(first, &new, expected, who)
        })
    }

    fn layer_weight_ranges(&self) -> Vec<(usize, usize)> {
        self.ranges.clone()
    }

    /// Zero the states `stateful` recurrent layers carry from batch to batch: those of layer `index`, or all.
    #[pyo3(signature = (index=None))]
    fn reset_states(&self, py: Python<'_>, index: Option<usize>) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            m.reset_states(index);
            Ok(())
        })
    }

    fn set_layer_trainable(&self, py: Python<'_>, index: usize, trainable: bool) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            m.set_layer_trainable(index, trainable)
        })
    }

    /// (iterations, slot names, per trainable weight its slot arrays shaped like the weight).
    #[allow(clippy::type_complexity)]
    fn get_optimizer_state<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(u64, Vec<String>, Vec<Vec<Bound<'py, PyArrayDyn<f32>>>>)> {
        let (shapes, (it, names, slots)) = self.with(py, Access::Wait, |m| {
            let shapes: Vec<Vec<usize>> = m
                .weights_info()
                .into_iter()
                .filter(|(_, trainable)| *trainable)
                .map(|(shape, _)| shape)
                .collect();
            Ok((shapes, m.optimizer_state()?))
        })?;
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
        &self,
        py: Python<'_>,
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
        self.with(py, Access::Try, move |m| {
            m.set_optimizer_state(iterations, values)
        })
    }

    /// Where non-finite values first appeared in training since the last call (then cleared), e.g.
    /// "layer 'dense_1' (Dense)"; None while everything stayed finite.
    fn take_non_finite_source(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with(py, Access::Wait, |m| Ok(m.take_non_finite_source()))
    }

    /// Nadam's running momentum-cache product (a Keras optimizer variable, saved last in its files).
    #[getter]
    fn nadam_u_product(&self, py: Python<'_>) -> PyResult<f32> {
        self.with(py, Access::Wait, |m| Ok(m.optimizer_mut()?.nadam_u_product))
    }

    #[setter]
    fn set_nadam_u_product(&self, py: Python<'_>, value: f32) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            if !(value.is_finite() && value > 0.0 && value <= 1.0) {
                return Err(Error::Value(format!(
                    "Nadam's u_product must be in (0, 1], received {value}"
                )));
            }
            m.optimizer_mut()?.nadam_u_product = value;
            Ok(())
        })
    }

    #[getter]
    fn learning_rate(&self, py: Python<'_>) -> PyResult<Option<f32>> {
        self.with(py, Access::Wait, |m| {
            Ok(m.compiled().map(|c| match &c.optimizer.schedule {
                Some(s) => s.at(c.optimizer.iterations),
                None => c.optimizer.learning_rate,
            }))
        })
    }

    #[setter]
    fn set_learning_rate(&self, py: Python<'_>, lr: f32) -> PyResult<()> {
        self.with(py, Access::Try, move |m| {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(Error::Value(format!(
                    "learning_rate must be a non-negative number, received {lr}"
                )));
            }
            let opt = m.optimizer_mut()?;
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
    fn iterations(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, Access::Wait, |m| {
            Ok(m.compiled().map(|c| c.optimizer.iterations).unwrap_or(0))
        })
    }

    /// Claim the model for this thread's training session (Python's `fit`): until `release_training`, changing
    /// calls from other threads raise "busy". Claiming again from the same thread is a no-op.
    fn claim_training(&self) -> PyResult<()> {
        let me = this_thread();
        match self
            .trainer
            .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Ok(()),
            Err(t) if t == me => Ok(()),
            Err(_) => Err(to_py(self.busy(), None)),
        }
    }

    /// End this thread's claim (no-op for a thread that holds none).
    fn release_training(&self) {
        let me = this_thread();
        let _ = self
            .trainer
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The model's name, as given at construction (used in error messages).
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
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

/// Values of an initializer for a variable of `shape` (a metric's `add_variable`; Python reshapes them). A fixed
/// stream, so making a metric leaves the seeds of later models alone.
#[pyfunction]
fn initial_value(initializer_json: &str, shape: Vec<usize>) -> PyResult<Vec<f32>> {
    let v = parse_json("initializer", initializer_json)?;
    guard(|| {
        crate::initializers::checked_numel("variable", &shape)?;
        let init = crate::initializers::Initializer::from_value(&v)?;
        init.fill(&shape, &mut crate::rng::Rng::new(0))
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
            Some(class) if crate::graph::merge::MERGE_CLASSES.contains(&class) => {
                crate::graph::merge::Merge::from_config(class, &v).map(|_| ())
            }
            Some(class) => crate::layers::from_config(class, &v).map(|_| ()),
            None => Err(Error::Value(format!("unknown validation kind '{k}'"))),
        },
    })
}

/// The sample shape of every node's output in a graph spec (see `CoreModel`): what a layer called on symbolic
/// tensors yields. Builds the layers (checking every argument and shape) and drops them.
#[pyfunction]
fn graph_shapes(spec_json: &str) -> PyResult<Vec<Vec<usize>>> {
    let v = parse_json("graph", spec_json)?;
    guard(|| {
        let spec = GraphSpec::from_value(&v)?;
        let mut rng = crate::rng::Rng::shape_only();
        let graph = crate::graph::Graph::new(spec, &mut rng)?;
        Ok(graph.node_output_shapes())
    })
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreModel>()?;
    m.add_function(wrap_pyfunction!(set_random_seed, m)?)?;
    m.add_function(wrap_pyfunction!(loss_value, m)?)?;
    m.add_function(wrap_pyfunction!(initial_value, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(graph_shapes, m)?)?;
    m.add_function(wrap_pyfunction!(op_shape, m)?)?;
    m.add_function(wrap_pyfunction!(op_eval, m)?)?;
    m.add("OP_NAMES", crate::ops::OP_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(schedule_value, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add("simd_level", crate::kernels::simd::level())?;
    m.add("METRIC_NAMES", crate::metrics::NAMES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

// ---- keras.ops ------------------------------------------------------------------------------------------------

/// The symbolic output shape of one op (`config` as `Op::from_config` reads it) for inputs of symbolic shapes:
/// sizes, with -m for m times the batch size.
#[pyfunction]
fn op_shape(config_json: &str, shapes: Vec<Vec<i64>>) -> PyResult<Vec<i64>> {
    let v = parse_json("op", config_json)?;
    guard(|| {
        let op = crate::ops::Op::from_config(&v)?;
        let dims: Vec<Vec<crate::ops::Dim>> = shapes
            .iter()
            .map(|s| s.iter().map(|&d| crate::ops::Dim::from_i64(d)).collect())
            .collect();
        Ok(op.infer(&dims)?.iter().map(|d| d.to_i64()).collect())
    })
}

/// Run one op now on float64 arrays (Python casts the result to Keras's dtype); `seed` drives random ops.
#[pyfunction]
fn op_eval<'py>(
    py: Python<'py>,
    config_json: &str,
    inputs: Vec<PyReadonlyArrayDyn<'py, f64>>,
    seed: u64,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let v = parse_json("op", config_json)?;
    let arrays = inputs
        .iter()
        .map(|a| {
            Ok(crate::ops::arr::Arr::new(
                a.shape().to_vec(),
                a.as_array().iter().copied().collect(),
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let out = py
        .detach(|| {
            catch(|| {
                let op = crate::ops::Op::from_config(&v)?;
                // the same shape checks as a traced call, so eager and symbolic errors read alike
                let dims: Vec<Vec<crate::ops::Dim>> = arrays
                    .iter()
                    .map(|a| a.shape.iter().map(|&n| crate::ops::Dim::known(n)).collect())
                    .collect();
                let out = op.infer(&dims)?;
                // an eager result is allocated at once: refuse one too large to make (`ops.arange(1e12)`)
                let shape: Vec<usize> = out.iter().map(|d| d.n).collect();
                crate::initializers::checked_numel(
                    &format!("the result of {}", op.name()),
                    &shape,
                )?;
                let refs: Vec<&crate::ops::arr::Arr<f64>> = arrays.iter().collect();
                let mut rng = crate::rng::Rng::new(seed);
                pool()?
                    .install(|| op.forward(&refs, 0, &mut rng))
                    .map(|(y, _)| y)
            })
        })
        .map_err(|e| to_py(e, None))?;
    let arr = ndarray::ArrayD::from_shape_vec(out.shape, out.data)
        .map_err(|e| PyRuntimeError::new_err(format!("kerust internal error: {e}")))?;
    Ok(arr.into_pyarray(py))
}
