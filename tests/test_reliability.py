"""Reliability: Ctrl-C during fit/evaluate/predict, NaN/inf inputs reported, memory flat over long runs,
bit-identical results for any thread count, and a randomized sweep of hostile arguments over the public API.

Some checks run in a subprocess (``python tests/test_reliability.py <mode>``) so that a thread count can be set
before kerust starts, memory is measured in a clean process, and an abort is seen as an exit status instead of
killing the test run. ``KERUST_LONG_TESTS=1`` makes them longer (more cycles, more examples); see README.md,
"Guarantees"."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust import layers, optimizers

import seed_models

LONG = os.environ.get("KERUST_LONG_TESTS", "") not in ("", "0")
HERE = Path(__file__).resolve()


def _run_mode(mode: str, *args: str, env: dict | None = None, timeout: float = 120) -> dict:
    """Run ``python tests/test_reliability.py mode args...``; its last stdout line is a JSON result."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, str(HERE), mode, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)
    assert proc.returncode == 0, (f"`{mode}` subprocess died or failed (rc={proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- Ctrl-C ---------------------------------------------------------------------------------------------------


def _heavy_mlp(seed: int = 17):
    """About 10 ms per training step of 64 samples on two cores: long calls, fast reaction."""
    kerust.utils.set_random_seed(seed)
    m = kerust.Sequential([kerust.Input((16,)), layers.Dense(1024, activation="relu"),
                           layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")])
    m.compile(optimizer=optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy",
              metrics=["accuracy"])
    return m


def _heavy_data(reps: int):
    rng = np.random.default_rng(0)
    small = rng.normal(size=(64, 16)).astype("float32")
    labels = rng.integers(0, 10, size=64)
    return np.tile(small, (reps, 1)), kerust.utils.to_categorical(np.tile(labels, reps), 10)


def _interrupt_after(delay: float, call) -> float:
    """Send SIGINT to this process ``delay`` s into ``call()``; return seconds from the signal to the
    KeyboardInterrupt. A late signal (after ``call`` returned) is absorbed here, never by the test run."""
    sent: list = []

    def fire() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(delay, fire)
    try:
        timer.start()
        t_start = time.perf_counter()
        try:
            call()
        except KeyboardInterrupt:
            caught = time.perf_counter()
        else:
            pytest.fail(f"no KeyboardInterrupt: the call returned after {time.perf_counter() - t_start:.2f} s")
        assert sent, "KeyboardInterrupt before the signal was sent"
        return caught - sent[0]
    finally:
        timer.cancel()
        timer.join()
        try:
            time.sleep(0.05)  # a signal that arrived after the call returned is handled (and dropped) here
        except KeyboardInterrupt:
            pass
        signal.signal(signal.SIGINT, previous)


def test_sigint_interrupts_fit_within_a_second_and_keeps_the_last_completed_step():
    x, y = _heavy_data(reps=600)  # one epoch of 600 steps: several seconds if nothing stops it
    m = _heavy_mlp()
    delay = _interrupt_after(0.4, lambda: m.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0))
    assert delay < 1.0, f"KeyboardInterrupt came {delay:.2f} s after SIGINT"
    done = m.optimizer.iterations
    assert 0 < done < 600
    # exactly the weights after `done` whole steps: replaying those steps on a twin gives the same bits
    twin = _heavy_mlp()
    twin.fit(x[: done * 64], y[: done * 64], epochs=1, batch_size=64, shuffle=False, verbose=0)
    assert twin.optimizer.iterations == done
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and training goes on from there
    hist = m.fit(x[:256], y[:256], epochs=2, batch_size=64, verbose=0)
    assert all(math.isfinite(v) for v in hist.history["loss"])
    assert m.optimizer.iterations == done + 8


def test_sigint_interrupts_evaluate_and_predict_within_a_second():
    x, y = _heavy_data(reps=1500)  # 96000 samples: several seconds of inference
    m = _heavy_mlp()
    before = m.get_weights()
    for name, call in [("evaluate", lambda: m.evaluate(x, y, batch_size=64, verbose=0)),
                       ("predict", lambda: m.predict(x, batch_size=64, verbose=0))]:
        delay = _interrupt_after(0.3, call)
        assert delay < 1.0, f"{name}: KeyboardInterrupt came {delay:.2f} s after SIGINT"
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    out = m.predict(x[:64], verbose=0)
    assert out.shape == (64, 10) and np.isfinite(out).all()
    loss, acc = m.evaluate(x[:640], y[:640], verbose=0)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0
    m.fit(x[:128], y[:128], epochs=1, batch_size=64, verbose=0)
    assert m.optimizer.iterations == 2


def test_sigint_interrupts_a_call_waiting_for_a_busy_model():
    x, y = _heavy_data(reps=150)
    m = _heavy_mlp()
    started = threading.Event()

    class Started(kerust.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()

    t = threading.Thread(target=lambda: m.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[Started()]))
    t.start()
    try:
        assert started.wait(30)
        delay = _interrupt_after(0.3, lambda: m.predict(x[:64], verbose=0))  # waits for the fit's epoch
        assert delay < 1.0, f"KeyboardInterrupt came {delay:.2f} s after SIGINT"
        assert t.is_alive(), "the fit ended before the test could check anything"
    finally:
        t.join(60)
    assert m.optimizer.iterations == 150


# ---- NaN / inf in inputs -----------------------------------------------------------------------------------------


def _small_model():
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss="categorical_crossentropy")
    return m


def test_non_finite_inputs_are_reported_with_a_warning():
    m = _small_model()
    x = np.zeros((8, 4), "float32")
    y = kerust.utils.to_categorical(np.arange(8) % 3, 3)
    x_bad = x.copy()
    x_bad[1, 2] = np.nan
    x_bad[3, 0] = np.inf
    x_bad[5, 1] = -np.inf
    with pytest.warns(UserWarning, match=r"fit: `x` contains 3 non-finite value\(s\) \(1 NaN, 2 inf\)") as rec:
        m.fit(x_bad, y, verbose=0)
    assert rec[0].filename == __file__, "the warning should point at the caller's line"
    y_bad = y.copy()
    y_bad[0, 0] = np.nan
    with pytest.warns(UserWarning, match=r"evaluate: `y` contains 1 non-finite"):
        m.evaluate(x, y_bad, verbose=0)
    with pytest.warns(UserWarning, match=r"evaluate: `x` contains 1 non-finite"):
        m.evaluate(np.where(np.arange(32).reshape(8, 4) == 7, np.nan, x), y, verbose=0)
    with pytest.warns(UserWarning, match=r"fit: `validation_data x` contains 1 non-finite"):
        m.fit(x, y, validation_data=(x_bad[:2], y[:2]), verbose=0)
    with pytest.warns(UserWarning, match=r"fit: `y` contains"):
        m.fit(x, y_bad, verbose=0)
    # finite data: no warning at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2 = _small_model()
        m2.fit(x, y, verbose=0)
        m2.evaluate(x, y, verbose=0)
        m2.predict(x_bad, verbose=0)  # predict is not checked (as Keras): NaN in, NaN out


def test_error_contract_rows_not_covered_elsewhere(tmp_path):
    """README "Errors": the rows whose other tests live in test_errors.py / test_threads.py / test_saving.py."""
    m = kerust.Sequential([kerust.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                           layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    y = kerust.utils.to_categorical([0, 1], 3)
    # wrong channel count, wrong rank of x
    for x in (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8)), np.zeros((2, 8, 8, 1, 1))):
        for call in (lambda x=x: m.predict(x, verbose=0), lambda x=x: m.fit(x, y, verbose=0),
                     lambda x=x: m.evaluate(x, y, verbose=0)):
            with pytest.raises(ValueError, match=r"expected shape \(None, 8, 8, 1\)"):
                call()
    # targets of the wrong rank
    with pytest.raises(ValueError, match="same shape"):
        m.fit(np.zeros((2, 8, 8, 1)), np.zeros((2, 3, 1)), verbose=0)
    # calling things in the wrong order
    unbuilt = kerust.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="not been built"):
        unbuilt.count_params()
    with pytest.raises(ValueError, match="not built"):
        unbuilt.load_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="no layers"):
        kerust.Sequential().predict(np.zeros((2, 3)), verbose=0)
    with pytest.raises(ValueError, match="No such layer"):
        m.get_layer("nope")
    # files that are not there
    with pytest.raises(OSError):
        kerust.saving.load_model(tmp_path / "missing.keras")
    with pytest.raises(OSError):
        m.load_weights(tmp_path / "missing.weights.h5")


# ---- long runs: memory ---------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_main(cycles: int, epochs: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = kerust.utils.to_categorical(rng.integers(0, 3, size=256), 3)

    def cycle(i: int) -> None:
        m = kerust.Sequential([kerust.Input((8,)), layers.Dense(32, activation="relu"), layers.Dropout(0.2),
                               layers.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        m.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
        m.predict(x, verbose=0)
        m.evaluate(x, y, verbose=0)
        m.train_on_batch(x[:32], y[:32])
        m.set_weights(m.get_weights())

    for i in range(30):
        cycle(i)
    start = _rss_mb()
    samples = []
    for i in range(cycles):
        cycle(i)
        if i % 50 == 0:
            samples.append(_rss_mb())
    end = _rss_mb()

    rss_by_epoch: dict = {}

    class Probe(kerust.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rss_by_epoch[epoch] = _rss_mb()

    m = kerust.Sequential([kerust.Input((8,)), layers.Dense(64, activation="relu"),
                           layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=epochs, batch_size=16, validation_data=(x[:64], y[:64]), verbose=0, callbacks=[Probe()])
    return {"start": start, "end": end, "samples": samples, "epoch_10": rss_by_epoch[9],
            "epoch_last": rss_by_epoch[epochs - 1]}


def test_memory_stays_flat_over_many_cycles_and_a_long_fit():
    cycles, epochs = (3000, 1000) if LONG else (300, 100)
    r = _run_mode("memory", str(cycles), str(epochs), timeout=1800 if LONG else 120)
    growth = r["end"] - r["start"]
    assert growth < 30, f"RSS grew {growth:.1f} MB over {cycles} build/fit/predict/evaluate cycles: {r}"
    fit_growth = r["epoch_last"] - r["epoch_10"]
    assert fit_growth < 10, f"RSS grew {fit_growth:.1f} MB from epoch 10 to epoch {epochs}: {r}"


# ---- determinism across runs and thread counts -----------------------------------------------------------------


def _determinism_main() -> dict:
    import hashlib

    def digest(arrays) -> str:
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        return h.hexdigest()

    rng = np.random.default_rng(1)
    images = rng.random(size=(48, 28, 28, 1)).astype("float32")
    labels = kerust.utils.to_categorical(rng.integers(0, 10, size=48), 10)
    flat = rng.normal(size=(200, 20)).astype("float32")
    flat_y = kerust.utils.to_categorical(rng.integers(0, 4, size=200), 4)

    def seed_cnn() -> list:
        kerust.utils.set_random_seed(2024)
        m = seed_models.seed_cnn()
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        hist = m.fit(images, labels, epochs=2, batch_size=16, verbose=0)
        return [*m.get_weights(), m.predict(images, verbose=0), np.array(hist.history["loss"])]

    def mlp_dropout() -> list:
        kerust.utils.set_random_seed(77)
        m = kerust.Sequential([kerust.Input((20,)), layers.Dense(64, activation="relu"), layers.Dropout(0.5),
                               layers.Dense(32, activation="relu"), layers.Dropout(0.25),
                               layers.Dense(4, activation="softmax")])
        m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        hist = m.fit(flat, flat_y, epochs=4, batch_size=16, validation_split=0.2, verbose=0)
        return [*m.get_weights(), np.array(hist.history["loss"]), np.array(hist.history["val_loss"])]

    def functional() -> list:
        # the graph engine's paths at once: two inputs, a shared convolution fused with its max pooling in both
        # branches, merges, BatchNormalization, Dropout, a nested Sequential and two outputs
        kerust.utils.set_random_seed(5)
        a = kerust.Input((28, 28, 1))
        b = kerust.Input((20,))
        conv = layers.Conv2D(8, 3, activation="relu")
        pool = layers.MaxPooling2D(2)
        left = layers.Flatten()(pool(conv(a)))
        right = layers.Flatten()(layers.MaxPooling2D(2)(conv(a)))
        images_branch = layers.Dense(16, activation="relu")(layers.Average()([left, right]))
        tail = kerust.Sequential([layers.Dense(16, activation="relu"), layers.BatchNormalization(),
                                  layers.Dropout(0.3)])
        flat_branch = tail(b)
        joined = layers.Concatenate()([images_branch, flat_branch, layers.Multiply()([images_branch, flat_branch])])
        out_cls = layers.Dense(10, activation="softmax", name="cls")(joined)
        out_reg = layers.Dense(1, name="reg")(layers.Add()([images_branch, flat_branch]))
        m = kerust.Model([a, b], [out_cls, out_reg])
        m.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.3],
                  metrics=[["accuracy"], ["mae"]])
        hist = m.fit([images, flat[:48]], [labels, flat[:48, :1]], epochs=2, batch_size=16, verbose=0)
        return [*m.get_weights(), *m.predict([images, flat[:48]], verbose=0),
                *[np.array(v) for _, v in sorted(hist.history.items())]]

    return {"cnn": [digest(seed_cnn()), digest(seed_cnn())],
            "mlp": [digest(mlp_dropout()), digest(mlp_dropout())],
            "functional": [digest(functional()), digest(functional())]}


def test_seeded_runs_are_bit_identical_for_1_2_and_4_threads():
    results = {n: _run_mode("determinism", env={"RAYON_NUM_THREADS": str(n)}) for n in (1, 2, 4)}
    for n, r in results.items():
        assert r["cnn"][0] == r["cnn"][1], f"two seeded CNN runs differ with {n} threads"
        assert r["mlp"][0] == r["mlp"][1], f"two seeded MLP runs differ with {n} threads"
        assert r["functional"][0] == r["functional"][1], f"two seeded functional runs differ with {n} threads"
    assert results[1] == results[2] == results[4], results


# ---- hostile arguments: a randomized sweep (Hypothesis) ---------------------------------------------------------


def _sweep_targets() -> list:
    """(name, function of one hostile value) over the public API."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = kerust.utils.to_categorical(np.arange(6) % 3, 3)

    def model():
        m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, activation="softmax")])
        m.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    def image_model(layer):
        return kerust.Sequential([kerust.Input((6, 6, 2)), layer])

    return [
        ("Dense(units)", lambda v: layers.Dense(v)),
        ("Dense(activation)", lambda v: layers.Dense(3, activation=v)),
        ("Dense(use_bias) built", lambda v: kerust.Sequential([kerust.Input((4,)), layers.Dense(3, use_bias=v)])),
        ("Dense(kernel_initializer) built",
         lambda v: kerust.Sequential([kerust.Input((4,)), layers.Dense(3, kernel_initializer=v)])),
        ("Dense(bias_initializer)", lambda v: layers.Dense(3, bias_initializer=v)),
        ("Dense(name)", lambda v: layers.Dense(3, name=v)),
        ("Dense(input_shape)", lambda v: kerust.Sequential([layers.Dense(3, input_shape=v)])),
        ("Dense(units) built", lambda v: kerust.Sequential([kerust.Input((4,)), layers.Dense(v)])),
        ("Conv2D(filters)", lambda v: image_model(layers.Conv2D(v, 3))),
        ("Conv2D(kernel_size)", lambda v: image_model(layers.Conv2D(2, v))),
        ("Conv2D(strides)", lambda v: image_model(layers.Conv2D(2, 3, strides=v))),
        ("Conv2D(padding)", lambda v: image_model(layers.Conv2D(2, 3, padding=v))),
        ("Conv2D(activation)", lambda v: image_model(layers.Conv2D(2, 3, activation=v))),
        ("MaxPooling2D(pool_size)", lambda v: image_model(layers.MaxPooling2D(v))),
        ("MaxPooling2D(padding)", lambda v: image_model(layers.MaxPooling2D(2, padding=v))),
        ("AveragePooling2D(strides)", lambda v: image_model(layers.AveragePooling2D(2, strides=v))),
        ("GlobalAveragePooling2D(keepdims)", lambda v: image_model(layers.GlobalAveragePooling2D(keepdims=v))),
        ("Dropout(rate)", lambda v: layers.Dropout(v)),
        ("Dropout(seed)", lambda v: layers.Dropout(0.5, seed=v)),
        ("BatchNormalization(momentum)", lambda v: layers.BatchNormalization(momentum=v)),
        ("BatchNormalization(epsilon)", lambda v: layers.BatchNormalization(epsilon=v)),
        ("BatchNormalization(axis)", lambda v: image_model(layers.BatchNormalization(axis=v))),
        ("Reshape(target_shape)", lambda v: kerust.Sequential([kerust.Input((4,)), layers.Reshape(v)])),
        ("Flatten(data_format)", lambda v: layers.Flatten(data_format=v)),
        ("Activation", lambda v: layers.Activation(v)),
        ("Input(shape)", lambda v: kerust.Input(shape=v)),
        ("Input((v,)) + Dense", lambda v: kerust.Sequential([kerust.Input((v,)), layers.Dense(2)])),
        ("Sequential(layers)", lambda v: kerust.Sequential(v)),
        ("Sequential.add", lambda v: kerust.Sequential().add(v)),
        ("Sequential.build", lambda v: kerust.Sequential([layers.Dense(2)]).build(v)),
        ("fit(x)", lambda v: model().fit(v, y, verbose=0)),
        ("fit(y)", lambda v: model().fit(x, v, verbose=0)),
        ("fit(x=v, y=v)", lambda v: model().fit(v, v, verbose=0)),
        ("fit(batch_size)", lambda v: model().fit(x, y, batch_size=v, verbose=0)),
        ("fit(epochs)", lambda v: model().fit(x, y, epochs=v if not isinstance(v, int) or v < 50 else -v,
                                              verbose=0)),
        ("fit(validation_split)", lambda v: model().fit(x, y, validation_split=v, verbose=0)),
        ("fit(validation_data)", lambda v: model().fit(x, y, validation_data=v, verbose=0)),
        ("fit(validation_data=(x, v))", lambda v: model().fit(x, y, validation_data=(x, v), verbose=0)),
        ("fit(sample_weight)", lambda v: model().fit(x, y, sample_weight=v, verbose=0)),
        ("fit(class_weight)", lambda v: model().fit(x, y, class_weight=v, verbose=0)),
        ("fit(steps_per_epoch)", lambda v: model().fit(x, y, steps_per_epoch=v, verbose=0)),
        ("fit(initial_epoch)", lambda v: model().fit(x, y, initial_epoch=v, verbose=0)),
        ("fit(verbose)", lambda v: model().fit(x, y, verbose=v)),
        ("fit(callbacks)", lambda v: model().fit(x, y, callbacks=v, verbose=0)),
        ("predict(x)", lambda v: model().predict(v, verbose=0)),
        ("predict(batch_size)", lambda v: model().predict(x, batch_size=v, verbose=0)),
        ("predict_on_batch(x)", lambda v: model().predict_on_batch(v)),
        ("evaluate(x)", lambda v: model().evaluate(v, y, verbose=0)),
        ("evaluate(y)", lambda v: model().evaluate(x, v, verbose=0)),
        ("evaluate(batch_size)", lambda v: model().evaluate(x, y, batch_size=v, verbose=0)),
        ("train_on_batch(x)", lambda v: model().train_on_batch(v, y)),
        ("train_on_batch(y)", lambda v: model().train_on_batch(x, v)),
        ("test_on_batch(x)", lambda v: model().test_on_batch(v, y)),
        ("set_weights(v)", lambda v: model().set_weights(v)),
        ("set_weights([v, b])", lambda v: model().set_weights([v, np.zeros(3)])),
        ("set_weights([k, v])", lambda v: model().set_weights([np.zeros((4, 3)), v])),
        ("layer.set_weights([k, v])", lambda v: model().layers[0].set_weights([np.zeros((4, 3)), v])),
        ("compile(optimizer)", lambda v: model().compile(optimizer=v, loss="mse")),
        ("compile(loss)", lambda v: model().compile(optimizer="sgd", loss=v)),
        ("compile(metrics)", lambda v: model().compile(optimizer="sgd", loss="mse", metrics=v)),
        ("optimizers.get", lambda v: optimizers.get(v)),
        ("SGD(learning_rate)", lambda v: optimizers.SGD(learning_rate=v)),
        ("SGD(momentum)", lambda v: optimizers.SGD(momentum=v)),
        ("Adam(beta_1)", lambda v: optimizers.Adam(beta_1=v)),
        ("Adam(epsilon)", lambda v: optimizers.Adam(epsilon=v)),
        ("RMSprop(rho)", lambda v: optimizers.RMSprop(rho=v)),
        ("Adam(clipnorm)", lambda v: optimizers.Adam(clipnorm=v)),
        ("optimizer.learning_rate = v", lambda v: setattr(model().optimizer, "learning_rate", v)),
        ("losses.get", lambda v: kerust.losses.get(v)),
        ("MeanSquaredError()(v, y)", lambda v: kerust.losses.MeanSquaredError()(v, y)),
        ("MeanAbsoluteError()(y, v)", lambda v: kerust.losses.MeanAbsoluteError()(y, v)),
        ("CategoricalCrossentropy()(y, v)", lambda v: kerust.losses.CategoricalCrossentropy()(y, v)),
        ("CategoricalCrossentropy(from_logits)", lambda v: kerust.losses.CategoricalCrossentropy(from_logits=v)),
        ("SparseCategoricalCrossentropy()(v, y)", lambda v: kerust.losses.SparseCategoricalCrossentropy()(v, y)),
        ("BinaryCrossentropy()(v, v)", lambda v: kerust.losses.BinaryCrossentropy()(v, v)),
        ("to_categorical(v)", lambda v: kerust.utils.to_categorical(v)),
        ("to_categorical(num_classes)", lambda v: kerust.utils.to_categorical([0, 1], num_classes=v)),
        ("normalize(v)", lambda v: kerust.utils.normalize(v)),
        ("set_random_seed(v)", lambda v: kerust.utils.set_random_seed(v)),
    ]


def _sweep_main(examples: int, witness: str) -> dict:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    ints = st.one_of(st.integers(-3, 40),
                     st.sampled_from([2**31 - 1, 2**31, 2**32, 2**40, 2**62, 2**63, 2**64, -(2**63), 10**30]))
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    scalar = st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=6), st.binary(max_size=4),
                       st.complex_numbers(max_magnitude=10), st.sampled_from(["relu", "same", "adam", "mse",
                                                                              "softmax", "valid", ""]))
    dtypes = st.sampled_from(["float32", "float64", "float16", "int64", "int8", "uint8", "bool", "complex64",
                              "U2", "datetime64[s]"])
    arrays = hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))
    objects = st.lists(scalar, max_size=4).map(lambda items: np.array(items + [None], dtype=object))
    value = st.recursive(
        st.one_of(scalar, arrays, objects),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                                st.dictionaries(st.one_of(st.text(max_size=4), ints), inner, max_size=3)),
        max_leaves=8,
    )
    allowed = (ValueError, TypeError, RuntimeError)
    problems: dict = {}
    def make_check(name, fn):
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=False,
                  suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate, Phase.shrink))
        @given(value)
        def check(v):
            with open(witness, "w") as f:  # names the input if the process dies on it
                f.write(f"{name}: {v!r}"[:2000])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fn(v)
            except allowed as e:
                text = str(e)
                if type(e).__name__ == "PanicException" or "internal error" in text or "panicked" in text:
                    raise AssertionError(f"panic surfaced as {type(e).__name__}: {text[:300]}") from None
            except MemoryError:
                # Keras's own to_categorical allocates (n, num_classes) and fails the same way
                if not name.startswith("to_categorical"):
                    raise AssertionError("MemoryError") from None
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 - anything else is the finding
                raise AssertionError(f"{type(e).__module__}.{type(e).__name__}: {str(e)[:300]}") from None
            finally:
                kerust.utils.set_random_seed(1234)

        return check

    for name, fn in _sweep_targets():
        check = make_check(name, fn)
        try:
            check()
        except AssertionError as e:
            problems[name] = str(e)[:1000]
    return {"problems": problems}


def test_hostile_argument_sweep_raises_only_clean_errors(tmp_path):
    pytest.importorskip("hypothesis")
    witness = tmp_path / "current_input.txt"
    examples = 400 if LONG else 8
    full_env = dict(os.environ)
    proc = subprocess.run([sys.executable, str(HERE), "sweep", str(examples), str(witness)], capture_output=True,
                          text=True, timeout=3600 if LONG else 120, env=full_env, check=False)
    if proc.returncode != 0:
        last = witness.read_text() if witness.exists() else "?"
        pytest.fail(f"the sweep process died (rc={proc.returncode}) on input {last}:\n{proc.stderr[-3000:]}")
    problems = json.loads(proc.stdout.strip().splitlines()[-1])["problems"]
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "memory":
        out = _memory_main(int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "determinism":
        out = _determinism_main()
    elif mode == "sweep":
        out = _sweep_main(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))


def test_nan_loss_message_names_where_non_finite_values_first_appeared(capsys):
    """TerminateOnNaN says which layer first produced NaN/inf in the forward pass (or that the input had them)."""
    import warnings

    rng = np.random.default_rng(0)
    x = rng.random((32, 4)).astype("float32")
    y = np.arange(32) % 3
    model = kerust.Sequential([kerust.Input((4,)), kerust.layers.Dense(8, activation="relu", name="nan_h"),
                               kerust.layers.Dense(3, activation="softmax", name="nan_out")])
    model.compile(optimizer=kerust.optimizers.SGD(1e30), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[kerust.callbacks.TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "Invalid loss, terminating training (non-finite values first appeared in layer 'nan_" in out, out
    bad = x.copy()
    bad[3, 1] = np.nan
    model2 = kerust.Sequential([kerust.Input((4,)), kerust.layers.Dense(3, activation="softmax", name="nan_o2")])
    model2.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model2.fit(bad, y, epochs=1, batch_size=32, verbose=0, callbacks=[kerust.callbacks.TerminateOnNaN()])
    assert "non-finite values first appeared in the input batch" in capsys.readouterr().out
