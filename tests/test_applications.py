"""kerust.applications against Keras 3.15: each architecture's layers (names, classes, order, output shapes,
weight shapes, connections and configs) and parameter count equal what Keras builds
(tests/reference/applications/generate_applications.py wrote them), Keras-saved weights give Keras's
predictions, weights and `.keras` files move both ways, preprocess_input / decode_predictions equal Keras's,
gradients agree with finite differences, and bad arguments raise Keras's errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kerust
from kerust import _naming, applications
from kerust.applications import imagenet_utils
from keras_files import run_in_keras

REF = Path(__file__).resolve().parent / "reference" / "applications"
ARCH = json.loads(gzip.decompress((REF / "architectures.json.gz").read_bytes()))
WEIGHTS = REF / "mobilenetv2_035_32.weights.h5"
SMALL = {"input_shape": (32, 32, 3), "alpha": 0.35, "include_top": False, "pooling": "avg"}  # WEIGHTS' model

# kerust builds static shapes only (its Input takes no None dimension): that case must be refused, not built
STATIC_ONLY = {"mobilenetv2_none_shape"}
# Keras's EfficientNet uses Dropout(noise_shape=(None, 1, 1, 1)), which kerust's engine refuses so far
NOISE_SHAPE = {c for c in ARCH if c.startswith("efficientnet")}
BUILT = sorted(set(ARCH) - STATIC_ONLY - NOISE_SHAPE)


def _fresh_names() -> None:
    """Automatic names from 0, as in the fresh Keras session each reference was built in."""
    _naming._counts.clear()


def _build(case: str):
    ref = ARCH[case]
    kwargs = dict(ref["kwargs"])
    _fresh_names()
    if kwargs.pop("input_tensor", False):
        kwargs["input_tensor"] = kerust.Input((32, 32, 3), name="image")
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    return getattr(applications, ref["function"])(weights=None, **kwargs)


def _inbound(nodes) -> list:
    names = []
    for node in nodes:
        for arg in node["args"]:
            for item in arg if isinstance(arg, list) else [arg]:
                if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                    names.append(item["config"]["keras_history"][0])
    return names


def _initializer(value):
    """An initializer as a comparable value: kerust keeps Keras's short names ("glorot_uniform"), Keras writes
    the class's config."""
    if isinstance(value, str):
        return ("".join(p.capitalize() for p in value.split("_")), {})
    return (value["class_name"], {k: v for k, v in value.get("config", {}).items() if v is not None})


def _compare_configs(name: str, mine: dict, theirs: dict) -> None:
    common = (set(mine) & set(theirs)) - {"dtype"}
    # every architectural argument Keras writes is in kerust's config too (Keras's extra keys: BatchNormalization's
    # renorm options and Dense's quantization_config, at their defaults in every application)
    extra = set(theirs) - set(mine) - {"renorm", "renorm_clipping", "renorm_momentum", "quantization_config"}
    assert not extra, (name, extra)
    for key in sorted(common):
        a, b = mine[key], theirs[key]
        if key.endswith("initializer"):
            a, b = _initializer(a), _initializer(b)
        elif isinstance(a, tuple):
            a = list(a)
        assert a == b, (name, key, a, b)


@pytest.mark.parametrize("case", BUILT)
def test_architecture_equals_keras(case):
    ref = ARCH[case]
    model = _build(case)
    assert model.name == ref["name"]
    assert model.count_params() == ref["count_params"]
    assert [list(t.shape) for t in model.inputs] == ref["input_shapes"]
    assert list(model.outputs[0].shape) == ref["output_shape"]
    assert [layer.name for layer in model.layers] == [r["name"] for r in ref["layers"]]
    configs = model.get_config()["layers"]
    for layer, config, r in zip(model.layers, configs, ref["layers"]):
        assert type(layer).__name__ == r["class"] == config["class_name"], layer.name
        assert list(layer.output.shape) == r["output_shape"], layer.name
        assert [list(w.shape) for w in layer.weights] == r["weights"], layer.name
        assert _inbound(config.get("inbound_nodes", [])) == r["inbound"], layer.name
        if r["class"] != "InputLayer":
            assert len(layer.trainable_weights) == r["trainable_weights"], layer.name
            _compare_configs(layer.name, config["config"], r["config"])


def test_variable_input_shape_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"MobileNetV2: kerust builds models of static shapes.*\(None, None, 3\)"
                                         r".*Pass `input_shape="):
        _build("mobilenetv2_none_shape")


@pytest.mark.parametrize("case", sorted(NOISE_SHAPE))
def test_efficientnet_architecture_equals_keras(case):
    test_architecture_equals_keras(case)


def test_efficientnet_trains_with_whole_sample_dropout():
    model = applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    loss = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)


def test_model_builders_are_where_keras_has_them():
    a = applications
    assert a.mobilenet_v2.MobileNetV2 is a.MobileNetV2
    assert a.resnet50.ResNet50 is a.resnet.ResNet50 is a.ResNet50
    assert a.vgg16.VGG16 is a.VGG16 and a.densenet.DenseNet121 is a.DenseNet121
    assert a.efficientnet.EfficientNetB0 is a.EfficientNetB0 and a.EfficientNetB0.__name__ == "EfficientNetB0"
    assert kerust.applications is applications
    for module in (a.mobilenet_v2, a.resnet, a.resnet50, a.vgg16, a.densenet, a.efficientnet):
        assert callable(module.preprocess_input) and module.decode_predictions is imagenet_utils.decode_predictions


def test_deeper_resnet_and_densenet_variants_have_keras_block_counts():
    counts = {}
    for fn in ("ResNet101", "ResNet152"):
        model = getattr(applications, fn)(weights=None, input_shape=(32, 32, 3), include_top=False)
        counts[fn] = sum(1 for layer in model.layers if layer.name.endswith("_add"))
    assert counts == {"ResNet101": 3 + 4 + 23 + 3, "ResNet152": 3 + 8 + 36 + 3}
    model = applications.DenseNet169(weights=None, input_shape=(32, 32, 3), include_top=False)
    assert sum(1 for layer in model.layers if layer.name.endswith("_concat")) == 6 + 12 + 32 + 32
    assert model.outputs[0].shape == (None, 1, 1, 1664)


# ---- weights ------------------------------------------------------------------------------------------------
def test_keras_saved_weights_give_keras_predictions():
    ref = np.load(REF / "predictions.npz")
    model = applications.MobileNetV2(weights=str(WEIGHTS), **SMALL)
    x = applications.mobilenet_v2.preprocess_input(ref["images"].copy())
    np.testing.assert_allclose(x, ref["x"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), ref["y"], rtol=0, atol=1e-4)
    assert np.abs(ref["y"]).max() > 0.1  # the random statistics reach the output


def test_legacy_h5_weights_written_by_keras_load_by_layer_order(tmp_path):
    """The format of Keras's ImageNet files (legacy HDF5, `layer_names` / `weight_names`), written by Keras."""
    path = tmp_path / "mobilenet_legacy.h5"
    run_in_keras(f"""
        import h5py, keras
        from keras.src.legacy.saving import legacy_h5_format
        m = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="avg",
                                           weights={str(WEIGHTS)!r})
        with h5py.File({str(path)!r}, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, m)
    """)
    ref = np.load(REF / "predictions.npz")
    model = applications.MobileNetV2(weights=str(path), **SMALL)
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref["y"], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"Shape mismatch in layer #10 \(named block_1_project\) for weight "
                                         r"block_1_project/kernel. Weight expects shape \(1, 1, 48, 16\). Received "
                                         r"saved weight with shape \(1, 1, 48, 8\)"):
        applications.MobileNetV2(weights=str(path), **{**SMALL, "alpha": 0.5})
    with pytest.raises(ValueError, match=r"Layer count mismatch when loading weights from file. Model expected 106 "
                                         r"layers, found 104 saved layers."):
        applications.ResNet50(weights=str(path), input_shape=(32, 32, 3), include_top=False)


def test_mismatched_weights_file_names_the_layer():
    with pytest.raises(ValueError, match=r"block_1_project.*\(1, 1, 48, 8\) in the file.*expects \(1, 1, 48, 16\)"):
        applications.MobileNetV2(weights=str(WEIGHTS), **{**SMALL, "alpha": 0.5})
    with pytest.raises(ValueError, match="same architecture"):
        applications.MobileNetV2(weights=str(WEIGHTS), **{**SMALL, "pooling": None, "include_top": True,
                                                           "classes": 3})


def _randomize_statistics(model, seed: int) -> None:
    """Random BatchNormalization statistics and biases, so a wrong wiring shows in the outputs."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in model.layers:
        for var, value in zip(layer.weights, layer.get_weights()):
            if var.path.endswith(("gamma", "moving_variance")):
                value = rng.uniform(0.5, 1.5, value.shape)
            elif var.path.endswith(("beta", "moving_mean", "bias")):
                value = rng.normal(0.0, 0.1, value.shape)
            weights.append(value.astype(np.float32))
    model.set_weights(weights)


# models for the exchange with Keras: each builder's code paths, at 32x32 (VGG16 without its 4096-unit top)
EXCHANGE = [
    ("MobileNetV2", {"alpha": 0.35, "classes": 4}),
    ("ResNet50", {"include_top": False, "pooling": "max"}),
    ("VGG16", {"include_top": False, "pooling": "avg"}),
    ("DenseNet121", {"classes": 3, "classifier_activation": None}),
]


def test_keras_reads_kerust_weights_and_keras_files_read_back(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for i, (fn, kwargs) in enumerate(EXCHANGE):
        model = getattr(applications, fn)(weights=None, input_shape=(32, 32, 3), **kwargs)
        _randomize_statistics(model, i)
        model.save_weights(tmp_path / f"{fn}.weights.h5")
        expected[fn] = model.predict(x, verbose=0)
    run_in_keras(f"""
        import json, numpy as np, keras
        tmp = {str(tmp_path)!r}
        x = np.load(tmp + "/x.npy")
        for fn, kwargs in json.loads({json.dumps(EXCHANGE)!r}):
            m = getattr(keras.applications, fn)(weights=tmp + "/" + fn + ".weights.h5", input_shape=(32, 32, 3),
                                                **kwargs)
            np.save(tmp + "/" + fn + "_keras.npy", m.predict(x, verbose=0))
            if fn == "MobileNetV2":
                m.save(tmp + "/" + fn + ".keras")
    """)
    for fn, _ in EXCHANGE:
        keras_y = np.load(tmp_path / f"{fn}_keras.npy")
        np.testing.assert_allclose(keras_y, expected[fn], rtol=0, atol=2e-4 * max(1.0, np.abs(keras_y).max()))
    loaded = kerust.saving.load_model(tmp_path / "MobileNetV2.keras")
    assert loaded.name == "mobilenetv2_0.35_32" and len(loaded.layers) == 156
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected["MobileNetV2"], rtol=0, atol=1e-5)


def test_keras_file_and_config_round_trip(tmp_path):
    model = applications.MobileNetV2(weights=str(WEIGHTS), **SMALL)
    ref = np.load(REF / "predictions.npz")
    model.save(tmp_path / "m.keras")
    loaded = kerust.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(ref["x"], verbose=0), ref["y"], rtol=0, atol=1e-4)
    assert loaded.get_config() == model.get_config()
    again = kerust.models.model_from_json(model.to_json())
    assert again.get_config() == model.get_config() and again.count_params() == model.count_params()
    model.save_weights(tmp_path / "m.weights.h5")
    copy = applications.MobileNetV2(weights=str(tmp_path / "m.weights.h5"), **SMALL)
    np.testing.assert_array_equal(copy.predict(ref["x"], verbose=0), model.predict(ref["x"], verbose=0))


def test_gradients_match_finite_differences():
    """One SGD step of a small MobileNetV2 (inference-mode loss) against central differences of `evaluate`."""
    model = applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=3)
    _randomize_statistics(model, 9)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    y = rng.normal(0, 1, (4, 3)).astype(np.float32)
    lr = 1e-3
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=lr), loss="mse")
    before = model.get_weights()
    # analytic gradients in inference mode: BatchNormalization with frozen statistics has no batch dependence
    for layer in model.layers:
        if isinstance(layer, kerust.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=lr), loss="mse")
    model.train_on_batch(x, y)
    after = model.get_weights()
    model.set_weights(before)
    names = [w.path for w in model.weights]
    checked = 0
    for target in ("Conv1/kernel", "block_3_depthwise/kernel", "block_16_project/kernel",
                   "predictions/kernel", "predictions/bias"):
        i = names.index(target)
        grad = (before[i].astype(np.float64) - after[i]) / lr
        for j in np.argsort(-np.abs(grad.reshape(-1)))[:3]:  # the largest entries: above float32 noise
            losses = []
            for sign in (1, -1):
                trial = [w.copy() for w in before]
                trial[i].reshape(-1)[j] += sign * 1e-2
                model.set_weights(trial)
                losses.append(model.evaluate(x, y, batch_size=4, verbose=0))
            numeric = (losses[0] - losses[1]) / 2e-2
            assert abs(numeric - grad.reshape(-1)[j]) <= 3e-2 * abs(numeric) + 1e-4, (target, j, numeric,
                                                                                    grad.reshape(-1)[j])
            checked += 1
    model.set_weights(before)
    assert checked == 15


# ---- preprocessing and decoding ------------------------------------------------------------------------------
PRE = np.load(REF / "preprocess.npz")


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_input_equals_keras(mode):
    p = imagenet_utils.preprocess_input
    img4, img3 = PRE["img4"], PRE["img3"]
    np.testing.assert_allclose(p(img4.copy(), mode=mode), PRE[f"{mode}/last4"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(p(img4.transpose(0, 3, 1, 2).copy(), data_format="channels_first", mode=mode),
                               PRE[f"{mode}/first4"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(p(img3.copy(), data_format="channels_first", mode=mode), PRE[f"{mode}/first3"],
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(p(img3.transpose(1, 2, 0).copy(), mode=mode), PRE[f"{mode}/last3"], rtol=0, atol=1e-5)


def test_each_model_preprocesses_as_keras_and_in_place():
    a = applications
    for module, key in ((a.resnet50, "resnet50"), (a.resnet, "resnet50"), (a.vgg16, "vgg16"),
                        (a.densenet, "densenet"), (a.mobilenet_v2, "mobilenet_v2"), (a.efficientnet, "efficientnet")):
        np.testing.assert_allclose(module.preprocess_input(PRE["img4"].copy()), PRE[f"{key}/preprocess"], rtol=0,
                                   atol=1e-5)
    x = PRE["img4"].copy()
    out = a.mobilenet_v2.preprocess_input(x)
    assert out is x  # a float array is preprocessed in place, as in Keras
    ints = PRE["img4"].astype(np.uint8)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(ints, mode="caffe"), PRE["uint8/caffe"], atol=1e-5)
    assert ints.dtype == np.uint8 and imagenet_utils.preprocess_input(ints, mode="tf").dtype == np.float32


def test_preprocess_input_errors():
    with pytest.raises(ValueError, match=r"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode=x"):
        imagenet_utils.preprocess_input(PRE["img4"].copy(), mode="x")
    with pytest.raises(ValueError, match=r"Expected data_format to be one of `channels_first` or `channels_last`. "
                                         r"Received: data_format=nhwc"):
        applications.vgg16.preprocess_input(PRE["img4"].copy(), data_format="nhwc")
    with pytest.raises(ValueError, match=r"3 colour channels on axis 3.*\(2, 4, 5, 4\)"):
        applications.resnet.preprocess_input(np.zeros((2, 4, 5, 4), np.float32))
    with pytest.raises(TypeError, match="symbolic tensor"):
        applications.densenet.preprocess_input(kerust.Input((4, 4, 3)))


@pytest.fixture
def class_index_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet_utils, "_CLASS_INDEX", None)
    for var in ("KERUST_DATA", "KERUST_HOME", "KERAS_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


def test_decode_predictions_equals_keras_with_a_local_class_index(class_index_dir):
    folder = class_index_dir / "keras_home" / "models"  # where Keras's own decode_predictions keeps it
    folder.mkdir(parents=True)
    shutil.copy(REF / "class_index.json", folder / "imagenet_class_index.json")
    decoded = applications.resnet50.decode_predictions(PRE["preds"], top=4)
    assert [[d[1] for d in row] for row in decoded] == PRE["decoded/names"].tolist()
    assert [[d[0] for d in row] for row in decoded] == PRE["decoded/ids"].tolist()
    np.testing.assert_array_equal(np.array([[d[2] for d in row] for row in decoded]), PRE["decoded/scores"])
    assert len(applications.vgg16.decode_predictions(PRE["preds"])[0]) == 5


def test_decode_predictions_finds_kerust_data_first(class_index_dir):
    folder = class_index_dir / "kerust_data"
    folder.mkdir()
    index = {str(i): [f"id{i}", f"name{i}"] for i in range(1000)}
    (folder / "imagenet_class_index.json").write_text(json.dumps(index))
    preds = np.zeros((1, 1000), np.float32)
    preds[0, 7] = 1.0
    assert applications.mobilenet_v2.decode_predictions(preds, top=1) == [[("id7", "name7", np.float32(1.0))]]


def test_decode_predictions_errors(class_index_dir):
    with pytest.raises(ValueError, match=r"expects a batch of predictions \(i.e. a 2D array of shape \(samples, "
                                         r"1000\)\). Received array with shape: \(2, 10\)"):
        imagenet_utils.decode_predictions(np.zeros((2, 10)))
    with pytest.raises(FileNotFoundError, match=r"imagenet_class_index.json not found \(looked in .*kerust_data.*"
                                                r"keras_home.*kerust never downloads"):
        imagenet_utils.decode_predictions(np.zeros((1, 1000)))
    bad = class_index_dir / "kerust_data"
    bad.mkdir()
    (bad / "imagenet_class_index.json").write_text(json.dumps({"0": ["a", "b"]}))
    with pytest.raises(ValueError, match="is not Keras's ImageNet class index"):
        imagenet_utils.decode_predictions(np.zeros((1, 1000)))
    with pytest.raises(ValueError, match="`top` must be a positive int"):
        imagenet_utils.decode_predictions(np.zeros((1, 1000)), top=0)


# ---- arguments ------------------------------------------------------------------------------------------------
def test_imagenet_weights_are_refused_naming_the_file():
    with pytest.raises(ValueError, match=r"MobileNetV2: kerust never downloads weights.*mobilenet_v2_weights_tf_dim_"
                                         r"ordering_tf_kernels_0.35_224_no_top.h5"):
        applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False)
    with pytest.raises(ValueError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels.h5"):
        applications.ResNet50()
    with pytest.raises(ValueError, match=r"vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        applications.VGG16(include_top=False)
    with pytest.raises(ValueError, match=r"densenet121_weights_tf_dim_ordering_tf_kernels.h5"):
        applications.DenseNet121()
    with pytest.raises(ValueError, match=r"efficientnetb0_notop.h5 from https://storage.googleapis.com/"
                                         r"keras-applications/"):
        applications.EfficientNetB0(include_top=False)


def test_bad_arguments_raise_keras_errors(tmp_path):
    with pytest.raises(ValueError, match=r"The `weights` argument should be either `None` \(random initialization\), "
                                         r"`imagenet` \(pre-training on ImageNet\), or the path to the weights file "
                                         r"to be loaded.  Received `weights=.*missing.weights.h5`"):
        applications.ResNet50(weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match=r"Input size must be at least 32x32; Received: input_shape=\(31, 40, 3\)"):
        applications.VGG16(weights=None, input_shape=(31, 40, 3), include_top=False)
    with pytest.raises(ValueError, match=r"`input_shape` must be a tuple of three integers."):
        applications.DenseNet121(weights=None, input_shape=(32, 32))
    with pytest.raises(ValueError, match=r"`pooling` must be None, 'avg' or 'max'; received pooling='mean'"):
        applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False, pooling="mean")
    with pytest.raises(ValueError, match=r"`classes` must be a positive int, received classes=0"):
        applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=0)
    with pytest.raises(ValueError, match=r"`alpha` must be a positive number, received alpha=0"):
        applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0)
    with pytest.raises(ValueError, match=r"input_tensor is not a Keras tensor"):
        applications.MobileNetV2(weights=None, input_tensor=np.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"input_tensor.shape\[2\] must equal input_shape\[1\]"):
        applications.MobileNetV2(weights=None, input_tensor=kerust.Input((32, 32, 3)), input_shape=(32, 40, 3))
    with pytest.raises(ValueError, match=r"Only `None` and `softmax` activations are allowed .* Received: "
                                         r"classifier_activation=sigmoid"):
        applications.MobileNetV2(weights=str(WEIGHTS), input_shape=(32, 32, 3), alpha=0.35,
                                 classifier_activation="sigmoid")
    with pytest.warns(UserWarning, match="usually expects 1 or 3 input channels"):
        model = applications.VGG16(weights=None, input_shape=(32, 32, 4), include_top=False)
    assert model.layers[1].weights[0].shape == (3, 3, 4, 64)


def test_default_input_shapes_follow_keras():
    o = imagenet_utils.obtain_input_shape
    assert o(None, 224, 32, "channels_last", require_flatten=True) == (224, 224, 3)
    assert o(None, 224, 32, "channels_last", require_flatten=False) == (None, None, 3)
    assert o((64, 48, 1), 224, 32, "channels_last", require_flatten=True) == (64, 48, 1)
    with pytest.raises(ValueError, match=r"If `include_top` is True, you should specify a static `input_shape`"):
        o((None, 64, 3), 224, 32, "channels_last", require_flatten=True)
    # MobileNetV2's name carries the default size it chose
    model = applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, include_top=False)
    assert model.name == "mobilenetv2_0.35_96"
    x = kerust.Input((32, 32, 3))
    model = applications.ResNet50(weights=None, input_tensor=x, include_top=False, pooling="avg")
    assert model.inputs[0] is x and model.outputs[0].shape == (None, 2048)


def _example():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "cifar10_mobilenetv2.py"
    spec = importlib.util.spec_from_file_location("cifar10_mobilenetv2", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_cifar10_mobilenetv2_example_trains_on_keras_format_files(tmp_path):
    """The example on a tiny CIFAR-10 folder in Keras's own format (8 images per training batch file): it builds
    Keras's MobileNetV2 behind the augmentation, trains, and reports an accuracy."""
    import sys

    ref = Path(__file__).resolve().parent / "reference" / "datasets"
    sys.path.insert(0, str(ref))
    try:
        import make_files
    finally:
        sys.path.remove(str(ref))
    folder = tmp_path / "cifar-10-batches-py"
    make_files.write_folder(folder, make_files.cifar10_batches(per_batch=8, n_test=4))
    example = _example()
    model = example.build()
    net = model.layers[-1]
    # Keras: 2,257,984 without the top (tests/reference/applications), plus the 10-way Dense
    assert net.name == "mobilenetv2_1.00_32" and net.count_params() == 2_257_984 + 1280 * 10 + 10
    assert [type(layer).__name__ for layer in model.layers[1:4]] == ["Rescaling", "RandomFlip", "RandomTranslation"]
    accuracy = example.main(["--path", str(folder), "--epochs", "2", "--batch-size", "8"])
    assert np.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
    # the network it builds learns (memorises) the tiny set without augmentation: the training loss falls
    (x, y), _ = kerust.datasets.cifar10.load_data(folder)
    kerust.utils.set_random_seed(0)
    plain = example.build(augment=False)
    plain.compile(optimizer=kerust.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    losses = plain.fit(x, y, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses
    # the augmentation is inactive in inference: two predictions agree
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
