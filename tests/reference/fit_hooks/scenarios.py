"""The callback hooks `fit` calls, with their logs, in a few tiny runs with validation: run by `generate.py` under
real Keras (the reference, `hooks.json`) and by tests/test_fit_validation_hooks.py under kerust. The module
imports neither library: `run_all(keras)` takes the one to use (`keras`, or `kerust` as keras).

Every run starts from the same fixed weights and trains with plain SGD without shuffling, so the logs (running
means per batch, epoch values) are the same numbers in both libraries up to float32 rounding."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end")


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


def _recorder(keras: Any, events: List[list]) -> Any:
    """A callback that appends [hook, batch or epoch index or None, logs] for every hook fit calls."""

    def hook(name: str) -> Callable:
        with_index = name not in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end")

        def record(*args: Any, **kwargs: Any) -> None:  # Keras passes some logs by keyword, kerust positionally
            index = args[0] if with_index else None
            rest = args[1:] if with_index else args
            logs = kwargs["logs"] if "logs" in kwargs else (rest[0] if rest else None)
            events.append([name, None if index is None else int(index),
                           None if logs is None else {k: float(v) for k, v in sorted(logs.items())}])
        return record

    cb = keras.callbacks.Callback()
    for name in HOOKS:
        setattr(cb, name, hook(name))
    return cb


def _run(keras: Any, fit: Callable[[Any, Any], Any]) -> Dict[str, Any]:
    events: List[list] = []
    m = _model(keras)
    history = fit(m, _recorder(keras, events))
    return {"events": events, "history": {k: [float(v) for v in vs] for k, vs in sorted(history.history.items())}}


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
    return {name: _run(keras, fit) for name, fit in runs.items()}
