"""The functional API on the graph engine: `keras.Model(inputs, outputs)`, merge layers, shared layers, nested
models, several inputs and outputs, files both ways with Keras, and the errors Keras gives.

Reference values come from real Keras 3.15.1 (TensorFlow backend), written by
`tests/reference/generate_functional.py` into `tests/reference/functional/`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust import layers

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "reference" / "functional"
EXPECTED = np.load(FIXTURES / "expected.npz")
TOL = 1e-5


def _close(a: np.ndarray, b: np.ndarray, tol: float = TOL) -> None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol * np.maximum(1.0, np.abs(b))), float(np.max(np.abs(a - b)))


def _targets() -> dict:
    return {"cls": EXPECTED["y_cls"], "reg": EXPECTED["y_reg"]}


# ---- building --------------------------------------------------------------------------------------------------
def test_input_is_a_symbolic_tensor_and_layers_record_nodes(uid):
    inp = kerust.Input((4,), name=uid("x"))
    assert inp.shape == (None, 4) and inp.dtype == "float32" and inp.name.startswith("x_u")
    dense = layers.Dense(3, name=uid("d"))
    out = dense(inp)
    assert out.shape == (None, 3)
    assert dense.input is inp and dense.output is out
    with pytest.raises(TypeError, match="bool"):
        bool(out)


def test_a_layer_called_on_arrays_runs_eagerly_and_returns_numpy(uid):
    dense = layers.Dense(2, name=uid("d"))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = dense(x)
    assert isinstance(y, np.ndarray) and y.shape == (2, 2)
    kernel, bias = dense.get_weights()
    _close(y, x @ kernel + bias)
    # the weights made by the eager call are the layer's: a model built on it keeps them
    inp = kerust.Input((3,))
    model = kerust.Model(inp, dense(inp))
    _close(model.predict(x, verbose=0), y)
    added = layers.Add()([x, 2 * x])
    _close(added, 3 * x)


def test_functional_model_trains_with_two_outputs_and_keras_history_keys(uid):
    inp = kerust.Input((4,), name=uid("x"))
    h = layers.Dense(8, activation="relu")(inp)
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(h)
    model = kerust.Model(inp, [cls, reg])
    assert model.output_names == ["cls", "reg"]
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mae"]])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y_cls = rng.integers(0, 3, 40)
    y_reg = x[:, :1]
    hist = model.fit(x, [y_cls, y_reg], epochs=2, verbose=0, validation_split=0.25)
    # Keras 3.15.1 writes exactly these keys for this compile
    assert sorted(hist.history) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae", "val_cls_accuracy",
                                    "val_cls_loss", "val_loss", "val_reg_loss", "val_reg_mae"]
    values = model.evaluate(x, [y_cls, y_reg], verbose=0)
    assert model.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    assert values[0] == pytest.approx(values[1] + 0.5 * values[2], rel=1e-6)  # per-output losses are unweighted
    as_dict = model.evaluate({inp.name: x}, {"cls": y_cls, "reg": y_reg}, verbose=0, return_dict=True)
    assert as_dict["loss"] == pytest.approx(values[0])
    preds = model.predict(x, verbose=0)
    assert isinstance(preds, list) and [p.shape for p in preds] == [(40, 3), (40, 1)]


def test_dict_inputs_and_outputs_follow_their_keys(uid):
    a = kerust.Input((3,), name=uid("a"))
    b = kerust.Input((2,), name=uid("b"))
    merged = layers.concatenate([a, b])
    out1 = layers.Dense(1)(merged)
    out2 = layers.Dense(2, activation="softmax")(merged)
    model = kerust.Model({"first": a, "second": b}, {"score": out1, "label": out2})
    assert model.output_names == ["label", "score"]  # dicts flatten in key order, as Keras's tree.flatten
    model.compile(optimizer="sgd", loss={"score": "mse", "label": "sparse_categorical_crossentropy"},
                  metrics={"label": ["accuracy"]})
    x = {"first": np.ones((6, 3), np.float32), "second": np.zeros((6, 2), np.float32)}
    y = {"score": np.zeros((6, 1), np.float32), "label": np.zeros(6)}
    hist = model.fit(x, y, epochs=1, verbose=0)
    assert sorted(hist.history) == ["label_accuracy", "label_loss", "loss", "score_loss"]
    out = model.predict(x, verbose=0)
    assert sorted(out) == ["label", "score"] and out["score"].shape == (6, 1)


def test_sample_weight_per_output_weights_only_that_output(uid):
    inp = kerust.Input((2,))
    o1 = layers.Dense(1, name=uid("o"), kernel_initializer="ones")(inp)
    o2 = layers.Dense(1, name=uid("p"), kernel_initializer="ones")(inp)
    model = kerust.Model(inp, [o1, o2])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1, 0], [0, 2]], np.float32)
    y = [np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)]
    plain = model.evaluate(x, y, verbose=0)
    weighted = model.evaluate(x, y, sample_weight=[np.array([1.0, 0.0], np.float32), None], verbose=0)
    assert plain[1] == pytest.approx(2.5) and plain[2] == pytest.approx(2.5)
    assert weighted[1] == pytest.approx(0.5) and weighted[2] == pytest.approx(2.5)


# ---- Keras's files --------------------------------------------------------------------------------------------
def test_keras_functional_file_loads_with_equal_predictions_and_layer_order():
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    assert [layer.name for layer in model.layers] == json.loads(str(EXPECTED["layer_names"]))
    pred_cls, pred_reg = model.predict(EXPECTED["x"], verbose=0)
    _close(pred_cls, EXPECTED["saved_pred_cls"])
    _close(pred_reg, EXPECTED["saved_pred_reg"])
    weights = model.get_weights()
    assert len(weights) == len(json.loads(str(EXPECTED["weight_paths"])))
    for i, w in enumerate(weights):
        _close(w, EXPECTED[f"saved_weight_{i}"], 0)  # Keras's model.weights order, bit for bit
    _close(np.array(model.evaluate(EXPECTED["x"], _targets(), batch_size=32, verbose=0)), EXPECTED["saved_eval"])


def test_keras_functional_file_resumes_training_like_keras():
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    hist = model.fit(EXPECTED["x"], _targets(), batch_size=16, epochs=1, shuffle=False, verbose=0)
    keras_hist = json.loads(str(EXPECTED["resumed_history"]))
    assert sorted(hist.history) == sorted(keras_hist)
    for key, values in keras_hist.items():
        assert hist.history[key][0] == pytest.approx(values[0], rel=1e-5, abs=1e-6), key
    assert model.optimizer.iterations == int(EXPECTED["resumed_iterations"])
    pred_cls, pred_reg = model.predict(EXPECTED["x"], verbose=0)
    _close(pred_cls, EXPECTED["resumed_pred_cls"], 1e-4)
    _close(pred_reg, EXPECTED["resumed_pred_reg"], 1e-4)


def _config(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json"))


def _structure(cfg: dict) -> object:
    """What a functional config says about the graph: classes, names, node references and nesting."""
    inner = cfg["config"]
    out = {"class": cfg["class_name"], "input_layers": inner.get("input_layers"),
           "output_layers": inner.get("output_layers"), "layers": []}
    for entry in inner["layers"]:
        row = {"class": entry["class_name"], "name": entry.get("name", entry["config"].get("name"))}
        if "inbound_nodes" in entry:
            row["nodes"] = [[t["config"]["keras_history"] for t in (n["args"][0] if isinstance(n["args"][0], list)
                                                                     else n["args"])] for n in entry["inbound_nodes"]]
        if entry["class_name"] in ("Sequential", "Functional"):
            row["inner"] = [e["class_name"] for e in entry["config"]["layers"]]
        out["layers"].append(row)
    return out


def test_kerust_writes_the_graph_as_keras_does(tmp_path):
    for name in ("residual_two_outputs", "merges"):
        model = kerust.models.load_model(FIXTURES / f"{name}.keras", compile=False)
        model.save(tmp_path / f"{name}.keras")
        assert _structure(_config(tmp_path / f"{name}.keras")) == _structure(_config(FIXTURES / f"{name}.keras"))
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as mine, zipfile.ZipFile(FIXTURES / f"{name}.keras") as ks:
            import h5py
            import io

            def datasets(zf: zipfile.ZipFile) -> dict:
                found = {}
                with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
                    f["layers"].visititems(lambda n, o: found.setdefault(n, o.shape) if hasattr(o, "shape") else None)
                return found

            assert datasets(mine) == datasets(ks)  # the same layer paths and shapes in the weights file
        again = kerust.models.load_model(tmp_path / f"{name}.keras")
        x = [EXPECTED["merge_a"], EXPECTED["merge_b"], EXPECTED["merge_seq"]] if name == "merges" else EXPECTED["x"]
        for a, b in zip(again.predict(x, verbose=0), model.predict(x, verbose=0)):
            _close(a, b, 0)


def test_kerust_file_round_trip_keeps_training_state(tmp_path, uid):
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    model.save(tmp_path / "m.keras")
    again = kerust.models.load_model(tmp_path / "m.keras")
    h1 = model.fit(EXPECTED["x"], _targets(), batch_size=16, epochs=1, shuffle=False, verbose=0)
    h2 = again.fit(EXPECTED["x"], _targets(), batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert h1.history == h2.history
    js = model.to_json()
    fresh = kerust.models.model_from_json(js)
    assert [layer.name for layer in fresh.layers] == [layer.name for layer in model.layers]
    assert [w.shape for w in fresh.get_weights()] == [w.shape for w in model.get_weights()]


def test_clone_model_has_the_architecture_and_new_weights():
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    clone = kerust.models.clone_model(model)
    assert [type(la).__name__ for la in clone.layers] == [type(la).__name__ for la in model.layers]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.allclose(clone.get_weights()[0], model.get_weights()[0])
    assert not clone.compiled
    seq = kerust.Sequential([kerust.Input((3,)), layers.Dense(2)])
    assert [w.shape for w in kerust.models.clone_model(seq).get_weights()] == [(3, 2), (2,)]


# ---- merge layers against Keras -------------------------------------------------------------------------------
MERGE_NAMES = json.loads(str(EXPECTED["merge_output_names"]))


@pytest.fixture(scope="module")
def merges_model():
    return kerust.models.load_model(FIXTURES / "merges.keras", compile=False)


def _merge_inputs() -> list:
    return [EXPECTED["merge_a"], EXPECTED["merge_b"], EXPECTED["merge_seq"]]


def test_merge_layers_compute_what_keras_computes(merges_model):
    outs = merges_model.predict(_merge_inputs(), verbose=0)
    for name, out in zip(MERGE_NAMES, outs):
        _close(out, EXPECTED[f"merge_out__{name}"])


@pytest.mark.parametrize("name", MERGE_NAMES)
def test_merge_layer_input_gradients_equal_keras(merges_model, name):
    """dL/d(inputs) for L = sum(out * R), from inspect: an mse target t = out - R * n / 2 makes dL/d(out) = R."""
    k = MERGE_NAMES.index(name)
    losses = [None] * len(MERGE_NAMES)
    losses[k] = "mse"
    merges_model.compile(optimizer="sgd", loss=losses)
    x = _merge_inputs()
    out = merges_model.predict(x, verbose=0)[k]
    r = EXPECTED[f"merge_R__{name}"]
    y = [np.zeros_like(o) for o in merges_model.predict(x, verbose=0)]
    y[k] = (out - r * out.size / 2).astype(np.float32)
    grads = merges_model.inspect(x, y).input_gradient
    for g, which in zip(grads, ("a", "b", "seq")):
        _close(g, EXPECTED[f"merge_grad__{name}__{which}"], 1e-4)


def test_merge_shapes_broadcast_and_errors_name_layer_and_shapes(uid):
    a = kerust.Input((3, 4))
    b = kerust.Input((1, 4))
    assert layers.Add()([a, b]).shape == (None, 3, 4)
    assert layers.Multiply()([a, kerust.Input((4,))]).shape == (None, 3, 4)
    name = uid("bad_add")
    with pytest.raises(ValueError, match=name) as info:
        layers.Add(name=name)([kerust.Input((3,)), kerust.Input((4,))])
    assert "(None, 3)" in str(info.value) and "(None, 4)" in str(info.value)
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate()([kerust.Input((3, 5)), kerust.Input((4, 6))])
    with pytest.raises(ValueError, match="exactly 2"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(a)
    assert layers.Dot(axes=(1, 1))([kerust.Input((3, 2)), kerust.Input((3, 5))]).shape == (None, 2, 5)


# ---- gradients through the graph (finite differences) ---------------------------------------------------------
def _fd_model(kind: str, uid) -> tuple:
    rng = np.random.default_rng(3)
    a = kerust.Input((3,), name=uid("a"))
    b = kerust.Input((3,), name=uid("b"))
    shared = layers.Dense(3, activation="tanh", name=uid("shared"))
    if kind == "add":
        out = layers.Dense(2, name=uid("o"))(layers.Add()([shared(a), b]))
    elif kind == "concatenate":
        out = layers.Dense(2, name=uid("o"))(layers.Concatenate()([shared(a), layers.Dense(2)(b)]))
    elif kind == "dot":
        out = layers.Dense(2, name=uid("o"))(layers.Dot(axes=1, normalize=True)([shared(a), layers.Dense(3)(b)]))
    else:  # a shared layer called twice, in sequence and in parallel
        out = layers.Dense(2, name=uid("o"))(layers.Average()([shared(shared(a)), shared(b)]))
    model = kerust.Model([a, b], out)
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    x = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)]
    y = rng.normal(size=(5, 2)).astype(np.float32)
    return model, x, y


@pytest.mark.parametrize("kind", ["add", "concatenate", "dot", "shared"])
def test_gradients_through_merges_and_shared_layers_match_finite_differences(kind, uid, fd_check):
    model, x, y = _fd_model(kind, uid)
    fd_check(model, x, y)


def test_a_shared_layer_sums_the_gradients_of_its_calls(uid):
    inp = kerust.Input((2,))
    shared = layers.Dense(2, use_bias=False, kernel_initializer="ones", name=uid("s"))
    out = layers.Add()([shared(inp), shared(inp)])
    model = kerust.Model(inp, out)
    single = kerust.Model(inp, shared(inp))
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    single.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    x = np.array([[1.0, 2.0]], np.float32)
    y = np.zeros((1, 2), np.float32)
    g_double = model.inspect(x, y)[shared.name]["weight_gradients"]["kernel"]
    g_single = single.inspect(x, y / 2)[shared.name]["weight_gradients"]["kernel"]
    # out = 2 W x; d mse / dW = 2 * (2 * d mse/d out at 2Wx) ... equals 4x the single model's at half the target
    _close(g_double, 4 * g_single)


# ---- nested models, freezing, sharing weights -----------------------------------------------------------------
def test_transfer_learning_recipe_freezes_the_base(uid):
    base = kerust.Sequential([kerust.Input((6,)), layers.Dense(5, activation="relu"), layers.BatchNormalization(),
                              layers.Dense(4)], name=uid("base"))
    before = [w.copy() for w in base.get_weights()]
    base.trainable = False
    model = kerust.Sequential([base, layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).normal(size=(32, 6)).astype(np.float32)
    model.fit(x, np.arange(32) % 2, epochs=2, verbose=0)
    for w0, w1 in zip(before, base.get_weights()):
        _close(w1, w0, 0)  # BatchNormalization's moving statistics too: a frozen model runs it in inference mode
    assert model.layers[0] is base and len(model.get_weights()) == len(before) + 2
    lines: list = []
    model.summary(print_fn=lines.append, expand_nested=True, show_trainable=True)
    text = "\n".join(lines)
    assert "└ " in text and f"{base.name} (Sequential)" in text
    assert model.count_params() == sum(w.size for w in model.get_weights())


def test_feature_extractor_shares_weights_with_its_model(uid):
    inp = kerust.Input((4,))
    hidden = layers.Dense(3, activation="relu", name=uid("hidden"))(inp)
    out = layers.Dense(2, activation="softmax")(hidden)
    model = kerust.Model(inp, out)
    extractor = kerust.Model(model.inputs, model.get_layer(hidden._keras_history[0].name).output)
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).normal(size=(16, 4)).astype(np.float32)
    before = extractor.predict(x, verbose=0)
    model.fit(x, np.arange(16) % 2, epochs=3, verbose=0)
    layer = model.get_layer(hidden._keras_history[0].name)
    kernel, bias = layer.get_weights()
    after = extractor.predict(x, verbose=0)
    assert not np.allclose(before, after)  # training the model moved the extractor
    _close(after, np.maximum(x @ kernel + bias, 0))
    # and the other way: changing the layer through the extractor reaches the model
    layer.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    assert np.allclose(extractor.predict(x, verbose=0), 0)
    last_bias = model.layers[-1].get_weights()[1]
    _close(model.predict(x, verbose=0), np.broadcast_to(_softmax(last_bias[None]), (16, 2)))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_sequential_layer_outputs_build_feature_extractors(uid):
    model = kerust.Sequential([kerust.Input((5,)), layers.Dense(4, name=uid("a")), layers.Dense(3, name=uid("b"))])
    extractor = kerust.Model(model.inputs, model.layers[0].output)
    x = np.ones((2, 5), np.float32)
    kernel, bias = model.layers[0].get_weights()
    _close(extractor.predict(x, verbose=0), x @ kernel + bias)
    model.add(layers.Dense(2))  # growing the model keeps the tensors handed out before
    assert kerust.Model(model.inputs, model.layers[1].output).predict(x, verbose=0).shape == (2, 3)


def test_a_model_called_on_a_tensor_becomes_a_layer(uid):
    inner_in = kerust.Input((3,))
    inner = kerust.Model(inner_in, layers.Dense(2, name=uid("i"))(inner_in), name=uid("inner"))
    outer_in = kerust.Input((3,))
    twice = layers.Add()([inner(outer_in), inner(outer_in)])
    outer = kerust.Model(outer_in, twice)
    x = np.ones((2, 3), np.float32)
    _close(outer.predict(x, verbose=0), 2 * inner.predict(x, verbose=0))
    assert len(outer.get_weights()) == 2  # the nested model's weights once
    lines: list = []
    outer.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert inner.name in text and "(Functional)" in text


# ---- summary as Keras prints it -------------------------------------------------------------------------------
def test_functional_summary_has_keras_connected_to_column():
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    lines: list = []
    model.summary(print_fn=lines.append)
    expected = json.loads(str(EXPECTED["summary"]))
    assert "\n".join(lines).splitlines()[1:] == expected[1:]  # the title names the model in both


# ---- errors ---------------------------------------------------------------------------------------------------
def test_graph_disconnected_names_the_tensor_and_layer(uid):
    a = kerust.Input((3,), name=uid("a"))
    b = kerust.Input((3,), name=uid("b"))
    name = uid("join")
    out = layers.Add(name=name)([a, b])
    with pytest.raises(ValueError, match="Graph disconnected") as info:
        kerust.Model(a, out)
    assert name in str(info.value)


def test_wrong_inputs_and_keys_list_what_is_expected(uid):
    a = kerust.Input((3,), name=uid("a"))
    b = kerust.Input((3,), name=uid("b"))
    out = layers.Dense(1, name=uid("out"))(layers.concatenate([a, b]))
    model = kerust.Model([a, b], out)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="expects 2 input"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match="Missing data for input") as info:
        model.fit({"wrong": x, a.name: x}, np.ones((4, 1)), verbose=0)
    assert b.name in str(info.value)
    with pytest.raises(ValueError, match="Expected keys"):
        model.compile(optimizer="sgd", loss={"nope": "mse"})
    with pytest.raises(ValueError, match="incompatible"):
        model.predict([x, np.ones((4, 5), np.float32)], verbose=0)


def test_a_failed_model_leaves_its_layers_usable(uid):
    inp = kerust.Input((3,))
    dense = layers.Dense(2, name=uid("d"))
    good = kerust.Model(inp, dense(inp))
    before = good.get_weights()
    other = kerust.Input((3,))
    with pytest.raises(ValueError):
        kerust.Model(inp, layers.Add()([dense(inp), dense(other)]))  # disconnected
    _close(good.predict(np.ones((1, 3), np.float32), verbose=0),
           np.ones((1, 3)) @ before[0] + before[1])
    seq = kerust.Sequential([kerust.Input((3,)), dense])
    with pytest.raises(ValueError):
        seq.add(layers.Reshape((7,)))
    assert len(seq.layers) == 1 and seq.predict(np.ones((1, 3), np.float32), verbose=0).shape == (1, 2)


def test_shared_layer_on_an_incompatible_shape_is_refused(uid):
    dense = layers.Dense(2, name=uid("d"))
    a = kerust.Input((3,))
    b = kerust.Input((4,))
    with pytest.raises(ValueError, match=dense.name):
        kerust.Model([a, b], layers.Add()([dense(a), dense(b)]))


# ---- Keras itself reads kerust's functional files (only where Keras is installed) -----------------------------
def test_keras_reads_kerust_functional_files(tmp_path, uid):
    import os
    import subprocess
    import textwrap

    from test_saving import _keras_python

    python = _keras_python()
    model = kerust.models.load_model(FIXTURES / "residual_two_outputs.keras")
    model.fit(EXPECTED["x"], _targets(), batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "residual.keras")
    np.save(tmp_path / "residual_pred.npy", model.predict(EXPECTED["x"], verbose=0)[0])
    a = kerust.Input((5,), name=uid("a"))
    b = kerust.Input((5,), name=uid("b"))
    shared = layers.Dense(4, activation="relu", name=uid("s"))
    out = layers.Dense(2, activation="softmax", name=uid("o"))(layers.concatenate([shared(a), shared(b)]))
    made = kerust.Model([a, b], out)
    made.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(4)
    x1, x2 = rng.random((8, 5), dtype=np.float32), rng.random((8, 5), dtype=np.float32)
    made.fit([x1, x2], np.eye(2, dtype=np.float32)[np.arange(8) % 2], epochs=1, verbose=0)
    made.save(tmp_path / "made.keras")
    np.savez(tmp_path / "made.npz", x1=x1, x2=x2, p=made.predict([x1, x2], verbose=0))
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        d = {str(tmp_path)!r}
        e = np.load({str(FIXTURES / "expected.npz")!r})
        m = keras.saving.load_model(d + "/residual.keras")
        print("residual", float(np.abs(m.predict(e["x"], verbose=0)[0] - np.load(d + "/residual_pred.npy")).max()),
              int(m.optimizer.iterations))
        k = keras.saving.load_model(d + "/made.keras")
        z = np.load(d + "/made.npz")
        print("made", float(np.abs(k.predict([z["x1"], z["x2"]], verbose=0) - z["p"]).max()),
              int(k.optimizer.iterations))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.split()}
    assert float(found["residual"][0]) <= 1e-5 and int(found["residual"][1]) == 18
    assert float(found["made"][0]) <= 1e-5 and int(found["made"][1]) == 1


def test_keras_transfer_learning_file_loads_and_keeps_the_base_frozen():
    model = kerust.models.load_model(FIXTURES / "transfer.keras")
    base = model.layers[0]
    assert isinstance(base, kerust.Sequential) and not base.trainable and not base.layers[1].trainable
    _close(model.predict(EXPECTED["x"], verbose=0), EXPECTED["transfer_pred"])
    hist = model.fit(EXPECTED["x"], EXPECTED["y_cls"], batch_size=16, epochs=1, shuffle=False, verbose=0)
    for key, values in json.loads(str(EXPECTED["transfer_history"])).items():
        assert hist.history[key][0] == pytest.approx(values[0], rel=1e-5, abs=1e-6), key
    _close(model.predict(EXPECTED["x"], verbose=0), EXPECTED["transfer_resumed_pred"], 1e-4)
    for i, w in enumerate(model.get_weights()):  # the frozen base, BatchNormalization's statistics included
        _close(w, EXPECTED[f"transfer_weight_{i}"], 1e-4)


# ---- hostile functional configs -------------------------------------------------------------------------------
def _edited(tmp_path: Path, edit) -> Path:
    src = FIXTURES / "residual_two_outputs.keras"
    out = tmp_path / "edited.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    return out


def _layer_entry(cfg: dict, name: str) -> dict:
    return next(e for e in cfg["config"]["layers"] if e["name"] == name)


def _history(entry: dict, node: int = 0, arg: int = 0) -> list:
    args = entry["inbound_nodes"][node]["args"][0]
    tensor = args[arg] if isinstance(args, list) else args
    return tensor["config"]["keras_history"]


HOSTILE = {
    "a reference to a layer that does not exist": (
        lambda c: _history(_layer_entry(c, "cls")).__setitem__(0, "nowhere"), "never computed"),
    "a cycle": (lambda c: _history(_layer_entry(c, "shared")).__setitem__(0, "cls"), "never computed"),
    "a node index past the layer's calls": (
        lambda c: _history(_layer_entry(c, "residual"), arg=1).__setitem__(1, 7), "never computed"),
    "a tensor index past the layer's outputs": (
        lambda c: _history(_layer_entry(c, "cls")).__setitem__(2, 3), "points past"),
    "a reference that is not a triple": (
        lambda c: _history(_layer_entry(c, "cls")).append(0), "reference"),
    "call arguments": (
        lambda c: _layer_entry(c, "cls")["inbound_nodes"][0]["kwargs"].__setitem__("training", True), "not supported"),
    "a custom nested model": (lambda c: _layer_entry(c, "block").__setitem__("module", "my_models"), "module"),
    "an unknown layer class": (lambda c: _layer_entry(c, "cls").__setitem__("class_name", "Evil"), "Unknown layer"),
    "two layers with one name": (lambda c: _layer_entry(c, "reg").__setitem__("name", "cls"), "unique"),
    "outputs that are not references": (
        lambda c: c["config"].__setitem__("output_layers", "cls"), "output_layers"),
    "weights that no longer fit the graph": (
        lambda c: _history(_layer_entry(c, "cls")).__setitem__(0, "features"), "shape"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_functional_configs_are_refused_with_value_error(case, tmp_path):
    edit, message = HOSTILE[case]
    with pytest.raises(ValueError, match=message):
        kerust.models.load_model(_edited(tmp_path, edit))


# ---- regressions: shared weights across models, pop, NaN replays, shared BatchNormalization ---------------------
def test_a_model_that_only_reads_a_shared_layer_never_rolls_back_its_trainer(uid):
    rng = np.random.default_rng(8)
    x = rng.random((64, 4), dtype=np.float32)
    y = rng.random((64, 1), dtype=np.float32)
    inp = kerust.Input((4,))
    hidden = layers.Dense(3, name=uid("shared"))(inp)
    trainer = kerust.Model(inp, layers.Dense(1)(hidden))
    reader = kerust.Model(inp, hidden)
    trainer.compile(loss="mse", optimizer=kerust.optimizers.SGD(0.05))
    seen = []

    class ReadDuringTraining(kerust.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(reader.predict(x, verbose=0))

    trainer.fit(x, y, epochs=3, verbose=0, callbacks=[ReadDuringTraining()])
    after_fit = [w.copy() for w in trainer.get_weights()]
    assert not np.allclose(seen[0], seen[-1])  # the reader followed the training epoch by epoch
    trainer.predict(x, verbose=0)
    _close(np.concatenate([w.ravel() for w in trainer.get_weights()]),
           np.concatenate([w.ravel() for w in after_fit]), 0)
    kernel, bias = trainer.layers[1].get_weights()
    _close(reader.predict(x, verbose=0), x @ kernel + bias)


def test_a_popped_layer_keeps_its_weights(uid):
    first, second = layers.Dense(3, name=uid("a")), layers.Dense(2, name=uid("b"))
    model = kerust.Sequential([kerust.Input((4,)), first, second])
    kept = second.get_weights()
    assert model.pop() is second
    for a, b in zip(second.get_weights(), kept):
        _close(a, b, 0)
    again = kerust.Sequential([kerust.Input((3,)), second])
    for a, b in zip(again.get_weights(), kept):
        _close(a, b, 0)
    model.add(layers.Dense(5, name=uid("c")))
    assert model.predict(np.ones((1, 4), np.float32), verbose=0).shape == (1, 5)


def test_a_nan_batch_in_a_fused_conv_network_trains_on_with_a_nan_loss(uid):
    model = kerust.Sequential([kerust.Input((6, 6, 1)), layers.Conv2D(2, 3),
                               layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 6, 6, 1), np.float32)
    x[1] = np.nan
    with pytest.warns(UserWarning, match="non-finite"):
        hist = model.fit(x, np.zeros((4, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    assert np.isnan(hist.history["loss"][0])


def test_a_shared_batch_normalization_without_scale_and_center_trains_in_training_mode(uid):
    x = (np.random.default_rng(9).random((32, 4)) * 5 + 3).astype(np.float32)
    losses = []
    for flags in (False, True):
        inp = kerust.Input((4,))
        bn = layers.BatchNormalization(center=flags, scale=flags, name=uid("bn"))
        out = bn(layers.Dense(4, kernel_initializer="ones", name=uid("d"))(bn(inp)))
        model = kerust.Model(inp, out)
        model.compile(loss="mse", optimizer="sgd")
        losses.append(model.inspect(x, np.zeros((32, 4), np.float32)).loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # gamma = 1 and beta = 0: the same batch statistics


def test_dict_outputs_survive_a_file_round_trip(tmp_path, uid):
    inp = kerust.Input((3,), name=uid("i"))
    model = kerust.Model({"in": inp}, {"z_first": layers.Dense(1)(inp), "b_second": layers.Dense(2)(inp)})
    model.compile(optimizer="sgd", loss={"z_first": "mse", "b_second": "mse"}, metrics={"z_first": ["mae"]})
    model.save(tmp_path / "d.keras")
    again = kerust.models.load_model(tmp_path / "d.keras")
    assert again.output_names == ["b_second", "z_first"] and again.compiled
    out = again.predict({"in": np.ones((2, 3), np.float32)}, verbose=0)
    assert sorted(out) == ["b_second", "z_first"]
    single = kerust.Model([inp], [layers.Dense(2)(inp)])
    assert isinstance(single.predict(np.ones((2, 3), np.float32), verbose=0), np.ndarray)  # as Keras unwraps it


# Keras 3.15.1's summary() of the model in the test below (printed by real Keras, copied here verbatim)
KERAS_NESTED_SUMMARIES = {
    "show_trainable": """\
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━┓
┃ Layer (type)                ┃ Output Shape          ┃    Param # ┃ Trai… ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━┩
│ base (Sequential)           │ (None, 5)             │         35 │   N   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│ head (Dense)                │ (None, 2)             │         12 │   Y   │
└─────────────────────────────┴───────────────────────┴────────────┴───────┘
 Total params: 47 (188.00 B)
 Trainable params: 12 (48.00 B)
 Non-trainable params: 35 (140.00 B)""",
    "expand_nested": """\
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ base (Sequential)               │ (None, 5)              │            35 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│    └ d1 (Dense)                 │ (None, 5)              │            35 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ head (Dense)                    │ (None, 2)              │            12 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 47 (188.00 B)
 Trainable params: 12 (48.00 B)
 Non-trainable params: 35 (140.00 B)""",
}


@pytest.mark.parametrize("option", sorted(KERAS_NESTED_SUMMARIES))
def test_nested_sequential_summary_matches_keras(option):
    base = kerust.Sequential([kerust.Input((6,)), layers.Dense(5, name="d1")], name="base")
    base.trainable = False
    model = kerust.Sequential([kerust.Input((6,)), base, layers.Dense(2, name="head")], name="seqnest")
    lines: list = []
    model.summary(print_fn=lines.append, **{option: True})
    text = "\n".join(lines).splitlines()
    assert text[0] == 'Model: "seqnest"'
    assert text[1:] == KERAS_NESTED_SUMMARIES[option].splitlines()


def test_a_model_built_by_its_first_fit_trains_the_shared_layer_for_everyone(uid):
    x = np.random.default_rng(10).random((32, 4), dtype=np.float32)
    y = np.random.default_rng(11).random((32, 1), dtype=np.float32)
    shared = layers.Dense(3, name=uid("s"))
    other = kerust.Sequential([kerust.Input((4,)), shared])
    before = shared.get_weights()[0].copy()
    lazy = kerust.Sequential([shared, layers.Dense(1)])  # no input shape: built by fit
    lazy.compile(optimizer=kerust.optimizers.SGD(0.1), loss="mse")
    lazy.fit(x, y, epochs=2, verbose=0)
    kernel, bias = shared.get_weights()
    assert not np.allclose(kernel, before)
    _close(other.predict(x, verbose=0), x @ kernel + bias)


def test_weights_set_through_another_model_during_fit_are_trained_on(uid):
    x = np.random.default_rng(12).random((32, 4), dtype=np.float32)
    y = np.random.default_rng(13).random((32, 2), dtype=np.float32)
    shared = layers.Dense(2, name=uid("s"))
    trainer = kerust.Sequential([kerust.Input((4,)), shared])
    setter = kerust.Sequential([kerust.Input((4,)), shared])
    zeros = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]

    class ZeroAfterFirstEpoch(kerust.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                setter.set_weights(zeros)

    trainer.compile(optimizer=kerust.optimizers.SGD(0.1), loss="mse")
    trainer.fit(x, y, epochs=3, verbose=0, shuffle=False, callbacks=[ZeroAfterFirstEpoch()])
    # the same two epochs from zeros, on a fresh model
    again = kerust.Sequential([kerust.Input((4,)), layers.Dense(2, name=uid("t"))])
    again.set_weights(zeros)
    again.compile(optimizer=kerust.optimizers.SGD(0.1), loss="mse")
    again.fit(x, y, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(trainer.get_weights(), again.get_weights()):
        _close(a, b, 1e-6)
    for a, b in zip(shared.get_weights(), again.get_weights()):
        _close(a, b, 1e-6)


def test_a_popped_layer_hands_its_weights_to_a_model_that_already_has_it(uid):
    x = np.random.default_rng(14).random((16, 4), dtype=np.float32)
    shared = layers.Dense(3, name=uid("s"))
    reader = kerust.Sequential([kerust.Input((4,)), shared])
    trainer = kerust.Sequential([kerust.Input((4,)), shared, layers.Dense(1, name=uid("o"))])
    trainer.compile(optimizer=kerust.optimizers.SGD(0.1), loss="mse")
    trainer.fit(x, np.ones((16, 1), np.float32), epochs=2, verbose=0)
    trained = [w.copy() for w in shared.get_weights()]
    trainer.pop()
    trainer.pop()
    kernel, bias = trained
    _close(reader.predict(x, verbose=0), x @ kernel + bias)
    for a, b in zip(shared.get_weights(), trained):
        _close(a, b, 0)
