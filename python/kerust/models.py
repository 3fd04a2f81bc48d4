"""``Sequential``: Keras's API over one Rust model object that owns weights, gradients and optimizer state."""

from __future__ import annotations

import contextlib
import _thread  # `threading` itself costs `import kerust` over a millisecond; only the lock and ident are used
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._arrays import as_float32, as_sample_weight, warn_non_finite
from ._naming import unique_name
from .layers import InputLayer, Layer
from . import _json

if TYPE_CHECKING:
    from ._inspect import Inspection


def _sorted_logs(pairs: list) -> Dict[str, float]:
    """Keras 3 reports metrics in name order ("accuracy" before "loss")."""
    return {k: float(v) for k, v in sorted(pairs, key=lambda kv: kv[0])}


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``."""

    def __init__(self, layers: Optional[Sequence[Any]] = None, trainable: bool = True,
                 name: Optional[str] = None) -> None:
        self.name = name or unique_name("sequential")
        self._layers: List[Layer] = []
        self._input_shape: Optional[tuple] = None
        self._core: Any = None
        self._compile_args: Optional[dict] = None
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self.stop_training = False
        self.history: Optional[callbacks_module.History] = None
        self.trainable = trainable
        for layer in layers or []:
            self.add(layer)

    # ---- structure -------------------------------------------------------------------------------------
    @property
    def layers(self) -> List[Layer]:
        """The model's layers, in order (an `Input` is not a layer)."""
        return list(self._layers)

    @property
    def built(self) -> bool:
        """Whether the model is built, that is, its input shape is known and its weights exist."""
        return self._core is not None

    def add(self, layer: Any) -> None:
        """Append a layer, or give the input shape with `kerust.Input(...)` first; if the layer is refused, the model
        stays as it was."""
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("An Input/InputLayer must be the first thing added to a Sequential model.")
            self._input_shape = tuple(layer.shape[1:])
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Only instances of `kerust.layers.Layer` can be added to a Sequential model. Received: {layer!r} "
                f"(of type {type(layer)})"
            )
        if layer._model is not None:
            raise ValueError(f"Layer '{layer.name}' already belongs to a model; create a new layer instead.")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in this model.")
        if not self._layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = tuple(layer._input_shape_arg)
        old_weights = self._core.get_weights() if self._core is not None else None
        self._layers.append(layer)
        layer._model = self
        if self._input_shape is not None:
            try:
                self._build_core(old_weights)
            except Exception:
                self._layers.pop()
                layer._model = None
                if old_weights is not None:
                    self._build_core(old_weights)
                raise

    def pop(self) -> Layer:
        """Remove the last layer and return it; the other layers keep their weights."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        old = self._core.get_weights() if self._core is not None else None
        n_last = self._core.layer_weight_ranges()[-1][1] if self._core is not None else 0
        layer = self._layers.pop()
        layer._model = None
        self._core = None
        if self._layers and self._input_shape is not None:
            self._build_core(old[: len(old) - n_last] if old is not None else None)
        return layer

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build for ``input_shape`` (with the batch axis, as Keras: ``(None, 784)``)."""
        if input_shape is not None:
            shape = tuple(input_shape)[1:]
            if self._input_shape is not None and tuple(self._input_shape) != shape:
                raise ValueError(f"Model '{self.name}' was built for input shape {(None, *self._input_shape)}, "
                                 f"received {tuple(input_shape)}")
            self._input_shape = shape
        if self._input_shape is None:
            raise ValueError("You must provide an `input_shape` argument (or an Input) to build the model.")
        if self._core is None:
            self._build_core(None)

    def _layer_configs(self) -> List[dict]:
        return [{"class_name": layer.class_name, "config": layer.get_config()} for layer in self._layers]

    def _build_core(self, kept_weights: Optional[list]) -> None:
        """(Re)build the engine. ``kept_weights`` are the current weights of the leading layers that stay
        (after add/pop), restored so those layers keep their values, as in Keras."""
        shape = self._input_shape or ()
        _check_shape(f"Model '{self.name}': input shape", shape)
        if not self._layers:
            return
        core = _core.CoreModel(_json.dumps(self._layer_configs()), [int(d) for d in shape], name=str(self.name))
        if kept_weights:
            core.set_weights(0, kept_weights, len(kept_weights), f"model '{self.name}'")
        if getattr(self, "_trainer", (None, 0))[0] == _thread.get_ident():
            core.claim_training()  # built inside this thread's fit
        self._core = core
        if self._compile_args is not None:
            self._compile_core()

    def _ensure_built(self, x: np.ndarray) -> None:
        if self._core is None:
            if not self._layers:
                raise ValueError(f"Model '{self.name}' has no layers.")
            self._input_shape = tuple(x.shape[1:])
            self._build_core(None)

    # ---- training configuration --------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Optional[Sequence[Any]] = None,
                loss_weights: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto", auto_scale_loss: bool = True) -> None:
        """Choose the optimizer, the loss and the metrics for training, by name or as objects."""
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("compile: loss_weights and weighted_metrics are not supported by kerust yet")
        if loss is None:
            raise ValueError("compile: a `loss` is required for training (e.g. loss='categorical_crossentropy')")
        opt = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"`metrics` must be a list, received {type(metrics).__name__}")
        names: List[Any] = [metrics_module.get(m) for m in metrics or []]
        # repeated names get Keras's suffixes: "acc", "acc_1", ...
        unique: List[str] = []
        for m in names:
            base = metrics_module.name_of(m)
            candidate, k = base, 0
            while candidate in unique:
                k += 1
                candidate = f"{base}_{k}"
            unique.append(candidate)
        self.optimizer = opt
        self.loss = loss
        self._loss_obj = loss_obj
        self._compile_args = {"metrics": names, "metric_names": unique}
        if self._core is not None:
            self._compile_core()

    def _compile_core(self) -> None:
        assert self._compile_args is not None and self.optimizer is not None
        self._core.compile(_json.dumps(self._loss_obj._serialized()), _json.dumps(self.optimizer._serialized()),
                           _json.dumps([metrics_module.spec(m, name) for m, name in
                                       zip(self._compile_args["metrics"], self._compile_args["metric_names"])]))
        self.optimizer._attach(self._core)

    @property
    def compiled(self) -> bool:
        """Whether `compile` has been called."""
        return self._compile_args is not None

    @property
    def metrics_names(self) -> List[str]:
        """The names of the values `evaluate` returns: `loss` first, then the metrics."""
        return ["loss"] + list((self._compile_args or {}).get("metric_names", []))

    def _require_compiled(self, what: str) -> None:
        if self._compile_args is None:
            raise RuntimeError(f"You must call `compile()` before using the model for {what}.")

    def _targets(self, y: Any) -> np.ndarray:
        """Targets as float32; (n,) targets for a (n, 1) output get their trailing axis, as Keras."""
        y = as_float32("y", y)
        out = tuple(self._core.output_shape())
        sparse = isinstance(self._loss_obj, losses_module.SparseCategoricalCrossentropy)
        if not sparse and y.ndim == len(out) and out[-1:] == (1,):
            y = y.reshape(y.shape + (1,))
        return y

    # ---- loops -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _training(self) -> Any:
        """Claim the model for a training call (fit, train_on_batch) for this thread: another thread's training
        call meanwhile raises RuntimeError instead of interleaving with it (the engine's lock covers one engine
        call; fit is many). The same thread may re-enter (a callback calling train_on_batch)."""
        me = _thread.get_ident()
        with _CLAIM_LOCK:
            owner, depth = getattr(self, "_trainer", (None, 0))
            if owner is not None and owner != me:
                raise RuntimeError(f"model '{self.name}' is busy: another thread is running fit/evaluate/predict "
                                   "on it")
            if depth == 0 and self._core is not None:
                self._core.claim_training()  # the engine refuses other threads' weight changes until released
            self._trainer: tuple[Optional[int], int] = (me, depth + 1)
        try:
            yield
        finally:
            with _CLAIM_LOCK:
                owner, depth = self._trainer
                self._trainer = (None, 0) if depth <= 1 else (owner, depth - 1)
                if depth <= 1 and self._core is not None:
                    self._core.release_training()

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None, epochs: int = 1,
            verbose: Union[str, int] = "auto", callbacks: Optional[List[Any]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None,
            validation_batch_size: Optional[int] = None, validation_freq: int = 1) -> callbacks_module.History:
        """Train on NumPy arrays for `epochs` epochs and return the `History` of the per-epoch logs."""
        self._require_compiled("training")
        with self._training():
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                             shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
                             validation_batch_size, validation_freq)

    def _fit(self, x: Any, y: Any, batch_size: Optional[int], epochs: int, verbose: Union[str, int],
             callbacks: Optional[List[Any]], validation_split: float, validation_data: Any, shuffle: bool,
             class_weight: Optional[Dict[int, float]], sample_weight: Any, initial_epoch: int,
             steps_per_epoch: Optional[int], validation_batch_size: Optional[int],
             validation_freq: int) -> callbacks_module.History:
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        x = as_float32("x", x)
        if y is None:
            raise ValueError("fit: `y` is required (kerust models are supervised)")
        _require_samples(x)
        self._ensure_built(x)
        y = self._targets(y)
        warn_non_finite("x", x, "fit")
        warn_non_finite("y", y, "fit")
        sw = as_sample_weight(sample_weight, x.shape[0])
        if class_weight is not None:
            sw = _apply_class_weight(class_weight, y, sw)
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, received {epochs!r}")
        if not isinstance(validation_freq, int) or validation_freq < 1:
            raise ValueError(f"validation_freq must be a positive int, received {validation_freq!r}")

        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        elif validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), received {validation_split!r}")
            split_at = int(x.shape[0] * (1.0 - float(validation_split)))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation "
                                 f"data with {x.shape[0]} samples")
            # the last fraction, before any shuffling (as Keras)
            val = (x[split_at:], y[split_at:], None if sw is None else sw[split_at:])
            x, y = x[:split_at], y[:split_at]
            sw = None if sw is None else sw[:split_at]
        if val is not None:
            self._core.prepare(val[0], val[1], val[2])
        self._core.prepare(x, y, sw)

        n = x.shape[0]
        steps = -(-n // batch_size)
        max_steps = min(steps, steps_per_epoch) if steps_per_epoch else steps
        cbs = callbacks_module.CallbackList(
            callbacks, self, {"verbose": verbose, "epochs": epochs, "steps": max_steps}, verbose, add_history=True
        )
        self.history = cbs.history
        self.stop_training = False
        cbs.call("on_train_begin", None)
        # BackupAndRestore restored a backup: resume after its last finished epoch (Keras: self._initial_epoch)
        initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch
        self._initial_epoch = None
        epoch_logs: Dict[str, float] = {}
        every_batch = cbs.needs_every_batch
        progress = None if every_batch else cbs.progress("on_train_batch_end")
        # With steps_per_epoch an epoch may end mid-pass; as Keras, the next epoch continues the same pass and a
        # new (reshuffled) pass starts when the data is used up.
        pass_done = True
        for epoch in range(initial_epoch, epochs):
            cbs.call("on_epoch_begin", epoch, None)
            self._core.reset_logs()
            step, logs = 0, []
            while step < max_steps:
                if pass_done:
                    self._core.begin_pass(n, bool(shuffle))
                if every_batch:
                    cbs.call("on_train_batch_begin", step, None)
                done, pass_done, logs = self._core.train_steps(x, y, sw, batch_size,
                                                               1 if every_batch else max_steps - step, progress)
                if every_batch:
                    cbs.call("on_train_batch_end", step, _sorted_logs(logs))
                step += done
                if (pass_done and not steps_per_epoch) or (every_batch and self.stop_training):
                    break
            epoch_logs = _sorted_logs(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                vbs = _batch_size(validation_batch_size or batch_size)
                val_logs = self._core.evaluate(val[0], val[1], val[2], vbs, None)
                epoch_logs.update({"val_" + k: v for k, v in _sorted_logs(val_logs).items()})
            cbs.call("on_epoch_end", epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.call("on_train_end", epoch_logs)
        assert self.history is not None
        return self.history

    def _unpack_validation(self, data: Any) -> tuple:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight); "
                             f"received {type(data).__name__}")
        xv = as_float32("validation_data x", data[0])
        yv = self._targets(data[1])
        warn_non_finite("validation_data x", xv, "fit")
        warn_non_finite("validation_data y", yv, "fit")
        swv = as_sample_weight(data[2], xv.shape[0]) if len(data) == 3 else None
        return xv, yv, swv

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[str, int] = "auto", sample_weight: Any = None, steps: Optional[int] = None,
                 callbacks: Optional[List[Any]] = None, return_dict: bool = False) -> Any:
        """The loss and metrics on `x` and `y`: a float, a list in `metrics_names` order, or a dict with
        `return_dict=True`."""
        self._require_compiled("evaluation")
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        x = as_float32("x", x)
        _require_samples(x)
        self._ensure_built(x)
        y = self._targets(y)
        warn_non_finite("x", x, "evaluate")
        warn_non_finite("y", y, "evaluate")
        sw = as_sample_weight(sample_weight, x.shape[0])
        n_steps = -(-x.shape[0] // batch_size)
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "steps": n_steps}, verbose)
        cbs.call("on_test_begin", None)
        raw = self._core.evaluate(x, y, sw, batch_size, cbs.progress("on_test_batch_end"))
        logs = _sorted_logs(raw)
        cbs.call("on_test_end", logs)
        if return_dict:
            return logs
        values = [float(v) for _, v in raw]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Union[str, int] = "auto",
                steps: Optional[int] = None, callbacks: Optional[List[Any]] = None) -> np.ndarray:
        """The model's outputs for `x`, computed in batches in inference mode (no dropout, BatchNormalization's
        moving statistics)."""
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        x = as_float32("x", x)
        _require_samples(x)
        self._ensure_built(x)
        n_steps = -(-x.shape[0] // batch_size)
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "steps": n_steps}, verbose)
        cbs.call("on_predict_begin", None)
        out = self._core.predict(x, batch_size, cbs.progress("on_predict_batch_end"))
        cbs.call("on_predict_end", None)
        return out

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        """The outputs for `x` as one batch, as `model(x)` does in Keras; `training=True` is refused (train with
        `fit` or `train_on_batch`)."""
        if training:
            raise ValueError("kerust runs training steps through fit/train_on_batch; call the model with "
                             "training=False")
        return self.predict_on_batch(x)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """The model's outputs for `x`, as one batch."""
        x = as_float32("x", x)
        _require_samples(x)
        self._ensure_built(x)
        return self._core.predict(x, max(int(x.shape[0]), 1), None)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None,
                       return_dict: bool = False) -> Any:
        """One training step on `x` and `y`; returns that batch's loss and metrics."""
        self._require_compiled("training")
        x = as_float32("x", x)
        _require_samples(x)
        self._ensure_built(x)
        y = self._targets(y)
        sw = as_sample_weight(sample_weight, x.shape[0])
        if class_weight is not None:
            sw = _apply_class_weight(class_weight, y, sw)
        with self._training():
            raw = self._core.train_on_batch(x, y, sw)
        if return_dict:
            return _sorted_logs(raw)
        values = [float(v) for _, v in raw]
        return values[0] if len(values) == 1 else values

    def inspect(self, x: Any, y: Any = None, sample_weight: Any = None) -> Inspection:
        """Every layer's output and gradients for one batch, as NumPy arrays by layer name.

        Runs one training-mode forward and backward pass (dropout active, BatchNormalization on batch statistics)
        without changing anything: no weight update, and BatchNormalization's moving statistics and the random
        stream are restored, so calling it twice gives the same arrays. Returns a dict from layer name to a dict
        with ``output``, ``output_gradient`` (dL/d output, for the compiled loss with weight penalties, averaged
        over the batch as in training), ``weights`` and ``weight_gradients`` (dicts by weight name such as
        ``kernel`` and ``bias``); the result also has ``.loss`` and ``.input_gradient`` (dL/d x).
        """
        from ._inspect import build_inspection

        self._require_compiled("inspect")
        x32, y32, sw = self._inspect_arrays(x, y, sample_weight)
        return build_inspection(self, self._core.inspect(x32, y32, sw, True))

    def _inspect_arrays(
        self, x: Any, y: Any, sample_weight: Any
    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        x = as_float32("x", x)
        _require_samples(x)
        self._ensure_built(x)
        return x, self._targets(y), as_sample_weight(sample_weight, x.shape[0])

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        """The loss and metrics on `x` and `y` as one batch, without training."""
        x = as_float32("x", x)
        return self.evaluate(x, y, batch_size=max(int(x.shape[0]), 1), verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    # ---- weights -----------------------------------------------------------------------------------------
    def get_weights(self) -> List[np.ndarray]:
        """Copies of every weight, in Keras's order and layouts."""
        return self._core.get_weights() if self._core is not None else []

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace every weight with arrays in `get_weights()` order and shapes; nothing is written if one does not
        fit."""
        if self._core is None:
            raise ValueError(f"Model '{self.name}' is not built yet: build it (or give an input shape) before "
                             "set_weights.")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights expects a list of arrays, received {type(weights).__name__}")
        arrays = [as_float32(f"weights[{i}]", w) if np.ndim(w) else np.asarray(w, dtype=np.float32)
                  for i, w in enumerate(weights)]
        n = sum(k for _, k in self._core.layer_weight_ranges())
        self._core.set_weights(0, arrays, n, f"model '{self.name}'")

    @property
    def weights(self) -> List[np.ndarray]:
        """The same arrays as `get_weights()`."""
        return self.get_weights()

    def count_params(self) -> int:
        """The number of scalars in all the weights (the model must be built)."""
        if self._core is None:
            raise ValueError(f"You tried to call `count_params` on model '{self.name}', but the model has not "
                             "been built.")
        return int(sum(info[3] for info in self._core.layer_info()))

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by `name` or by `index`."""
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[lay.name for lay in self._layers]}.")

    def get_config(self) -> dict:
        """The model's config (`name` and `layers`), as Keras's `Sequential.get_config()`."""
        layers = []
        if self._input_shape is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"batch_shape": [None, *self._input_shape], "dtype": "float32",
                                      "sparse": False, "name": "input_layer"}})
        layers += self._layer_configs()
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32", "layers": layers}

    # ---- files -------------------------------------------------------------------------------------------
    def save(self, filepath: Any, overwrite: bool = True) -> None:
        """Write a Keras v3 `.keras` file (config, weights, optimizer state), atomically."""
        from . import saving

        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Write a Keras `.weights.h5` file, atomically."""
        from . import saving

        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Any) -> None:
        """Read the weights from a Keras `.weights.h5` file, or from the weights of a `.keras` file; every shape is
        checked first."""
        from . import saving

        saving.load_weights(self, filepath)

    def to_json(self, **kwargs: Any) -> str:
        """The model's architecture as Keras's JSON, read back by `kerust.models.model_from_json`."""
        from . import saving

        return _json.dumps(saving.keras_config(self), **kwargs)

    # ---- display -----------------------------------------------------------------------------------------
    def summary(self, line_length: Optional[int] = None, positions: Any = None, print_fn: Any = None,
                expand_nested: bool = False, show_trainable: bool = False, layer_range: Any = None) -> None:
        """Print a table of the layers with their output shapes and parameter counts (a notebook also shows the model
        as an HTML table)."""
        from ._summary import render_summary

        text = render_summary(self)
        (print_fn or print)(text)

    def _repr_html_(self) -> str:
        from ._summary import render_summary_html

        return render_summary_html(self)


_MAX_DIM = 2**31 - 1

# guards every model's training claim (``Sequential._training``)
_CLAIM_LOCK = _thread.allocate_lock()


def _check_shape(what: str, shape: Sequence[Any]) -> None:
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 < d <= _MAX_DIM for d in shape):
        raise ValueError(f"{what} must be positive integers (at most {_MAX_DIM}), received {(None, *shape)}")


def _require_samples(x: np.ndarray) -> None:
    if x.shape[0] == 0:
        raise ValueError("Expected input data to be non-empty. Received: x.shape=" + str(x.shape))


def _batch_size(value: Any) -> int:
    if value is None:
        return 32
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"batch_size must be a positive int, received {value!r}")
    return int(value)


def _apply_class_weight(class_weight: Dict[int, float], y: np.ndarray, sw: Optional[np.ndarray]) -> np.ndarray:
    if not isinstance(class_weight, dict):
        raise TypeError(f"`class_weight` must be a dict mapping class indices to weights, received "
                        f"{type(class_weight).__name__}")
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(y.shape[0], -1)[:, 0]
    weights = np.ones(y.shape[0], dtype=np.float32)
    for i, label in enumerate(labels.reshape(y.shape[0], -1)[:, 0] if labels.ndim > 1 else labels):
        weights[i] = class_weight.get(int(round(float(label))), 1.0)
    return weights if sw is None else (weights * sw).astype(np.float32)


def load_model(filepath: Any, custom_objects: Any = None, compile: bool = True, safe_mode: bool = True) -> Sequential:
    """Load a Keras v3 `.keras` file (see `kerust.saving.load_model`)."""
    from . import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_from_json(json_string: str) -> Sequential:
    """A model (uncompiled, freshly initialised) from `to_json()` output or Keras's JSON config."""
    from . import saving

    return saving.model_from_config(_json.loads(json_string))
