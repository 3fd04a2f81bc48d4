"""Callbacks and the progress bar: hook order in fit, History, ProgbarLogger/Progbar text, EarlyStopping,
ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau, CSVLogger, TerminateOnNaN, LambdaCallback,
BackupAndRestore. Expected texts and semantics were checked against Keras 3.15.1."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import types
import warnings

import kerust
import numpy as np
import pytest
from kerust import callbacks, layers

# ---- helpers --------------------------------------------------------------------------------------------------


def _model(optimizer="sgd", metrics=("accuracy",)):
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=list(metrics))
    return m


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, kerust.utils.to_categorical(rng.integers(0, 3, size=n), 3)


class _Feed(callbacks.Callback):
    """Puts a scripted value into each epoch's logs; the callbacks after it see it as if it were a metric."""

    def __init__(self, name, values):
        super().__init__()
        self.name, self.values = name, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]


class _Snapshots(callbacks.Callback):
    """The model's weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = [w.copy() for w in self.model.get_weights()]


def _assert_weights_equal(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def _weights_differ(a, b):
    return any(not np.array_equal(wa, wb) for wa, wb in zip(a, b))


@pytest.fixture
def interactive(monkeypatch):
    """Make kerust believe stdout is a terminal (capsys's stream is not)."""
    monkeypatch.setattr(callbacks, "_is_interactive", lambda stream=None: True)


@pytest.fixture
def not_interactive(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    monkeypatch.setattr(callbacks, "_is_interactive", lambda stream=None: False)


class _Clock:
    def __init__(self, t=100.0):
        self.t = t

    def time(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(callbacks, "time", c)
    return c


# ---- hook order, stop_training, History -----------------------------------------------------------------------


class _Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))
        assert self.model.stop_training is False

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("train_batch_begin", batch))
        super().on_train_batch_begin(batch, logs)  # the default forwards to on_batch_begin

    def on_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("train_batch_end", batch, sorted(logs)))
        super().on_train_batch_end(batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", sorted(logs)))


def test_hook_order_in_fit():
    x, y = _data(20)
    rec = _Recorder()
    m = _model()
    m.fit(x, y, epochs=2, batch_size=8, validation_split=0.2, verbose=0, callbacks=[rec])  # 16 train: 2 steps
    keys = ["accuracy", "loss"]
    val = ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = [("train_begin",)]
    for epoch in range(2):
        expected.append(("epoch_begin", epoch))
        for b in range(2):
            expected += [("train_batch_begin", b), ("batch_begin", b), ("train_batch_end", b, keys), ("batch_end", b)]
        expected.append(("epoch_end", epoch, val))
    expected.append(("train_end", val))
    assert rec.events == expected
    assert rec.model is m and rec.params == {"verbose": 0, "epochs": 2, "steps": 2}


def test_on_batch_end_alone_is_called_on_every_batch():
    seen = []

    class OnlyAlias(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))

    x, y = _data(20)
    _model().fit(x, y, epochs=2, batch_size=5, verbose=0, callbacks=[OnlyAlias()])
    assert [b for b, _ in seen] == [0, 1, 2, 3] * 2
    assert all(math.isfinite(v) for _, v in seen)


def test_stop_training_from_a_batch_hook_stops_within_the_epoch():
    events = []

    class StopAtBatch2(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            events.append(batch)
            if batch == 2:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            events.append(("end", epoch))

    x, y = _data(40)
    m = _model()
    hist = m.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[StopAtBatch2()])
    assert events == [0, 1, 2, ("end", 0)]
    assert m.optimizer.iterations == 3
    assert hist.epoch == [0] and len(hist.history["loss"]) == 1


def test_stop_training_from_epoch_end_stops_after_that_epoch():
    stopper = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(stopper.model, "stop_training", epoch == 1))
    x, y = _data(20)
    m = _model()
    hist = m.fit(x, y, epochs=6, batch_size=10, verbose=0, callbacks=[stopper])
    assert hist.epoch == [0, 1]
    # a new fit starts again with stop_training False
    assert m.fit(x, y, epochs=1, batch_size=10, verbose=0).epoch == [0]


def test_history_object():
    x, y = _data(20)
    m = _model()
    hist = m.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, validation_data=(x, y), verbose=0)
    assert isinstance(hist, callbacks.History) and m.history is hist
    assert hist.epoch == [2, 3]
    assert hist.params == {"verbose": 0, "epochs": 4, "steps": 3}
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 2 and all(isinstance(f, float) for f in v) for v in hist.history.values())
    # the values are the epochs' logs
    last = m.evaluate(x, y, verbose=0, return_dict=True)
    assert hist.history["val_loss"][-1] == pytest.approx(last["loss"], rel=1e-6)


def test_user_history_is_used_and_callbacks_run_before_history_and_progbar():
    mine = callbacks.History()
    x, y = _data(10)
    m = _model()
    hist = m.fit(x, y, epochs=2, verbose=0, callbacks=[mine])
    assert hist is mine and m.history is mine and mine.epoch == [0, 1]
    cbl = callbacks.CallbackList([callbacks.TerminateOnNaN()], m, {"verbose": 1, "epochs": 1, "steps": 1}, 1,
                                 add_history=True)
    assert [type(c) for c in cbl.callbacks] == [callbacks.TerminateOnNaN, callbacks.History, callbacks.ProgbarLogger]
    quiet = callbacks.CallbackList(None, m, {"verbose": 0}, 0, add_history=True)
    assert [type(c) for c in quiet.callbacks] == [callbacks.History]
    # Keras's keyword form
    keras_form = callbacks.CallbackList([mine], add_history=True, add_progbar=True, model=m, verbose=2, epochs=3,
                                        steps=5)
    assert [type(c) for c in keras_form.callbacks] == [callbacks.History, callbacks.ProgbarLogger]
    assert mine.params == {"verbose": 2, "epochs": 3, "steps": 5}
    with pytest.raises(TypeError):
        callbacks.CallbackList([object()], m, {}, 0)


def test_callback_list_gives_each_hook_one_copy_of_the_logs():
    cbl = callbacks.CallbackList([callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logs.update(extra=1.0)),
                                  callbacks.History()], None, {"verbose": 0}, 0)
    logs = {"loss": 2.0}
    cbl.on_epoch_end(0, logs)
    assert logs == {"loss": 2.0}
    assert cbl.history.history == {"loss": [2.0], "extra": [1.0]}


# ---- progress bar -----------------------------------------------------------------------------------------------

# Captured from keras.utils.Progbar (3.15.1) with the same clock and updates.
_B, _G, _W, _R = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
_KERAS_DYNAMIC = (
    f"\r{_B} 1/10{_R} {_G}{'━' * 2}{_R}{_W}{'━' * 18}{_R} {_B}4s{_R} 500ms/step - loss: 1.5000"
    + "\b" * 55
    + f"\r{_B} 5/10{_R} {_G}{'━' * 10}{_R}{_W}{'━' * 10}{_R} {_B}0s{_R} 200ms/step - loss: 0.2500 - accuracy: 0.5000"
    + "\b" * 74
    + f"\r{_B}10/10{_R} {_G}{'━' * 20}{_R}{_W}{_R} {_B}2s{_R} 167ms/step - loss: 5.0000e-04 - accuracy: -0.5000\n"
)


def _drive(bar, clock):
    clock.t = 100.5
    bar.update(1, [("loss", 1.5)])
    clock.t = 101.3
    bar.update(5, [("loss", 0.25), ("accuracy", 0.5)])
    clock.t = 101.32  # within 50 ms of the last redraw: not shown
    bar.update(6, [("loss", 0.25), ("accuracy", 0.5)])
    clock.t = 102.0
    bar.update(10, [("loss", 0.0005), ("accuracy", -0.5)], finalize=True)


def test_progbar_text_matches_keras_in_a_terminal(clock, capsys):
    _drive(callbacks.Progbar(10, stateless_metrics=set(), interactive=True), clock)
    assert capsys.readouterr().out == _KERAS_DYNAMIC


def test_progbar_without_a_terminal_prints_lines_without_colour(clock, capsys):
    _drive(callbacks.Progbar(10, stateless_metrics=set(), interactive=False), clock)
    out = capsys.readouterr().out
    assert out.startswith("\n") and out.endswith("\n")
    # Keras's text, less the colour codes; each update on a new line (as Keras does without a terminal)
    assert out.splitlines()[1:] == [re.sub(r"\x1b\[\d+m", "", line).strip("\b")
                                    for line in _KERAS_DYNAMIC.strip("\r\n").split("\r")]
    assert out.splitlines()[1:] == [
        " 1/10 ━━━━━━━━━━━━━━━━━━━━ 4s 500ms/step - loss: 1.5000",
        " 5/10 ━━━━━━━━━━━━━━━━━━━━ 0s 200ms/step - loss: 0.2500 - accuracy: 0.5000",
        "10/10 ━━━━━━━━━━━━━━━━━━━━ 2s 167ms/step - loss: 5.0000e-04 - accuracy: -0.5000",
    ]


def test_progbar_verbose_2_and_averaging_and_unknown_target(clock, capsys):
    _drive(callbacks.Progbar(10, verbose=2, stateless_metrics=set()), clock)
    # (sic, Keras) verbose=2 formats negative values in e-notation
    assert capsys.readouterr().out == "10/10 - 2s - 167ms/step - loss: 5.0000e-04 - accuracy: -5.0000e-01\n"
    # by default metrics are averaged over the steps seen (weighted by the steps each update covers)
    clock.t = 100.0
    _drive(callbacks.Progbar(10, interactive=False), clock)
    assert " 5/10 ━━━━━━━━━━━━━━━━━━━━ 0s 200ms/step - loss: 0.5000 - accuracy: 0.5000" in capsys.readouterr().out
    clock.t = 0.0
    bar = callbacks.Progbar(None, stateless_metrics=set(), interactive=True)
    clock.t = 75.0
    bar.update(3, [("loss", 2.0)])
    clock.t = 4000.0
    bar.update(7, [("loss", 3.0)])
    assert capsys.readouterr().out == ("\r      3/Unknown \x1b[1m75s\x1b[0m 25s/step - loss: 2.0000" + "\b" * 43
                                       + "\r      7/Unknown \x1b[1m4000s\x1b[0m 571s/step - loss: 3.0000")
    clock.t = 0.0
    bar = callbacks.Progbar(1000, stateless_metrics=set(), interactive=False)
    clock.t = 7.5
    bar.update(1)
    assert capsys.readouterr().out == "\n   1/1000 ━━━━━━━━━━━━━━━━━━━━ 2:04:52 8s/step"


def test_fit_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _data(20)
    m = _model()
    m.fit(x, y, epochs=2, batch_size=5, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    for line in (lines[1], lines[3]):
        assert re.fullmatch(r"4/4 - \d+s - \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
                            r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}", line), line
    # one epoch: no "Epoch 1/1" line (Keras)
    m.fit(x, y, epochs=1, batch_size=5, verbose=2)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("4/4 - ")


def test_fit_verbose_1_redraws_in_place_in_a_terminal(interactive, capsys):
    x, y = _data(20)
    m = _model()
    m.fit(x, y, epochs=2, batch_size=5, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2\n\r") and "\nEpoch 2/2\n\r" in out and out.endswith("\n")
    finals = re.findall(r"\r(\x1b\[1m4/4\x1b\[0m \x1b\[32m━{20}\x1b\[0m\x1b\[37m\x1b\[0m \x1b\[1m\d+s\x1b\[0m "
                        r"\d+(?:us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} *)\n", out)
    assert len(finals) == 2, repr(out)
    assert out.count("\n") == 4  # two "Epoch" lines and two finished bars: everything else redraws in place


def test_fit_verbose_1_without_a_terminal_writes_plain_lines(not_interactive, capsys):
    x, y = _data(20)
    m = _model()
    m.fit(x, y, epochs=2, batch_size=5, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    bars = [line for line in out.splitlines() if line.startswith("4/4 ━")]
    assert len(bars) >= 2 and all(re.search(r"- accuracy: \d\.\d{4} - loss: \d\.\d{4}", b) for b in bars)


def test_verbose_auto(monkeypatch, capsys):
    x, y = _data(20)
    m = _model()
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    # capsys's stdout is not a terminal: one line per epoch
    assert callbacks.resolve_verbose("auto") == 2
    m.fit(x, y, epochs=2, batch_size=5)
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.splitlines()) == 4
    # in a notebook the bar is live and redrawn in place
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert callbacks.resolve_verbose("auto") == 1
    m.fit(x, y, epochs=1, batch_size=5)
    out = capsys.readouterr().out
    assert out.startswith("\r\x1b[1m") and "━" in out and out.endswith("\n")
    for bad in ("verbose", 3, -1, True, None, 1.0):
        with pytest.raises(ValueError):
            callbacks.resolve_verbose(bad)


def test_evaluate_and_predict_progress(capsys, interactive):
    x, y = _data(20)
    m = _model()
    m.evaluate(x, y, batch_size=5, verbose=2)
    assert re.fullmatch(r"4/4 - \d+s - \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}\n",
                        capsys.readouterr().out)
    m.predict(x, batch_size=5, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("\r\x1b[1m") and out.endswith("\n") and "loss" not in out
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.ProgbarLogger()])  # verbose=0 silences it too
    assert capsys.readouterr().out == ""


# ---- EarlyStopping ----------------------------------------------------------------------------------------------


def _early(values, *, epochs=None, verbose=0, optimizer="sgd", **kwargs):
    x, y = _data(20)
    m = _model(optimizer=optimizer)
    snaps = _Snapshots()
    es = callbacks.EarlyStopping(monitor="score", verbose=verbose, **kwargs)
    hist = m.fit(x, y, epochs=epochs or len(values), batch_size=10, verbose=0,
                 callbacks=[_Feed("score", values), snaps, es])
    return m, hist, es, snaps


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    m, hist, es, snaps = _early([5, 4, 4.5, 4.2, 3, 1], mode="min", patience=2)
    # best 4 at epoch 1; epochs 2 and 3 do not improve: wait reaches 2 at epoch 3
    assert hist.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best == 4 and es.best_epoch == 1
    assert es.wait == 2
    _assert_weights_equal(m.get_weights(), snaps.weights[3])  # restore_best_weights=False keeps the last


def test_early_stopping_restores_best_weights(capsys):
    m, hist, es, snaps = _early([5, 3, 4, 4, 1], mode="min", patience=2, restore_best_weights=True, verbose=1)
    assert hist.epoch == [0, 1, 2, 3]
    assert _weights_differ(snaps.weights[1], snaps.weights[3])
    _assert_weights_equal(m.get_weights(), snaps.weights[1])
    assert capsys.readouterr().out == ("Epoch 4: early stopping\n"
                                       "Restoring model weights from the end of the best epoch: 2.\n")


def test_early_stopping_restores_best_weights_even_without_stopping():
    # Keras 3: the best weights are put back at the end of training, whether or not it stopped early
    m, hist, es, snaps = _early([3, 1, 2, 2.5], mode="min", patience=5, restore_best_weights=True)
    assert hist.epoch == [0, 1, 2, 3] and es.stopped_epoch == 0
    _assert_weights_equal(m.get_weights(), snaps.weights[1])


def test_early_stopping_patience_0_min_delta_and_mode_max():
    _, hist, es, _ = _early([1.0, 0.95, 0.5], mode="min", min_delta=0.1, patience=0)
    assert hist.epoch == [0, 1] and es.best == 1.0  # 0.95 is not better by more than 0.1
    _, hist, es, _ = _early([0.1, 0.5, 0.7, 0.7, 0.9], mode="max", patience=1)
    assert hist.epoch == [0, 1, 2, 3] and es.best == 0.7 and es.best_epoch == 2
    # patience 0 never stops on the first epoch
    _, hist, _, _ = _early([1.0, 1.0, 1.0], mode="min", patience=0)
    assert hist.epoch == [0, 1]


def test_early_stopping_baseline_and_start_from_epoch():
    # improvements that do not beat the baseline do not reset the wait
    _, hist, es, _ = _early([3, 2.5, 2.6, 2.7, 2.8], mode="min", patience=3, baseline=2.0)
    assert hist.epoch == [0, 1, 2] and es.best == 2.5 and es.stopped_epoch == 2
    _, hist, _, _ = _early([3, 2.5, 2.6, 2.7, 2.8], mode="min", patience=3)
    assert hist.epoch == [0, 1, 2, 3, 4]
    # (Keras) an epoch that improves never stops training, even when it does not reset the wait
    _, hist, es, _ = _early([3, 2.5, 2.2, 2.1, 2.0], mode="min", patience=1, baseline=1.0)
    assert hist.epoch == [0, 1, 2, 3, 4] and es.wait == 5 and es.stopped_epoch == 0
    _, hist, es, _ = _early([3, 1.5, 1.4, 1.6, 1.6, 1.6], mode="min", patience=2, baseline=2.0)
    assert hist.epoch == [0, 1, 2, 3, 4] and es.best_epoch == 2
    # epochs before start_from_epoch are ignored (even the best of them)
    m, hist, es, snaps = _early([0.1, 5, 4, 4, 4, 4], mode="min", patience=1, start_from_epoch=2,
                                restore_best_weights=True)
    assert hist.epoch == [0, 1, 2, 3] and es.best == 4 and es.best_epoch == 2
    _assert_weights_equal(m.get_weights(), snaps.weights[2])


def test_early_stopping_on_real_metrics_auto_mode_and_reuse():
    x, y = _data(20)
    m = _model(optimizer=kerust.optimizers.SGD(1e-12))  # updates below float32 precision: val_loss is constant
    es = callbacks.EarlyStopping(patience=2)  # monitor="val_loss", mode auto -> min
    hist = m.fit(x, y, epochs=10, batch_size=10, validation_data=(x, y), verbose=0, callbacks=[es])
    assert hist.epoch == [0, 1, 2] and es.stopped_epoch == 2
    assert es.monitor_op is np.less
    acc = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    hist = m.fit(x, y, epochs=10, batch_size=10, validation_data=(x, y), verbose=0, callbacks=[acc])
    assert acc.monitor_op is np.greater and hist.epoch == [0, 1]
    # the same instance is reset by a new fit
    hist = m.fit(x, y, epochs=10, batch_size=10, validation_data=(x, y), verbose=0, callbacks=[acc])
    assert hist.epoch == [0, 1] and acc.stopped_epoch == 1


def test_early_stopping_unknown_and_missing_monitor():
    x, y = _data(20)
    m = _model()
    with pytest.raises(ValueError, match="automatically determine"):
        m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping(monitor="score")])
    with pytest.warns(UserWarning, match="val_loss` which is not available. Available metrics are: accuracy,loss"):
        hist = m.fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.EarlyStopping(patience=0)])
    assert len(hist.epoch) == 3
    with pytest.warns(UserWarning, match="mode 'bigger' is unknown, fallback to auto mode"):
        es = callbacks.EarlyStopping(mode="bigger")
    assert es.mode == "auto"


# ---- ModelCheckpoint ---------------------------------------------------------------------------------------------


def test_model_checkpoint_writes_keras_files_named_from_epoch_and_logs(tmp_path):
    x, y = _data(20)
    m = _model()
    snaps = _Snapshots()
    pattern = str(tmp_path / "ckpt" / "model-{epoch:02d}-{val_loss:.2f}.keras")
    hist = m.fit(x, y, epochs=3, batch_size=10, validation_split=0.5, verbose=0,
                 callbacks=[snaps, callbacks.ModelCheckpoint(pattern)])
    names = [f"model-{e + 1:02d}-{v:.2f}.keras" for e, v in enumerate(hist.history["val_loss"])]
    assert sorted(os.listdir(tmp_path / "ckpt")) == sorted(names)
    loaded = kerust.models.load_model(tmp_path / "ckpt" / names[1])
    _assert_weights_equal(loaded.get_weights(), snaps.weights[1])


def test_model_checkpoint_weights_only_and_save_best_only(tmp_path, capsys):
    x, y = _data(20)
    m = _model()
    snaps = _Snapshots()
    ck = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.h5"), monitor="score", mode="min",
                                   save_best_only=True, save_weights_only=True, verbose=1)
    m.fit(x, y, epochs=5, batch_size=10, verbose=0,
          callbacks=[_Feed("score", [3.0, 2.0, 2.5, 1.0, 1.0]), snaps, ck])
    assert sorted(os.listdir(tmp_path)) == ["w-1.weights.h5", "w-2.weights.h5", "w-4.weights.h5"]
    assert ck.best == 1.0
    fresh = _model()
    fresh.load_weights(tmp_path / "w-4.weights.h5")
    _assert_weights_equal(fresh.get_weights(), snaps.weights[3])
    out = capsys.readouterr().out
    w2 = tmp_path / "w-2.weights.h5"
    assert f"\nEpoch 2: score improved from 3.00000 to 2.00000, saving model to {w2}\n" in out
    assert f"\nEpoch 2: finished saving model to {w2}\n" in out
    assert "\nEpoch 3: score did not improve from 2.00000\n" in out
    # one fixed name: overwritten at each improvement only
    best = tmp_path / "best.keras"
    ck2 = callbacks.ModelCheckpoint(best, monitor="score", mode="max", save_best_only=True)
    m.fit(x, y, epochs=4, batch_size=10, verbose=0, callbacks=[_Feed("score", [0.1, 0.5, 0.2, 0.3]), snaps, ck2])
    _assert_weights_equal(kerust.models.load_model(best).get_weights(), snaps.weights[1])


def test_model_checkpoint_initial_value_threshold_and_batch_frequency(tmp_path):
    x, y = _data(20)
    m = _model()
    ck = callbacks.ModelCheckpoint(str(tmp_path / "t{epoch}.keras"), monitor="score", mode="min",
                                   save_best_only=True, initial_value_threshold=1.5)
    m.fit(x, y, epochs=4, batch_size=10, verbose=0, callbacks=[_Feed("score", [3.0, 2.0, 1.0, 1.2]), ck])
    assert os.listdir(tmp_path) == ["t3.keras"]
    # every 2 batches, counted across epochs as Keras does ({batch} is 1-based)
    bdir = tmp_path / "b"
    m.fit(x, y, epochs=2, batch_size=4, verbose=0,
          callbacks=[callbacks.ModelCheckpoint(str(bdir / "{epoch}-{batch}.weights.h5"), save_weights_only=True,
                                               save_freq=2)])
    assert sorted(os.listdir(bdir)) == ["1-2.weights.h5", "1-4.weights.h5", "2-1.weights.h5", "2-3.weights.h5",
                                        "2-5.weights.h5"]


def test_model_checkpoint_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        callbacks.ModelCheckpoint(str(tmp_path / "a.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match=r"must end in `\.keras`"):
        callbacks.ModelCheckpoint(str(tmp_path / "a.weights"))
    with pytest.raises(ValueError, match=r"must end in `\.keras`"):
        callbacks.ModelCheckpoint(str(tmp_path / "a.h5"))
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint(str(tmp_path / "a.keras"), save_freq="batch")
    x, y = _data(10)
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{val_loss}.keras"))])


# ---- learning rate callbacks ------------------------------------------------------------------------------------


def test_learning_rate_scheduler_sets_the_live_rate_and_logs_it(capsys):
    x, y = _data(20)
    m = _model(optimizer=kerust.optimizers.SGD(0.1))
    seen = []
    probe = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(m.optimizer.learning_rate))
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)
    hist = m.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[sched, probe])
    assert seen == pytest.approx([0.05, 0.025, 0.0125])
    assert hist.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    assert m.optimizer.learning_rate == pytest.approx(0.0125)
    # the rate passed to the schedule is the engine's float32 value, as Keras's variable
    rates = [float(np.float32(0.1)) * 0.5]
    rates += [float(np.float32(rates[0])) * 0.5, float(np.float32(float(np.float32(rates[0])) * 0.5)) * 0.5]
    assert capsys.readouterr().out == "".join(
        f"\nEpoch {e + 1}: LearningRateScheduler setting learning rate to {lr}.\n" for e, lr in enumerate(rates))
    # the one-argument form; the rate really is the engine's: a tiny rate leaves the weights alone
    before = m.get_weights()
    snaps = _Snapshots()
    hist = m.fit(x, y, epochs=2, batch_size=10, verbose=0,
                 callbacks=[callbacks.LearningRateScheduler(lambda epoch: 1e-12 if epoch == 0 else 0.5), snaps])
    assert hist.history["learning_rate"] == pytest.approx([1e-12, 0.5])
    _assert_weights_equal(snaps.weights[0], before)
    assert _weights_differ(snaps.weights[1], before)
    with pytest.raises(ValueError, match="should be a float"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 1)])


def test_reduce_lr_on_plateau_after_patience_with_cooldown_and_min_lr(capsys):
    x, y = _data(20)
    m = _model(optimizer=kerust.optimizers.SGD(0.1))
    rl = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=2, cooldown=1, verbose=1)
    hist = m.fit(x, y, epochs=7, batch_size=10, verbose=0, callbacks=[_Feed("score", [1.0] * 7), rl])
    # logs carry the rate the epoch ran with; reductions at epochs 3, 5, 7 (1-based)
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert m.optimizer.learning_rate == pytest.approx(0.0125)
    out = capsys.readouterr().out
    assert re.findall(r"\nEpoch (\d+): ReduceLROnPlateau reducing learning rate to ([\d.e-]+)\.\n", out) == [
        ("3", str(float(np.float32(0.1)) * 0.5)), ("5", str(float(np.float32(0.05)) * 0.5)),
        ("7", str(float(np.float32(0.025)) * 0.5))]
    # improvements (by more than min_delta) reset the wait; min_lr is a floor
    m2 = _model(optimizer=kerust.optimizers.SGD(0.1))
    rl2 = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=1, min_lr=0.04,
                                      min_delta=0.01)
    hist = m2.fit(x, y, epochs=6, batch_size=10, verbose=0,
                  callbacks=[_Feed("score", [5.0, 4.0, 3.995, 3.0, 3.0, 3.0]), rl2])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.04])
    assert m2.optimizer.learning_rate == pytest.approx(0.04)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_on_val_loss():
    x, y = _data(20)
    m = _model(optimizer=kerust.optimizers.SGD(1e-9))  # val_loss does not move
    hist = m.fit(x, y, epochs=4, batch_size=10, validation_data=(x, y), verbose=0,
                 callbacks=[callbacks.ReduceLROnPlateau(patience=1, factor=0.1)])
    assert hist.history["learning_rate"] == pytest.approx([1e-9, 1e-9, 1e-10, 1e-11], rel=1e-5)


# ---- CSVLogger ---------------------------------------------------------------------------------------------------


def test_csv_logger_writes_keras_csv(tmp_path):
    x, y = _data(20)
    m = _model()
    path = tmp_path / "log.csv"
    hist = m.fit(x, y, epochs=2, batch_size=10, validation_split=0.5, verbose=0,
                 callbacks=[callbacks.CSVLogger(path)])
    h = hist.history
    expected = "epoch,accuracy,loss,val_accuracy,val_loss\r\n" + "".join(
        f"{e},{h['accuracy'][e]},{h['loss'][e]},{h['val_accuracy'][e]},{h['val_loss'][e]}\r\n" for e in range(2))
    assert path.read_bytes().decode() == expected
    # without validation Keras still writes val_ columns, as NA
    no_val = tmp_path / "noval.csv"
    hist = m.fit(x, y, epochs=1, batch_size=10, verbose=0, callbacks=[callbacks.CSVLogger(str(no_val))])
    assert no_val.read_bytes().decode() == ("epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                                            f"0,{hist.history['accuracy'][0]},{hist.history['loss'][0]},NA,NA\r\n")
    # append: no second header; another separator
    hist = m.fit(x, y, epochs=1, batch_size=10, validation_split=0.5, verbose=0,
                 callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    lines = path.read_bytes().decode().split("\r\n")
    assert len(lines) == 5 and lines[0].startswith("epoch,") and lines[4] == ""
    assert lines[3] == ";".join(["0"] + [str(hist.history[k][0]) for k in sorted(hist.history)])
    # append to a missing file writes the header
    fresh = tmp_path / "fresh.csv"
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(fresh, append=True)])
    assert fresh.read_text().startswith("epoch,accuracy,loss")


# ---- TerminateOnNaN ----------------------------------------------------------------------------------------------


def _regressor():
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    return m


def test_terminate_on_nan_stops_at_the_bad_batch(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.normal(size=(40, 1)).astype("float32")
    x[9] = np.nan  # sample 9 is in batch 2 (batches of 4, no shuffling)
    m = _regressor()
    hist = m.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    # Keras's message, plus kerust's note of where the NaN/inf came from (here: the input batch)
    assert capsys.readouterr().out == ("Batch 2: Invalid loss, terminating training (non-finite values first "
                                       "appeared in the input batch)\n")
    assert m.optimizer.iterations == 3
    assert hist.epoch == [0] and math.isnan(hist.history["loss"][0])
    m2 = _regressor()
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        m2.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
               callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_terminate_on_nan_with_a_diverging_learning_rate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32") * 1e3
    y = rng.normal(size=(64, 1)).astype("float32")
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(1)])
    m.compile(optimizer=kerust.optimizers.SGD(1e6), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = m.fit(x, y, epochs=50, batch_size=4, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(hist.epoch) < 50 and not math.isfinite(hist.history["loss"][-1])


# ---- LambdaCallback ----------------------------------------------------------------------------------------------


def test_lambda_callback_hooks():
    calls = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: calls.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch, "loss" in logs)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        on_train_end=lambda logs: calls.append("train_end"),
        on_test_begin=lambda logs: None,
        note="any other keyword becomes an attribute",
    )
    assert cb.note.startswith("any other")
    x, y = _data(10)
    _model().fit(x, y, epochs=2, batch_size=5, verbose=0, callbacks=[cb])
    per_epoch = lambda e: [("epoch_begin", e), ("batch_begin", 0), ("batch_end", 0, True), ("batch_begin", 1),  # noqa: E731
                           ("batch_end", 1, True), ("epoch_end", e, ["accuracy", "loss"])]
    assert calls == ["train_begin", *per_epoch(0), *per_epoch(1), "train_end"]
    # on_batch_end given by keyword works through the default on_train_batch_end
    ends = []
    _model().fit(x, y, epochs=1, batch_size=5, verbose=0,
                 callbacks=[callbacks.LambdaCallback(on_batch_end=lambda batch, logs: ends.append(batch))])
    assert ends == [0, 1]


# ---- BackupAndRestore --------------------------------------------------------------------------------------------


class _Abort(Exception):
    pass


class _PeekAtTrainBegin(callbacks.Callback):
    """Records the weights and optimizer iterations at on_train_begin (after the callbacks before it), then aborts
    the fit: only the restore is under test."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()
        self.iterations = self.model.optimizer.iterations
        raise _Abort


class _Crash(callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("simulated crash")


def test_backup_and_restore_writes_a_backup_every_epoch_and_deletes_it_at_the_end(tmp_path):
    backup = tmp_path / "backup"
    seen = []

    def check(epoch, logs):
        meta = json.loads((backup / "training_metadata.json").read_text())
        restored = _model(optimizer="adam")
        restored.load_weights(backup / "latest.weights.h5")
        _assert_weights_equal(restored.get_weights(), m.get_weights())
        assert restored.optimizer.iterations == m.optimizer.iterations
        seen.append(meta["epoch"])
        assert not [f for f in os.listdir(backup) if f.endswith(".tmp")]

    x, y = _data(20)
    m = _model(optimizer="adam")
    m.fit(x, y, epochs=3, batch_size=10, verbose=0,
          callbacks=[callbacks.BackupAndRestore(backup), callbacks.LambdaCallback(on_epoch_end=check)])
    assert seen == [1, 2, 3]
    assert not backup.exists()
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]
    with pytest.raises(ValueError):
        callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.BackupAndRestore(backup, save_freq="sometimes")


def test_backup_and_restore_reloads_weights_and_optimizer_state_on_train_begin(tmp_path):
    x, y = _data(20)
    m = _model(optimizer="adam")
    snaps = _Snapshots()
    with pytest.raises(RuntimeError, match="simulated crash"):
        m.fit(x, y, epochs=5, batch_size=10, verbose=0,
              callbacks=[callbacks.BackupAndRestore(tmp_path), snaps, _Crash(at_epoch=2)])
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 3

    fresh = _model(optimizer="adam")
    restore, peek = callbacks.BackupAndRestore(tmp_path), _PeekAtTrainBegin()
    with pytest.raises(_Abort):
        fresh.fit(x, y, epochs=5, batch_size=10, verbose=0, callbacks=[restore, peek])
    _assert_weights_equal(peek.weights, snaps.weights[2])
    assert peek.iterations == 6
    assert restore._resume_epoch == 3 and fresh._initial_epoch == 3
    # an unbuilt model cannot be restored into
    unbuilt = kerust.Sequential([layers.Dense(3)])
    unbuilt.compile(optimizer="sgd", loss="mse")
    early = callbacks.BackupAndRestore(tmp_path / "u")
    early.set_model(unbuilt)
    with pytest.raises(ValueError, match="must be built"):
        early.on_train_begin()


def test_backup_and_restore_falls_back_to_the_previous_backup(tmp_path):
    x, y = _data(20)
    m = _model(optimizer="adam")
    snaps = _Snapshots()
    with pytest.raises(RuntimeError):
        m.fit(x, y, epochs=5, batch_size=10, verbose=0,
              callbacks=[callbacks.BackupAndRestore(tmp_path, double_checkpoint=True), snaps, _Crash(at_epoch=1)])
    assert sorted(os.listdir(tmp_path)) == ["latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
                                            "training_metadata.json.bkp"]
    (tmp_path / "latest.weights.h5").write_bytes(b"damaged")
    fresh = _model(optimizer="adam")
    restore = callbacks.BackupAndRestore(tmp_path, double_checkpoint=True)
    peek = _PeekAtTrainBegin()
    with pytest.raises(_Abort):
        fresh.fit(x, y, epochs=5, batch_size=10, verbose=0, callbacks=[restore, peek])
    _assert_weights_equal(peek.weights, snaps.weights[0])
    assert restore._resume_epoch == 1


def test_backup_and_restore_resumes_fit_at_the_next_epoch(tmp_path):
    """Needs fit to start from the epoch BackupAndRestore restored (Keras: after on_train_begin,
    ``initial_epoch = self._initial_epoch or initial_epoch``)."""
    x, y = _data(20)
    reference = _model(optimizer="adam")
    start = reference.get_weights()
    reference.fit(x, y, epochs=5, batch_size=10, shuffle=False, verbose=0)

    m = _model(optimizer="adam")
    m.set_weights(start)
    with pytest.raises(RuntimeError, match="simulated crash"):
        m.fit(x, y, epochs=5, batch_size=10, shuffle=False, verbose=0,
              callbacks=[callbacks.BackupAndRestore(tmp_path), _Crash(at_epoch=2)])
    resumed = _model(optimizer="adam")
    hist = resumed.fit(x, y, epochs=5, batch_size=10, shuffle=False, verbose=0,
                       callbacks=[callbacks.BackupAndRestore(tmp_path)])
    assert hist.epoch == [3, 4]
    assert resumed.optimizer.iterations == 10
    _assert_weights_equal(resumed.get_weights(), reference.get_weights())
    assert not tmp_path.exists()
