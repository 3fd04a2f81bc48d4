"""Keras v3 files: Keras-written fixtures load and predict as Keras did, kerust's files round-trip bit-exactly
and have Keras's layout, writes are atomic, and damaged or hostile files are refused with ValueError/OSError."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust import layers, saving
from keras_files import keras_files_dir

h5py = pytest.importorskip("h5py")

MODELS = ("seed_cnn", "mlp_dropout_sgd", "bn_cnn_rmsprop")


def _fixtures_dir() -> Path:
    return keras_files_dir()  # committed in the repository: never skipped


@pytest.fixture(scope="module")
def fixtures() -> Path:
    return _fixtures_dir()


@pytest.fixture(scope="module")
def expected(fixtures: Path) -> dict:
    with np.load(fixtures / "expected.npz") as data:
        return {k: data[k] for k in data.files}


def _load(path: Path) -> kerust.Sequential:
    return saving.load_model(path)


def _members(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path: Path, members: dict, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _mlp(name_prefix: str = "m") -> kerust.Sequential:
    """The architecture of mlp_dropout_sgd, built in kerust."""
    return kerust.Sequential([
        kerust.Input((28, 28, 1)),
        layers.Flatten(name=f"{name_prefix}_flatten"),
        layers.Dense(128, activation="relu", name=f"{name_prefix}_d1"),
        layers.Dropout(0.2, name=f"{name_prefix}_drop"),
        layers.Dense(10, activation="softmax", name=f"{name_prefix}_d2"),
    ], name=f"{name_prefix}_model")


# ---- Keras-written files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_keras_file_loads_and_predicts_as_keras(fixtures, expected, name):
    model = _load(fixtures / f"{name}.keras")
    pred = model.predict(expected["x"], verbose=0)
    assert pred.shape == expected[name].shape
    diff = float(np.max(np.abs(pred - expected[name])))
    assert diff <= 1e-5, f"{name}: max abs difference {diff}"


def test_keras_file_compile_config(fixtures):
    adam = _load(fixtures / "seed_cnn.keras")
    assert isinstance(adam.optimizer, kerust.optimizers.Adam)
    assert adam.optimizer.learning_rate == pytest.approx(1e-3)
    assert adam.loss == "categorical_crossentropy" and adam.metrics_names == ["loss", "accuracy"]
    sgd = _load(fixtures / "mlp_dropout_sgd.keras")
    assert isinstance(sgd.optimizer, kerust.optimizers.SGD)
    assert sgd.optimizer.momentum == 0.9 and sgd.optimizer.nesterov is True
    assert sgd.optimizer.learning_rate == pytest.approx(0.05)
    rms = _load(fixtures / "bn_cnn_rmsprop.keras")
    assert isinstance(rms.optimizer, kerust.optimizers.RMSprop) and rms.optimizer.rho == 0.9
    assert [la.class_name for la in rms.layers] == ["Conv2D", "BatchNormalization", "Activation",
                                                     "AveragePooling2D", "Conv2D", "GlobalAveragePooling2D",
                                                     "Dense"]
    # the loaded model trains
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    y = np.arange(8) % 10
    assert np.all(np.isfinite(rms.train_on_batch(x, y)))


def test_keras_optimizer_state_is_restored(fixtures):
    """The file's iteration count, learning rate and slots (which moved during Keras's epoch) arrive intact."""
    import h5py

    for name, slot_names in (("seed_cnn", ["momentum", "velocity"]), ("mlp_dropout_sgd", ["momentum"]),
                             ("bn_cnn_rmsprop", ["velocity"])):
        model = _load(fixtures / f"{name}.keras")
        with h5py.File(io.BytesIO(_members(fixtures / f"{name}.keras")["model.weights.h5"]), "r") as f:
            stored = f["optimizer/vars"]
            file_iterations = int(stored["0"][()])
            file_first_slot = np.asarray(stored["2"][()])
        iterations, names, slots = model._core.get_optimizer_state()
        assert file_iterations > 0 and iterations == file_iterations == model.optimizer.iterations
        assert list(names) == slot_names
        np.testing.assert_array_equal(slots[0][0], file_first_slot)
        assert all(np.any(s != 0) for per_weight in slots for s in per_weight)
        if "velocity" in names:  # second moments are never negative
            j = list(names).index("velocity")
            assert all(np.all(per_weight[j] >= 0) for per_weight in slots)


def test_optimizer_state_round_trips_and_training_resumes_exactly(fixtures, tmp_path):
    """Save mid-training, load, continue: the same weights as never stopping, bit for bit."""
    x = np.random.default_rng(1).random((64, 28, 28, 1), dtype=np.float32)
    y = kerust.utils.to_categorical(np.arange(64) % 10, 10)
    straight = _load(fixtures / "seed_cnn.keras")
    resumed = _load(fixtures / "seed_cnn.keras")
    straight.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    resumed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "mid.keras"
    resumed.save(path)
    resumed = saving.load_model(path)
    assert resumed.optimizer.iterations == straight.optimizer.iterations > 4
    a, b = straight._core.get_optimizer_state(), resumed._core.get_optimizer_state()
    for sa, sb in zip(a[2], b[2]):
        for va, vb in zip(sa, sb):
            np.testing.assert_array_equal(va, vb)
    straight.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    resumed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for wa, wb in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_optimizer_state_of_wrong_size_is_rejected(fixtures, tmp_path):
    model = _load(fixtures / "mlp_dropout_sgd.keras")
    other = kerust.Sequential([kerust.Input((28, 28, 1)), layers.Flatten(name="os_f"),
                               layers.Dense(128, name="os_d1"), layers.Dense(10, name="os_d2")])
    other.compile(optimizer=kerust.optimizers.Adam(), loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="optimizer variables"):
        saving.load_weights(other, fixtures / "mlp_dropout_sgd.weights.h5")
    assert model.optimizer.iterations > 0


def test_load_model_without_compile(fixtures):
    model = saving.load_model(fixtures / "seed_cnn.keras", compile=False)
    assert not model.compiled


def test_keras_weights_file_loads_into_kerust_model(fixtures, expected):
    model = _mlp("kw")
    saving.load_weights(model, fixtures / "mlp_dropout_sgd.weights.h5")
    pred = model.predict(expected["x"], verbose=0)
    assert float(np.max(np.abs(pred - expected["mlp_dropout_sgd"]))) <= 1e-5
    # the same weights come out of the .keras file
    other = _mlp("kw2")
    saving.load_weights(other, fixtures / "mlp_dropout_sgd.keras")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_into_other_architecture_names_layer_and_shapes(fixtures):
    model = kerust.Sequential([kerust.Input((28, 28, 1)), layers.Flatten(name="wa_f"),
                               layers.Dense(64, name="wa_d1"), layers.Dense(10, name="wa_d2")])
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"wa_d1.*\(784, 128\).*\(784, 64\)"):
        saving.load_weights(model, fixtures / "mlp_dropout_sgd.weights.h5")
    for a, b in zip(before, model.get_weights()):  # nothing was loaded
        np.testing.assert_array_equal(a, b)
    missing = kerust.Sequential([kerust.Input((28, 28, 1)), layers.Flatten(name="wb_f"),
                                 layers.Dense(128, name="wb_d1")])
    with pytest.raises(ValueError, match="layers/dense_1"):
        saving.load_weights(missing, fixtures / "mlp_dropout_sgd.weights.h5")
    with pytest.raises(ValueError, match="not built"):
        saving.load_weights(kerust.Sequential([layers.Dense(3, name="wc_d")]),
                            fixtures / "mlp_dropout_sgd.weights.h5")


# ---- kerust-written files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_of_keras_models_is_bit_exact(fixtures, expected, tmp_path, name):
    model = _load(fixtures / f"{name}.keras")
    path = tmp_path / f"{name}.keras"
    saving.save_model(model, path)
    again = saving.load_model(path)
    np.testing.assert_array_equal(model.predict(expected["x"], verbose=0), again.predict(expected["x"], verbose=0))
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [la.name for la in again.layers] == [la.name for la in model.layers]
    assert again.name == model.name
    assert type(again.optimizer) is type(model.optimizer)
    assert again.optimizer.get_config() == model.optimizer.get_config()
    assert again.loss == model.loss and again.metrics_names == model.metrics_names


def _zoo(prefix: str) -> kerust.Sequential:
    return kerust.Sequential([
        kerust.Input((12, 12, 2)),
        layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"{prefix}_c1"),
        layers.BatchNormalization(center=False, name=f"{prefix}_bn1"),
        layers.Activation("relu", name=f"{prefix}_a"),
        layers.MaxPooling2D(2, name=f"{prefix}_p1"),
        layers.Conv2D(6, (3, 2), strides=(1, 2), activation="tanh",
                      kernel_initializer={"class_name": "HeNormal", "config": {"seed": None}}, name=f"{prefix}_c2"),
        layers.BatchNormalization(name=f"{prefix}_bn2"),
        layers.AveragePooling2D(2, padding="same", name=f"{prefix}_p2"),
        layers.Reshape((2, -1, 6), name=f"{prefix}_r"),
        layers.GlobalMaxPooling2D(keepdims=True, name=f"{prefix}_g"),
        layers.Flatten(name=f"{prefix}_f"),
        layers.Dropout(0.3, name=f"{prefix}_drop"),
        layers.Dense(5, activation="softmax", name=f"{prefix}_d"),
    ], name=f"{prefix}_zoo")


def _zoo2(prefix: str) -> kerust.Sequential:
    """The layers and arguments _zoo does not have: activation and noise layers, regularizers."""
    return kerust.Sequential([
        kerust.Input((8, 8, 3)),
        layers.GaussianNoise(0.1, name=f"{prefix}_gn"),
        layers.Conv2D(4, 3, kernel_regularizer=kerust.regularizers.L2(0.01), bias_regularizer="l1",
                      name=f"{prefix}_c"),
        layers.PReLU(alpha_initializer={"class_name": "Constant", "config": {"value": 0.2}}, shared_axes=[1, 2],
                     name=f"{prefix}_pr"),
        layers.SpatialDropout2D(0.2, name=f"{prefix}_sd"),
        layers.LeakyReLU(0.1, name=f"{prefix}_lr"),
        layers.ReLU(max_value=6.0, name=f"{prefix}_relu"),
        layers.ELU(0.5, name=f"{prefix}_elu"),
        layers.GlobalAveragePooling2D(name=f"{prefix}_gap"),
        layers.Dense(3, kernel_regularizer=kerust.regularizers.L1L2(l1=0.01, l2=0.02), name=f"{prefix}_d"),
        layers.Softmax(name=f"{prefix}_sm"),
    ], name=f"{prefix}_zoo2")


OPTIMIZERS = {
    "sgd": lambda: kerust.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: kerust.optimizers.Adam(amsgrad=False),
    "adamw": lambda: kerust.optimizers.AdamW(weight_decay=0.01),
    "rmsprop": lambda: kerust.optimizers.RMSprop(),
    "adagrad": lambda: kerust.optimizers.Adagrad(),
    "adadelta": lambda: kerust.optimizers.Adadelta(learning_rate=1.0),
    "adamax": lambda: kerust.optimizers.Adamax(),
    "nadam": lambda: kerust.optimizers.Nadam(),
    "sgd_schedule": lambda: kerust.optimizers.SGD(
        kerust.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5), momentum=0.5),
}


def _trained(model: kerust.Sequential, optimizer: object, x: np.ndarray) -> kerust.Sequential:
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, np.arange(len(x)) % 3, epochs=1, batch_size=4, verbose=0)
    return model


def test_new_layers_and_every_optimizer_round_trip_bit_exactly(tmp_path):
    x = np.random.default_rng(2).random((8, 8, 8, 3), dtype=np.float32)
    for name, make in OPTIMIZERS.items():
        model = _trained(_zoo2(f"o{name}"), make(), x)
        path = tmp_path / f"{name}.keras"
        saving.save_model(model, path)
        again = saving.load_model(path)
        assert type(again.optimizer) is type(model.optimizer)
        np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
        if name == "nadam":
            assert again._core.nadam_u_product == model._core.nadam_u_product < 1.0
        assert again.optimizer.learning_rate == model.optimizer.learning_rate
        a, b = model._core.get_optimizer_state(), again._core.get_optimizer_state()
        assert a[0] == b[0] and list(a[1]) == list(b[1])
        for sa, sb in zip(a[2], b[2]):
            for va, vb in zip(sa, sb):
                np.testing.assert_array_equal(va, vb)


def test_round_trip_of_kerust_model_is_bit_exact(tmp_path):
    model = _zoo("rt")
    model.compile(optimizer=kerust.optimizers.Adam(learning_rate=3e-3, amsgrad=True),
                  loss=kerust.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.random((16, 12, 12, 2), dtype=np.float32)
    y = rng.integers(0, 5, size=16)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # moves weights and BatchNormalization statistics
    model.get_layer("rt_c1").trainable = False
    path = tmp_path / "zoo.keras"
    saving.save_model(model, path)
    again = saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert isinstance(again.optimizer, kerust.optimizers.Adam) and again.optimizer.amsgrad is True
    assert again.optimizer.learning_rate == model.optimizer.learning_rate
    assert isinstance(again.loss, kerust.losses.SparseCategoricalCrossentropy)
    assert again.metrics_names == ["loss", "accuracy"]
    assert again.get_layer("rt_c1").trainable is False and again.get_layer("rt_c2").trainable is True
    assert again.get_layer("rt_c2").kernel_initializer == {"class_name": "HeNormal", "config": {"seed": None}}
    # weights-only round trip into a fresh model of the same architecture
    wpath = tmp_path / "zoo.weights.h5"
    saving.save_weights(model, wpath)
    fresh = _zoo("rt2")
    saving.load_weights(fresh, wpath)
    np.testing.assert_array_equal(model.predict(x, verbose=0), fresh.predict(x, verbose=0))


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    model = _mlp("un")
    saving.save_model(model, tmp_path / "un.keras")
    again = saving.load_model(tmp_path / "un.keras")
    assert not again.compiled
    x = np.random.default_rng(2).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    unbuilt = kerust.Sequential([layers.Dense(3, name="ub_d")], name="ub")
    with pytest.warns(UserWarning, match="not built"):
        saving.save_model(unbuilt, tmp_path / "ub.keras")
    loaded = saving.load_model(tmp_path / "ub.keras")
    assert not loaded.built and [la.name for la in loaded.layers] == ["ub_d"]


def _tree(f) -> dict:
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, getattr(obj, "shape", None)))
    return out


def test_weights_file_has_keras_layout(fixtures, tmp_path):
    model = _mlp("lay")
    path = tmp_path / "mlp.weights.h5"
    saving.save_weights(model, path)
    with h5py.File(fixtures / "mlp_dropout_sgd.weights.h5", "r") as keras_file, h5py.File(path, "r") as ours:
        theirs = {k: v for k, v in _tree(keras_file).items() if not k.startswith("optimizer")}
        assert _tree(ours) == theirs
        assert ours["layers/dense/vars"].attrs["name"] == "lay_d1"
        assert ours["vars"].attrs["name"] == "lay_model"
        assert ours["layers/dense/vars/0"].dtype == np.float32


def test_keras_file_has_keras_format(fixtures, tmp_path):
    model = _load(fixtures / "bn_cnn_rmsprop.keras")
    path = tmp_path / "bn.keras"
    saving.save_model(model, path)
    ours, theirs = _members(path), _members(fixtures / "bn_cnn_rmsprop.keras")
    assert list(ours) == ["metadata.json", "config.json", "model.weights.h5"]
    metadata = json.loads(ours["metadata.json"])
    assert metadata["keras_version"].startswith("3.") and "@" in metadata["date_saved"]
    ours_cfg, keras_cfg = json.loads(ours["config.json"]), json.loads(theirs["config.json"])
    assert ours_cfg["class_name"] == "Sequential" and ours_cfg["module"] == "keras"
    first = ours_cfg["config"]["layers"][0]
    assert first["class_name"] == "InputLayer" and first["config"]["batch_shape"] == [None, 28, 28, 1]
    assert ours_cfg["config"]["build_input_shape"] == [None, 28, 28, 1]
    # every key kerust writes is one Keras itself writes for that class
    for mine, keras in zip(ours_cfg["config"]["layers"], keras_cfg["config"]["layers"]):
        assert mine["class_name"] == keras["class_name"]
        assert set(mine) <= set(keras) | {"build_config"}
        assert set(mine["config"]) <= set(keras["config"]), mine["class_name"]
        if mine["class_name"] != "InputLayer":
            assert mine["config"]["dtype"] == {k: v for k, v in keras["config"]["dtype"].items()
                                               if k != "shared_object_id"}
    assert set(ours_cfg["compile_config"]) == set(keras_cfg["compile_config"])
    opt_mine, opt_keras = ours_cfg["compile_config"]["optimizer"], keras_cfg["compile_config"]["optimizer"]
    assert opt_mine["class_name"] == opt_keras["class_name"] and opt_mine["module"] == "keras.optimizers"
    assert set(opt_mine["config"]) == set(opt_keras["config"])
    assert opt_mine["config"] == opt_keras["config"]
    with h5py.File(io.BytesIO(ours["model.weights.h5"]), "r") as f, \
            h5py.File(io.BytesIO(theirs["model.weights.h5"]), "r") as g:
        assert _tree(f) == _tree(g)  # the same layout, optimizer variables included
        for key in ("layers/batch_normalization/vars/2", "layers/conv2d/vars/0", "optimizer/vars/0",
                    "optimizer/vars/2", "optimizer/vars/8"):
            np.testing.assert_array_equal(f[key][()], g[key][()])


# ---- file names and atomic writes ------------------------------------------------------------------------------
def test_file_extensions(tmp_path):
    model = _mlp("ext")
    with pytest.raises(ValueError, match=r"The filename must end in `\.weights\.h5`"):
        saving.save_weights(model, tmp_path / "w.h5")
    with pytest.raises(ValueError, match=r"legacy HDF5 `\.h5`"):
        saving.save_model(model, tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.keras"):
        saving.save_model(model, tmp_path / "m.txt")
    with pytest.raises(ValueError, match="legacy"):
        saving.load_model(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.keras"):
        saving.load_model(tmp_path / "m.zip")
    assert os.listdir(tmp_path) == []


def test_writes_are_atomic(tmp_path, monkeypatch):
    model = _mlp("at")
    path = tmp_path / "at.keras"
    path.write_bytes(b"previous contents")
    saving.save_model(model, path)
    assert sorted(os.listdir(tmp_path)) == ["at.keras"]
    assert zipfile.is_zipfile(path)
    saving.save_weights(model, tmp_path / "at.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["at.keras", "at.weights.h5"]
    good = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(saving.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="simulated"):
        saving.save_model(model, path)
    with pytest.raises(OSError, match="simulated"):
        saving.save_weights(model, tmp_path / "new.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["at.keras", "at.weights.h5"]  # no temp file, no half file
    assert path.read_bytes() == good
    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        saving.save_model(model, path, overwrite=False)


# ---- damaged and hostile files ---------------------------------------------------------------------------------
def _rewrite_h5(data: bytes, edit) -> bytes:
    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        edit(f)
    return buf.getvalue()


def _edit_config(fixtures, tmp_path, edit, source="mlp_dropout_sgd") -> Path:
    members = _members(fixtures / f"{source}.keras")
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    return _write_zip(tmp_path / "edited.keras", members)


def _edit_weights(fixtures, tmp_path, edit) -> Path:
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["model.weights.h5"] = _rewrite_h5(members["model.weights.h5"], edit)
    return _write_zip(tmp_path / "edited.keras", members)


def _layer(config, class_name):
    return next(la for la in config["config"]["layers"] if la["class_name"] == class_name)


def _case_empty(fixtures, tmp_path):
    (tmp_path / "empty.keras").write_bytes(b"")
    return tmp_path / "empty.keras", "empty"


def _case_random(fixtures, tmp_path):
    (tmp_path / "random.keras").write_bytes(np.random.default_rng(3).bytes(4096))
    return tmp_path / "random.keras", "zip"


def _case_truncated(fixtures, tmp_path):
    data = (fixtures / "seed_cnn.keras").read_bytes()
    (tmp_path / "trunc.keras").write_bytes(data[: len(data) // 2])
    return tmp_path / "trunc.keras", "zip"


def _case_corrupt_member(fixtures, tmp_path):
    data = bytearray((fixtures / "mlp_dropout_sgd.keras").read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # inside the stored weights: the CRC no longer matches
    (tmp_path / "crc.keras").write_bytes(bytes(data))
    return tmp_path / "crc.keras", "corrupt"


def _case_parent_member(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["../evil"] = b"owned"
    return _write_zip(tmp_path / "evil.keras", members), r"\.\."


def _case_absolute_member(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["/tmp/evil"] = b"owned"
    return _write_zip(tmp_path / "abs.keras", members), "absolute"


def _case_zip_bomb(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["model.weights.h5"] = bytes(50 << 20)
    path = _write_zip(tmp_path / "bomb.keras", members, zipfile.ZIP_DEFLATED)
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    assert info.file_size / info.compress_size > 1000 and path.stat().st_size < 1 << 20
    return path, "zip bomb"


def _case_no_config(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    del members["config.json"]
    return _write_zip(tmp_path / "noconfig.keras", members), "config.json"


def _case_config_not_object(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["config.json"] = b"[1, 2, 3]"
    return _write_zip(tmp_path / "list.keras", members), "JSON object"


def _case_config_deep(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["config.json"] = b"[" * 200_000 + b"]" * 200_000
    return _write_zip(tmp_path / "deep.keras", members), "JSON"


def _case_config_garbage(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["config.json"] = b"\xff\xfe{not json"
    return _write_zip(tmp_path / "garbage.keras", members), "JSON"


def _case_unknown_layer(fixtures, tmp_path):
    path = _edit_config(fixtures, tmp_path, lambda c: _layer(c, "Dropout").__setitem__("class_name", "Conv3DTranspose"))
    return path, r"Unknown layer class 'Conv3DTranspose'\. kerust supports: "


def _case_custom_module(fixtures, tmp_path):
    path = _edit_config(fixtures, tmp_path, lambda c: _layer(c, "Dense").__setitem__("module", "my_pkg.layers"))
    return path, "my_pkg"


def _case_mixed_precision(fixtures, tmp_path):
    def edit(c):
        _layer(c, "Dense")["config"]["dtype"]["config"]["name"] = "mixed_float16"

    return _edit_config(fixtures, tmp_path, edit), "mixed_float16"


def _case_functional(fixtures, tmp_path):
    # a Sequential's layer list relabelled Functional: no graph (no inbound nodes, no input layers)
    return _edit_config(fixtures, tmp_path, lambda c: c.__setitem__("class_name", "Functional")), "input_layers"


def _case_bad_layer_argument(fixtures, tmp_path):
    path = _edit_config(fixtures, tmp_path, lambda c: _layer(c, "Dense")["config"].__setitem__("units", -3))
    return path, "units"


def _case_unknown_argument(fixtures, tmp_path):
    def edit(c):
        _layer(c, "Dense")["config"]["lora_rank"] = 4

    return _edit_config(fixtures, tmp_path, edit), "lora_rank"


def _case_huge_units(fixtures, tmp_path):
    # the engine would abort the process trying to allocate this; the loader must refuse first
    path = _edit_config(fixtures, tmp_path, lambda c: _layer(c, "Dense")["config"].__setitem__("units", 10 ** 9))
    return path, "too large"


def _case_absurd_units(fixtures, tmp_path):
    path = _edit_config(fixtures, tmp_path, lambda c: _layer(c, "Dense")["config"].__setitem__("units", 10 ** 30))
    return path, "units"


def _case_huge_input(fixtures, tmp_path):
    def edit(c):
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, 1 << 20, 1 << 20, 1]

    return _edit_config(fixtures, tmp_path, edit), "large"


def _case_wrong_shape(fixtures, tmp_path):
    def edit(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", data=np.zeros((784, 64), np.float32))

    return _edit_weights(fixtures, tmp_path, edit), r"dense_2.*\(784, 64\).*\(784, 128\)"


def _case_absurd_dataset(fixtures, tmp_path):
    def edit(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(10 ** 6, 10 ** 6), dtype="f4", chunks=(64, 64),
                                              compression="gzip")

    return _edit_weights(fixtures, tmp_path, edit), r"\(1000000, 1000000\)"


def _case_missing_weight(fixtures, tmp_path):
    return _edit_weights(fixtures, tmp_path, lambda f: f.__delitem__("layers/dense_1/vars/1")), "expects 2 weights"


def _case_integer_weights(fixtures, tmp_path):
    def edit(f):
        del f["layers/dense_1/vars/1"]
        f["layers/dense_1/vars"].create_dataset("1", data=np.zeros(10, np.int32))

    return _edit_weights(fixtures, tmp_path, edit), "dtype"


def _case_external_link(fixtures, tmp_path):
    def edit(f):
        del f["layers/dense_1/vars/1"]
        f["layers/dense_1/vars/1"] = h5py.ExternalLink("/etc/passwd", "/x")

    return _edit_weights(fixtures, tmp_path, edit), "ExternalLink"


def _case_extra_layer_weights(fixtures, tmp_path):
    def edit(f):
        f.create_group("layers/dense_2/vars").create_dataset("0", data=np.zeros(3, np.float32))

    return _edit_weights(fixtures, tmp_path, edit), "layers/dense_2"


def _case_weights_not_h5(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["model.weights.h5"] = np.random.default_rng(4).bytes(10_000)
    return _write_zip(tmp_path / "noth5.keras", members), "HDF5"


def _case_npz_weights(fixtures, tmp_path):
    members = _members(fixtures / "mlp_dropout_sgd.keras")
    members["model.weights.npz"] = members.pop("model.weights.h5")
    return _write_zip(tmp_path / "npz.keras", members), "model.weights.h5"


HOSTILE = [v for k, v in sorted(globals().items()) if k.startswith("_case_")]


@pytest.mark.parametrize("case", HOSTILE, ids=[c.__name__[6:] for c in HOSTILE])
def test_damaged_or_hostile_keras_file_is_refused(fixtures, tmp_path, case):
    path, message = case(fixtures, tmp_path)
    with pytest.raises((ValueError, OSError), match=message) as info:
        saving.load_model(path)
    assert path.name in str(info.value)


def test_damaged_weights_files_are_refused(tmp_path):
    model = _mlp("dw")
    for name, data in [("empty", b""), ("random", np.random.default_rng(5).bytes(5000))]:
        path = tmp_path / f"{name}.weights.h5"
        path.write_bytes(data)
        with pytest.raises((ValueError, OSError)) as info:
            saving.load_weights(model, path)
        assert path.name in str(info.value)
    with pytest.raises(FileNotFoundError):
        saving.load_weights(model, tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="legacy Keras 2"):
        legacy = tmp_path / "legacy.weights.h5"
        with h5py.File(legacy, "w") as f:
            f.attrs["layer_names"] = [b"dense"]
        saving.load_weights(model, legacy)


# ---- Keras itself reads kerust's files (only where Keras is installed) -----------------------------------------
def _keras_python() -> str:
    """An interpreter with Keras 3: $KERUST_KERAS_PYTHON, or this one if it has keras."""
    if os.environ.get("KERUST_KERAS_PYTHON"):
        return os.environ["KERUST_KERAS_PYTHON"]
    if importlib.util.find_spec("keras") is not None:
        return sys.executable
    pytest.skip("Keras is not installed here (set KERUST_KERAS_PYTHON to a Python that has keras>=3 and a "
                "backend to check that Keras reads kerust's files)")


def test_keras_reads_kerust_files(fixtures, expected, tmp_path):
    python = _keras_python()
    names = {name: type(make()).__name__ for name, make in OPTIMIZERS.items()}
    model = _load(fixtures / "bn_cnn_rmsprop.keras")
    saving.save_model(model, tmp_path / "bn.keras")
    saving.save_weights(model, tmp_path / "bn.weights.h5")
    zoo = _zoo("kr")
    zoo.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(6).random((4, 12, 12, 2), dtype=np.float32)
    saving.save_model(zoo, tmp_path / "zoo.keras")
    np.save(tmp_path / "zoo_x.npy", x)
    np.save(tmp_path / "zoo_pred.npy", zoo.predict(x, verbose=0))
    x2 = np.random.default_rng(7).random((8, 8, 8, 3), dtype=np.float32)
    np.save(tmp_path / "zoo2_x.npy", x2)
    for name, make in OPTIMIZERS.items():
        model = _trained(_zoo2(f"k{name}"), make(), x2)
        saving.save_model(model, tmp_path / f"opt_{name}.keras")
        np.save(tmp_path / f"opt_{name}_pred.npy", model.predict(x2, verbose=0))
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        d = {str(tmp_path)!r}
        e = np.load({str(fixtures / "expected.npz")!r})
        m = keras.saving.load_model(d + "/bn.keras")
        assert type(m.optimizer).__name__ == "RMSprop", m.optimizer
        print("bn", float(np.abs(m.predict(e["x"], verbose=0) - e["bn_cnn_rmsprop"]).max()))
        m.load_weights(d + "/bn.weights.h5")
        print("bnw", float(np.abs(m.predict(e["x"], verbose=0) - e["bn_cnn_rmsprop"]).max()))
        z = keras.saving.load_model(d + "/zoo.keras")
        print("zoo", float(np.abs(z.predict(np.load(d + "/zoo_x.npy"), verbose=0)
                                  - np.load(d + "/zoo_pred.npy")).max()))
        x2 = np.load(d + "/zoo2_x.npy")
        for name, cls in {names!r}.items():
            o = keras.saving.load_model(d + f"/opt_{{name}}.keras")
            assert type(o.optimizer).__name__ == cls, (name, o.optimizer)
            assert int(o.optimizer.iterations) == 2, (name, int(o.optimizer.iterations))
            print("opt_" + name, float(np.abs(o.predict(x2, verbose=0) - np.load(d + f"/opt_{{name}}_pred.npy")).max()))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = {"bn", "bnw", "zoo"} | {f"opt_{n}" for n in OPTIMIZERS}
    diffs = dict(line.split() for line in done.stdout.splitlines() if line.split()[0] in keys)
    assert set(diffs) == keys, done.stdout
    for key, value in diffs.items():
        assert float(value) <= 1e-5, (key, value)
