"""keras.callbacks.TensorBoard: the event files kerust writes (through tensorboardX) read back with TensorBoard's own
reader, compared with fit's History; batch-level scalars with update_freq, weight histograms, the Keras model
graph, and the errors (missing package, unwritable log_dir, refused arguments)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import kerust as keras

if os.environ.get("KERUST_CI") == "1":  # CI installs them (scripts/test-requirements.txt): never skip there
    import tensorboardX  # noqa: F401
    from tensorboard.backend.event_processing import event_accumulator
else:
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(path: str) -> "event_accumulator.EventAccumulator":
    acc = event_accumulator.EventAccumulator(path, size_guidance={"scalars": 0, "histograms": 0, "tensors": 0,
                                                                  "images": 0})
    acc.Reload()
    return acc


def _scalars(acc: "event_accumulator.EventAccumulator", tag: str) -> list:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _model() -> keras.Sequential:
    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu", name="dense"),
                          keras.layers.Dense(1, name="dense_1")])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return m


def _data(n: int = 20) -> tuple:
    rng = np.random.default_rng(0)
    return rng.random((n, 3)).astype("float32"), rng.random((n, 1)).astype("float32")


def test_epoch_scalars_match_history_train_and_validation(tmp_path) -> None:
    x, y = _data()
    m = _model()
    h = m.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.2,
              callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    train, val = _read(str(tmp_path / "train")), _read(str(tmp_path / "validation"))
    assert sorted(train.Tags()["scalars"]) == ["epoch_learning_rate", "epoch_loss", "epoch_mae"]
    # fit's validation is an evaluation: as Keras, it ends with evaluation_* at the optimizer's iterations
    assert sorted(val.Tags()["scalars"]) == ["epoch_loss", "epoch_mae", "evaluation_loss_vs_iterations",
                                             "evaluation_mae_vs_iterations"]
    for name in ("loss", "mae"):
        steps, values = zip(*_scalars(train, f"epoch_{name}"))
        assert steps == (0, 1, 2)
        np.testing.assert_allclose(values, h.history[name], rtol=1e-6)
        steps, values = zip(*_scalars(val, f"epoch_{name}"))
        assert steps == (0, 1, 2)
        np.testing.assert_allclose(values, h.history[f"val_{name}"], rtol=1e-6)
        steps, values = zip(*_scalars(val, f"evaluation_{name}_vs_iterations"))
        assert steps == (2, 4, 6)  # 16 training samples in batches of 8
        np.testing.assert_allclose(values, h.history[f"val_{name}"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in _scalars(train, "epoch_learning_rate")], [0.01] * 3, rtol=1e-6)
    # update_freq="epoch": no batch-level scalars, no histograms
    assert not train.Tags()["histograms"]


def test_write_graph_writes_the_model_json_under_keras(tmp_path) -> None:
    m = _model()
    x, y = _data()
    m.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path)])
    train = _read(str(tmp_path / "train"))
    assert train.Tags()["tensors"] == ["keras"]
    event = train.Tensors("keras")[0]
    assert event.step == 0
    config = json.loads(event.tensor_proto.string_val[0].decode())
    assert config["class_name"] == "Sequential"
    assert train.SummaryMetadata("keras").plugin_data.plugin_name == "graph_keras_model"
    m2 = _model()
    m2.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path / "b",
                                                                              write_graph=False)])
    assert _read(str(tmp_path / "b" / "train")).Tags()["tensors"] == []


@pytest.mark.parametrize("update_freq,expected_steps", [("batch", [1, 2, 3, 4, 5, 6]), (2, [2, 4, 6]), (4, [4])])
def test_batch_scalars_follow_update_freq(tmp_path, update_freq, expected_steps) -> None:
    x, y = _data(24)  # 3 batches of 8 an epoch, 2 epochs: global batches 1..6

    seen: list = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    m = _model()
    h = m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path, update_freq=update_freq), Record()])
    train = _read(str(tmp_path / "train"))
    for name in ("loss", "mae"):
        got = _scalars(train, f"batch_{name}")
        assert [s for s, _ in got] == expected_steps
        np.testing.assert_allclose([v for _, v in got], [seen[s - 1][name] for s in expected_steps], rtol=1e-6)
    # the last batch's running average is the epoch's value
    if 6 in expected_steps:
        np.testing.assert_allclose(_scalars(train, "batch_loss")[-1][1], h.history["loss"][-1], rtol=1e-6)


def test_histograms_of_every_weight_with_histogram_freq(tmp_path) -> None:
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=2)])
    train = _read(str(tmp_path / "train"))
    tags = sorted(train.Tags()["histograms"])
    assert tags == sorted(f"{w.path}/histogram" for layer in m.layers for w in layer.weights)
    assert tags == ["dense/bias/histogram", "dense/kernel/histogram", "dense_1/bias/histogram",
                    "dense_1/kernel/histogram"]
    kernel = train.Histograms("dense_1/kernel/histogram")
    assert [e.step for e in kernel] == [0, 2]  # epochs 0 and 2 with histogram_freq=2
    last = kernel[-1].histogram_value
    w = np.asarray(m.layers[1].weights[0])
    assert last.num == w.size
    np.testing.assert_allclose([last.min, last.max, last.sum], [w.min(), w.max(), w.sum()], rtol=1e-5)
    assert sum(last.bucket) == w.size


def test_write_images_and_steps_per_second(tmp_path) -> None:
    x, y = _data()
    m = _model()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(
        log_dir=tmp_path, histogram_freq=1, write_images=True, write_steps_per_second=True, update_freq="batch")])
    train = _read(str(tmp_path / "train"))
    # as Keras: the (1,)-shaped last bias squeezes to a scalar and gets no image
    assert sorted(train.Tags()["images"]) == ["dense/bias/image", "dense/kernel/image", "dense_1/kernel/image"]
    image = train.Images("dense/kernel/image")[0]
    assert (image.height, image.width) == (3, 4)
    (_, sps), = _scalars(train, "epoch_steps_per_second")
    assert sps > 0
    assert [s for s, _ in _scalars(train, "batch_steps_per_second")] == [1, 2, 3]


def test_evaluate_writes_evaluation_vs_iterations(tmp_path) -> None:
    x, y = _data()
    m = _model()
    m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    logs = m.evaluate(x, y, verbose=0, return_dict=True, callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path)])
    val = _read(str(tmp_path / "validation"))
    for name in ("loss", "mae"):
        (step, value), = _scalars(val, f"evaluation_{name}_vs_iterations")
        assert step == int(m.optimizer.iterations) == 6
        np.testing.assert_allclose(value, logs[name], rtol=1e-6)


REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "fit_hooks")


@pytest.mark.parametrize("update_freq", ["epoch", "batch", 2])
def test_fit_with_validation_writes_what_keras_writes(tmp_path, update_freq) -> None:
    """The scalars real Keras's TensorBoard (TensorFlow backend) wrote for the same fit, from the same weights
    (tests/reference/fit_hooks/tensorboard.json, made by generate_tensorboard.py there): the same tags in train/
    and validation/, the same steps, the same values. Keras's validation inside fit is an evaluate with fit's
    callbacks: evaluation_<metric>_vs_iterations after each validation (step: the optimizer's iterations), and
    with update_freq=2 its record_if keeps only the summaries whose last batch (training, or validation for
    evaluation_*) has an even number: the first epoch's 3 training and 3 validation batches write nothing at
    its end (no epoch scalars, no histograms)."""
    sys.path.insert(0, REFERENCE)
    try:
        import scenarios
    finally:
        sys.path.remove(REFERENCE)
    with open(os.path.join(REFERENCE, "tensorboard.json")) as f:
        expected = json.load(f)["runs"][str(update_freq)]
    x, y = scenarios._data(10)
    xv, yv = scenarios._data(5, offset=4)
    m = scenarios._model(keras)
    m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv), validation_batch_size=2,
          callbacks=[keras.callbacks.TensorBoard(tmp_path, histogram_freq=1, update_freq=update_freq,
                                                 write_graph=False)])
    assert sorted(os.listdir(tmp_path)) == sorted(expected) == ["train", "validation"]
    for sub, tags in expected.items():
        tags = dict(tags)
        acc = _read(str(tmp_path / sub))
        # the epochs each weight's histogram was written at (Keras's tags name other layers: dense_2, ...)
        assert sorted({tuple(e.step for e in acc.Histograms(t)) for t in acc.Tags()["histograms"]}) == \
            [tuple(steps) for steps in tags.pop("histogram_steps")], sub
        assert sorted(acc.Tags()["scalars"]) == sorted(tags), sub
        for tag, events in tags.items():
            got = _scalars(acc, tag)
            assert [s for s, _ in got] == [s for s, _ in events], (sub, tag)
            np.testing.assert_allclose([v for _, v in got], [v for _, v in events], rtol=2e-5, atol=1e-7,
                                       err_msg=f"{sub}/{tag}")
    # the reference holds what the docstring says
    assert [s for s, _ in expected["validation"]["evaluation_loss_vs_iterations"]] == \
        ([6] if update_freq == 2 else [3, 6])
    assert expected["train"]["histogram_steps"] == ([[1]] if update_freq == 2 else [[0, 1]])


def test_unwritable_log_dir_raises_oserror_naming_it(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    log_dir = str(blocker / "logs")
    x, y = _data()
    m = _model()
    with pytest.raises(OSError, match="a_file/logs"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(log_dir=log_dir)])


def test_bad_arguments_and_missing_package(monkeypatch) -> None:
    with pytest.raises(ValueError, match="profile_batch=2 \\(must be 0\\)"):
        keras.callbacks.TensorBoard(profile_batch=2)
    with pytest.raises(ValueError, match="embeddings_freq=1"):
        keras.callbacks.TensorBoard(embeddings_freq=1)
    with pytest.raises(ValueError, match="update_freq=0"):
        keras.callbacks.TensorBoard(update_freq=0)
    with pytest.raises(ValueError, match="histogram_freq=-1"):
        keras.callbacks.TensorBoard(histogram_freq=-1)
    cb = keras.callbacks.TensorBoard()
    assert (cb.log_dir, cb.histogram_freq, cb.write_graph, cb.update_freq) == ("logs", 0, True, "epoch")
    assert keras.callbacks.TensorBoard(update_freq="batch").update_freq == 1
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        keras.callbacks.TensorBoard()
