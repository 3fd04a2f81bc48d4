"""fit / evaluate / predict fed by keras.utils.PyDataset, Python generators and iterators, and large arrays read
batch by batch: values against Keras 3.15 (tests/reference/data_sources/), Keras's errors and warnings, callback
order, running out of data, faults (the user's exception, bad batches, Ctrl-C with workers) and the no-copy
promise measured by RSS in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust import _data_sources, layers
from kerust._arrays import as_float32

REF = Path(__file__).parent / "reference" / "data_sources" / "data_sources.npz"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ref() -> dict:
    with np.load(REF) as data:
        return {k: data[k] for k in data.files}


# ---- the same batches Keras saw (as in generate_data_sources.py) ----------------------------------------------
def cycle(x, y, bs, sw=None):
    n, i = len(x), 0
    while True:
        rows = np.arange(i, i + bs) % n
        yield (x[rows], y[rows]) if sw is None else (x[rows], y[rows], sw[rows])
        i = (i + bs) % n


def batches(x, y, bs, sw=None):
    for s in range(0, len(x), bs):
        yield (x[s:s + bs], y[s:s + bs]) if sw is None else (x[s:s + bs], y[s:s + bs], sw[s:s + bs])


class Batches(kerust.utils.PyDataset):
    def __init__(self, x, y, bs, sw=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs, self.sw = x, y, bs, sw

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        return (self.x[s], self.y[s]) if self.sw is None else (self.x[s], self.y[s], self.sw[s])


def mlp(out_activation=None):
    return kerust.Sequential([kerust.Input((3,)), layers.Dense(4, activation="relu"),
                              layers.Dense(1, activation=out_activation)])


def two_in_two_out():
    a = kerust.Input((3,), name="a")
    b = kerust.Input((2,), name="b")
    h = layers.Dense(4, activation="tanh", name="h")(layers.Concatenate()([a, b]))
    return kerust.Model({"a": a, "b": b}, {"o1": layers.Dense(1, name="o1")(h), "o2": layers.Dense(2, name="o2")(h)})


def start(ref, name, model):
    model.set_weights([ref[f"{name}/init{i}"] for i in range(len(model.get_weights()))])
    return model


def check_history(ref, name, history):
    keys = json.loads(str(ref[f"{name}/keys"]))
    assert sorted(history.history) == keys
    for k in keys:
        np.testing.assert_allclose(history.history[k], ref[f"{name}/h/{k}"], rtol=1e-5, atol=1e-6, err_msg=k)


def check_weights(ref, name, model):
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ref[f"{name}/final{i}"], rtol=1e-5, atol=1e-6)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---- values against Keras -----------------------------------------------------------------------------------
def test_generator_with_steps_and_validation_generator_match_keras(ref):
    m = start(ref, "gen_steps", mlp())
    m.compile(kerust.optimizers.SGD(0.05), "mse", metrics=["mae"])
    h = m.fit(cycle(ref["x"], ref["y"], 4), epochs=2, steps_per_epoch=3, shuffle=False, verbose=0,
              validation_data=cycle(ref["xv"][:6], ref["yv"][:6], 3),
              validation_steps=2)
    check_history(ref, "gen_steps", h)
    check_weights(ref, "gen_steps", m)
    ev = m.evaluate(cycle(ref["xv"], ref["yv"], 4), steps=2, verbose=0)
    np.testing.assert_allclose(ev, ref["gen_steps/evaluate"], rtol=1e-5)
    pred = m.predict((b[:1] for b in cycle(ref["xv"], ref["yv"], 4)), steps=2, verbose=0)
    np.testing.assert_allclose(pred, ref["gen_steps/predict"], rtol=1e-5, atol=1e-6)


def test_pydataset_with_sample_weights_matches_keras(ref):
    m = start(ref, "pyds_sw", mlp())
    m.compile(kerust.optimizers.SGD(0.05), "mse", metrics=["mae"])
    x, y, sw = ref["x"], ref["y"], ref["sw"]
    h = m.fit(Batches(x[:10], y[:10], 4, sw[:10]), epochs=2, shuffle=False, verbose=0)
    check_history(ref, "pyds_sw", h)
    check_weights(ref, "pyds_sw", m)
    ev = m.evaluate(Batches(ref["xv"], ref["yv"], 4, sw[:9]), verbose=0)
    np.testing.assert_allclose(ev, ref["pyds_sw/evaluate"], rtol=1e-5)


def test_class_weight_and_auc_over_batches_match_keras(ref):
    yb = (ref["y"] > 0).astype(np.float32)
    m = start(ref, "class_weight", mlp("sigmoid"))
    m.compile(kerust.optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy", "auc"])
    h = m.fit(Batches(ref["x"], yb, 5), epochs=2, class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    check_history(ref, "class_weight", h)
    check_weights(ref, "class_weight", m)
    # AUC is no mean of per-batch values: the batches are evaluated together, as Keras's state accumulates them
    ev = m.evaluate(batches(ref["x"], yb, 5, ref["sw"]), verbose=0)
    np.testing.assert_allclose(ev, ref["class_weight/evaluate"], rtol=1e-5)


def test_dict_batches_for_two_inputs_and_outputs_match_keras(ref):
    x, xb, y, y2 = ref["x"], ref["xb"], ref["y"], ref["y2"]
    m = start(ref, "multi", two_in_two_out())
    m.compile(kerust.optimizers.SGD(0.05), {"o1": "mse", "o2": "mse"}, metrics={"o1": ["mae"]})

    def dict_batches():
        for s in range(0, 16, 6):
            yield {"a": x[s:s + 6], "b": xb[s:s + 6]}, {"o1": y[s:s + 6], "o2": y2[s:s + 6]}
    h = m.fit(dict_batches(), epochs=1, shuffle=False, verbose=0)
    check_history(ref, "multi", h)
    check_weights(ref, "multi", m)
    pred = m.predict(({"a": x[s:s + 6], "b": xb[s:s + 6]},) for s in range(0, 16, 6))
    np.testing.assert_allclose(pred["o1"], ref["multi/predict_o1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred["o2"], ref["multi/predict_o2"], rtol=1e-5, atol=1e-6)


# ---- the same numbers as the array path -----------------------------------------------------------------------
def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)


def compiled(metrics=("mae",), seed=1):
    kerust.utils.set_random_seed(seed)
    m = mlp()
    m.compile(kerust.optimizers.SGD(0.05), "mse", metrics=list(metrics))
    return m


@pytest.mark.parametrize("workers,multi", [(0, False), (1, False), (3, False), (2, True)])
def test_pydataset_trains_as_unshuffled_arrays(workers, multi):
    x, y = data()
    a, b = compiled(), compiled()
    ha = a.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(Batches(x, y, 5, workers=workers, use_multiprocessing=multi, max_queue_size=3), epochs=2,
               shuffle=False, verbose=0)
    assert hb.history.keys() == ha.history.keys()
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(b.evaluate(Batches(x, y, 7), verbose=0), a.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_array_equal(b.predict(Batches(x, y, 7, workers=workers), verbose=0), a.predict(x, verbose=0))


def test_iterators_and_bare_arrays_are_accepted():
    x, y = data()
    m = compiled()
    pairs = [(x[s:s + 8], y[s:s + 8]) for s in range(0, 24, 8)]
    h = m.fit(iter(pairs), epochs=1, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 1
    out = m.predict(iter([x[:5], x[5:]]), verbose=0)  # a bare array is the batch's `x`
    np.testing.assert_array_equal(out, m.predict(x, verbose=0))
    assert m.evaluate(iter(pairs), verbose=0, return_dict=True).keys() == {"loss", "mae"}


def test_precision_recall_evaluated_over_all_batches():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    kerust.utils.set_random_seed(2)
    m = mlp("sigmoid")
    m.compile("sgd", "binary_crossentropy", metrics=["precision", "recall", "accuracy"])
    want = m.evaluate(x, y, verbose=0, return_dict=True)
    got = m.evaluate(batches(x, y, 7), verbose=0, return_dict=True)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, err_msg=k)


def test_pydataset_shuffle_is_seeded_and_visits_each_batch_once():
    x, y = data()
    seen = []

    class Logged(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    def run():
        seen.clear()
        m = compiled(seed=4)
        m.fit(Logged(x, y, 4), epochs=2, shuffle=True, verbose=0)
        return list(seen), m.get_weights()
    order1, w1 = run()
    order2, w2 = run()
    assert order1 == order2
    assert sorted(order1[:6]) == list(range(6)) and sorted(order1[6:]) == list(range(6))
    assert order1 != list(range(6)) * 2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


# ---- Keras's semantics: errors, warnings, callbacks, steps ----------------------------------------------------
def gen(n, bs=4):
    x, y = data()
    for i in range(n):
        j = (i * bs) % 24
        yield x[j:j + bs], y[j:j + bs]


def test_keras_errors_for_generators():
    m = compiled()
    x, y = data()
    with pytest.raises(ValueError, match="the generator must yield at least one batch. Received an empty"):
        m.fit(gen(0), verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="When providing `x` as a generator, `y` should not be passed"):
        m.fit(gen(2), y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weights` should not be passed"):
        m.fit(gen(2), sample_weight=np.ones(24), verbose=0)
    with pytest.raises(ValueError, match=r"Argument `validation_split` is only supported for tensors or NumPy "
                                         r"arrays. Found incompatible type in the input: \[<class 'generator'>\]"):
        m.fit(gen(2), validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="`class_weight` is not supported for Python generator inputs"):
        m.fit(gen(2), class_weight={0: 1.0}, verbose=0, shuffle=False)
    with pytest.raises(ValueError, match=r"the generator must return a tuple, either \(input,\)"):
        m.fit(iter([[x, y]]), verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="Data is expected to be in format"):
        m.fit(iter([(x, y, None, None)]), verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="PyDataset.__getitem__\\(\\) must return a tuple or a dict"):
        m.fit(type("Bad", (kerust.utils.PyDataset,), {"__len__": lambda s: 1, "__getitem__": lambda s, i: 3})(),
              verbose=0)
    with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive int"):
        m.fit(gen(2), steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match="the generator must yield at least one batch"):
        m.evaluate(gen(0), verbose=0)
    with pytest.raises(ValueError, match="the generator must yield at least one batch"):
        m.predict(gen(0), verbose=0)


def test_keras_warnings_shuffle_and_batch_size():
    m = compiled()
    with pytest.warns(UserWarning, match="`shuffle=True` was passed, but will be ignored since the data `x` was "
                                         "provided as a generator"):
        m.fit(gen(2), verbose=0)
    with pytest.warns(UserWarning, match=r"`batch_size=8` is ignored: a generator yields whole batches"):
        m.fit(gen(2), batch_size=8, verbose=0, shuffle=False)


def test_callback_order_and_params_with_pydataset_and_validation():
    events = []
    x, y = data(12)

    class DS(Batches):
        def __init__(self, tag):
            super().__init__(x, y, 4)
            self.tag = tag

        def on_epoch_begin(self):
            events.append(f"{self.tag} begin")

        def on_epoch_end(self):
            events.append(f"{self.tag} end")

    class Rec(kerust.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.params["steps"]))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            events.append(("batch", batch))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append("train_end")
    m = compiled()
    m.fit(DS("t"), epochs=2, validation_data=DS("v"), callbacks=[Rec()], shuffle=False, verbose=0)
    epoch = ["t begin", ("batch", 0), ("batch", 1), ("batch", 2), "t end", "v begin", "v end"]
    keys = ["loss", "mae", "val_loss", "val_mae"]
    assert events == [("train_begin", 3), ("epoch_begin", 0), *epoch, ("epoch_end", 0, keys),
                      ("epoch_begin", 1), *epoch, ("epoch_end", 1, keys), "train_end"]


def test_generator_without_steps_has_unknown_length_and_progress_bar(capsys):
    seen = {}

    class Steps(kerust.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["steps"] = self.params["steps"]
    m = compiled()
    m.fit(gen(3), epochs=1, shuffle=False, verbose=1, callbacks=[Steps()])
    assert seen["steps"] is None
    out = capsys.readouterr().out
    assert "3/3" in out and "loss:" in out


def test_generator_running_out_with_steps_warns_and_stops():
    m = compiled()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        h = m.fit(gen(5), epochs=4, steps_per_epoch=2, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 3  # 2 + 2 + 1 batches, then training stops
    m = compiled()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        h = m.fit(gen(3), epochs=3, shuffle=False, verbose=0)  # a finite generator lasts one epoch
    assert len(h.history["loss"]) == 1


def test_pydataset_with_fewer_steps_continues_its_pass_as_keras():
    x, y = data(12)
    got = []

    class Logged(Batches):
        def __getitem__(self, i):
            got.append(i)
            return super().__getitem__(i)
    m = compiled()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(Logged(x, y, 4), epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    assert got == [0, 1, 2, 0, 1]  # Keras: epoch 2 ends after the pass's last batch, epoch 3 starts a new pass
    assert len(h.history["loss"]) == 3


def test_evaluate_and_predict_steps():
    m = compiled()
    x, y = data()
    ev = m.evaluate(gen(100), steps=2, verbose=0)
    np.testing.assert_allclose(ev, m.evaluate(x[:8], y[:8], batch_size=4, verbose=0), rtol=1e-6)
    assert m.predict(((a,) for a, _ in gen(100)), steps=3, verbose=0).shape == (12, 1)
    with pytest.warns(UserWarning, match="ran out of data"):
        assert m.predict(((a,) for a, _ in gen(2)), steps=3, verbose=0).shape == (8, 1)


def test_validation_pydataset_with_array_training():
    x, y = data()
    a, b = compiled(), compiled()
    ha = a.fit(x, y, batch_size=6, epochs=2, validation_data=(x[:10], y[:10]), shuffle=False, verbose=0)
    hb = b.fit(x, y, batch_size=6, epochs=2, validation_data=Batches(x[:10], y[:10], 3), shuffle=False, verbose=0)
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-6, err_msg=k)


def test_pydataset_api_as_keras():
    assert kerust.utils.Sequence is kerust.utils.PyDataset
    x, y = data(10)
    ds = Batches(x, y, 4, workers=3, use_multiprocessing=True, max_queue_size=5)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size, ds.num_batches) == (3, True, 5, 3)
    assert [len(b[0]) for b in ds] == [4, 4, 2]

    class NoSuper(kerust.utils.PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 1
    with pytest.warns(UserWarning, match=r"should call `super\(\).__init__\(\*\*kwargs\)`"):
        assert NoSuper().workers == 1
    with pytest.raises(NotImplementedError):
        kerust.utils.PyDataset()[0]
    with pytest.raises(ValueError, match="`workers` must be a non-negative int"):
        compiled().fit(Batches(x, y, 4, workers=-1), verbose=0)


def test_model_trained_from_a_generator_saves_and_loads(tmp_path):
    m = compiled()
    m.fit(gen(4), epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    m.save(path)
    back = kerust.saving.load_model(path)
    x, _ = data()
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    np.testing.assert_array_equal(back.predict(Batches(x, x, 5), verbose=0), m.predict(x, verbose=0))


# ---- faults -----------------------------------------------------------------------------------------------
class Boom(RuntimeError):
    pass


def failing(n_good):
    x, y = data()
    for i in range(n_good):
        yield x[i * 4:i * 4 + 4], y[i * 4:i * 4 + 4]
    raise Boom("the user's generator failed")


def test_generator_exception_reaches_the_caller_with_weights_after_the_last_step():
    m = compiled()
    with pytest.raises(Boom, match="the user's generator failed") as info:
        m.fit(failing(3), epochs=1, shuffle=False, verbose=0)
    assert "in failing" in "".join(traceback.format_tb(info.value.__traceback__))
    want = compiled()
    want.fit(gen(3), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), want.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("workers,multi", [(1, False), (3, False), (2, True)])
def test_pydataset_exception_reaches_the_caller(workers, multi):
    x, y = data()

    class Fails(Batches):
        def __getitem__(self, i):
            if i == 2:
                raise Boom(f"bad index {i}")
            return super().__getitem__(i)
    m = compiled()
    with pytest.raises(Boom, match="bad index 2"):
        m.fit(Fails(x, y, 4, workers=workers, use_multiprocessing=multi), shuffle=False, verbose=0)
    want = compiled()
    want.fit(Batches(x[:8], y[:8], 4), shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), want.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [t for t in threading.enumerate() if t.name.startswith("kerust-")]


def test_bad_batches_name_the_batch_and_both_shapes():
    x, y = data()
    m = compiled()
    m.fit(gen(1), shuffle=False, verbose=0)
    before = m.get_weights()
    wrong_x = [(x[:4], y[:4]), (x[4:8], y[4:8]), (np.zeros((4, 5), np.float32), y[:4])]
    with pytest.raises(ValueError, match=r"fit: batch 2 of the generator: `x` has shape \(None, 5\), but the model "
                                         r"expects input shape \(None, 3\)"):
        m.fit(iter(wrong_x), shuffle=False, verbose=0)
    wrong_y = [(x[:4], y[:4]), (x[4:8], np.zeros((4, 2), np.float32))]
    with pytest.raises(ValueError, match=r"batch 1 of the generator: .*\(None, 2\).*\(None, 1\)"):
        m.fit(iter(wrong_y), shuffle=False, verbose=0)
    wrong_n = [(x[:4], y[:3])]
    with pytest.raises(ValueError, match=r"batch 0 of the generator: Data cardinality is ambiguous: x sizes: 4, y "
                                         r"sizes: 3"):
        m.fit(iter(wrong_n), shuffle=False, verbose=0)
    text = [(x[:4], y[:4]), (np.full((4, 3), "a"), y[:4])]
    with pytest.raises(ValueError, match=r"batch 1 of the generator: `x` must be a numeric array .* dtype <U1"):
        m.fit(iter(text), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match=r"predict: batch 1 of the PyDataset: `x` has shape \(None, 5\)"):
        m.predict(_MixedShapes(x), verbose=0)
    with pytest.raises(ValueError, match="it has no targets"):
        m.fit(iter([(x[:4],)]), shuffle=False, verbose=0)
    # the failed calls trained on the good batches only
    assert not np.array_equal(before[0], m.get_weights()[0])


class _MixedShapes(kerust.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return (self.x[:4],) if i == 0 else (np.zeros((4, 5), np.float32),)


def test_non_finite_batch_warns_once_with_its_index():
    x, y = data()
    bad = x.copy()
    bad[5, 1] = np.nan
    m = compiled()
    with pytest.warns(UserWarning, match=r"fit: batch 1 of the PyDataset: `x` contains non-finite values") as rec:
        m.fit(Batches(bad, y, 4), shuffle=False, verbose=0)
    assert sum("non-finite" in str(w.message) for w in rec) == 1


CTRL_C = r"""
import multiprocessing, os, sys, threading, time
import numpy as np
import kerust
workers, multi = int(sys.argv[1]), sys.argv[2] == "1"

class Slow(kerust.utils.PyDataset):
    def __len__(self):
        return 1000
    def __getitem__(self, i):
        time.sleep(0.05)
        return np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)

class Ready(kerust.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            print("READY", flush=True)

m = kerust.Sequential([kerust.Input((3,)), kerust.layers.Dense(1)])
m.compile("sgd", "mse")
try:
    m.fit(Slow(workers=workers, use_multiprocessing=multi), epochs=1, verbose=0, callbacks=[Ready()])
    print("NO INTERRUPT", flush=True)
except KeyboardInterrupt:
    t = time.monotonic()
    print("INTERRUPTED", flush=True)
    deadline = time.time() + 2
    while time.time() < deadline and (multiprocessing.active_children() or threading.active_count() > 1):
        time.sleep(0.05)
    print("CHILDREN", len(multiprocessing.active_children()), flush=True)
    print("THREADS", [t.name for t in threading.enumerate() if t is not threading.main_thread()], flush=True)
"""


@pytest.mark.parametrize("workers,multi", [(3, "0"), (2, "1"), (1, "0")])
def test_ctrl_c_with_workers_stops_promptly_and_leaves_no_worker(tmp_path, workers, multi):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    proc = subprocess.Popen([sys.executable, str(script), str(workers), multi], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        line = proc.stdout.readline()
        waited = time.monotonic() - sent
        proc.wait(timeout=30)
        rest = proc.stdout.read()  # what readline buffered, and the rest
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert line.strip() == "INTERRUPTED", err
    assert waited < 1.0, waited
    assert "CHILDREN 0" in rest, rest
    assert "THREADS []" in rest, rest
    assert proc.returncode == 0, err


# ---- large arrays without whole copies ------------------------------------------------------------------------
def test_float32_and_memmap_arrays_are_read_in_place(tmp_path):
    a = np.ones((100, 3), np.float32)
    assert as_float32("x", a) is a
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(100, 3))
    assert np.shares_memory(as_float32("x", mm), mm)
    assert not _data_sources.needs_batches(a, [mm], {"k": mm})
    big = np.zeros((_data_sources.WHOLE_COPY_LIMIT // 4 + 1,), np.uint8)
    assert _data_sources.needs_batches(big) and _data_sources.needs_batches([a, {"k": big}])
    assert not _data_sources.needs_batches(big[:1000])  # small arrays are still converted once


def test_uint8_and_float64_arrays_converted_per_batch_train_as_float32(monkeypatch):
    monkeypatch.setattr(_data_sources, "WHOLE_COPY_LIMIT", 0)  # every non-float32 array goes batch by batch
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)
    x32 = images.astype(np.float32) / 255.0
    x64 = x32.astype(np.float64)
    y = x32 @ np.array([[1.0], [-1.0], [0.5]], np.float32)
    converted = []
    real = _data_sources._Converter.__call__

    def spy(self, index, raw):
        converted.append(len(raw[0]))
        return real(self, index, raw)
    monkeypatch.setattr(_data_sources._Converter, "__call__", spy)
    a, b = compiled(), compiled()
    ha = a.fit(x32, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    hb = b.fit(x64, y.astype(np.float64), batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    assert converted and max(converted) == 8  # one batch at a time, never the whole array
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-6, err_msg=k)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(b.predict(x64, batch_size=16, verbose=0), a.predict(x32, verbose=0))
    np.testing.assert_allclose(b.evaluate(x64, y, batch_size=16, verbose=0), a.evaluate(x32, y, verbose=0),
                               rtol=1e-6)
    # shuffled: deterministic under the seed, every sample once per epoch
    def shuffled():
        seen = []

        def spy_rows(self, index, raw):
            seen.append(raw[0].copy())
            return real(self, index, raw)
        monkeypatch.setattr(_data_sources._Converter, "__call__", spy_rows)
        c = compiled(seed=9)
        c.fit(images // 64, y, batch_size=8, epochs=2, verbose=0)
        return c.get_weights(), seen
    (w1, seen1), (w2, seen2) = shuffled(), shuffled()
    for a1, a2 in zip(w1 + seen1, w2 + seen2):
        np.testing.assert_array_equal(a1, a2)
    first = np.concatenate(seen1[:5])
    assert sorted(map(tuple, first)) == sorted(map(tuple, images // 64))  # each sample once in the epoch
    assert not np.array_equal(first, images // 64)  # shuffled


RSS = r"""
import os, sys, time
import numpy as np
import kerust

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
kind, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == "uint8":
    x = np.random.default_rng(0).integers(0, 255, size=(rows, cols), dtype=np.uint8)
    own = x.nbytes
elif kind == "write":  # the file, written by another process than the one measured
    x = np.lib.format.open_memmap(sys.argv[4], mode="w+", dtype=np.float32, shape=(rows, cols))
    for s in range(0, rows, 65536):
        x[s:s + 65536] = 0.5
    x.flush()
    sys.exit(0)
else:
    x = np.load(sys.argv[4], mmap_mode="r")
    own = x.nbytes  # its pages count in RSS once read
y = np.zeros((rows, 1), np.float32)
m = kerust.Sequential([kerust.Input((cols,)), kerust.layers.Dense(1)])
m.compile("sgd", "mse")
m.predict(np.zeros((2, cols), np.float32), verbose=0)
before = hwm()
t = time.perf_counter()
m.fit(x, y, batch_size=256, epochs=1, verbose=0)
print(kind, "peak RSS rise over the array's pages MB", (hwm() - before - (own if kind != "uint8" else 0)) / 2**20,
      "float32 copy MB", rows * cols * 4 / 2**20, "fit s", time.perf_counter() - t, flush=True)
"""


def _rss_rise(tmp_path, kind, rows, cols):
    script = tmp_path / "rss.py"
    script.write_text(RSS)
    if kind == "memmap":
        subprocess.run([sys.executable, str(script), "write", str(rows), str(cols), str(tmp_path / "x.npy")],
                       check=True, timeout=600)
    out = subprocess.run([sys.executable, str(script), kind, str(rows), str(cols), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    return float(out.stdout.split("MB")[1].split()[0])


LONG = os.environ.get("KERUST_LONG_TESTS", "") not in ("", "0")


def test_uint8_array_does_not_raise_rss_by_its_float32_copy(tmp_path):
    # 143 MB of uint8 (its float32 copy: 572 MB); KERUST_LONG_TESTS=1: 2 GiB (8 GiB as float32), the figure
    rows, cols, limit = (2_097_152, 1024, 300) if LONG else (150_000, 1000, 60)
    rise = _rss_rise(tmp_path, "uint8", rows, cols)
    assert rise < limit, rise


def test_float32_memmap_is_not_copied(tmp_path):
    # a 191 MB file; KERUST_LONG_TESTS=1: 4 GiB, the figure
    rows, cols, limit = (1_048_576, 1024, 300) if LONG else (50_000, 1000, 60)
    rise = _rss_rise(tmp_path, "memmap", rows, cols)
    assert rise < limit, rise


def test_benchmark_script_runs():
    out = subprocess.run([sys.executable, str(REPO / "benches" / "generator_overlap.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ratio" in out.stdout and "CPU" in out.stdout


def test_engine_calls_run_while_the_feeder_thread_prepares_batches():
    # the feeder thread fetches; the main thread trains: a generator runs on another thread than the caller
    threads = set()

    def recording():
        x, y = data()
        for i in range(6):
            threads.add(threading.get_ident())
            yield x[i * 4:i * 4 + 4], y[i * 4:i * 4 + 4]
    compiled().fit(recording(), shuffle=False, verbose=0)
    assert threads and threading.get_ident() not in threads



def test_switch_interval_is_lowered_while_feeding_and_restored():
    during = []

    def recording():
        x, y = data()
        for i in range(3):
            during.append(sys.getswitchinterval())
            yield x[i * 4:i * 4 + 4], y[i * 4:i * 4 + 4]
    before = sys.getswitchinterval()
    compiled().fit(recording(), shuffle=False, verbose=0)
    assert during and max(during) <= _data_sources.SWITCH_INTERVAL < before
    assert sys.getswitchinterval() == before
    with pytest.raises(Boom):
        compiled().fit(failing(1), shuffle=False, verbose=0)
    assert sys.getswitchinterval() == before


def test_class_weight_with_arrays_read_per_batch(monkeypatch):
    monkeypatch.setattr(_data_sources, "WHOLE_COPY_LIMIT", 0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3))  # float64: read batch by batch
    y = (x[:, :1] > 0).astype(np.float64)
    sw = rng.uniform(0.5, 1.5, size=20)
    runs = []
    for xx, yy, ww in ((x, y, sw), (x.astype(np.float32), y.astype(np.float32), sw.astype(np.float32))):
        kerust.utils.set_random_seed(3)
        m = mlp("sigmoid")
        m.compile("sgd", "binary_crossentropy")
        m.fit(xx, yy, batch_size=6, sample_weight=ww, class_weight={0: 1.0, 1: 2.5}, shuffle=False, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="You cannot specify `class_weight` and `sample_weight` at the same time"):
        m.fit(Batches(x, y, 5, sw), class_weight={0: 1.0, 1: 2.0}, shuffle=False, verbose=0)


def test_generator_training_with_array_validation_as_arrays():
    x, y = data()
    a, b = compiled(), compiled()
    ha = a.fit(x, y, batch_size=8, epochs=2, validation_data=(x[:6], y[:6]), shuffle=False, verbose=0)
    hb = b.fit(iter([(x[s:s + 8], y[s:s + 8]) for s in range(0, 24, 8)] * 2), steps_per_epoch=3, epochs=2,
               validation_data=(x[:6], y[:6]), shuffle=False, verbose=0)
    assert sorted(ha.history) == sorted(hb.history) == ["loss", "mae", "val_loss", "val_mae"]
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-6, err_msg=k)
