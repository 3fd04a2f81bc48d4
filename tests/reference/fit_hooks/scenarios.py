"""The callback hooks `fit`, `evaluate` and `predict` call, with their logs, in a few tiny runs (fit with
validation; evaluate and predict on arrays, PyDatasets and generators, with `steps`, with a callback that sets
`model.stop_evaluating` / `model.stop_predicting`, with a callback that watches no batches, with list and dict
outputs): run by `generate.py` under real Keras (the reference, `hooks.json`) and by
tests/test_fit_validation_hooks.py under kerust. The module imports neither library: `run_all(keras)` takes the
one to use (`keras`, or `kerust` as keras).

Every run starts from the same fixed weights and trains with plain SGD without shuffling, so the logs (running
means per batch, epoch values, predictions) are the same numbers in both libraries up to float32 rounding. Each
run records the events `[hook, batch or epoch index or None, logs]`, the callbacks' `params` (read at the first
begin hook) and its result: fit's History, evaluate's `return_dict=True` dict, predict's outputs. Arrays are
written as `{"ndarray": nested lists, "shape": [...]}` so they are told apart from lists of arrays."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")
_NO_INDEX = ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end")
ENDS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
        "on_predict_begin", "on_predict_end")  # a recorder of these only watches no batch of evaluate / predict


def plain(value: Any) -> Any:
    """A log value, param or result as JSON: a float or NumPy number as a float (a Python int, str, bool or None
    as it is), an array as {"ndarray": lists, "shape": [...]}, a list or dict item by item."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value  # params: verbose, epochs, steps
    a = np.asarray(value)
    if a.ndim == 0:
        return float(a)
    return {"ndarray": a.astype("float64").tolist(), "shape": list(a.shape)}


def _data(n: int, offset: int = 0) -> tuple:
    x = ((np.arange(n * 3).reshape(n, 3) + offset) % 7 / 7.0).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.25).astype("float32")
    return x, y


def _model(keras: Any) -> Any:
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)])
    m.set_weights([np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]], "float32"), np.array([0.05, 0.1], "float32"),
                   np.array([[0.7], [-0.6]], "float32"), np.array([0.02], "float32")])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return m


def _heads(keras: Any, structure: str) -> Any:
    """A model with two outputs "a" (2 units) and "b" (1 unit) given as a list or a dict, fixed weights."""
    inp = keras.Input((3,))
    hidden = keras.layers.Dense(2, activation="relu", name="hidden")(inp)
    a = keras.layers.Dense(2, name="a")(hidden)
    b = keras.layers.Dense(1, name="b")(hidden)
    m = keras.Model(inp, {"a": a, "b": b} if structure == "dict" else [a, b])
    m.set_weights([np.linspace(-0.6, 0.7, w.size).reshape(w.shape).astype("float32") for w in m.get_weights()])
    return m


def _recorder(keras: Any, events: List[list], params: Dict[str, Any], hooks: tuple = HOOKS) -> Any:
    """A callback that appends [hook, batch or epoch index or None, logs] for every hook of `hooks` called, and
    keeps its `params` as the first begin hook sees them in `params`."""
    cb = keras.callbacks.Callback()

    def hook(name: str) -> Callable:
        with_index = name not in _NO_INDEX

        def record(*args: Any, **kwargs: Any) -> None:  # Keras passes some logs by keyword, kerust positionally
            index = args[0] if with_index else None
            rest = args[1:] if with_index else args
            logs = kwargs["logs"] if "logs" in kwargs else (rest[0] if rest else None)
            events.append([name, None if index is None else int(index), None if logs is None else plain(logs)])
            if name.endswith("_begin") and not with_index and not params:
                params.update(plain(dict(cb.params)))
        return record

    for name in hooks:
        setattr(cb, name, hook(name))
    return cb


def _run(keras: Any, fit: Callable[[Any, Any], Any]) -> Dict[str, Any]:
    events: List[list] = []
    m = _model(keras)
    history = fit(m, _recorder(keras, events, {}))
    return {"events": events, "history": {k: [float(v) for v in vs] for k, vs in sorted(history.history.items())}}


def _run_call(keras: Any, make: Callable[[Any], Any], call: Callable[[Any, list], Any],
              hooks: tuple = HOOKS) -> Dict[str, Any]:
    """An evaluate or predict run: `call(model, callbacks)` on the model `make(keras)` gives, with a recorder."""
    events: List[list] = []
    params: Dict[str, Any] = {}
    m = make(keras)
    result = call(m, [_recorder(keras, events, params, hooks)])
    return {"events": events, "params": params, "result": plain(result)}


def run_all(keras: Any) -> Dict[str, Any]:
    """{run name: {"events": [[hook, index, logs], ...], "history": {...}}} for each run."""
    x, y = _data(10)
    xv, yv = _data(5, offset=4)
    sw = np.array([1.0, 0.5, 2.0, 0.0, 1.5], "float32")

    class Batches(keras.utils.PyDataset):
        def __init__(self, x: Any, y: Any, bs: int) -> None:
            super().__init__()
            self.x, self.y, self.bs = x, y, bs

        def __len__(self) -> int:
            return -(-len(self.x) // self.bs)

        def __getitem__(self, i: int) -> tuple:
            s = slice(i * self.bs, (i + 1) * self.bs)
            return self.x[s], self.y[s]

    def cycle(x: Any, y: Any, bs: int) -> Any:
        i = 0
        while True:
            rows = np.arange(i, i + bs) % len(x)
            yield x[rows], y[rows]
            i = (i + bs) % len(x)

    runs: Dict[str, Callable[[Any, Any], Any]] = {
        # arrays: 3 training batches of 4, 4, 2 and validation in batches of 2, 2, 1
        "arrays": lambda m, cb: m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                                      validation_data=(xv, yv), validation_batch_size=2, callbacks=[cb]),
        # validation sample weights
        "arrays_sample_weight": lambda m, cb: m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                                                    validation_data=(xv, yv, sw), validation_batch_size=2,
                                                    callbacks=[cb]),
        # the last 30 % as validation, one batch of 3 (the batch size of training)
        "validation_split": lambda m, cb: m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                                                validation_split=0.3, callbacks=[cb]),
        # validation after epochs 2 and 4 only
        "validation_freq": lambda m, cb: m.fit(x, y, batch_size=5, epochs=4, shuffle=False, verbose=0,
                                               validation_data=(xv, yv), validation_freq=2, callbacks=[cb]),
        # PyDatasets for training (3 batches) and validation (2 batches)
        "py_dataset": lambda m, cb: m.fit(Batches(x, y, 4), epochs=2, shuffle=False, verbose=0,
                                          validation_data=Batches(xv, yv, 3), callbacks=[cb]),
        # a validation generator read 2 batches at a time. (Keras starts each validation again with the 2 batches
        # it peeked at first, kerust continues the generator: a cycle of exactly 2 batches makes them the same.)
        "generator_validation_steps": lambda m, cb: m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                                                          validation_data=cycle(xv[:4], yv[:4], 2),
                                                          validation_steps=2, callbacks=[cb]),
        # steps_per_epoch with a training generator and validation arrays
        "generator_training": lambda m, cb: m.fit(cycle(x, y, 3), steps_per_epoch=2, epochs=2, shuffle=False,
                                                  verbose=0, validation_data=(xv, yv), validation_batch_size=4,
                                                  callbacks=[cb]),
    }
    out = {name: _run(keras, fit) for name, fit in runs.items()}

    class StopEvaluating(keras.callbacks.Callback):
        """Ends an evaluation after its batch `at` (Keras reads model.stop_evaluating after each batch)."""

        def __init__(self, at: int) -> None:
            super().__init__()
            self.at = at

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == self.at:
                self.model.stop_evaluating = True

    class StopPredicting(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 0:
                self.model.stop_predicting = True

    # fit's validation ended by a callback after its first batch: the val_ logs are that batch's
    out["validation_stop_evaluating"] = _run(keras, lambda m, cb: m.fit(
        x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, validation_data=(xv, yv), validation_batch_size=2,
        callbacks=[cb, StopEvaluating(0)]))

    def evaluate(*args: Any, extra: tuple = (), **kwargs: Any) -> Callable[[Any, list], Any]:
        return lambda m, cbs: m.evaluate(*args, verbose=0, return_dict=True, callbacks=cbs + list(extra), **kwargs)

    def predict(*args: Any, extra: tuple = (), **kwargs: Any) -> Callable[[Any, list], Any]:
        return lambda m, cbs: m.predict(*args, verbose=0, callbacks=cbs + list(extra), **kwargs)

    def inputs_only(x: Any, bs: int) -> Any:
        i = 0
        while True:
            yield (x[np.arange(i, i + bs) % len(x)],)  # Keras wants a tuple (inputs,)
            i = (i + bs) % len(x)

    class Inputs(keras.utils.PyDataset):
        def __init__(self, x: Any, bs: int) -> None:
            super().__init__()
            self.x, self.bs = x, bs

        def __len__(self) -> int:
            return -(-len(self.x) // self.bs)

        def __getitem__(self, i: int) -> Any:
            return self.x[i * self.bs:(i + 1) * self.bs]

    calls: Dict[str, tuple] = {
        # evaluate on arrays: 3 batches of 4, 4, 2, the running logs at each batch end
        "evaluate_arrays": (_model, evaluate(x, y, batch_size=4)),
        "evaluate_sample_weight": (_model, evaluate(xv, yv, sample_weight=sw, batch_size=2)),
        # the first 2 batches only
        "evaluate_steps": (_model, evaluate(x, y, batch_size=4, steps=2)),
        "evaluate_py_dataset": (_model, evaluate(Batches(x, y, 3))),
        "evaluate_generator_steps": (_model, evaluate(cycle(x, y, 3), steps=3)),
        # a callback stops the evaluation after batch 1 of 3: the results are those of 2 batches
        "evaluate_stop_evaluating": (_model, evaluate(x, y, batch_size=4, extra=(StopEvaluating(1),))),
        "evaluate_stop_evaluating_py_dataset": (_model, evaluate(Batches(x, y, 3), extra=(StopEvaluating(0),))),
        # a callback that watches no batch (kerust then evaluates in one engine call)
        "evaluate_ends_only": (_model, evaluate(x, y, batch_size=4), ENDS),
        # predict: logs {"outputs": batch outputs}
        "predict_arrays": (_model, predict(x, batch_size=4)),
        "predict_steps": (_model, predict(x, batch_size=4, steps=2)),
        "predict_py_dataset": (_model, predict(Inputs(x, 4))),
        "predict_generator_steps": (_model, predict(inputs_only(x, 3), steps=2)),
        "predict_stop_predicting": (_model, predict(x, batch_size=4, extra=(StopPredicting(),))),
        "predict_stop_predicting_py_dataset": (_model, predict(Inputs(x, 3), extra=(StopPredicting(),))),
        "predict_ends_only": (_model, predict(x, batch_size=4), ENDS),
        # two outputs: {"outputs": [a, b]} for a list; a dict of outputs is flattened into the logs {"a", "b"}
        "predict_list_outputs": (lambda k: _heads(k, "list"), predict(x, batch_size=4)),
        "predict_dict_outputs": (lambda k: _heads(k, "dict"), predict(x, batch_size=4)),
    }
    for name, (make, call, *hooks) in calls.items():
        out[name] = _run_call(keras, make, call, *hooks)
    return out
