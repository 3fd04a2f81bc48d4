"""Keras callbacks and the progress bar, with Keras 3's hook names, order, arguments, messages and files.

``fit`` drives a ``CallbackList``: ``on_train_begin``; per epoch ``on_epoch_begin``, the per-batch hooks
(called on every batch only when some callback overrides them, otherwise the engine runs the whole epoch and only
the progress bar is updated, about every 100 ms), ``on_epoch_end`` with the epoch's logs (``val_*`` included);
finally ``on_train_end``. As in Keras, the user's callbacks run first, then ``History``, then the progress bar, so a
callback that adds to the logs (``LearningRateScheduler`` adds ``learning_rate``) is seen by both.
"""

from __future__ import annotations

import collections
import importlib
import math
import os
import re
import sys
import time
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np

from . import _json

Logs = Optional[Dict[str, Any]]

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


# ---- output ---------------------------------------------------------------------------------------------------
def print_msg(message: str, line_break: bool = True) -> None:
    """Keras's ``io_utils.print_msg``: write to the current ``sys.stdout`` and flush; a console that cannot show
    "━" gets "=" instead (Keras 2's bar)."""
    message = str(message) + ("\n" if line_break else "")
    out = sys.stdout
    try:
        out.write(message)
    except UnicodeEncodeError:
        message = message.replace("━", "=")
        encoding = getattr(out, "encoding", None) or "utf-8"
        out.write(message.encode(encoding, errors="ignore").decode(encoding))
    out.flush()


def _is_interactive(stream: Any = None) -> bool:
    """A terminal, a Jupyter/IPython kernel or PyCharm's console: the bar can be redrawn in place there."""
    if "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ:
        return True
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def resolve_verbose(verbose: Any) -> int:
    """``"auto"`` is 1 in a terminal or notebook and 2 when output goes to a file or pipe."""
    if isinstance(verbose, str) and verbose == "auto":
        return 1 if _is_interactive() else 2
    if isinstance(verbose, (bool, np.bool_)) or not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}")
    return int(verbose)


# ---- Callback -------------------------------------------------------------------------------------------------
class Callback:
    """Base class of callbacks: override any ``on_*`` hook. ``self.model`` is the model being trained and
    ``self.params`` the run's parameters (``{"verbose", "epochs", "steps"}`` in ``fit``); set
    ``self.model.stop_training = True`` to stop ``fit`` after the current batch / epoch."""

    def __init__(self) -> None:
        self.params: Any = None
        self._model: Any = None

    def set_params(self, params: Any) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self._model = model

    @property
    def model(self) -> Any:
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model = model

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """A backwards compatibility alias for ``on_train_batch_begin``."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """A backwards compatibility alias for ``on_train_batch_end``."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of an epoch (``fit`` only)."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called at the end of an epoch with its metrics, ``val_*`` included when validation ran."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """``logs`` are the epoch's metrics so far (running means)."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called at the start of a batch in ``evaluate``."""

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called at the end of a batch in ``evaluate``."""

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called at the start of a batch in ``predict``."""

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called at the end of a batch in ``predict``."""

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called at the start of ``fit``."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Called at the end of ``fit`` with the last epoch's logs."""

    def on_test_begin(self, logs: Logs = None) -> None:
        """Called at the start of ``evaluate``."""

    def on_test_end(self, logs: Logs = None) -> None:
        """Called at the end of ``evaluate`` with its results."""

    def on_predict_begin(self, logs: Logs = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: Logs = None) -> None:
        """Called at the end of ``predict``."""

    def _wants_every_batch(self) -> bool:
        """True when a per-batch training hook is overridden (in a subclass or on the instance, as
        ``LambdaCallback`` does): then ``fit`` calls the per-batch hooks on every batch."""
        for hook in _BATCH_HOOKS:
            impl = getattr(self, hook, None)
            if getattr(impl, "__func__", impl) is not getattr(Callback, hook):
                return True
        return False


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``history.epoch``, ``history.params``.
    ``fit`` returns it and sets ``model.history`` to it."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[Any]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


# ---- the progress bar -----------------------------------------------------------------------------------------
class Progbar:
    """Keras's progress bar (``keras.utils.Progbar``), same arguments and the same text.

    ``verbose=1`` shows ``12/100 ━━━━━━━━━━━━━━━━━━━━ 3s 25ms/step - accuracy: 0.4900 - loss: 1.2345``; in a terminal
    or notebook the line is redrawn in place (backspaces and ``\\r``, with Keras's colours), elsewhere each update
    is a new line (without colour codes). ``verbose=2`` prints one line when the bar is finalized:
    ``100/100 - 3s - 25ms/step - accuracy: 0.4900 - loss: 1.2345``.

    ``interactive`` (kerust): force in-place redrawing on or off; by default it is on in a terminal, a Jupyter
    kernel or PyCharm.
    """

    def __init__(self, target: Optional[int], width: int = 20, verbose: int = 1, interval: float = 0.05,
                 stateful_metrics: Optional[Iterable[str]] = None, stateless_metrics: Optional[Iterable[str]] = None,
                 unit_name: str = "step", interactive: Optional[bool] = None) -> None:
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` can be provided. `stateful_metrics` is used "
                "to make metrics stateless by default (with an exclusion list), while `stateless_metrics` is used "
                "to make metrics stateful by default (with an exclusion list)."
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics: Optional[set] = None
        self.stateless_metrics: Optional[set] = None
        if stateful_metrics is not None:
            self.stateful_metrics = set(stateful_metrics)
        elif stateless_metrics is not None:
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set()
        self._dynamic_display = _is_interactive() if interactive is None else bool(interactive)
        self._seen_so_far = 0
        self._values: Dict[str, Any] = {}
        self._values_order: List[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_at_epoch_start = self._start
        self._time_after_first_step: Optional[float] = None
        self._prev_total_width = 0

    @property
    def interactive(self) -> bool:
        return self._dynamic_display

    def _style(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self._dynamic_display else text

    def update(self, current: int, values: Any = None, finalize: Optional[bool] = None) -> None:
        """Show step ``current``; ``values``: ``(name, value)`` pairs (or a dict). ``finalize`` ends the line
        (default: when ``current >= target``)."""
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        if isinstance(values, dict):
            values = list(values.items())
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self.stateful_metrics is not None:
                stateless = k not in self.stateful_metrics
            else:
                stateless = k in (self.stateless_metrics or ())
            if stateless:
                if finalize:
                    self._values[k] = [v, 1]
                else:
                    value_base = max(current - self._seen_so_far, 1)
                    if k not in self._values:
                        self._values[k] = [v * value_base, value_base]
                    else:
                        self._values[k][0] += v * value_base
                        self._values[k][1] += value_base
            else:
                self._values[k] = [v, 1]
        self._seen_so_far = current

        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            message = ("\b" * self._prev_total_width + "\r") if self._dynamic_display else "\n"
            if self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                bar = self._style("1", f"%{numdigits}d/%d" % (current, self.target)) + " "
                prog_width = int(self.width * (float(current) / self.target))
                if prog_width > 0:
                    bar += self._style("32", "━" * prog_width)
                bar += self._style("37", "━" * (self.width - prog_width))
            else:
                bar = "%7d/Unknown" % current
            message += bar
            if self.target is not None and self.target > 0 and not finalize:
                eta = time_per_unit * (self.target - current)
                if eta > 3600:
                    eta_format = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
                elif eta > 60:
                    eta_format = "%d:%02d" % (eta // 60, eta % 60)
                else:
                    eta_format = "%ds" % eta
                info = " " + self._style("1", eta_format)
            else:
                info = " " + self._style("1", f"{now - self._start:.0f}s")
            info += _format_time(time_per_unit, self.unit_name)
            for k in self._values_order:
                info += f" - {k}:"
                avg = self._average(k)
                info += f" {avg:.4f}" if abs(avg) > 1e-3 else f" {avg:.4e}"
            message += info
            total_width = len(_strip_ansi(bar)) + len(_strip_ansi(info))
            if self._prev_total_width > total_width:
                message += " " * (self._prev_total_width - total_width)
            if finalize:
                message += "\n"
            print_msg(message, line_break=False)
            self._prev_total_width = total_width
        elif self.verbose == 2:
            if finalize and self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                info = f"%{numdigits}d/%d" % (current, self.target) + f" - {now - self._start:.0f}s"
                info += f" -{_format_time(time_per_unit, self.unit_name)}"
                for k in self._values_order:
                    info += f" - {k}:"
                    avg = self._average(k)
                    # (sic) Keras compares without abs() here: negative values print in e-notation
                    info += f" {avg:.4f}" if avg > 1e-3 else f" {avg:.4e}"
                print_msg(info + "\n", line_break=False)
        self._last_update = now

    def add(self, n: int, values: Any = None) -> None:
        self.update(self._seen_so_far + n, values)

    def _average(self, k: str) -> Any:
        value = self._values[k]
        if not isinstance(value, list):
            return value
        total, count = value
        if not isinstance(total, float):
            total = np.mean(total)
        return total / max(1, count)

    def _estimate_step_duration(self, current: int, now: float) -> float:
        """Seconds per step; after the first step the first one (usually slow) is left out."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _format_time(time_per_unit: float, unit_name: str) -> str:
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` (when n > 1) and the progress bar in ``fit``, ``evaluate`` and ``predict``; the
    verbosity comes from the run's ``params["verbose"]``. Inside ``fit`` validation is silent."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.progbar: Optional[Progbar] = None
        self.target: Optional[int] = None
        self.verbose: Any = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: Any) -> None:
        super().set_params(params)
        params = params or {}
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs: Logs = None) -> None:
        self._called_in_fit = True

    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._update_progbar(batch, None)  # not the predictions

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._finalize_progbar(logs)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._finalize_progbar(logs)

    def _wants_every_batch(self) -> bool:
        return False  # the engine drives the bar through CallbackList.progress

    def _reset_progbar(self) -> None:
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self) -> None:
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())

    def _update_progbar(self, batch: int, logs: Logs = None) -> None:
        logs = logs or {}
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            assert self.progbar is not None
            self.progbar.update(self.seen, list(logs.items()), finalize=False)

    def _finalize_progbar(self, logs: Logs) -> None:
        logs = logs or {}
        self._maybe_init_progbar()
        assert self.progbar is not None
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list(logs.items()), finalize=True)


# ---- callbacks that watch a metric ----------------------------------------------------------------------------
# Which way is better for the metrics kerust computes (Keras reads `_direction` off its metric objects).
_UP = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "auc",
       "precision", "recall")
_DOWN = ("mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error", "mape",
         "mean_squared_logarithmic_error", "msle", "root_mean_squared_error", "crossentropy",
         "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy")


class MonitorCallback(Callback):
    """Base of callbacks that watch ``monitor`` (Keras's ``MonitorCallback``): ``mode`` "min"/"max", or "auto"
    (``loss`` and error metrics go down, accuracies go up; anything else is a ``ValueError`` asking for a mode).
    An improvement beats the reference by more than ``min_delta``, compared in float32 as Keras does."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline: Optional[float] = None,
                 min_delta: float = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{self.__class__.__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Optional[Callable[[Any, Any], Any]] = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = np.less
            names = getattr(self.model, "metrics_names", None)
            known = metric_name in names if isinstance(names, (list, tuple)) else True
            if known and metric_name in _UP:
                self.monitor_op = np.greater
            elif known and metric_name in _DOWN:
                self.monitor_op = np.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{self.__class__.__name__} callback received monitor={self.monitor}, but Keras isn't able to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` in "
                    "order to use the lowest value."
                )
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value: Any, reference_value: Any) -> bool:
        if reference_value is None:
            return True
        assert self.monitor_op is not None
        return bool(self.monitor_op(np.float32(monitor_value - self.min_delta), np.float32(reference_value)))


class EarlyStopping(MonitorCallback):
    """Stop training when ``monitor`` has stopped improving (Keras 3 semantics).

    Every epoch from ``start_from_epoch`` on counts one towards ``wait``; an improvement on the best value so far
    (by more than ``min_delta``) records it and resets ``wait`` to 0, unless a ``baseline`` is set and not beaten.
    Training stops at the first epoch > 0 where ``wait >= patience``. With ``restore_best_weights=True`` the
    weights of the best epoch are put back at the end of training, whether or not it stopped early.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights: Any = None
        self.start_from_epoch = start_from_epoch
        self.best_epoch = 0

    def on_train_begin(self, logs: Logs = None) -> None:
        # instances can be reused across fit() calls
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # never set yet: the current weights are the best
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # restart the wait only when both the baseline and the previous best are beaten
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs: Logs) -> Any:
        logs = logs or {}
        monitor_value = logs.get(self.monitor)
        if monitor_value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(list(logs.keys()))}", stacklevel=2)
        return monitor_value


def _check_save_freq(save_freq: Any, message: str) -> None:
    if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool)):
        raise ValueError(message)


class ModelCheckpoint(MonitorCallback):
    """Save the model (``.keras``, via ``model.save``) or its weights (``.weights.h5``, via ``model.save_weights``)
    at the end of every epoch, or every ``save_freq`` batches.

    ``filepath`` may hold ``str.format`` fields filled from the epoch (1-based) and its logs, e.g.
    ``"ckpt/{epoch:02d}-{val_loss:.2f}.keras"`` (and ``{batch}`` when saving by batch). With
    ``save_best_only=True`` a file is written only when ``monitor`` improves on the best value so far (which
    starts at ``initial_value_threshold``)."""

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: Optional[float] = None) -> None:
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath) if isinstance(filepath, os.PathLike) else filepath
        if not isinstance(self.filepath, str):
            raise TypeError(f"ModelCheckpoint: filepath must be a string or path, received {filepath!r}")
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: Optional[int] = None
        self._current_epoch = 0
        _check_save_freq(save_freq, f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or "
                                    "integer values")
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                                 "must end in `.weights.h5` (Keras weights format). Received: "
                                 f"filepath={self.filepath}")
        elif self.filepath.endswith(".h5"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format); kerust does not "
                             f"write the legacy HDF5 `.h5` model format. Received: filepath={self.filepath}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")

    def _wants_every_batch(self) -> bool:
        return self.save_freq != "epoch"

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._current_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1  # a new epoch
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch: int, batch: Optional[int], logs: Logs, filepath: str) -> bool:
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn("Can save best model only when `monitor` is a scalar value. Received: "
                          f"{current}. Falling back to `save_best_only=False`.", stacklevel=2)
            return True
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                          f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch: int, batch: Optional[int], logs: Logs) -> None:
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        dirname = os.path.dirname(filepath)
        if dirname and not os.path.exists(dirname):
            os.makedirs(dirname, exist_ok=True)
        try:
            if self.save_weights_only:
                self.model.save_weights(filepath, overwrite=True)
            else:
                self.model.save(filepath, overwrite=True)
        except IsADirectoryError:
            raise OSError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}") from None
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch: int, batch: Optional[int], logs: Logs) -> str:
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more than ``min_delta``) for
    ``patience`` epochs, then wait ``cooldown`` epochs before counting again; never below ``min_lr``. Adds the
    epoch's learning rate to the logs as ``learning_rate``."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _reduce_optimizer_lr(self, optimizer: Any, epoch: int) -> bool:
        old_lr = float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def on_train_begin(self, logs: Logs = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_optimizer_lr(self.model.optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0


# ---- other callbacks ------------------------------------------------------------------------------------------
class LearningRateScheduler(Callback):
    """At the start of every epoch set the learning rate to ``schedule(epoch, lr)`` (``schedule(epoch)`` also
    accepted), through ``model.optimizer.learning_rate``; adds ``learning_rate`` to the epoch's logs."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _update_optimizer_lr(self, optimizer: Any, epoch: int) -> Any:
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:  # new API
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the old one-argument form
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        return learning_rate

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        learning_rate = self._update_optimizer_lr(self.model.optimizer, epoch)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file: a header ``epoch,<sorted keys>`` (``val_<key>`` columns are added,
    filled with ``NA``, when there is no validation) and one row per epoch (0-based), written as Keras does
    (``csv`` with the excel dialect, so lines end in ``\\r\\n``). ``append=True`` keeps an existing file and writes
    the header only if it is empty."""

    def __init__(self, filename: Any, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer: Any = None
        self.keys: Optional[List[str]] = None
        self.append_header = True
        self.csv_file: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)  # noqa: SIM115 - open for the whole run, closed in on_train_end
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}

        def handle_value(k: Any) -> Any:
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:
            sep = self.sep
            import csv  # lazily: keeps `import kerust` fast

            class CustomDialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row: Dict[str, Any] = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (printing ``Batch N: Invalid loss, terminating
    training``), or raise ``RuntimeError`` with ``raise_error=True``. Checked after every batch."""

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            # the engine notes where non-finite values first appeared in the forward passes
            core = getattr(self.model, "_core", None)
            source = core.take_non_finite_source() if core is not None else None
            where = f" (non-finite values first appeared in {source})" if source else ""
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   f"Terminating training immediately.{where}")
            print_msg(f"Batch {batch}: Invalid loss, terminating training{where}")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; any other ``on_*`` hook can be given by keyword as well."""

    def __init__(self, on_epoch_begin: Optional[Callable] = None, on_epoch_end: Optional[Callable] = None,
                 on_train_begin: Optional[Callable] = None, on_train_end: Optional[Callable] = None,
                 on_train_batch_begin: Optional[Callable] = None, on_train_batch_end: Optional[Callable] = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self.__dict__.update(kwargs)
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in given.items():
            if fn is not None:
                setattr(self, name, fn)


def _atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` atomically (the same temp-file, fsync and rename as the model files)."""
    from ._files import atomic_write as _atomic_write

    _atomic_write(path, text.encode())


def _atomic_copy(source: str, target: str) -> None:
    """Copy ``source`` over ``target`` atomically: a copy that fails (a full disk) leaves ``target`` as it was,
    where ``shutil.copyfile`` would have truncated it first."""
    from ._files import atomic_write as _atomic_write

    with open(source, "rb") as f:
        data = f.read()
    _atomic_write(target, data)


class BackupAndRestore(Callback):
    """Back up training so an interrupted ``fit`` can resume: at the end of every epoch (or every ``save_freq``
    batches) the weights and optimizer state go to ``backup_dir/latest.weights.h5`` and the number of finished
    epochs to ``backup_dir/training_metadata.json``, each written atomically. A later ``fit`` with a
    ``BackupAndRestore`` on the same folder loads them in ``on_train_begin`` and continues from the next epoch
    (the epoch to resume from is ``self._resume_epoch``, also set as ``model._initial_epoch`` as in Keras).
    The folder is deleted when training ends normally, unless ``delete_checkpoint=False``.
    ``double_checkpoint=True`` keeps the previous backup as ``*.bkp``, used if the latest cannot be read."""

    def __init__(self, backup_dir: Any, save_freq: Any = "epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        self._resume_epoch = 0
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self.backup_dir = os.fspath(backup_dir)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._training_metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"
        _check_save_freq(save_freq, "Invalid value for argument `save_freq`. Received: "
                                    f"save_freq={save_freq}. Expected either 'epoch' or an integer value.")

    def _wants_every_batch(self) -> bool:
        return self.save_freq != "epoch"

    def on_train_begin(self, logs: Logs = None) -> None:
        self._resume_epoch = 0
        try:
            self._load_model()
        except (OSError, ValueError) as e:
            # the latest backup may be damaged: fall back to the previous one
            if not os.path.exists(self._prev_weights_path):
                raise e
            _atomic_copy(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_training_metadata_path):
                _atomic_copy(self._prev_training_metadata_path, self._training_metadata_path)
            elif os.path.exists(self._training_metadata_path):
                os.remove(self._training_metadata_path)
            self._load_model()

    def _load_model(self) -> None:
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, you model must be built before you call "
                             f"`fit()`. Model {self.model} is unbuilt. You can build it beforehand by calling it "
                             "on a batch of data.")
        if os.path.exists(self._weights_path):
            self.model.load_weights(self._weights_path)
        if os.path.exists(self._training_metadata_path):
            with open(self._training_metadata_path) as f:
                training_metadata = _json.loads(f.read())
            epoch = training_metadata["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"Cannot restore from {self._training_metadata_path!r}: bad epoch {epoch!r}")
            self._resume_epoch = epoch
            self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model()

    def _save_model(self) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._weights_path):
            _atomic_copy(self._weights_path, self._prev_weights_path)
        if self.double_checkpoint and os.path.exists(self._training_metadata_path):
            _atomic_copy(self._training_metadata_path, self._prev_training_metadata_path)
        self.model.save_weights(self._weights_path, overwrite=True)
        _atomic_write_text(self._training_metadata_path,
                           _json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def on_train_end(self, logs: Logs = None) -> None:
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            import shutil  # lazily: keeps `import kerust` fast
            shutil.rmtree(self.backup_dir)


# ---- the list fit/evaluate/predict drive ----------------------------------------------------------------------
class CallbackList(Callback):
    """Calls every callback's hook in order: the user's callbacks, then ``History``, then the progress bar, as
    Keras. Each hook call passes the callbacks one shared copy of the logs.

    kerust's loops call ``CallbackList(callbacks, model, params, verbose, add_history=...)`` (a progress bar is
    added when ``verbose`` is not 0); Keras's keyword form ``CallbackList(callbacks, add_history=True,
    add_progbar=True, model=model, verbose=1, epochs=2, steps=10)`` works too."""

    def __init__(self, callbacks: Any = None, model: Any = None, params: Optional[dict] = None,
                 verbose: Any = None, add_history: bool = False, add_progbar: Optional[bool] = None,
                 **kw_params: Any) -> None:
        super().__init__()
        if callbacks is None:
            user: List[Any] = []
        elif isinstance(callbacks, Callback):
            user = [callbacks]
        else:
            try:
                user = list(callbacks)
            except TypeError:
                raise TypeError("callbacks must be a list of kerust.callbacks.Callback instances, received "
                                f"{callbacks!r}") from None
        for cb in user:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be kerust.callbacks.Callback instances, received {cb!r}")
        if params is None:  # Keras's form: parameters by keyword, progress bar only when asked
            merged = dict(kw_params)
            if verbose is not None:
                merged["verbose"] = verbose
            want_progbar = bool(add_progbar)
        else:
            merged = dict(params, **kw_params)
            want_progbar = bool(verbose) if add_progbar is None else bool(add_progbar)
        self.callbacks: List[Callback] = user
        self.history: Optional[History] = next((cb for cb in user if isinstance(cb, History)), None)
        self._progbar: Optional[ProgbarLogger] = next((cb for cb in user if isinstance(cb, ProgbarLogger)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if self._progbar is None and want_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(merged)

    def set_params(self, params: Any) -> None:
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model: Any) -> None:
        if model is None:
            return
        super().set_model(model)
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    @property
    def needs_every_batch(self) -> bool:
        """Whether a callback overrides a per-batch training hook (then fit must call them on every batch)."""
        return any(cb._wants_every_batch() for cb in self.callbacks if not isinstance(cb, (ProgbarLogger, History)))

    def _wants_every_batch(self) -> bool:
        return self.needs_every_batch

    def call(self, hook: str, *args: Any) -> None:
        """``call("on_epoch_end", epoch, logs)``: run ``hook`` on every callback, in order. The logs are copied
        once (as Keras's ``pythonify_logs``): what a callback adds is seen by the callbacks after it."""
        if args and isinstance(args[-1], dict):
            args = (*args[:-1], dict(args[-1]))
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def progress(self, hook: str) -> Callable[[int, list], None]:
        """A progress function for the engine's throttled reports ``(step, [(name, value), ...])``: drives only the
        progress bar, with the logs in name order as ``fit`` reports them."""
        bars = [cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)]

        def report(step: int, logs: list) -> None:
            d = {k: float(v) for k, v in sorted(logs, key=lambda kv: kv[0])}
            for cb in bars:
                getattr(cb, hook)(step - 1, d)

        return report

    # Keras's method form
    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.call("on_batch_end", batch, logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self.call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.call("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.call("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs: Logs = None) -> None:
        self.call("on_train_begin", logs)

    def on_train_end(self, logs: Logs = None) -> None:
        self.call("on_train_end", logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        self.call("on_test_begin", logs)

    def on_test_end(self, logs: Logs = None) -> None:
        self.call("on_test_end", logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self.call("on_predict_begin", logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self.call("on_predict_end", logs)


# ---- TensorBoard ----------------------------------------------------------------------------------------------
def _tensorboardx() -> Any:
    """The ``tensorboardX`` module, or the ImportError that says what to install."""
    try:
        tensorboardX = importlib.import_module("tensorboardX")
    except ImportError as err:
        raise ImportError(
            "keras.callbacks.TensorBoard writes its event files with the `tensorboardX` package, which is not "
            "installed: `pip install tensorboardX` (or `pip install kerust[tensorboard]`); `pip install tensorboard` "
            "to view them."
        ) from err
    return tensorboardX


class TensorBoard(Callback):
    """Keras's ``keras.callbacks.TensorBoard``: event files for TensorBoard under ``log_dir/train`` and
    ``log_dir/validation``, written with the ``tensorboardX`` package (``pip install tensorboardX``; the
    writer TensorFlow's ``tf.summary`` would be, without TensorFlow).

    As Keras: at every epoch end the scalars ``epoch_<metric>`` (train logs, with ``epoch_learning_rate`` and,
    with ``write_steps_per_second``, ``epoch_steps_per_second``) in ``train/`` and the ``val_`` logs without the
    prefix in ``validation/``; with ``update_freq="batch"`` or an int N, ``batch_<metric>`` every N training
    batches (counted over the whole run, from 1); with ``histogram_freq`` N, every N epochs the histogram of each
    weight under ``<weight.path>/histogram`` (and, with ``write_images``, ``<weight.path>/image``); with
    ``write_graph``, the model's JSON under the tag ``keras`` (TensorBoard's conceptual Keras graph) for
    Sequential and Functional models; ``evaluation_<metric>_vs_iterations`` (step: the optimizer's iterations) in
    ``validation/`` when an evaluation ends, ``evaluate``'s or the validation inside ``fit``. With an int
    ``update_freq`` N, as Keras's ``tf.summary.record_if``, a summary is written only when the number of the last
    batch (training batches, or inside an evaluation its batches, each counted over the whole run from 1) is a
    multiple of N: the epoch scalars and histograms too, and ``evaluation_*``. The op graph of a TensorFlow
    train function has no kerust counterpart and is not written (Keras's JAX backend does not write it either).
    ``profile_batch`` other than 0 and ``embeddings_freq`` are refused."""

    def __init__(self, log_dir: Any = "logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False, update_freq: Any = "epoch",
                 profile_batch: Any = 0, embeddings_freq: int = 0, embeddings_metadata: Any = None) -> None:
        super().__init__()
        self._tbx = _tensorboardx()
        self.log_dir = str(log_dir)
        if not isinstance(histogram_freq, (int, np.integer)) or isinstance(histogram_freq, bool) \
                or histogram_freq < 0:
            raise ValueError(f"TensorBoard: `histogram_freq` must be a non-negative int. "
                             f"Received: histogram_freq={histogram_freq!r}")
        self.histogram_freq = int(histogram_freq)
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq: Any = 1 if update_freq == "batch" else update_freq
        if self.update_freq != "epoch" and (not isinstance(self.update_freq, (int, np.integer))
                                            or isinstance(self.update_freq, bool) or self.update_freq < 1):
            raise ValueError("TensorBoard: `update_freq` must be 'epoch', 'batch' or a positive int. "
                             f"Received: update_freq={update_freq!r}")
        if profile_batch:
            raise ValueError("Profiling is not yet available with the kerust backend. Please open a PR if you'd "
                             f"like to add this feature. Received: profile_batch={profile_batch} (must be 0)")
        if embeddings_freq:
            raise ValueError("TensorBoard: embedding visualisation (`embeddings_freq`) is not available in kerust. "
                             f"Received: embeddings_freq={embeddings_freq} (must be 0)")
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._previous_epoch_iterations = 0.0
        self._epoch_start_time = 0.0
        self._batch_start_time = 0.0
        self._writers: Dict[str, Any] = {}
        # the steps the batch-level writers were pushed at (Keras's _push_writer / record_if), innermost last
        self._pushed: List[tuple] = []
        self._training = False
        self._log_write_dir = self.log_dir
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")

    def _wants_every_batch(self) -> bool:
        # batch-level summaries need the per-batch hooks; with update_freq="epoch" Keras writes none
        return self.update_freq != "epoch"

    def set_model(self, model: Any) -> None:
        """Sets the model and writes its JSON (the conceptual graph) when ``write_graph``."""
        self._model = model
        self._log_write_dir = self.log_dir
        self._train_dir = os.path.join(self._log_write_dir, "train")
        self._val_dir = os.path.join(self._log_write_dir, "validation")
        self._close_writers()
        self._writers = {}
        if self.write_graph:
            self._write_keras_model_summary()

    # -- writers --
    def _writer(self, key: str) -> Any:
        if key not in self._writers:
            path = self._train_dir if key == "train" else self._val_dir
            try:
                os.makedirs(path, exist_ok=True)
                probe = os.path.join(path, f".kerust_write_test_{os.getpid()}")
                with open(probe, "w"):
                    pass
                os.remove(probe)
                self._writers[key] = self._tbx.SummaryWriter(logdir=path)
            except OSError as err:
                raise OSError(f"TensorBoard: cannot write the event files in log_dir {self.log_dir!r} "
                              f"({path!r}): {err}") from err
        return self._writers[key]

    @property
    def _train_writer(self) -> Any:
        return self._writer("train")

    @property
    def _val_writer(self) -> Any:
        return self._writer("val")

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def _push_writer(self, key: str, step: int) -> None:
        if self.update_freq == "epoch":
            return
        self._pushed.append((key, step))

    def _pop_writer(self) -> None:
        if self.update_freq == "epoch":
            return
        if self._pushed:
            self._pushed.pop()

    def _recording(self) -> Optional[str]:
        """The writer batch-level summaries go to now (None: Keras's summaries would not be recorded)."""
        if not self._pushed:
            return None
        key, step = self._pushed[-1]
        return key if step % self.update_freq == 0 else None

    def _records_now(self) -> bool:
        """Whether Keras would record a summary written now to any writer: its writers are pushed with
        ``tf.summary.record_if(step % update_freq == 0)``, which also holds the epoch scalars, histograms and
        ``evaluation_*`` scalars. Always with ``update_freq="epoch"`` (nothing is pushed)."""
        if self.update_freq == "epoch" or not self._pushed:
            return True
        return self._pushed[-1][1] % self.update_freq == 0

    def _wants_every_test_batch(self) -> bool:
        # fit's validation counts the batches (the step of the writer pushed for them) only for update_freq N
        return self.update_freq != "epoch"

    def _write_keras_model_summary(self) -> None:
        if type(self.model).__name__ not in ("Functional", "Sequential"):
            return
        try:
            json_string = self.model.to_json()
        except Exception as exc:  # as Keras: a model that does not serialise only warns
            warnings.warn(f"Model failed to serialize as JSON. Ignoring... {exc}", stacklevel=2)
            return
        summary_pb2 = importlib.import_module("tensorboardX.proto.summary_pb2")
        Summary, SummaryMetadata = summary_pb2.Summary, summary_pb2.SummaryMetadata
        TensorProto = importlib.import_module("tensorboardX.proto.tensor_pb2").TensorProto
        TensorShapeProto = importlib.import_module("tensorboardX.proto.tensor_shape_pb2").TensorShapeProto

        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="graph_keras_model",
                                                                          content=b"1"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[json_string.encode("utf-8")],
                             tensor_shape=TensorShapeProto())
        summary = Summary(value=[Summary.Value(tag="keras", tensor=tensor, metadata=metadata)])
        self._train_writer._get_file_writer().add_summary(summary, global_step=0)

    # -- hooks --
    def on_train_begin(self, logs: Logs = None) -> None:
        self._training = True
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0.0
        self._train_writer  # noqa: B018 - opens (and checks) the train directory as Keras's _push_writer does
        self._push_writer("train", self._global_train_batch)

    def on_train_end(self, logs: Logs = None) -> None:
        self._training = False
        self._pop_writer()
        self._close_writers()
        self._writers = {}

    def on_test_begin(self, logs: Logs = None) -> None:
        self._push_writer("val", self._global_test_batch)

    def on_test_end(self, logs: Logs = None) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "iterations") and self._records_now():
            step = int(optimizer.iterations)
            writer = self._val_writer
            for name, value in (logs or {}).items():
                writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), global_step=step)
            writer.flush()
        self._pop_writer()
        if not self._training:  # a standalone evaluate: nothing closes the writers after it (their queue is async)
            self._close_writers()
            self._writers = {}

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._global_train_batch += 1
        if self.update_freq != "epoch":
            self._pop_writer()
            self._push_writer("train", self._global_train_batch)
        if self.write_steps_per_second:
            self._batch_start_time = time.time()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        key = self._recording()
        if key is None:
            return
        writer = self._writer(key)
        if self.write_steps_per_second:
            batch_run_time = time.time() - self._batch_start_time
            writer.add_scalar("batch_steps_per_second", 1.0 / batch_run_time if batch_run_time > 0 else math.inf,
                              global_step=self._global_train_batch)
        if isinstance(logs, dict):
            for name, value in logs.items():
                writer.add_scalar(f"batch_{name}", float(value), global_step=self._global_train_batch)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._global_test_batch += 1
        if self.update_freq != "epoch":
            self._pop_writer()
            self._push_writer("val", self._global_test_batch)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.write_steps_per_second:
            self._previous_epoch_iterations = float(self.model.optimizer.iterations)
            self._epoch_start_time = time.time()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Writes the epoch's scalars and, every ``histogram_freq`` epochs, the weights' histograms."""
        self._log_epoch_metrics(epoch, logs)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)

    def _collect_learning_rate(self, logs: Dict[str, Any]) -> Dict[str, Any]:
        optimizer: Any = getattr(self.model, "optimizer", None)
        if hasattr(optimizer, "inner_optimizer"):
            optimizer = optimizer.inner_optimizer
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            logs["learning_rate"] = float(np.asarray(optimizer.learning_rate))
        return logs

    def _compute_steps_per_second(self) -> float:
        elapsed = np.float32(time.time() - self._epoch_start_time)
        done = np.float32(self.model.optimizer.iterations) - np.float32(self._previous_epoch_iterations)
        return float(done / elapsed)

    def _log_epoch_metrics(self, epoch: int, logs: Logs) -> None:
        if not logs or not self._records_now():  # Keras: under the record_if of the last training batch
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        train_logs = self._collect_learning_rate(train_logs)
        if self.write_steps_per_second:
            train_logs["steps_per_second"] = self._compute_steps_per_second()
        if train_logs:
            writer = self._train_writer
            for name, value in train_logs.items():
                writer.add_scalar(f"epoch_{name}", float(value), global_step=epoch)
            writer.flush()
        if val_logs:
            writer = self._val_writer
            for name, value in val_logs.items():
                writer.add_scalar(f"epoch_{name[4:]}", float(value), global_step=epoch)
            writer.flush()

    def _log_weights(self, epoch: int) -> None:
        if not self._records_now():
            return
        writer = self._train_writer
        for layer in self.model.layers:
            for weight in layer.weights:
                weight_name = weight.path.replace(":", "_")
                values = np.asarray(weight, dtype=np.float32)
                # 30 equal-width buckets between the extremes, as TensorFlow 2's tf.summary.histogram
                writer.add_histogram(f"{weight_name}/histogram", values, global_step=epoch, bins=30)
                if self.write_images:
                    self._log_weight_as_image(values, f"{weight_name}/image", epoch)
        writer.flush()

    def _log_weight_as_image(self, weight: np.ndarray, weight_name: str, epoch: int) -> None:
        w_img = np.squeeze(weight)
        shape = w_img.shape
        if len(shape) == 1:  # bias
            w_img = w_img.reshape(1, shape[0], 1, 1)
        elif len(shape) == 2:  # Dense kernel
            if shape[0] > shape[1]:
                w_img = w_img.T
                shape = w_img.shape
            w_img = w_img.reshape(1, shape[0], shape[1], 1)
        elif len(shape) == 3:  # convolution kernel, channels_last: one image per kernel
            w_img = np.transpose(w_img, (2, 0, 1))
            shape = w_img.shape
            w_img = w_img.reshape(shape[0], shape[1], shape[2], 1)
        if w_img.ndim == 4 and w_img.shape[-1] in (1, 3, 4):
            # tf.summary.image clips float images to [0, 1] before quantising them
            self._train_writer.add_images(weight_name, np.clip(w_img, 0.0, 1.0), global_step=epoch,
                                          dataformats="NHWC")


__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "Progbar",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
]
