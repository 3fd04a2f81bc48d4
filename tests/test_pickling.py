"""Models as Python objects (Keras 3.15's KerasSaveable.__reduce__: the .keras bytes): pickle, copy.deepcopy,
copy.copy, joblib and a multiprocessing spawn worker. A copy is independent of its original and, trained one more
epoch beside it, ends with bit-identical weights and optimizer state."""

from __future__ import annotations

import copy
import io
import multiprocessing
import pickle
import warnings

import kerust as keras
import numpy as np
import pytest
from kerust import _pickling

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 4)).astype("float32")
Y = RNG.normal(size=(40, 1)).astype("float32")
X2 = RNG.normal(size=(40, 3)).astype("float32")


def _sequential():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(1)],
                         name="seq")
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return m


def _functional():
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(4, activation="tanh")(a), b])
    out = keras.layers.Dense(1, name="out")(h)
    m = keras.Model([a, b], out, name="fun")
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mae")
    return m


CASES = {"sequential": (_sequential, X), "functional": (_functional, [X, X2])}


def _fit(model, x, epochs=1):
    # No shuffling and no Dropout: a copy does not carry the original's random-number state (a .keras file holds
    # none, in Keras too), so the two would draw different batches and masks and hide what is compared here.
    model.fit(x, Y, epochs=epochs, batch_size=8, verbose=0, shuffle=False)


def _joblib_roundtrip(model):
    import joblib  # scripts/test-requirements.txt installs it
    buf = io.BytesIO()
    joblib.dump(model, buf)
    buf.seek(0)
    return joblib.load(buf)


COPIES = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    "pickle_protocol_2": lambda m: pickle.loads(pickle.dumps(m, protocol=2)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
    "joblib": _joblib_roundtrip,
}


def _slots(model):
    """The engine's optimizer state (kerust's optimizers have no `variables` list): iterations, then each slot."""
    iterations, names, slots = model._core.get_optimizer_state()
    return [np.int64(iterations)] + [np.array(s) for per_weight in slots for s in per_weight]


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("kind", sorted(CASES))
def test_trained_model_copy_continues_training_bit_for_bit(kind, how):
    make, x = CASES[kind]
    model = make()
    _fit(model, x, epochs=2)
    clone = COPIES[how](model)
    assert clone is not model and type(clone) is type(model) and clone.name == model.name
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    for a, b in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(clone.optimizer.iterations) == int(model.optimizer.iterations) == 10
    assert type(clone.optimizer) is type(model.optimizer)
    assert len(_slots(model)) > 1
    for a, b in zip(_slots(model), _slots(clone)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), clone.predict(x, verbose=0))
    _fit(model, x)
    _fit(clone, x)
    # independent (training one did not move the other) and the same trajectory, bit for bit
    weights = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(weights, make().get_weights()))
    for a, b in zip(weights, clone.get_weights()):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(_slots(model), _slots(clone)):
        assert a.tobytes() == b.tobytes()
    assert model.evaluate(x, Y, verbose=0) == clone.evaluate(x, Y, verbose=0)


def test_copies_do_not_share_weights():
    model = _sequential()
    _fit(model, X)
    clone = copy.deepcopy(model)
    before = [w.copy() for w in clone.get_weights()]
    _fit(model, X)
    for a, b in zip(before, clone.get_weights()):
        np.testing.assert_array_equal(a, b)
    clone.layers[0].set_weights([np.zeros_like(w) for w in clone.layers[0].get_weights()])
    assert np.any(model.layers[0].get_weights()[0] != 0)


def test_uncompiled_and_unbuilt_models():
    built = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    clone = pickle.loads(pickle.dumps(built))
    assert clone.built and clone.optimizer is None
    np.testing.assert_array_equal(built.predict(X, verbose=0), clone.predict(X, verbose=0))
    unbuilt = keras.Sequential([keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)], name="later")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras pickles an unbuilt model silently
        clone = pickle.loads(pickle.dumps(unbuilt))
    assert not clone.built and clone.name == "later" and [type(la).__name__ for la in clone.layers] == ["Dense"] * 2
    assert clone.layers[0].units == 3 and clone.layers[0].get_config()["activation"] == "relu"
    assert clone.predict(X, verbose=0).shape == (40, 1)  # builds on first use, like the original
    unbuilt.compile(optimizer="rmsprop", loss="mse")
    clone = copy.deepcopy(unbuilt)
    assert type(clone.optimizer).__name__ == "RMSprop"
    clone.fit(X, Y, epochs=1, verbose=0)


def test_the_pickle_holds_keras_file_bytes():
    model = _sequential()
    func, args = model.__reduce__()
    assert func is _pickling._unpickle_model and len(args) == 1
    assert args[0][:2] == b"PK"  # a .keras file is a zip archive
    with pytest.raises(TypeError, match="bytes of a .keras file, received str"):
        _pickling.model_from_bytes("not bytes")
    with pytest.raises(ValueError, match="not a valid .keras file"):
        _pickling.model_from_bytes(b"garbage")


def _train_in_worker(model, x, y, queue):
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    queue.put((int(model.optimizer.iterations), model.get_weights()))


def test_model_trains_in_a_spawned_worker():
    model = _sequential()
    _fit(model, X)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_in_worker, args=(model, X, Y, queue))
    proc.start()
    try:
        iterations, weights = queue.get(timeout=120)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert iterations == 10
    assert any(not np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert [w.shape for w in weights] == [w.shape for w in model.get_weights()]
