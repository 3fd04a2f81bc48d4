"""The callback hooks of `fit`'s validation, `evaluate` and `predict`, against real Keras.

Keras's fit validates by calling ``evaluate`` with fit's own callbacks, so every callback sees, after an epoch's
training batches and before ``on_epoch_end`` (which gets the ``val_`` logs): ``on_test_begin({})``, per validation
batch ``on_test_batch_begin(i, {})`` and ``on_test_batch_end(i, logs so far)``, and ``on_test_end(logs)`` with
the validation results without the prefix. tests/reference/fit_hooks/hooks.json holds the hooks, indexes and logs
Keras 3.15.1 (JAX) called for the runs of scenarios.py there (arrays, sample weights, validation_split,
validation_freq, PyDatasets, generators), from fixed weights; kerust must call the same hooks in the same order
with the same logs (float32 rounding apart). With ``KERUST_KERAS_PYTHON`` set, the file is checked against a fresh
Keras run too.

``evaluate`` calls ``on_test_begin({})``, per batch ``on_test_batch_begin(i, {})`` and ``on_test_batch_end(i,
running logs)``, then ``on_test_end(results)``; ``predict`` calls ``on_predict_begin({})``, per batch
``on_predict_batch_begin(i, {})`` and ``on_predict_batch_end(i, {"outputs": batch outputs})`` (a dict of outputs
flattened into the logs), then ``on_predict_end({})``; both with params ``{"verbose", "epochs": 1, "steps"}``, both
honour ``steps`` on arrays (the first batches) and a callback's ``model.stop_evaluating`` /
``model.stop_predicting`` (the run ends after that batch). hooks.json holds these runs too (arrays, sample weights,
steps, PyDatasets, generators, list and dict outputs, a recorder that watches no batch).

kerust-only behaviour checked below: without a callback that watches the batches an evaluation (fit's validation,
evaluate) or a predict on arrays runs in one engine call (no batch hooks, the same results); with a metric that is
not a mean (AUC, precision, recall) the batch hooks come in the same order but get ``{}`` (kerust computes such a
metric over all the batches at once; Keras gives its running value), and ``on_test_end`` gets the exact results
(of the batches evaluated, when a callback stopped the evaluation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kerust as keras
from kerust import _data_sources

REFERENCE = Path(__file__).resolve().parent / "reference" / "fit_hooks"
sys.path.insert(0, str(REFERENCE))
try:
    import scenarios
finally:
    sys.path.remove(str(REFERENCE))

RTOL, ATOL = 1e-4, 1e-6  # two float32 implementations of the same steps


def _reference() -> dict:
    with open(REFERENCE / "hooks.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def kerust_runs() -> dict:
    return scenarios.run_all(keras)


def _same(got, expected, where: str) -> None:
    """The JSON of scenarios.plain: the same structure (dict keys, list lengths, arrays' shapes), numbers close."""
    if isinstance(expected, dict) and "ndarray" in expected:
        assert isinstance(got, dict) and "ndarray" in got, f"{where}: {got!r} is not an array (Keras: an array)"
        assert got["shape"] == expected["shape"], f"{where}: shape {got['shape']} != Keras's {expected['shape']}"
        np.testing.assert_allclose(got["ndarray"], expected["ndarray"], rtol=RTOL, atol=ATOL, err_msg=where)
    elif isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not a dict"
        assert sorted(got) == sorted(expected), f"{where}: keys {sorted(got)} != Keras's {sorted(expected)}"
        for k in expected:
            _same(got[k], expected[k], f"{where}[{k!r}]")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {got!r} != Keras's {expected!r}"
        for i, (g, e) in enumerate(zip(got, expected)):
            _same(g, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=where)
    else:
        assert got == expected, f"{where}: {got!r} != Keras's {expected!r}"


def _same_logs(got: dict, expected: dict, where: str) -> None:
    assert got is not None and expected is not None, where
    _same(got, expected, where)


def _compare(got: dict, expected: dict) -> None:
    sequence = [(e[0], e[1]) for e in got["events"]]
    keras_sequence = [(e[0], e[1]) for e in expected["events"]]
    assert sequence == keras_sequence
    for (hook, index, logs), (_, _, keras_logs) in zip(got["events"], expected["events"]):
        _same_logs(logs, keras_logs, f"{hook}({index})")
    assert sorted(got) == sorted(expected)
    for key in ("history", "params", "result"):
        if key in expected:
            _same(got[key], expected[key], key)


@pytest.mark.parametrize("run", sorted(_reference()["runs"]))
def test_hooks_and_logs_match_keras(run, kerust_runs) -> None:
    expected = _reference()["runs"][run]
    _compare(kerust_runs[run], expected)
    events = expected["events"]
    if "history" in expected:
        # the shape of Keras's validation, stated: each on_test_begin .. on_test_end block ends just before an
        # on_epoch_end whose val_ logs are on_test_end's logs
        for i, (hook, _, logs) in enumerate(events):
            if hook == "on_test_end":
                assert events[i + 1][0] == "on_epoch_end"
                assert {k[4:]: v for k, v in events[i + 1][2].items() if k.startswith("val_")} == logs
                assert events[i - 1][0] == "on_test_batch_end" and events[i - 1][2] == logs
        return
    # evaluate / predict: one begin .. end block, begin hooks get {}, params as Keras's
    kind = "test" if run.startswith("evaluate") else "predict"
    assert events[0] == [f"on_{kind}_begin", None, {}]
    assert events[-1][:2] == [f"on_{kind}_end", None]
    assert all(e[0].startswith(f"on_{kind}_") for e in events)
    assert all(logs == {} for hook, _, logs in events if hook.endswith("_begin"))
    assert sorted(expected["params"]) == ["epochs", "steps", "verbose"] and expected["params"]["epochs"] == 1
    if kind == "test":
        assert events[-1][2] == expected["result"]
        if events[-2][0] == "on_test_batch_end":
            assert events[-2][2] == expected["result"]  # the running logs of the last batch are the results
    else:
        assert events[-1][2] == {}


def test_reference_file_is_what_keras_gives() -> None:
    python = os.environ.get("KERUST_KERAS_PYTHON")
    if not python:
        pytest.skip("Keras is not installed here (test.sh sets KERUST_KERAS_PYTHON to the Keras venv)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("KERAS_BACKEND", "jax")
    done = subprocess.run([python, str(REFERENCE / "generate.py"), "--stdout"], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout)["runs"]
    committed = _reference()["runs"]
    assert sorted(fresh) == sorted(committed)
    for run in committed:
        _compare(fresh[run], committed[run])


# ---- kerust-only ---------------------------------------------------------------------------------------------------
class _Ends(keras.callbacks.Callback):
    """Watches only the ends of evaluations and epochs (no batch hooks): fit may validate in one engine call."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin", dict(logs)))

    def on_test_end(self, logs=None):
        self.events.append(("test_end", dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", dict(logs)))


def test_without_batch_watchers_validation_still_begins_and_ends() -> None:
    x, y = scenarios._data(10)
    xv, yv = scenarios._data(5, offset=4)
    ends = _Ends()
    m = scenarios._model(keras)
    cbs = keras.callbacks.CallbackList([ends], model=m)
    assert not _data_sources.wants_test_batches(cbs)
    m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv), validation_batch_size=2,
          callbacks=[ends])
    assert [e[0] for e in ends.events] == ["test_begin", "test_end", "epoch_end"] * 2
    expected = [e for e in _reference()["runs"]["arrays"]["events"] if e[0] == "on_test_end"]
    for (_, logs), (_, _, keras_logs) in zip([e for e in ends.events if e[0] == "test_end"], expected):
        _same_logs(logs, keras_logs, "on_test_end")
    assert all(logs == {} for hook, logs in ends.events if hook == "test_begin")


def test_who_makes_validation_run_batch_by_batch() -> None:
    m = scenarios._model(keras)

    def wants(*cbs) -> bool:
        return _data_sources.wants_test_batches(keras.callbacks.CallbackList(list(cbs), model=m))

    class Begin(keras.callbacks.Callback):
        def on_test_batch_begin(self, batch, logs=None):
            pass

    assert not wants()
    assert not wants(keras.callbacks.ProgbarLogger(), keras.callbacks.History(), keras.callbacks.EarlyStopping())
    assert wants(Begin())
    assert wants(keras.callbacks.LambdaCallback(on_test_batch_end=lambda batch, logs: None))
    pytest.importorskip("tensorboardX")
    # TensorBoard counts validation batches only for an int update_freq (the step its record_if reads)
    assert not wants(keras.callbacks.TensorBoard(os.devnull, write_graph=False))
    assert wants(keras.callbacks.TensorBoard(os.devnull, update_freq=2, write_graph=False))


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, bs):
        super().__init__()
        self.x, self.y, self.bs = x, y, bs

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        return self.x[i * self.bs:(i + 1) * self.bs], self.y[i * self.bs:(i + 1) * self.bs]


@pytest.mark.parametrize("source", ["arrays", "py_dataset"])
def test_a_metric_that_is_not_a_mean_gets_empty_batch_logs_and_exact_results(source) -> None:
    rng = np.random.default_rng(0)
    x, xv = rng.random((12, 3)).astype("float32"), rng.random((7, 3)).astype("float32")
    y, yv = (x.sum(1, keepdims=True) > 1.5).astype("float32"), (xv.sum(1, keepdims=True) > 1.5).astype("float32")
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    events: list = []
    rec = keras.callbacks.LambdaCallback(
        on_test_begin=lambda logs: events.append(("begin", None, logs)),
        on_test_batch_begin=lambda batch, logs: events.append(("batch_begin", batch, logs)),
        on_test_batch_end=lambda batch, logs: events.append(("batch_end", batch, logs)),
        on_test_end=lambda logs: events.append(("end", None, dict(logs))),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch, dict(logs))))
    val = (xv, yv) if source == "arrays" else _Batches(xv, yv, 3)
    h = m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, validation_data=val, validation_batch_size=3,
              callbacks=[rec])
    assert [(e[0], e[1]) for e in events] == [("begin", None), ("batch_begin", 0), ("batch_end", 0),
                                              ("batch_begin", 1), ("batch_end", 1), ("batch_begin", 2),
                                              ("batch_end", 2), ("end", None), ("epoch_end", 0)]
    assert all(e[2] == {} for e in events if e[0] in ("begin", "batch_begin", "batch_end"))
    logs = events[-2][2]
    assert sorted(logs) == ["accuracy", "auc", "loss"]
    evaluated = m.evaluate(xv, yv, batch_size=3, verbose=0, return_dict=True)
    for k in logs:
        np.testing.assert_allclose(logs[k], evaluated[k], rtol=1e-6)
        np.testing.assert_allclose(h.history[f"val_{k}"][0], evaluated[k], rtol=1e-6)


def test_a_callback_that_changes_the_weights_mid_validation_is_seen() -> None:
    """As Keras (it re-reads the model's state when a callback synced it): the batches after a change of weights
    are evaluated with the new weights."""
    x, y = scenarios._data(10)
    xv, yv = scenarios._data(4, offset=4)
    m = scenarios._model(keras)
    seen: list = []

    class ZeroAfterFirst(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(dict(logs))
            if batch == 0:
                self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

    m.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0, validation_data=(xv, yv),
          validation_batch_size=2, callbacks=[ZeroAfterFirst()])
    # the second batch is predicted as 0 everywhere: its loss is mean(y^2)
    second = float(np.mean(yv[2:] ** 2))
    np.testing.assert_allclose(seen[1]["loss"], (seen[0]["loss"] + second) / 2, rtol=1e-5)


# ---- evaluate and predict, kerust-only -----------------------------------------------------------------------------
class _EngineSpy:
    """Stands for a model's engine and notes the number of samples of each evaluate / predict call."""

    def __init__(self, core, calls: list) -> None:
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_calls", calls)

    def __getattr__(self, name):
        attr = getattr(self._core, name)
        if name not in ("evaluate", "predict"):
            return attr

        def spied(*args, **kwargs):
            self._calls.append((name, int(args[0][0].shape[0])))
            return attr(*args, **kwargs)
        return spied


def _spied_model() -> tuple:
    m = scenarios._model(keras)
    calls: list = []
    m._core = _EngineSpy(m._core, calls)
    return m, calls


def test_evaluate_and_predict_on_arrays_use_one_engine_call_unless_a_callback_watches_the_batches() -> None:
    x, y = scenarios._data(10)
    expected = _reference()["runs"]["evaluate_arrays"]["result"]
    m, calls = _spied_model()
    ends = _Ends()
    logs = m.evaluate(x, y, batch_size=4, verbose=0, return_dict=True,
                      callbacks=[ends, keras.callbacks.EarlyStopping(), keras.callbacks.History()])
    assert calls == [("evaluate", 10)]
    assert [e[0] for e in ends.events] == ["test_begin", "test_end"]
    _same_logs(logs, expected, "evaluate")
    calls.clear()
    logs = m.evaluate(x, y, batch_size=4, verbose=0, return_dict=True,
                      callbacks=[keras.callbacks.LambdaCallback(on_test_batch_begin=lambda batch, logs: None)])
    assert calls == [("evaluate", 4), ("evaluate", 4), ("evaluate", 2)]
    _same_logs(logs, expected, "evaluate batch by batch")
    calls.clear()
    out = m.predict(x, batch_size=4, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_predict_begin=lambda logs: None, on_predict_end=lambda logs: None)])
    assert calls == [("predict", 10)]
    calls.clear()
    seen: list = []
    out2 = m.predict(x, batch_size=4, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_predict_batch_end=lambda batch, logs: seen.append((batch, logs["outputs"].shape)))])
    assert calls == [("predict", 4), ("predict", 4), ("predict", 2)]
    assert seen == [(0, (4, 1)), (1, (4, 1)), (2, (2, 1))]
    np.testing.assert_array_equal(out, out2)


def test_evaluate_with_a_metric_that_is_not_a_mean_gets_empty_batch_logs_and_exact_results() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((9, 3)).astype("float32")
    y = (x.sum(1, keepdims=True) > 1.5).astype("float32")
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    events: list = []

    class Stop(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            events.append((batch, dict(logs)))
            if batch == 1:
                self.model.stop_evaluating = True

    logs = m.evaluate(x, y, batch_size=3, verbose=0, return_dict=True, callbacks=[Stop()])
    assert events == [(0, {}), (1, {})]
    # the results are those of the 2 batches evaluated (6 samples), computed at once
    exact = m.evaluate(x[:6], y[:6], batch_size=3, verbose=0, return_dict=True)
    assert sorted(logs) == ["accuracy", "auc", "loss"]
    for k in logs:
        np.testing.assert_allclose(logs[k], exact[k], rtol=1e-6)


def test_a_callback_that_changes_the_weights_mid_evaluate_or_predict_is_seen() -> None:
    x, y = scenarios._data(4, offset=4)
    seen: list = []

    class ZeroAfterFirst(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(dict(logs))
            if batch == 0:
                self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

        def on_predict_batch_end(self, batch, logs=None):
            if batch == 0:
                self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

    m = scenarios._model(keras)
    m.evaluate(x, y, batch_size=2, verbose=0, callbacks=[ZeroAfterFirst()])
    np.testing.assert_allclose(seen[1]["loss"], (seen[0]["loss"] + float(np.mean(y[2:] ** 2))) / 2, rtol=1e-5)
    m = scenarios._model(keras)
    out = m.predict(x, batch_size=2, verbose=0, callbacks=[ZeroAfterFirst()])
    assert np.all(out[:2] != 0) and np.all(out[2:] == 0)


def test_evaluate_with_a_batch_watcher_still_shows_the_progress_bar(capsys) -> None:
    x, y = scenarios._data(10)
    m = scenarios._model(keras)
    m.evaluate(x, y, batch_size=4, verbose=1,
               callbacks=[keras.callbacks.LambdaCallback(on_test_batch_end=lambda batch, logs: None)])
    out = capsys.readouterr().out
    assert "3/3" in out and "loss:" in out
    m.predict(x, batch_size=4, verbose=1,
              callbacks=[keras.callbacks.LambdaCallback(on_predict_batch_end=lambda batch, logs: None)])
    assert "3/3" in capsys.readouterr().out


def test_steps_on_arrays() -> None:
    x, y = scenarios._data(10)
    m = scenarios._model(keras)
    with pytest.warns(UserWarning, match="ran out of data"):
        logs = m.evaluate(x, y, batch_size=4, steps=5, verbose=0, return_dict=True)
    _same_logs(logs, _reference()["runs"]["evaluate_arrays"]["result"], "evaluate steps=5")
    with pytest.warns(UserWarning, match="ran out of data"):
        assert m.predict(x, batch_size=4, steps=4, verbose=0).shape == (10, 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="evaluate.*steps"):
            m.evaluate(x, y, steps=bad, verbose=0)
        with pytest.raises(ValueError, match="predict.*steps"):
            m.predict(x, steps=bad, verbose=0)


def test_validation_steps_limits_array_validation_to_its_first_batches() -> None:
    """Keras 3.15.1 (checked on JAX): with array validation_data, fit's validation is evaluate(steps=
    validation_steps): 1 of the 3 batches here, and val_loss is the loss of that batch."""
    import kerust

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32)
    xv, yv = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(12, 1)).astype(np.float32)
    model = kerust.Sequential([kerust.Input((3,)), kerust.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []

    class Count(kerust.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(batch)

    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(xv, yv), validation_steps=1,
                        callbacks=[Count()])
    assert seen == [0]
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(xv[:4], yv[:4], verbose=0), rel=1e-6)
    with pytest.raises(ValueError, match="validation_steps"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(xv, yv), validation_steps=0)
