"""Threads and processes: fit/evaluate/predict release the GIL, one model is safe to share between threads
(concurrent predicts give the serial results; a second training call from another thread is refused with a
clear RuntimeError and does not disturb the first), and kerust keeps working in a child made by ``os.fork()``
(rayon's global pool does not survive a fork; kerust runs on its own per-process pool)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time

import kerust
import numpy as np
import pytest
from kerust import layers

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX threads and fork")


def _data(n=512, n_in=32, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype("float32")
    y = kerust.utils.to_categorical(rng.integers(0, n_classes, size=n), n_classes)
    return x, y


def _mlp(seed=5, n_in=32, width=256, name=None):
    """Seeded, so two calls build identical models."""
    kerust.utils.set_random_seed(seed)
    m = kerust.Sequential([kerust.Input((n_in,)), layers.Dense(width, activation="relu"),
                           layers.Dense(width, activation="relu"), layers.Dense(10, activation="softmax")],
                          name=name)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


class _Counter(threading.Thread):
    """Counts in pure Python: it makes progress only while nobody holds the GIL for long."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.count = 0
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            self.count += 1


def _timed_count(call):
    counter = _Counter()
    counter.start()
    time.sleep(0.05)
    before = counter.count
    t0 = time.perf_counter()
    call()
    elapsed = time.perf_counter() - t0
    during = counter.count - before
    counter.stop = True
    counter.join()
    return during, elapsed


def test_gil_is_released_during_fit_evaluate_and_predict():
    x, y = _data(n=4096)
    m = _mlp(width=512)
    for name, call in [
        ("fit", lambda: m.fit(x, y, epochs=3, batch_size=32, verbose=0)),
        # inference is fast (AVX-512 GEMM): enough of it that each call lasts a measurable while
        ("evaluate", lambda: m.evaluate(np.tile(x, (24, 1)), np.tile(y, (24, 1)), batch_size=64, verbose=0)),
        ("predict", lambda: m.predict(np.tile(x, (24, 1)), batch_size=64, verbose=0)),
    ]:
        during, elapsed = _timed_count(call)
        assert elapsed > 0.2, f"{name} too fast to measure ({elapsed:.3f} s)"
        # a free Python thread counts millions per second here; one that gets the GIL only at the interpreter's
        # switch interval (the GIL held by the call) counts a few ten thousand
        assert during > 300_000 * elapsed, f"{name}: only {during} increments in {elapsed:.2f} s: GIL held?"


def test_concurrent_predicts_on_one_model_equal_serial_results():
    x, _ = _data(n=700)
    m = _mlp()
    serial = [m.predict(x[i::4], batch_size=64, verbose=0) for i in range(4)]
    results: dict = {}
    errors: list = []

    def worker(i: int) -> None:
        try:
            results[i] = [m.predict(x[i::4], batch_size=64, verbose=0) for _ in range(5)]
            results[i].append(m.predict_on_batch(x[i::4]))
            results[i].append(m.get_weights())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a predict thread hung"
    weights = m.get_weights()
    for i in range(4):
        for out in results[i][:6]:
            np.testing.assert_array_equal(out, serial[i])
        for a, b in zip(results[i][6], weights):
            np.testing.assert_array_equal(a, b)


def test_a_second_training_call_from_another_thread_is_refused_and_harmless():
    x, y = _data(n=6000)

    class HoldsFirstBatch(kerust.callbacks.Callback):
        """Holds the fit after its first batch until `proceed` is set: the other thread's calls then meet a fit
        in progress on any machine, however fast (no timing guess)."""

        def __init__(self, proceed):
            super().__init__()
            self.proceed = proceed
            self.started = threading.Event()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.started.set()
                assert self.proceed.wait(60)

    go = threading.Event()
    go.set()
    reference = _mlp(seed=11, width=768, name="reference")
    reference.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[HoldsFirstBatch(go)])

    m = _mlp(seed=11, width=768, name="shared")
    proceed = threading.Event()
    hold = HoldsFirstBatch(proceed)
    outcome: dict = {}

    def first():
        try:
            outcome["history"] = m.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[hold]).history
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=first)
    t.start()
    try:
        assert hold.started.wait(30)
        assert t.is_alive()
        busy = "model 'shared' is busy: another thread is running fit/evaluate/predict on it"
        with pytest.raises(RuntimeError, match=busy):
            m.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match=busy):
            m.train_on_batch(x[:16], y[:16])
        with pytest.raises(RuntimeError, match=busy):
            m.set_weights(reference.get_weights())
        with pytest.raises(RuntimeError, match=busy):
            m.layers[0].set_weights(reference.layers[0].get_weights())
    finally:
        proceed.set()
        t.join(60)
    assert not t.is_alive()
    assert "error" not in outcome, outcome.get("error")
    # the refused calls changed nothing: the first fit ends exactly where an undisturbed one does
    for a, b in zip(m.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == reference.optimizer.iterations
    # and the model is free again
    m.fit(x[:64], y[:64], epochs=1, verbose=0)


def test_predicts_from_another_thread_during_fit_wait_and_leave_the_fit_unchanged():
    x, y = _data(n=1500)
    reference = _mlp(seed=3, width=512)
    reference.fit(x, y, epochs=4, batch_size=32, verbose=0)
    m = _mlp(seed=3, width=512)
    box: dict = {}
    started = threading.Event()

    class Started(kerust.callbacks.Callback):
        def on_train_begin(self, logs=None):
            started.set()

    def train():
        try:
            m.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[Started()])
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
        started.set()

    t = threading.Thread(target=train)
    t.start()
    assert started.wait(30)
    predictions = refused = 0
    final = reference.get_weights()
    while t.is_alive():  # each predict waits for the engine call in progress, then runs between two of them
        out = m.predict(x[:50], verbose=0)
        assert out.shape == (50, 10) and np.isfinite(out).all()
        predictions += 1
        # a weight change from this thread is refused for the whole fit, between its engine calls too (had it
        # gone through mid-fit, the fit would end elsewhere; after the fit it changes nothing)
        try:
            m.set_weights(final)
        except RuntimeError as e:
            assert "is busy" in str(e)
            refused += 1
        else:
            break
    t.join()
    assert "error" not in box, box.get("error")
    assert predictions > 1 and refused >= 1
    for a, b in zip(m.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_progress_hook_calling_its_own_model_raises_instead_of_deadlocking():
    x, _ = _data(n=64)
    m = _mlp()
    box: dict = {}

    def call():
        try:
            m._core.predict(x, 8, lambda step, logs: m.get_weights())
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "deadlock: a progress hook waited for its own model"
    assert isinstance(box.get("error"), RuntimeError), box
    assert "from inside one of its own" in str(box["error"])
    assert m.predict(x, verbose=0).shape == (64, 10)


# ---- fork --------------------------------------------------------------------------------------------------------


def _fork_job(_):
    """In the forked child: train a fresh model and predict with the parent's trained one."""
    x, y = _data(n=256)
    fresh = _mlp(seed=21)
    fresh.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=True)
    return [w.copy() for w in fresh.get_weights()], _PARENT_MODEL.predict(x, verbose=0)


_PARENT_MODEL = None


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_fit_and_predict_work_in_a_forked_child():
    global _PARENT_MODEL
    x, y = _data(n=256)
    parent = _mlp(seed=21)
    parent.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=True)  # the worker pool exists now
    expected_weights = parent.get_weights()
    expected_pred = parent.predict(x, verbose=0)
    _PARENT_MODEL = parent
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            pending = pool.map_async(_fork_job, range(2))
            try:
                results = pending.get(timeout=60)
            except multiprocessing.TimeoutError:
                pytest.fail("kerust hung in a forked child (rayon pool inherited through fork?)")
    finally:
        _PARENT_MODEL = None
    for weights, pred in results:
        for a, b in zip(weights, expected_weights):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(pred, expected_pred)
    # the parent still works after forking
    np.testing.assert_array_equal(parent.predict(x, verbose=0), expected_pred)
