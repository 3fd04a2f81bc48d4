"""Keras callbacks: hook names, order and ``self.model`` / ``self.params`` as in Keras."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional

Logs = Optional[Dict[str, float]]

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


class Callback:
    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs = None) -> None: ...
    def on_train_end(self, logs: Logs = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs = None) -> None: ...
    def on_test_end(self, logs: Logs = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    def on_predict_begin(self, logs: Logs = None) -> None: ...
    def on_predict_end(self, logs: Logs = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None: ...

    def _wants_every_batch(self) -> bool:
        """True when a subclass overrides a per-batch training hook (then fit calls it on every batch)."""
        return any(getattr(type(self), h) is not getattr(Callback, h) for h in _BATCH_HOOKS)


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``history.epoch``."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _fmt_value(v: float) -> str:
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def _fmt_per_step(seconds: float, steps: int) -> str:
    per = seconds / max(steps, 1)
    if per >= 1:
        return f"{per:.0f}s/step"
    if per >= 1e-3:
        return f"{per * 1e3:.0f}ms/step"
    return f"{per * 1e6:.0f}us/step"


class Progbar:
    """Keras's progress bar: ``verbose=1`` redraws one line in place, ``verbose=2`` prints once at the end."""

    def __init__(self, target: Optional[int], verbose: int = 1, width: int = 20,
                 stream: Any = None, interactive: Optional[bool] = None) -> None:
        self.target = target
        self.verbose = verbose
        self.width = width
        self.stream = stream if stream is not None else sys.stdout
        if interactive is None:
            interactive = _is_interactive(self.stream)
        self.interactive = interactive
        self.start = time.time()
        self._last_len = 0

    def _line(self, current: int, logs: Dict[str, float], final: bool) -> str:
        elapsed = time.time() - self.start
        parts = []
        if self.target:
            done = int(self.width * min(current, self.target) / self.target)
            bar = "━" * done + "─" * (self.width - done)
            digits = len(str(self.target))
            parts.append(f"{current:>{digits}}/{self.target} {bar}")
        else:
            parts.append(f"{current}")
        if final or not self.target:
            parts.append(f"{_fmt_time(elapsed)} {_fmt_per_step(elapsed, current)}")
        else:
            eta = elapsed / max(current, 1) * (self.target - current)
            parts.append(f"{_fmt_time(eta)} ETA" if current else "")
        text = " ".join(p for p in parts if p)
        for k, v in logs.items():
            text += f" - {k}: {_fmt_value(v)}"
        return text

    def update(self, current: int, logs: Optional[Dict[str, float]] = None, final: bool = False) -> None:
        logs = logs or {}
        if self.verbose == 1:
            line = self._line(current, logs, final)
            if self.interactive:
                pad = max(self._last_len - len(line), 0)
                self.stream.write("\r" + line + " " * pad)
                self._last_len = len(line)
                if final:
                    self.stream.write("\n")
            elif final:
                self.stream.write(line + "\n")
            self.stream.flush()
        elif self.verbose == 2 and final:
            elapsed = time.time() - self.start
            text = f"{current}/{self.target} - {_fmt_time(elapsed)} - {_fmt_per_step(elapsed, current)}"
            for k, v in logs.items():
                text += f" - {k}: {_fmt_value(v)}"
            self.stream.write(text + "\n")
            self.stream.flush()


def _is_interactive(stream: Any) -> bool:
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:
        return False


def resolve_verbose(verbose: Any) -> int:
    """``"auto"`` is 1 in a terminal or notebook and 2 when output goes to a file or pipe."""
    if verbose == "auto":
        return 1 if _is_interactive(sys.stdout) else 2
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}")
    return int(verbose)


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and the progress bar during fit, evaluate and predict."""

    def __init__(self, verbose: int = 1) -> None:
        super().__init__()
        self.verbose = verbose
        self._bar: Optional[Progbar] = None
        self._in_fit = False

    def _new_bar(self) -> None:
        self._bar = Progbar(self.params.get("steps"), verbose=self.verbose)

    def on_train_begin(self, logs: Logs = None) -> None:
        self._in_fit = True

    def on_train_end(self, logs: Logs = None) -> None:
        self._in_fit = False

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", flush=True)
        self._new_bar()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._bar is not None:
            self._bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self._bar is not None:
            self._bar.update(self.params.get("steps") or 0, logs, final=True)

    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._in_fit and self._bar is not None:
            self._bar.update(batch + 1, logs)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._in_fit and self._bar is not None:
            self._bar.update(self.params.get("steps") or 0, logs, final=True)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._new_bar()

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._bar is not None:
            self._bar.update(batch + 1, None)

    def on_predict_end(self, logs: Logs = None) -> None:
        if self._bar is not None:
            self._bar.update(self.params.get("steps") or 0, None, final=True)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping mode {mode!r} is unknown; expected 'auto', 'min' or 'max'")
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.mode = mode
        self.stopped_epoch = 0

    def _improved(self, value: float, reference: float) -> bool:
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: Any = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch > 0:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class LambdaCallback(Callback):
    def __init__(self, on_epoch_begin: Optional[Callable] = None, on_epoch_end: Optional[Callable] = None,
                 on_train_begin: Optional[Callable] = None, on_train_end: Optional[Callable] = None,
                 on_train_batch_begin: Optional[Callable] = None, on_train_batch_end: Optional[Callable] = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self._fns = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                         on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                         on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in self._fns.items():
            if fn is not None:
                setattr(self, name, fn)

    def _wants_every_batch(self) -> bool:
        return any(self._fns.get(h) is not None for h in _BATCH_HOOKS)


class CallbackList:
    """Calls every callback's hook in order; History first and the progress bar last, as Keras."""

    def __init__(self, callbacks: Optional[List[Callback]], model: Any, params: dict, verbose: int,
                 add_history: bool = False) -> None:
        user = list(callbacks or [])
        for cb in user:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be kerust.callbacks.Callback instances, received {cb!r}")
        self.history: Optional[History] = None
        self.callbacks: List[Callback] = []
        if add_history:
            self.history = History()
            self.callbacks.append(self.history)
        self.callbacks += user
        if verbose and not any(isinstance(cb, ProgbarLogger) for cb in user):
            self.callbacks.append(ProgbarLogger(verbose))
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    @property
    def needs_every_batch(self) -> bool:
        return any(cb._wants_every_batch() for cb in self.callbacks
                   if not isinstance(cb, (ProgbarLogger, History)))

    def call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def progress(self, hook: str) -> Callable[[int, list], None]:
        """A throttled progress function for the engine: drives only the progress bar."""
        bars = [cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)]

        def report(step: int, logs: list) -> None:
            d = dict(logs)
            for cb in bars:
                getattr(cb, hook)(step - 1, d)

        return report
