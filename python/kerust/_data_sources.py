"""Data that reaches `fit`, `evaluate` and `predict` batch by batch: `keras.utils.PyDataset` (alias `Sequence`),
Python generators and iterators, and NumPy arrays that must not be copied whole (an array of another dtype than
float32, e.g. uint8 images or float64, whose float32 copy would be large; it is converted one batch at a time).

Each batch is fetched and converted to the engine's float32 arrays on a background thread (and, for a PyDataset
with ``workers > 1`` or ``use_multiprocessing=True``, on a pool of threads or processes) while the engine, with the
GIL released, trains on the previous batch: a source that costs less than a step costs (almost) no time.

The engine runs one batch per call here (``train_steps(..., max_steps=1)`` after ``begin_pass`` over the batch),
so its running epoch logs are Keras's. Evaluation merges the per-batch results of mean metrics (loss, accuracy,
mean errors, metric functions: the weighted mean of the batch means, exact as Keras's ``Mean`` state); metrics
whose result is not a mean (precision, recall, AUC, a user's stateful metric) are evaluated on the batches joined
once at the end."""

from __future__ import annotations

import collections
import collections.abc
import itertools
import types
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ._arrays import _caller_stacklevel

if TYPE_CHECKING:
    import queue
# threading, queue and multiprocessing are imported when a source is used: `import kerust` stays fast

# A float32 copy larger than this is never made of a user's array (the array is converted batch by batch instead).
WHOLE_COPY_LIMIT = 64 * 2**20
_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
            "generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function "
            "when building your dataset.")
_EMPTY_GENERATOR = ("When passing a Python generator to a Keras model, the generator must yield at least one "
                    "batch. Received an empty generator.")


class PyDataset:
    """``keras.utils.PyDataset``: a data set written in Python, one batch per index.

    A subclass implements ``__getitem__(index)`` (a whole batch: ``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``, or a dict of inputs) and ``__len__`` (the number of batches), or the
    ``num_batches`` property (None: infinite). ``on_epoch_begin`` / ``on_epoch_end`` are called around each
    epoch. ``workers``, ``use_multiprocessing`` and ``max_queue_size`` say how ``fit`` fetches batches ahead:
    ``workers > 1`` threads (or processes with ``use_multiprocessing=True``, the data set then is copied into
    forked processes), at most ``max_queue_size`` batches ahead. Call ``super().__init__(**kwargs)`` in your
    ``__init__``."""

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self) -> None:
        missing = False
        for attr, default in (("_workers", 1), ("_use_multiprocessing", False), ("_max_queue_size", 10)):
            if not hasattr(self, attr):
                setattr(self, attr, default)
                missing = True
        if missing:
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
                          "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass "
                          "these arguments to `fit()`, as they will be ignored.", stacklevel=3)

    @property
    def workers(self) -> int:
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int) -> Any:
        """The batch at position `index`."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        try:
            n = self.num_batches
        except NotImplementedError:
            n = None
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    @property
    def num_batches(self) -> Optional[int]:
        """The number of batches (``len(self)``), or None for an infinite data set."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError("You need to implement the `num_batches` property:\n\n"
                                  "@property\ndef num_batches(self):\n  return ...")

    def on_epoch_begin(self) -> None:
        """Called at the beginning of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""


Sequence = PyDataset


# ---- what is a source ------------------------------------------------------------------------------------------
def is_source(x: Any) -> bool:
    """A PyDataset, a generator or another iterator (not an array, list, tuple or dict)."""
    if isinstance(x, (PyDataset, types.GeneratorType)):
        return True
    return isinstance(x, collections.abc.Iterator) and not isinstance(x, (np.ndarray, str, bytes))


def _leaves(value: Any) -> List[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _needs_batching(arr: Any) -> bool:
    """An array that the engine cannot read in place and whose float32 copy would be large."""
    if not isinstance(arr, np.ndarray) or arr.ndim == 0:
        return False
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        return False
    if arr.dtype == np.float32 and arr.flags.c_contiguous:
        return False
    return arr.size * 4 > WHOLE_COPY_LIMIT


def needs_batches(*structures: Any) -> bool:
    """Whether arrays in `structures` (x, y, sample_weight) are read batch by batch instead of converted whole."""
    return any(_needs_batching(a) for s in structures for a in _leaves(s))


def _map(value: Any, fn: Callable[[Any], Any]) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, fn) for v in value)
    return fn(value)


def _rows(value: Any) -> int:
    for leaf in _leaves(value):
        if leaf is not None:
            return int(np.shape(leaf)[0])
    return 0


# ---- sources: where raw batches come from ---------------------------------------------------------------------
class _Source:
    kind = "data"
    num_batches: Optional[int] = None

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass

    def items(self) -> Iterator[Any]:
        """The raw batches of one pass."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _GeneratorSource(_Source):
    kind = "generator"

    def __init__(self, it: Any) -> None:
        self._it = it

    def items(self) -> Iterator[Any]:
        return self._it  # one pass for the whole call: a generator cannot restart


class _ArraySource(_Source):
    """Arrays sliced batch by batch (shuffled per pass with a seed drawn from NumPy's global generator, which
    `keras.utils.set_random_seed` seeds)."""
    kind = "array"

    def __init__(self, x: Any, y: Any, sample_weight: Any, batch_size: int, shuffle: bool) -> None:
        self._data = (x, y, sample_weight)
        self._n = _rows(x)
        self._bs = batch_size
        self.num_batches = -(-self._n // batch_size)
        self._rng = np.random.default_rng(int(np.random.randint(0, 2**62))) if shuffle else None

    def items(self) -> Iterator[Any]:
        order = self._rng.permutation(self._n) if self._rng is not None else None
        for start in range(0, self._n, self._bs):
            end = min(start + self._bs, self._n)
            # in order: a slice (a view); shuffled: the batch's rows, ascending (a memory map is read forwards)
            rows: Any = slice(start, end) if order is None else np.sort(order[start:end])

            def take(a: Any, rows: Any = rows) -> Any:
                return a[rows]
            yield tuple(_map(part, take) for part in self._data)


_POOL_DATASET: Any = None


def _init_worker(dataset: Any) -> None:
    import signal

    global _POOL_DATASET
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the pool
    _POOL_DATASET = dataset


def _get_item(index: int) -> Any:
    return _POOL_DATASET[index]


class _PyDatasetSource(_Source):
    kind = "PyDataset"

    def __init__(self, ds: PyDataset, shuffle: bool) -> None:
        self.ds = ds
        workers, multi, depth = ds.workers, ds.use_multiprocessing, ds.max_queue_size
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"PyDataset: `workers` must be a non-negative int, received {workers!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"PyDataset: `max_queue_size` must be a positive int, received {depth!r}")
        self.workers, self.multi, self.depth = workers, bool(multi), depth
        self.num_batches = ds.num_batches
        if self.num_batches is not None and (not isinstance(self.num_batches, int) or self.num_batches < 0):
            raise ValueError(f"PyDataset: `__len__` / `num_batches` must be a non-negative int or None, received "
                             f"{self.num_batches!r}")
        self._rng = np.random.default_rng(int(np.random.randint(0, 2**62))) \
            if shuffle and self.num_batches is not None else None
        self._pool: Any = None

    def on_epoch_begin(self) -> None:
        self.ds.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.ds.on_epoch_end()

    def items(self) -> Iterator[Any]:
        indices: Any = range(self.num_batches) if self.num_batches is not None else itertools.count()
        if self._rng is not None and self.num_batches is not None:
            indices = self._rng.permutation(self.num_batches).tolist()
        if self.workers > 1 or (self.workers > 0 and self.multi):
            return self._pooled(iter(indices))
        return (self.ds[int(i)] for i in indices)

    def _pooled(self, indices: Iterator[int]) -> Iterator[Any]:
        # made here, on the caller's thread, while the engine is idle (a fork meets no running step)
        self.close()
        if self.multi:
            import multiprocessing

            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                              else "spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.ds,))
            submit: Callable[[int], Any] = lambda i: self._pool.apply_async(_get_item, (i,))  # noqa: E731
            result: Callable[[Any], Any] = lambda f: f.get()  # noqa: E731
        else:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kerust-pydataset")
            submit = lambda i: self._pool.submit(self.ds.__getitem__, i)  # noqa: E731
            result = lambda f: f.result()  # noqa: E731
        pending: collections.deque = collections.deque()

        def run() -> Iterator[Any]:
            for i in itertools.islice(indices, self.depth):
                pending.append(submit(int(i)))
            while pending:
                item = result(pending.popleft())
                for i in itertools.islice(indices, 1):
                    pending.append(submit(int(i)))
                yield item
        return run()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if hasattr(pool, "terminate"):
            pool.terminate()
            pool.join()
        else:
            pool.shutdown(wait=True, cancel_futures=True)


def make_source(x: Any, y: Any, sample_weight: Any, class_weight: Any, shuffle: bool, batch_size: Optional[int],
                what: str) -> _Source:
    """The source for `x` (a PyDataset, a generator/iterator, or arrays to read batch by batch), with Keras's
    errors for arguments that do not go with it."""
    if isinstance(x, PyDataset):
        kind = "PyDataset"
    elif is_source(x):
        kind = "generator"
    else:
        from .models import _batch_size

        return _ArraySource(x, y, sample_weight, _batch_size(batch_size), shuffle)
    if y is not None:
        raise ValueError(f"When providing `x` as a {kind}, `y` should not be passed. Instead, the targets should "
                         f"be included as part of the {kind}.")
    if sample_weight is not None:
        raise ValueError(f"When providing `x` as a {kind}, `sample_weights` should not be passed. Instead, the "
                         f"sample weights should be included as part of the {kind}.")
    if batch_size is not None:
        warnings.warn(f"{what}: `batch_size={batch_size}` is ignored: a {kind} yields whole batches",
                      UserWarning, stacklevel=_caller_stacklevel())
    if kind == "PyDataset":
        assert isinstance(x, PyDataset)
        if shuffle and getattr(x, "num_batches", None) is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", UserWarning,
                          stacklevel=_caller_stacklevel())
        return _PyDatasetSource(x, bool(shuffle))
    if class_weight is not None:
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. Received: "
                         f"class_weight={class_weight}")
    if shuffle:
        warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                      "generator. The generator is expected to yield already-shuffled data.", UserWarning,
                      stacklevel=_caller_stacklevel())
    return _GeneratorSource(x)


def _unpack(batch: Any, kind: str) -> Tuple[Any, Any, Any]:
    """A raw batch as (x, y, sample_weight), as Keras reads it from this kind of source."""
    if isinstance(batch, dict) or isinstance(batch, np.ndarray):
        return batch, None, None
    if kind == "PyDataset" and isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        if kind == "PyDataset":
            raise ValueError("PyDataset.__getitem__() must return a tuple or a dict. If a tuple, it must be ordered "
                             "either (input,) or (inputs, targets) or (inputs, targets, sample_weights). Received: "
                             f"{str(batch)[:100]}... of type {type(batch)}")
        raise ValueError("When passing a Python generator to a Keras model, the generator must return a tuple, "
                         "either (input,) or (inputs, targets) or (inputs, targets, sample_weights). Received: "
                         f"{str(batch)[:100]}")
    if len(batch) not in (1, 2, 3):
        raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
                         f"found: {str(batch)[:100]}")
    return batch[0], batch[1] if len(batch) > 1 else None, batch[2] if len(batch) > 2 else None


# ---- converted batches, made ahead on a thread -----------------------------------------------------------------
class Batch:
    __slots__ = ("index", "xs", "ys", "sw", "n")

    def __init__(self, index: int, xs: list, ys: Optional[list], sw: Optional[list], n: int) -> None:
        self.index, self.xs, self.ys, self.sw, self.n = index, xs, ys, sw, n


def _shape(shape: Any) -> str:
    return "(None, " + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 0 else ")")


class _Converter:
    """Raw batch -> engine arrays for one model; errors name the batch and the shapes."""

    def __init__(self, model: Any, kind: str, what: str, targets: bool, class_weight: Any = None) -> None:
        self.model, self.kind, self.what, self.targets = model, kind, what, targets
        self.class_weight = class_weight
        self.y_shapes: Optional[List[tuple]] = None
        self.warned_non_finite = False

    def where(self, index: int) -> str:
        return f"{self.what}: batch {index} of the {self.kind}"

    def __call__(self, index: int, raw: Any) -> Batch:
        from . import models

        x, y, sw = _unpack(raw, self.kind)
        m = self.model
        try:
            xs = m._inputs_list(x)
            n = int(xs[0].shape[0])
            if n == 0:
                raise ValueError("the batch has no samples")
            if m._core is None:  # the first batch builds the model (the caller waits for it meanwhile)
                m._ensure_built(xs)
            self._check_inputs(xs)
            if not self.targets:
                return Batch(index, xs, None, None, n)
            if y is None:
                raise ValueError("it has no targets: yield (x, y) or (x, y, sample_weight)")
            ys = m._fill_missing_targets(m._targets(y), n)
            for a in ys:
                if a.shape[0] != n:
                    raise ValueError(f"Data cardinality is ambiguous: x sizes: {n}, y sizes: {a.shape[0]}. Make "
                                     "sure all arrays contain the same number of samples.")
            shapes = [tuple(a.shape[1:]) for a in ys]
            if self.y_shapes is None:
                self.y_shapes = shapes
            elif shapes != self.y_shapes:
                j = next(k for k, (a, b) in enumerate(zip(shapes, self.y_shapes)) if a != b)
                raise ValueError(f"`y` has shape {_shape(shapes[j])}, but the earlier batches had targets of shape "
                                 f"{_shape(self.y_shapes[j])}")
            sws = m._sample_weights(sw, n)
            if self.class_weight is not None:
                if sw is not None and self.kind == "PyDataset":
                    raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
                if len(ys) > 1:
                    raise ValueError("`class_weight` is only supported for models with a single output.")
                # arrays: multiplied into the sample weights, as the array path does
                sws = [models._apply_class_weight(self.class_weight, ys[0], sws[0] if sws else None)]
            self._check_finite(index, xs, ys)
            return Batch(index, xs, ys, sws, n)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.where(index)}: {exc}") from exc

    def _check_inputs(self, xs: List[np.ndarray]) -> None:
        try:
            expected = self.model._input_sample_shapes()
        except Exception:  # a model whose input shapes are only known to the engine: it checks them
            return
        for k, (a, e) in enumerate(zip(xs, expected)):
            got = tuple(a.shape[1:])
            if len(got) != len(e) or any(d is not None and d != g for d, g in zip(e, got)):
                name = "x" if len(xs) == 1 else f"x[{k}]"
                raise ValueError(f"`{name}` has shape {(None, *got)}, but the model expects input shape "
                                 f"{_shape(e)}")

    def _check_finite(self, index: int, xs: list, ys: list) -> None:
        if self.warned_non_finite:
            return
        for name, arrays in (("x", xs), ("y", ys)):
            for a in arrays:
                if a.size and not (np.isfinite(a.min()) and np.isfinite(a.max())):
                    self.warned_non_finite = True
                    warnings.warn(f"{self.where(index)}: `{name}` contains non-finite values (NaN or inf); the loss "
                                  "and the weights will likely become NaN", UserWarning,
                                  stacklevel=_caller_stacklevel())
                    return


_END = object()
# While a feeder thread runs Python (a generator's own code) and holds the GIL, the caller's thread waits up to
# the interpreter's switch interval (5 ms by default) each time it takes the GIL back from the engine, twice a
# step: with short steps that costs more than the overlap saves. Feeders lower it to this while they run.
SWITCH_INTERVAL = 0.0002
_switch: Dict[str, Any] = {"feeders": 0, "saved": 0.005, "lock": None}


def _switch_interval(delta: int) -> None:
    import sys
    import threading

    if _switch["lock"] is None:
        _switch["lock"] = threading.Lock()
    with _switch["lock"]:
        if delta > 0 and _switch["feeders"] == 0:
            _switch["saved"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch["saved"], SWITCH_INTERVAL))
        _switch["feeders"] += delta
        if delta < 0 and _switch["feeders"] == 0:
            sys.setswitchinterval(_switch["saved"])


class Feeder:
    """Fetches and converts the batches of one pass on a daemon thread, at most `depth` ahead and at most as many
    as `allow` permitted; `get` returns them in order (None when the pass ended) or raises the source's
    exception (with its traceback)."""

    def __init__(self, items: Iterator[Any], convert: Callable[[int, Any], Batch], depth: int,
                 first_index: int = 0) -> None:
        import queue
        import threading

        self._items = items
        self._convert = convert
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, depth))
        self._allowed = 0
        self._unlimited = False
        self._cond = threading.Condition()
        self._stop = False
        self._index = first_index
        self._thread = threading.Thread(target=self._run, name="kerust-data-feeder", daemon=True)
        self._closed = False
        _switch_interval(+1)
        self._thread.start()

    def allow(self, n: Optional[int]) -> None:
        """Permit `n` more batches to be fetched (None: all of them)."""
        with self._cond:
            if n is None:
                self._unlimited = True
            else:
                self._allowed += n
            self._cond.notify_all()

    def _wait_allowed(self) -> bool:
        with self._cond:
            while not self._stop and not self._unlimited and self._allowed <= 0:
                self._cond.wait(0.1)
            if self._stop:
                return False
            self._allowed -= 1
            return True

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop:
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while self._wait_allowed():
                try:
                    raw = next(self._items)
                except StopIteration:
                    self._put(_END)
                    return
                batch = self._convert(self._index, raw)
                self._index += 1
                if not self._put(batch):
                    return
        except BaseException as exc:  # the user's exception, raised again by `get` on the caller's thread
            self._put(exc)

    def get(self) -> Optional[Batch]:
        import queue

        while True:
            try:
                item = self._queue.get(timeout=0.05)  # a timeout keeps Ctrl-C prompt
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return None
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, timeout: float = 2.0) -> None:
        import queue
        import threading

        with self._cond:
            self._stop = True
            self._cond.notify_all()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._closed:
            self._closed = True
            _switch_interval(-1)


class _Pass:
    """A source's current pass: its feeder, the index of its next batch, and how to start the next pass."""

    def __init__(self, source: _Source, convert: _Converter, depth: int) -> None:
        self.source, self.convert, self.depth = source, convert, depth
        self.feeder: Optional[Feeder] = None
        self.taken = 0

    def start(self) -> Feeder:
        if self.feeder is None:
            self.feeder = Feeder(self.source.items(), self.convert, self.depth)
            self.taken = 0
        return self.feeder

    def end(self) -> None:
        feeder, self.feeder = self.feeder, None
        if feeder is not None:
            feeder.close()
        self.source.close()


def _depth(source: _Source) -> int:
    if isinstance(source, _PyDatasetSource):
        return source.depth
    return 2 if isinstance(source, _ArraySource) else 4


# ---- the loops -------------------------------------------------------------------------------------------------
def fit(model: Any, x: Any, y: Any, batch_size: Optional[int], epochs: int, verbose: Any, callbacks: Any,
        validation_split: float, validation_data: Any, shuffle: bool, class_weight: Any, sample_weight: Any,
        initial_epoch: int, steps_per_epoch: Optional[int], validation_steps: Optional[int],
        validation_batch_size: Optional[int], validation_freq: int) -> Any:
    """`Model.fit` over a source (see the module's docstring)."""
    from . import callbacks as callbacks_module
    from .models import _sorted_logs

    verbose = callbacks_module.resolve_verbose(verbose)
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, received {epochs!r}")
    if not isinstance(validation_freq, int) or validation_freq < 1:
        raise ValueError(f"validation_freq must be a positive int, received {validation_freq!r}")
    _check_steps("steps_per_epoch", steps_per_epoch)
    _check_steps("validation_steps", validation_steps)
    if validation_split and validation_data is None:
        if is_source(x):
            raise ValueError("Argument `validation_split` is only supported for tensors or NumPy arrays. Found "
                             f"incompatible type in the input: [{type(x)}]")
        if not 0.0 < float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), received {validation_split!r}")
        total = _rows(x)
        split_at = int(total * (1.0 - float(validation_split)))
        if split_at == 0 or split_at == total:
            raise ValueError(f"validation_split={validation_split} leaves no training or no validation data with "
                             f"{total} samples")

        def head(a: Any) -> Any:
            return a[:split_at]

        def tail(a: Any) -> Any:
            return a[split_at:]
        validation_data = (_map(x, tail), _map(y, tail)) + (() if sample_weight is None
                                                             else (_map(sample_weight, tail),))
        x, y, sample_weight = _map(x, head), _map(y, head), _map(sample_weight, head)
    if not is_source(x) and y is None:
        raise ValueError("fit: `y` is required (kerust models are supervised)")
    source = make_source(x, y, sample_weight, class_weight, shuffle, batch_size, "fit")
    convert = _Converter(model, source.kind, "fit", True, class_weight if isinstance(source, (_PyDatasetSource,
                                                                                             _ArraySource)) else None)
    run = _Pass(source, convert, _depth(source))
    val = _validation(model, validation_data, validation_batch_size or batch_size)

    known = source.num_batches
    steps_target = steps_per_epoch or known
    cbs = callbacks_module.CallbackList(
        callbacks, model, {"verbose": verbose, "epochs": epochs, "steps": steps_target}, verbose, add_history=True)
    model.history = cbs.history
    model.stop_training = False
    initial_epoch = getattr(model, "_initial_epoch", None) or initial_epoch
    model._initial_epoch = None
    epoch_logs: Dict[str, float] = {}
    prepared = False
    try:
        cbs.call("on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            cbs.call("on_epoch_begin", epoch, {})
            source.on_epoch_begin()
            budget = steps_per_epoch or source.num_batches
            if budget is not None and source.num_batches is not None and run.feeder is not None:
                budget = min(budget, source.num_batches - run.taken)
            feeder = run.start()
            feeder.allow(budget)
            step, logs, ran_out = 0, [], False
            while budget is None or step < budget:
                batch = feeder.get()
                if batch is None:
                    ran_out = True
                    break
                run.taken += 1
                if not prepared:  # resolves the metrics for these targets (before the logs are reset)
                    model._core.prepare(batch.xs, batch.ys, batch.sw)
                    prepared = True
                if step == 0:
                    model._core.reset_logs()
                cbs.call("on_train_batch_begin", step, {})
                model._sync()  # a callback may have changed shared layers through another model
                model._core.begin_pass(batch.n, False)
                try:
                    _, _, logs = model._core.train_steps(batch.xs, batch.ys, batch.sw, batch.n, 1, None)
                except ValueError as exc:
                    raise ValueError(f"{convert.where(batch.index)}: {exc}") from exc
                step += 1
                cbs.call("on_train_batch_end", step - 1, _sorted_logs(logs))
                if model.stop_training:
                    break
            pass_over = ran_out or (source.num_batches is not None and run.taken >= source.num_batches)
            if pass_over:
                run.end()
            if ran_out and step == 0:
                if not prepared:
                    raise ValueError(_EMPTY_GENERATOR if source.kind == "generator"
                                     else f"fit: the {source.kind} has no batches")
                warnings.warn(_RAN_OUT, UserWarning, stacklevel=_caller_stacklevel())
                source.on_epoch_end()
                break
            source.on_epoch_end()
            # Keras: an epoch that the end of the data cut short of `steps_per_epoch` warns
            if pass_over and steps_per_epoch is not None and step < steps_per_epoch and not model.stop_training:
                warnings.warn(_RAN_OUT, UserWarning, stacklevel=_caller_stacklevel())
                if source.kind == "generator":
                    model.stop_training = True  # a generator cannot start again
            epoch_logs = _sorted_logs(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                # as Keras's fit: an evaluate with fit's callbacks (on_test_begin, ..., on_test_end)
                epoch_logs.update({"val_" + k: v for k, v in val(validation_steps, cbs).items()})
            cbs.call("on_epoch_end", epoch, epoch_logs)
            if model.stop_training:
                break
        cbs.call("on_train_end", epoch_logs)
    finally:
        run.end()
        if val is not None:
            val.close()
    assert model.history is not None
    return model.history


def _check_steps(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"`{name}` must be a positive int or None, received {value!r}")


class _Validation:
    """Validation data for `fit`: arrays (the engine's evaluate, as the array path) or a source (its passes are
    kept across epochs: a PyDataset restarts each time, a generator continues)."""

    def __init__(self, model: Any, data: Any, batch_size: Optional[int]) -> None:
        from .models import _batch_size

        self.model = model
        self.arrays: Optional[tuple] = None
        self.source: Optional[_Source] = None
        if is_source(data):
            self.source = make_source(data, None, None, None, False, None, "fit")
        elif isinstance(data, (tuple, list)) and len(data) in (2, 3) and needs_batches(*data):
            self.source = _ArraySource(data[0], data[1], data[2] if len(data) == 3 else None,
                                       _batch_size(batch_size), False)
        else:
            self.data = data
        self.bs = _batch_size(batch_size)
        self.run: Optional[_Pass] = None
        self.warned = False

    def __call__(self, steps: Optional[int], cbs: Any) -> Dict[str, float]:
        """One validation: Keras's evaluate with fit's callbacks ``cbs``; the logs (without the ``val_``
        prefix), empty when a generator had no batch left."""
        from .models import _sorted_logs

        m = self.model
        if self.source is None:
            if self.arrays is None:
                self.arrays = m._unpack_validation(self.data)
            xv, yv, swv = self.arrays
            return validate_arrays(m, cbs, xv, yv, swv, self.bs)
        m.stop_evaluating = False
        cbs.call("on_test_begin", {})
        raw = self._pass(steps, cbs)
        logs = {} if raw is None else _sorted_logs(raw)
        cbs.call("on_test_end", logs)
        return logs

    def _pass(self, steps: Optional[int], cbs: Any) -> Optional[list]:
        m = self.model
        assert self.source is not None
        if self.run is None:
            self.run = _Pass(self.source, _Converter(m, self.source.kind, "fit (validation_data)", True),
                             _depth(self.source))
        if self.source.kind != "generator" or steps is None:
            self.run.end()  # Keras evaluates a PyDataset or arrays from their start each time
        logs = _evaluate_pass(m, self.source, self.run, steps, cbs)
        if logs is None and not self.warned:
            self.warned = True
            warnings.warn("fit: the validation generator is used up; no validation for the next epochs. "
                          "Pass `validation_steps` so that each validation takes only that many batches.",
                          UserWarning, stacklevel=_caller_stacklevel())
        return logs

    def close(self) -> None:
        if self.run is not None:
            self.run.end()


def _validation(model: Any, data: Any, batch_size: Optional[int]) -> Optional[_Validation]:
    if data is None:
        return None
    return _Validation(model, data, batch_size)


class _Merge:
    """Per-batch evaluation logs merged as Keras's metric states would be: each value weighted by its batch's
    number of samples (the losses are batch means; `metrics=` are unweighted means, sample weights do not enter
    them, as in Keras 3). `ok` is False when a metric is not a mean (then the batches are evaluated together)."""

    def __init__(self, model: Any) -> None:
        from . import metrics as metrics_module

        self.ok = all(_is_mean(metric, metrics_module) for head in model._compile_args["heads"]
                      for metric in head["metrics"])
        self.sums: Dict[str, float] = {}
        self.seen = 0

    def add(self, logs: list, n: int) -> None:
        """The logs of a batch of ``n`` samples."""
        for name, value in logs:
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * n
        self.seen += n

    def logs(self) -> list:
        return [(k, v / self.seen) for k, v in self.sums.items()]


def _is_mean(metric: Any, metrics_module: Any) -> bool:
    if isinstance(metric, str):
        return metric not in ("precision", "recall", "auc")
    builtin_means = tuple(getattr(metrics_module, n) for n in (
        "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError"))
    if isinstance(metric, builtin_means):
        return True
    # a metric function or a Keras mean-of-values metric: total / count
    return isinstance(metric, metrics_module.MeanMetricWrapper) and type(metric).result is metrics_module.Mean.result


def _evaluate_pass(model: Any, source: _Source, run: _Pass, steps: Optional[int], cbs: Any) -> Optional[list]:
    """One evaluation over `steps` batches (None: the whole pass); None when the source had no batch left."""
    from .models import _sorted_logs

    merge = _Merge(model)
    kept: List[Batch] = []
    source.on_epoch_begin()
    budget = steps if steps is not None else source.num_batches
    feeder = run.start()
    feeder.allow(budget)
    step = 0
    try:
        while budget is None or step < budget:
            batch = feeder.get()
            if batch is None:
                run.end()
                if steps is not None and step and step < steps:
                    warnings.warn(_RAN_OUT, UserWarning, stacklevel=_caller_stacklevel())
                break
            run.taken += 1
            if cbs is not None:
                cbs.call("on_test_batch_begin", step, {})
            model._sync()
            if merge.ok:
                try:
                    merge.add(model._core.evaluate(batch.xs, batch.ys, batch.sw, batch.n, None), batch.n)
                except ValueError as exc:
                    raise ValueError(f"{run.convert.where(batch.index)}: {exc}") from exc
            else:
                kept.append(batch)
            step += 1
            if cbs is not None:
                cbs.call("on_test_batch_end", step - 1, _sorted_logs(merge.logs()))
                if getattr(model, "stop_evaluating", False):
                    break  # a callback ended the evaluation (Keras's model.stop_evaluating)
    finally:
        if source.num_batches is not None and run.taken >= source.num_batches:
            run.end()
        source.on_epoch_end()
    if step == 0:
        return None
    if merge.ok:
        return merge.logs()
    return _evaluate_joined(model, kept)


def _watches(cbs: Any, hooks: Tuple[str, str], own: str) -> bool:
    """Whether a callback of ``cbs`` other than the progress bar and History overrides one of ``hooks`` (on the
    class or the instance, as ``LambdaCallback`` does), or says so with its method ``own`` (when it has one)."""
    from . import callbacks as callbacks_module

    base = callbacks_module.Callback
    for cb in cbs.callbacks:
        if isinstance(cb, (callbacks_module.ProgbarLogger, callbacks_module.History)):
            continue  # the engine drives the progress bar (and fit's validation shows no batches)
        says = getattr(cb, own, None)
        if says is not None:
            if says():
                return True
            continue
        for hook in hooks:
            impl = getattr(cb, hook, None)
            if getattr(impl, "__func__", impl) is not getattr(base, hook):
                return True
    return False


def wants_test_batches(cbs: Any) -> bool:
    """Whether a callback overrides ``on_test_batch_begin`` or ``on_test_batch_end`` (on the class or the
    instance, as ``LambdaCallback`` does), or says so with ``_wants_every_test_batch()``: then an evaluation on
    arrays (``evaluate``'s, or fit's validation) runs batch by batch to call them, otherwise in one engine call
    (nobody would see the batches)."""
    return _watches(cbs, ("on_test_batch_begin", "on_test_batch_end"), "_wants_every_test_batch")


def wants_predict_batches(cbs: Any) -> bool:
    """Whether a callback overrides ``on_predict_batch_begin`` or ``on_predict_batch_end`` (or says so with
    ``_wants_every_predict_batch()``): then ``predict`` on arrays runs batch by batch to call them, otherwise in one
    engine call."""
    return _watches(cbs, ("on_predict_batch_begin", "on_predict_batch_end"), "_wants_every_predict_batch")


def _slice_rows(arrays: Any, start: int, end: int) -> Any:
    """Rows ``start:end`` of each array of a list (None, and None items, kept)."""
    if arrays is None:
        return None
    return [None if a is None else a[start:end] for a in arrays]


def array_steps(n: int, batch_size: int, steps: Optional[int], where: str) -> Tuple[int, int]:
    """``(rows, steps)`` of ``where`` (evaluate or predict) on ``n`` samples with Keras's ``steps``: the first
    ``steps`` batches (all of them, with the warning Keras gives, when there are fewer), and the ``steps`` the
    callbacks' params hold (Keras's: ``steps`` when given)."""
    try:
        _check_steps("steps", steps)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    batches = -(-n // batch_size)
    if steps is None:
        return n, batches
    if steps > batches:
        warnings.warn(_RAN_OUT, UserWarning, stacklevel=_caller_stacklevel())
    return min(n, steps * batch_size), steps


def evaluate_arrays(model: Any, cbs: Any, xs: list, ys: list, sw: Optional[list], batch_size: int,
                    progress: Any = None) -> list:
    """An evaluation on arrays with Keras's hooks, ``evaluate``'s or fit's validation: ``on_test_begin({})``, for
    each batch ``on_test_batch_begin(i, {})`` and ``on_test_batch_end(i, logs so far)`` (when a callback watches
    them: `wants_test_batches`), then ``on_test_end(logs)``; returns the engine's ``[(name, value), ...]`` (in
    ``metrics_names`` order). As Keras, ``model.stop_evaluating`` set by a callback ends the evaluation after the
    batch it was set in (the results are those of the batches evaluated). Without batch watchers the arrays go to
    the engine in one call, ``progress`` (the progress bar's reports) with them.

    The running logs merge the batches' means (exact for the loss and mean metrics, as Keras's ``Mean`` states);
    with a metric that is not a mean (precision, recall, AUC) the batch hooks get ``{}`` and the results come from
    one evaluation of all the batches evaluated."""
    from .models import _sorted_logs

    model.stop_evaluating = False
    cbs.call("on_test_begin", {})
    if wants_test_batches(cbs) or model.stop_evaluating:
        merge = _Merge(model)
        n = xs[0].shape[0]
        end = 0
        for step, start in enumerate(range(0, n, batch_size)):
            cbs.call("on_test_batch_begin", step, {})
            end = min(start + batch_size, n)
            if merge.ok:
                model._sync()  # a callback may have changed the weights
                part = model._core.evaluate(_slice_rows(xs, start, end), _slice_rows(ys, start, end),
                                            _slice_rows(sw, start, end), end - start, None)
                merge.add(part, end - start)
            cbs.call("on_test_batch_end", step, _sorted_logs(merge.logs()) if merge.ok else {})
            if model.stop_evaluating:
                break
        if merge.ok:
            raw = merge.logs()
        else:
            model._sync()
            raw = model._core.evaluate(_slice_rows(xs, 0, end), _slice_rows(ys, 0, end), _slice_rows(sw, 0, end),
                                      batch_size, None)
    else:
        model._sync()  # a callback may have changed shared layers
        raw = model._core.evaluate(xs, ys, sw, batch_size, progress)
    cbs.call("on_test_end", _sorted_logs(raw))
    return raw


def validate_arrays(model: Any, cbs: Any, xs: list, ys: list, sw: Optional[list], batch_size: int) -> Dict[str, float]:
    """fit's validation on arrays as Keras runs it, an evaluate with fit's callbacks (`evaluate_arrays`); returns
    the logs (without the ``val_`` prefix)."""
    from .models import _sorted_logs

    return _sorted_logs(evaluate_arrays(model, cbs, xs, ys, sw, batch_size))


def predict_batch_logs(model: Any, out: List[np.ndarray]) -> Dict[str, Any]:
    """The logs of ``on_predict_batch_end`` as Keras gives them (its ``pythonify_logs`` of ``{"outputs": batch
    outputs}``): ``{"outputs": array}`` for one output, ``{"outputs": [arrays]}`` for a list of outputs, and a dict
    of outputs flattened into the logs, ``{name: array, ...}`` in name order."""
    result = model._outputs_result(out)
    if isinstance(result, dict):
        return {k: result[k] for k in sorted(result)}
    return {"outputs": result}


def predict_arrays(model: Any, cbs: Any, xs: list, batch_size: int, progress: Any = None) -> List[np.ndarray]:
    """``predict`` on arrays with Keras's hooks: ``on_predict_begin({})``, for each batch
    ``on_predict_batch_begin(i, {})`` and ``on_predict_batch_end(i, {"outputs": ...})`` (`predict_batch_logs`,
    when a callback watches them: `wants_predict_batches`), then ``on_predict_end({})``; returns the engine's
    outputs. ``model.stop_predicting`` set by a callback ends the run after that batch (the outputs so far), as
    Keras. Without batch watchers the arrays go to the engine in one call, ``progress`` with them."""
    model.stop_predicting = False
    cbs.call("on_predict_begin", {})
    if wants_predict_batches(cbs) or model.stop_predicting:
        n = xs[0].shape[0]
        outputs: List[List[np.ndarray]] = []
        for step, start in enumerate(range(0, n, batch_size)):
            cbs.call("on_predict_batch_begin", step, {})
            end = min(start + batch_size, n)
            model._sync()  # a callback may have changed the weights
            out = model._core.predict([a[start:end] for a in xs], end - start, None)
            outputs.append(out)
            cbs.call("on_predict_batch_end", step, predict_batch_logs(model, out))
            if model.stop_predicting:
                break
        joined = [np.concatenate([o[k] for o in outputs]) for k in range(len(outputs[0]))]
    else:
        model._sync()  # a callback may have changed shared layers
        joined = model._core.predict(xs, batch_size, progress)
    cbs.call("on_predict_end", {})
    return joined


def _evaluate_joined(model: Any, kept: List[Batch]) -> list:
    xs = [np.concatenate([b.xs[k] for b in kept]) for k in range(len(kept[0].xs))]
    ys = [np.concatenate([(b.ys or [])[k] for b in kept]) for k in range(len(kept[0].ys or []))]
    sw = None
    if any(b.sw is not None for b in kept):
        outs = len(ys)
        sw = []
        for j in range(outs):
            parts = [b.sw[j] if b.sw is not None and j < len(b.sw) and b.sw[j] is not None
                     else np.ones(b.n, np.float32) for b in kept]
            sw.append(np.concatenate(parts))
    return model._core.evaluate(xs, ys, sw, max(b.n for b in kept), None)


def evaluate(model: Any, x: Any, y: Any, batch_size: Optional[int], verbose: Any, sample_weight: Any,
             steps: Optional[int], callbacks: Any, return_dict: bool) -> Any:
    """`Model.evaluate` over a source."""
    from . import callbacks as callbacks_module
    from .models import _sorted_logs

    verbose = callbacks_module.resolve_verbose(verbose)
    _check_steps("steps", steps)
    source = make_source(x, y, sample_weight, None, False, batch_size, "evaluate")
    run = _Pass(source, _Converter(model, source.kind, "evaluate", True), _depth(source))
    cbs = callbacks_module.CallbackList(callbacks, model, {"verbose": verbose, "epochs": 1,
                                                           "steps": steps or source.num_batches}, verbose)
    try:
        model.stop_evaluating = False
        cbs.call("on_test_begin", {})
        raw = _evaluate_pass(model, source, run, steps, cbs)
    finally:
        run.end()
    if raw is None:
        raise ValueError(_EMPTY_GENERATOR if source.kind == "generator"
                         else f"evaluate: the {source.kind} has no batches")
    logs = _sorted_logs(raw)
    cbs.call("on_test_end", logs)
    if return_dict:
        return logs
    values = [float(v) for _, v in raw]
    return values[0] if len(values) == 1 else values


def predict(model: Any, x: Any, batch_size: Optional[int], verbose: Any, steps: Optional[int],
            callbacks: Any) -> Any:
    """`Model.predict` over a source: the outputs of every batch, joined."""
    from . import callbacks as callbacks_module

    verbose = callbacks_module.resolve_verbose(verbose)
    _check_steps("steps", steps)
    source = make_source(x, None, None, None, False, batch_size, "predict")
    run = _Pass(source, _Converter(model, source.kind, "predict", False), _depth(source))
    cbs = callbacks_module.CallbackList(callbacks, model, {"verbose": verbose, "epochs": 1,
                                                           "steps": steps or source.num_batches}, verbose)
    outputs: List[List[np.ndarray]] = []
    try:
        model.stop_predicting = False
        cbs.call("on_predict_begin", {})
        source.on_epoch_begin()
        budget = steps if steps is not None else source.num_batches
        feeder = run.start()
        feeder.allow(budget)
        step = 0
        while budget is None or step < budget:
            batch = feeder.get()
            if batch is None:
                if steps is not None and step and step < steps:
                    warnings.warn(_RAN_OUT, UserWarning, stacklevel=_caller_stacklevel())
                break
            cbs.call("on_predict_batch_begin", step, {})
            model._sync()
            try:
                out = model._core.predict(batch.xs, batch.n, None)
            except ValueError as exc:
                raise ValueError(f"{run.convert.where(batch.index)}: {exc}") from exc
            outputs.append(out)
            step += 1
            cbs.call("on_predict_batch_end", step - 1, predict_batch_logs(model, out))
            if model.stop_predicting:
                break  # a callback ended the run (Keras's model.stop_predicting)
        source.on_epoch_end()
    finally:
        run.end()
    if not outputs:
        raise ValueError(_EMPTY_GENERATOR if source.kind == "generator"
                         else f"predict: the {source.kind} has no batches")
    joined = [np.concatenate([o[k] for o in outputs]) for k in range(len(outputs[0]))]
    cbs.call("on_predict_end", {})
    return model._outputs_result(joined)
