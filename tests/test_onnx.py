"""ONNX export: every layer class and every activation, exported with ``kerust.onnx.export``, checked with
``onnx.checker`` and run in ONNX Runtime (CPUExecutionProvider), gives what ``model.predict`` gives.

Tolerance: ``|onnx - predict| <= ATOL + RTOL * |predict|`` elementwise with ATOL = RTOL = 1e-5 (float32 outputs).
Measured over this file's 128 comparisons: the largest difference is 4% of that bound (at most 1e-6 for outputs up
to 10 in magnitude), 33 comparisons are bit-identical; what differs comes from summation order in GEMM/convolution
and the engine's erf approximation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import kerust
import numpy as np
import pytest
from keras_files import keras_files_dir
from kerust import layers
from seed_models import seed_cnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from kerust import onnx as konnx  # noqa: E402  (after the skips: the module itself needs nothing)

ATOL = 1e-5
RTOL = 1e-5
REPO = Path(__file__).resolve().parents[1]


# ---- helpers ------------------------------------------------------------------------------------------------
def _session(path: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_and_load(model: kerust.Sequential, path: Path, opset: int = 13) -> Any:
    konnx.export(model, path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _check_same(model: kerust.Sequential, x: np.ndarray, tmp_path: Path, opset: int = 13) -> np.ndarray:
    """Export, run in ONNX Runtime, compare with predict; returns the ONNX output."""
    path = tmp_path / "model.onnx"
    _export_and_load(model, path, opset)
    got = _session(path).run(["output"], {"input": x.astype(np.float32)})[0]
    want = model.predict(x, batch_size=len(x), verbose=0)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    assert np.all(np.isfinite(want)), "test inputs should give finite outputs"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    return got


def _randomize(model: kerust.Sequential, seed: int = 0) -> None:
    """Non-trivial weights in Keras layouts: every array random, BatchNormalization's moving variance positive,
    PReLU's alpha in (0, 0.6) (so negative inputs are scaled, not flipped)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        new = [rng.normal(0.0, 0.5, size=w.shape).astype(np.float32) for w in weights]
        if layer.class_name == "BatchNormalization":
            new[-1] = rng.uniform(0.3, 2.5, size=new[-1].shape).astype(np.float32)  # moving variance
            new[-2] = rng.normal(0.5, 1.0, size=new[-2].shape).astype(np.float32)  # moving mean
        if layer.class_name == "PReLU":
            new[0] = rng.uniform(0.05, 0.6, size=new[0].shape).astype(np.float32)
        if new:
            layer.set_weights(new)


def _x(shape: Tuple[int, ...], seed: int = 1, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(shift, scale, size=shape)).astype(np.float32)


def _model(*stack: Any) -> kerust.Sequential:
    model = kerust.Sequential(list(stack))
    _randomize(model)
    return model


# ---- one case per layer configuration ---------------------------------------------------------------------------
# Each case builds a tiny model and its input; the classes each case uses are collected to check that every layer
# class kerust has is covered.
CASES: Dict[str, Callable[[], Tuple[kerust.Sequential, np.ndarray]]] = {
    # Dense: 2-D and 3-D inputs, with and without bias
    "dense_relu": lambda: (_model(layers.Dense(5, activation="relu", input_shape=(4,))), _x((3, 4))),
    "dense_3d_no_bias": lambda: (_model(layers.Dense(3, use_bias=False, input_shape=(2, 4))), _x((3, 2, 4))),
    "dense_softmax_3d": lambda: (_model(layers.Dense(4, activation="softmax", input_shape=(3, 5))), _x((2, 3, 5))),
    # Flatten: rank 3 and after a convolution (Keras's (h, w, c) order)
    "flatten_rank3": lambda: (_model(layers.Flatten(input_shape=(2, 3, 4))), _x((3, 2, 3, 4))),
    "conv_flatten_dense": lambda: (_model(layers.Conv2D(3, 2, input_shape=(5, 4, 2)), layers.Flatten(),
                                          layers.Dense(4)), _x((2, 5, 4, 2))),
    # Reshape: explicit and with -1, from a Dense to a convolution
    "reshape_to_image": lambda: (_model(layers.Dense(12, input_shape=(5,)), layers.Reshape((2, 3, 2)),
                                        layers.Conv2D(2, 2, padding="same")), _x((3, 5))),
    "reshape_minus_one": lambda: (_model(layers.Reshape((-1, 4), input_shape=(2, 3, 4)), layers.Dense(2)),
                                  _x((2, 2, 3, 4))),
    # Conv2D: strides, valid/same (asymmetric same padding: the extra row/column at the end), no bias
    "conv_valid": lambda: (_model(layers.Conv2D(4, (3, 2), input_shape=(6, 5, 3))), _x((2, 6, 5, 3))),
    "conv_same_even_kernel": lambda: (_model(layers.Conv2D(3, 4, padding="same", input_shape=(5, 6, 2))),
                                      _x((2, 5, 6, 2))),
    "conv_same_strided_asymmetric": lambda: (_model(layers.Conv2D(3, (4, 3), strides=(2, 1), padding="same",
                                                                  input_shape=(7, 6, 2))), _x((2, 7, 6, 2))),
    "conv_same_stride2_kernel2": lambda: (_model(layers.Conv2D(2, 2, strides=2, padding="SAME",
                                                               input_shape=(5, 5, 1))), _x((2, 5, 5, 1))),
    "conv_valid_strided_uncovered": lambda: (_model(layers.Conv2D(2, 3, strides=2, use_bias=False,
                                                                  input_shape=(8, 7, 2))), _x((2, 8, 7, 2))),
    # pooling: valid/same, asymmetric padding, inputs all negative so a padded zero would win a max
    "maxpool_valid": lambda: (_model(layers.MaxPooling2D(2, input_shape=(5, 4, 3))), _x((2, 5, 4, 3))),
    "maxpool_same_negative": lambda: (_model(layers.MaxPooling2D(3, strides=2, padding="same",
                                                                 input_shape=(6, 7, 2))),
                                      _x((2, 6, 7, 2), shift=-5.0)),
    "maxpool_rect_same": lambda: (_model(layers.MaxPooling2D((2, 3), strides=(1, 2), padding="same",
                                                             input_shape=(4, 5, 2))), _x((2, 4, 5, 2))),
    "avgpool_valid": lambda: (_model(layers.AveragePooling2D(2, input_shape=(4, 6, 2))), _x((2, 4, 6, 2))),
    "avgpool_same_excludes_padding": lambda: (_model(layers.AveragePooling2D(3, strides=2, padding="same",
                                                                             input_shape=(6, 7, 2))),
                                              _x((2, 6, 7, 2), shift=3.0)),
    "avgpool_after_conv": lambda: (_model(layers.Conv2D(3, 3, padding="same", input_shape=(5, 5, 2)),
                                          layers.AveragePooling2D((2, 2), padding="same"), layers.Flatten()),
                                   _x((2, 5, 5, 2))),
    # global pooling, keepdims False and True (True as the output: the graph ends NHWC)
    "global_avg": lambda: (_model(layers.GlobalAveragePooling2D(input_shape=(3, 4, 5))), _x((2, 3, 4, 5))),
    "global_max_keepdims": lambda: (_model(layers.GlobalMaxPooling2D(keepdims=True, input_shape=(3, 4, 5))),
                                    _x((2, 3, 4, 5))),
    "conv_global_avg_keepdims_dense": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 4, 2)),
                                                      layers.GlobalAveragePooling2D(keepdims=True),
                                                      layers.Dense(2)), _x((2, 4, 4, 2))),
    "conv_global_max_dense": lambda: (_model(layers.Conv2D(4, 2, input_shape=(4, 5, 1)),
                                             layers.GlobalMaxPooling2D(), layers.Dense(3, activation="sigmoid")),
                                      _x((2, 4, 5, 1))),
    # identities at inference
    "noise_and_dropouts": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 4, 2)),
                                          layers.SpatialDropout2D(0.5), layers.GaussianNoise(1.0),
                                          layers.Flatten(), layers.Dropout(0.5), layers.Dense(2)),
                                   _x((3, 4, 4, 2))),
    "dropout_only": lambda: (_model(layers.Dropout(0.3, input_shape=(4,))), _x((2, 4))),
    # BatchNormalization: moving statistics, epsilon, center/scale flags, both layouts
    "batchnorm_dense": lambda: (_model(layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(epsilon=0.01)),
                                _x((3, 3))),
    "batchnorm_image_input": lambda: (_model(layers.BatchNormalization(input_shape=(3, 3, 4))),
                                      _x((2, 3, 3, 4), shift=0.5)),
    "batchnorm_after_conv_no_center": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 4, 2)),
                                                      layers.BatchNormalization(center=False),
                                                      layers.Activation("relu")), _x((2, 4, 4, 2))),
    "batchnorm_no_scale_rank3": lambda: (_model(layers.BatchNormalization(scale=False, input_shape=(2, 3))),
                                         _x((3, 2, 3))),
    "batchnorm_neither": lambda: (_model(layers.BatchNormalization(center=False, scale=False, input_shape=(3,))),
                                  _x((4, 3))),
    # the parametrised activation layers, in the NHWC and the NCHW part of a graph
    "leaky_relu": lambda: (_model(layers.LeakyReLU(negative_slope=0.1, input_shape=(6,))), _x((3, 6))),
    "leaky_relu_after_conv": lambda: (_model(layers.Conv2D(3, 2, input_shape=(3, 3, 2)), layers.LeakyReLU()),
                                      _x((2, 3, 3, 2))),
    "relu_plain": lambda: (_model(layers.ReLU(input_shape=(6,))), _x((3, 6))),
    "relu_max_value": lambda: (_model(layers.ReLU(max_value=0.8, input_shape=(6,))), _x((4, 6))),
    "relu_negative_slope": lambda: (_model(layers.ReLU(negative_slope=0.2, input_shape=(6,))), _x((4, 6))),
    "relu_threshold": lambda: (_model(layers.ReLU(threshold=0.5, input_shape=(6,))), _x((4, 6))),
    "relu_all_after_conv": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 4, 2)),
                                           layers.ReLU(max_value=1.0, negative_slope=0.3, threshold=0.2)),
                                    _x((2, 4, 4, 2))),
    "relu_max_and_slope": lambda: (_model(layers.ReLU(max_value=6.0, negative_slope=0.1, input_shape=(6,))),
                                   _x((4, 6), scale=5.0)),
    "elu": lambda: (_model(layers.ELU(alpha=0.7, input_shape=(6,))), _x((4, 6))),
    "softmax_2d": lambda: (_model(layers.Softmax(input_shape=(6,))), _x((3, 6), scale=3.0)),
    "softmax_after_conv": lambda: (_model(layers.Conv2D(4, 2, input_shape=(3, 3, 2)), layers.Softmax()),
                                   _x((2, 3, 3, 2))),
    "softmax_rank3": lambda: (_model(layers.Softmax(axis=-1, input_shape=(2, 5))), _x((3, 2, 5))),
    # PReLU: full alpha, shared axes, alpha laid out for the NCHW part of a graph
    "prelu_dense": lambda: (_model(layers.Dense(5, input_shape=(3,)), layers.PReLU()), _x((4, 3))),
    "prelu_image_input_shared": lambda: (_model(layers.PReLU(shared_axes=[1, 2], input_shape=(3, 4, 2))),
                                         _x((2, 3, 4, 2))),
    "prelu_after_conv_full": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 5, 2)), layers.PReLU()),
                                      _x((2, 4, 5, 2))),
    "prelu_after_conv_shared_h": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 5, 2)),
                                                 layers.PReLU(shared_axes=[1]), layers.Flatten()),
                                          _x((2, 4, 5, 2))),
    # an Input object and aliases
    "input_object_and_aliases": lambda: (_model(kerust.Input((5, 5, 1)), layers.MaxPool2D(), layers.AvgPool2D(1),
                                                layers.GlobalMaxPool2D()), _x((2, 5, 5, 1))),
    "activation_linear_layer": lambda: (_model(layers.Activation("linear", input_shape=(3,))), _x((2, 3))),
    # moving values: Permute (also after a convolution, whose output is NCHW inside the graph), RepeatVector
    "permute_after_conv": lambda: (_model(layers.Conv2D(3, 2, input_shape=(4, 5, 2)), layers.Permute((3, 1, 2)),
                                          layers.Flatten()), _x((2, 4, 5, 2))),
    "repeat_vector_identity": lambda: (_model(layers.Dense(3, input_shape=(4,)), layers.RepeatVector(2),
                                              layers.Identity(), layers.Permute((2, 1))), _x((2, 4))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_predict(case: str, tmp_path: Path) -> None:
    model, x = CASES[case]()
    _check_same(model, x, tmp_path)


def test_cases_cover_every_layer_class() -> None:
    covered = set()
    for build in CASES.values():
        model, _ = build()
        covered.update(layer.class_name for layer in model.layers)
    single_input = set(layers._CLASSES) - set(konnx.GRAPH_ONLY_LAYERS) - set(konnx.NOT_EXPORTED_LAYERS)
    assert covered == single_input, f"missing: {single_input - covered}"
    assert not set(konnx.NOT_EXPORTED_LAYERS) & set(konnx.SUPPORTED_LAYERS)
    assert set(konnx.SUPPORTED_LAYERS) == single_input


# ---- every activation name ----------------------------------------------------------------------------------
def _engine_activation_names() -> List[str]:
    """The names the engine accepts, read from src/activations.rs when the source is there."""
    source = REPO / "src" / "activations.rs"
    if not source.is_file():
        return []
    match = re.search(r"pub const NAMES: &\[&str\] = &\[(.*?)\];", source.read_text(), re.S)
    assert match, "src/activations.rs: NAMES not found"
    return re.findall(r'"([a-z0-9_]+)"', match.group(1))


ACTIVATIONS = sorted(set(_engine_activation_names()) | {
    "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "softplus", "softsign", "swish",
    "silu", "relu6", "hard_sigmoid", "exponential", "leaky_relu",
})


def _activation_input(shape: Tuple[int, ...]) -> np.ndarray:
    """Values across each activation's interesting range: large negatives, both sides of 0, past relu6's 6 and
    hard_sigmoid's +-3."""
    x = _x(shape, seed=7, scale=3.0)
    flat = x.reshape(-1)
    flat[:6] = [-7.5, -3.0, -0.25, 0.0, 3.0, 6.5]
    return x


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_matches_predict(name: str, tmp_path: Path) -> None:
    model = _model(layers.Activation(name, input_shape=(3, 4)))
    _check_same(model, _activation_input((3, 3, 4)), tmp_path)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_in_dense_and_conv_matches_predict(name: str, tmp_path: Path) -> None:
    dense = _model(layers.Dense(6, activation=name, input_shape=(4,)))
    _check_same(dense, _activation_input((3, 4)), tmp_path)
    # applied in the NCHW part of the graph (softmax then runs over the channel axis 1)
    conv = _model(layers.Conv2D(3, 2, activation=name, input_shape=(3, 4, 2)))
    _check_same(conv, _x((2, 3, 4, 2)), tmp_path)
    after_conv = _model(layers.Conv2D(3, 2, input_shape=(3, 4, 2)), layers.Activation(name))
    _check_same(after_conv, _x((2, 3, 4, 2)), tmp_path)


def test_every_engine_activation_is_exported() -> None:
    names = _engine_activation_names()
    if not names:
        pytest.skip("src/activations.rs is not in this checkout")
    assert set(names) <= set(konnx.SUPPORTED_ACTIVATIONS)


# ---- whole models, batch sizes, opsets ------------------------------------------------------------------------
def test_seed_cnn_after_training_and_dynamic_batch(tmp_path: Path) -> None:
    model = seed_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    x_train = rng.random((16, 28, 28, 1), dtype=np.float32)
    y_train = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    model.fit(x_train, y_train, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "seed_cnn.onnx"
    proto = _export_and_load(model, path)
    session = _session(path)
    for n in (1, 5):  # the same file, two batch sizes
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        got = session.run(None, {"input": x})[0]
        want = model.predict(x, verbose=0)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # transposes only at the two layout changes: into the convolutions and back before Flatten
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Transpose") == 2
    assert ops.count("Conv") == 3 and ops.count("MaxPool") == 2


def test_graph_signature_is_nhwc_with_a_symbolic_batch(tmp_path: Path) -> None:
    model = _model(layers.Conv2D(2, 3, input_shape=(6, 5, 3)), layers.GlobalAveragePooling2D())
    proto = _export_and_load(model, tmp_path / "m.onnx")
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "batch" and not in_dims[0].HasField("dim_value")
    assert [d.dim_value for d in in_dims[1:]] == [6, 5, 3]
    out_dims = out.type.tensor_type.shape.dim
    assert out_dims[0].dim_param == "batch" and [d.dim_value for d in out_dims[1:]] == [2]
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13)]
    assert proto.producer_name == "kerust"
    # weights are stored under their layer's name, in ONNX's layout for Conv
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_array_equal(inits[f"{model.layers[0].name}/kernel"], kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(inits[f"{model.layers[0].name}/bias"], bias)
    # one batch of 3 and one of 1 through the same session
    session = _session(tmp_path / "m.onnx")
    for n in (3, 1):
        x = _x((n, 6, 5, 3), seed=n)
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x, verbose=0),
                                   rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_higher_opsets(opset: int, tmp_path: Path) -> None:
    model = _model(layers.Conv2D(3, 3, padding="same", activation="gelu", input_shape=(5, 5, 2)),
                   layers.BatchNormalization(), layers.AveragePooling2D(2, padding="same"),
                   layers.GlobalMaxPooling2D(keepdims=True), layers.Flatten(), layers.Dense(3, activation="softmax"))
    proto = onnx.load_from_string(konnx.to_onnx(model, opset=opset).SerializeToString())
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    _check_same(model, _x((2, 5, 5, 2)), tmp_path, opset=opset)


def test_bn_model_with_trained_statistics(tmp_path: Path) -> None:
    """BatchNormalization whose moving statistics came from training (not set by hand)."""
    model = kerust.Sequential([layers.Conv2D(4, 3, input_shape=(6, 6, 1)), layers.BatchNormalization(momentum=0.5),
                               layers.ReLU(), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = _x((8, 6, 6, 1), shift=2.0)
    model.fit(x, _x((8, 2)), batch_size=4, epochs=2, verbose=0)
    mean, variance = model.layers[1].get_weights()[2:]
    assert np.abs(mean).max() > 0.05 and np.abs(variance - 1.0).max() > 0.05  # really moved
    _check_same(model, x, tmp_path)


def _keras_fixtures() -> Path:
    return keras_files_dir()  # committed in the repository: never skipped


@pytest.mark.parametrize("name", ["seed_cnn", "mlp_dropout_sgd", "bn_cnn_rmsprop"])
def test_keras_trained_models_export(name: str, tmp_path: Path) -> None:
    """Models Keras trained (loaded from its .keras files): the ONNX file gives Keras's own predictions."""
    pytest.importorskip("h5py")
    fixtures = _keras_fixtures()
    model = kerust.saving.load_model(fixtures / f"{name}.keras")
    with np.load(fixtures / "expected.npz") as data:
        x, keras_out = data["x"][:16], data[name][:16]
    got = _check_same(model, x, tmp_path)
    np.testing.assert_allclose(got, keras_out, rtol=RTOL, atol=ATOL)


# ---- files and errors ---------------------------------------------------------------------------------------------
def test_export_replaces_a_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old contents")
    model = _model(layers.Dense(2, input_shape=(3,)))
    konnx.export(model, str(path))
    assert onnx.load(str(path)).graph.node  # the new file, complete
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    # a folder that does not exist: the OSError of the write, and nothing left anywhere
    with pytest.raises(OSError):
        konnx.export(model, tmp_path / "missing" / "model.onnx")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    # a failing export (bad opset) leaves the existing file as it was
    before = path.read_bytes()
    with pytest.raises(ValueError):
        konnx.export(model, path, opset=12)
    assert path.read_bytes() == before


def test_unbuilt_and_empty_models_raise_value_error(tmp_path: Path) -> None:
    unbuilt = kerust.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        konnx.export(unbuilt, tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="not built"):
        konnx.export(kerust.Sequential(), tmp_path / "b.onnx")
    assert not os.listdir(tmp_path)
    with pytest.raises(TypeError, match="Sequential"):
        konnx.export(object(), tmp_path / "c.onnx")


@pytest.mark.parametrize("opset, error", [(12, ValueError), (10**6, ValueError), (0, ValueError),
                                          ("13", TypeError), (13.0, TypeError), (True, TypeError)])
def test_bad_opset(opset: Any, error: type, tmp_path: Path) -> None:
    model = _model(layers.Dense(2, input_shape=(3,)))
    with pytest.raises(error, match="opset"):
        konnx.export(model, tmp_path / "m.onnx", opset=opset)


def test_bad_path_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="filepath"):
        konnx.export(_model(layers.Dense(2, input_shape=(3,))), 42)


def test_unknown_layer_class_names_the_layer(tmp_path: Path) -> None:
    model = _model(layers.Dense(2, input_shape=(3,), name="mystery_dense"))
    # a layer class the exporter does not know (as a future kerust layer would be): refused, not guessed
    model.layers[0]._keras_class = "Mystery"
    with pytest.raises(ValueError, match=r"mystery_dense.*Mystery"):
        konnx.export(model, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


def test_sequence_layers_are_refused_by_name(tmp_path: Path) -> None:
    import kerust

    model = kerust.Sequential([kerust.Input((5, 3)), layers.LSTM(2, name="the_lstm")])
    with pytest.raises(ValueError, match=r"the_lstm.*LSTM"):
        konnx.export(model, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


def test_unknown_activation_names_the_layer(tmp_path: Path) -> None:
    model = _model(layers.Dense(2, activation="relu", input_shape=(3,), name="odd_act"))
    model.layers[0].activation = "glu"  # a name the exporter does not know (nor the engine)
    with pytest.raises(ValueError, match=r"odd_act.*'glu'"):
        konnx.export(model, tmp_path / "m.onnx")


def test_missing_onnx_package_raises_import_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = _model(layers.Dense(2, input_shape=(3,)))
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        konnx.export(model, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


def test_importing_kerust_does_not_import_onnx() -> None:
    code = ("import sys, kerust, kerust.onnx\n"
            "bad = sorted(m for m in sys.modules if m == 'onnx' or m.startswith(('onnx.', 'onnxruntime')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
