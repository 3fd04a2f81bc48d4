"""Preprocessing and augmentation layers and ``keras.ops.image`` against real Keras.

The reference values come from Keras 3.15 (JAX backend), written by
``tests/reference/preprocessing/generate_preprocessing.py`` into ``preprocessing.npz`` (see its docstring), with
two models Keras saved (``pipeline.keras``: Rescaling, Resizing, RandomFlip, RandomRotation before a Conv2D;
``features.keras``: adapted Normalization and Discretization, CategoryEncoding). Augmentation layers cannot
draw Keras's random numbers, so their reference cases use factors that leave nothing random (a rotation of
exactly 90 degrees, a fixed shift, zoom, brightness delta or contrast factor); their training-mode outputs are
compared through the training loss of ``train_on_batch`` (SGD with learning rate 0, mse against several random
targets), and their randomness is checked by its distribution and its reproducibility under a seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import layers, ops

from keras_files import run_in_keras

FIXTURES = Path(__file__).resolve().parent / "reference" / "preprocessing"
REF = np.load(FIXTURES / "preprocessing.npz")
OP_CASES = sorted({k.split("__")[1] for k in REF.files if k.startswith("op__")})
LAYER_CASES = sorted({k.split("__")[1] for k in REF.files if k.startswith("layer__")})
TOL = 1e-5


def _close(got, want, tol=TOL):
    """Equal within `tol`, relative to the size of the values (images here are in [0, 255])."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _spec(kind, name):
    return json.loads(str(REF[f"{kind}__{name}__spec"]))


def _layer(name):
    """The case's layer, built (and adapted) as the generator built it in Keras."""
    spec = _spec("layer", name)
    layer = getattr(layers, spec["class_name"])(**spec["args"])
    if spec["adapt"] == "array":
        layer.adapt(REF[f"layer__{name}__adapt"])
    elif spec["adapt"] == "batches":
        layer.adapt([REF[k] for k in sorted(REF.files) if k.startswith(f"layer__{name}__adapt_")])
    return layer, spec


def _model(layer, sample_shape):
    inp = keras.Input(sample_shape)
    model = keras.Model(inp, layer(inp))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    return model


def _training_output_matches(model, x, want, draws=3):
    """The model's training-mode output equals `want`: the mse training loss against random targets is the one
    `want` gives (a fixed output makes it so for every target)."""
    rng = np.random.default_rng(5)
    for _ in range(draws):
        y = rng.normal(100.0, 50.0, size=want.shape).astype(np.float32)
        expected = float(np.mean((want.astype(np.float64) - y) ** 2))
        loss = float(model.train_on_batch(x, y))
        assert abs(loss - expected) <= 1e-5 * expected, (loss, expected)


# ---- keras.ops.image ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OP_CASES)
def test_image_op_matches_keras(name):
    spec = _spec("op", name)
    fn = getattr(ops.image, spec["op"])
    x = REF[f"op__{name}__x"]
    args = (REF[f"op__{name}__t"],) if spec["op"] == "affine_transform" else ()
    _close(fn(x, *args, **spec["args"]), REF[f"op__{name}__out"])


class _OpLayer(layers.Layer):
    """`fn` of the layer's input plus a trainable shift (zeros): the shift's gradient is the input's gradient."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def build(self, input_shape):
        self.shift = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", name="shift")

    def call(self, x):
        return self.fn(ops.add(x, self.shift))


@pytest.mark.parametrize("name", ["resize_down_bilinear", "resize_up_bilinear", "resize_mixed_nearest",
                                  "affine_reflect_bilinear", "affine_constant_bilinear", "crop", "pad"])
def test_image_op_traced_and_differentiated(name):
    """Inside a model the ops give the eager (Keras) values, and their input gradients agree with finite
    differences."""
    spec = _spec("op", name)
    fn = getattr(ops.image, spec["op"])
    x = REF[f"op__{name}__x"] / 255.0
    # (in a model an affine case applies its first transform to every image: a constant batch of transforms
    # cannot meet a batch of unknown size)
    t = REF[f"op__{name}__t"][0] if spec["op"] == "affine_transform" else None

    def apply(v):
        return fn(v, t, **spec["args"]) if t is not None else fn(v, **spec["args"])

    layer = _OpLayer(apply)
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, layer(inp))
    model.compile(optimizer="sgd", loss="mse")
    expected = REF[f"op__{name}__out"] / 255.0
    if t is not None:
        _close(apply(REF[f"op__{name}__x"][:1]), REF[f"op__{name}__out"][:1])
        expected = apply(x)
    _close(model.predict(x, verbose=0), expected)
    y = np.random.default_rng(0).normal(size=expected.shape).astype(np.float32)
    report = keras.utils.gradient_check(model, x, y, samples_per_weight=12)
    assert report and all(entry["ok"] for entry in report.values()), report


def test_image_op_errors():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="interpolation.*Received: interpolation=cubic"):
        ops.image.resize(x, (2, 2), interpolation="cubic")
    with pytest.raises(ValueError, match="bicubic.*not supported by kerust"):
        ops.image.resize(x, (2, 2), interpolation="bicubic")
    with pytest.raises(ValueError, match="size"):
        ops.image.resize(x, (2,))
    with pytest.raises(ValueError, match="only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio`"):
        ops.image.resize(x, (2, 2), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="images rank"):
        ops.image.resize(np.zeros((4, 4)), (2, 2))
    with pytest.raises(ValueError, match="fill_mode.*Received: fill_mode=edge"):
        ops.image.affine_transform(x, np.zeros(8), fill_mode="edge")
    with pytest.raises(ValueError, match="transform"):
        ops.image.affine_transform(x, np.zeros(6))
    with pytest.raises(ValueError, match="exactly two of top_cropping, bottom_cropping, target_height"):
        ops.image.crop_images(x, top_cropping=1, left_cropping=0, target_width=2)
    with pytest.raises(ValueError, match="top_padding must be >= 0"):
        ops.image.pad_images(x, top_padding=-1, bottom_padding=0, left_padding=0, right_padding=0)


# ---- layers against Keras ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LAYER_CASES)
def test_layer_matches_keras(name):
    layer, spec = _layer(name)
    x = REF[f"layer__{name}__x"]
    want = REF[f"layer__{name}__out"]
    model = _model(layer, x.shape[1:])
    if spec["training"]:
        _training_output_matches(model, x, want)
        _close(layer(x), want)  # called on arrays, Keras's default is training: augmented now
    else:
        _close(model.predict(x, verbose=0), want)
        _close(layer(x, training=False), want)  # eagerly, on arrays
    config = layer.get_config()
    keras_config = json.loads(str(REF[f"layer__{name}__config"]))
    for key in set(config) | set(keras_config):
        if key in ("name", "dtype") or (key == "seed" and spec["class_name"] == "RandomCrop"):
            continue
        got, expected = config.get(key, "<missing>"), keras_config.get(key, "<missing>")
        assert json.loads(json.dumps(got)) == expected, (key, got, expected)


@pytest.mark.parametrize("name", [n for n in LAYER_CASES if f"layer__{n}__weights_00" in REF.files])
def test_adapted_weights_match_keras(name):
    layer, _ = _layer(name)
    want = [REF[k] for k in sorted(REF.files) if k.startswith(f"layer__{name}__weights_")]
    got = layer.get_weights()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _close(g, w)
    assert [w.name for w in layer.weights] == ["mean", "variance", "count"]
    assert not layer.trainable_weights


def test_discretization_adapt_boundaries_match_keras():
    for name in ("discretization_adapt", "discretization_adapt_batches"):
        layer, _ = _layer(name)
        expected = json.loads(str(REF[f"layer__{name}__config"]))["bin_boundaries"]
        np.testing.assert_allclose(layer.bin_boundaries, expected, rtol=1e-6, atol=1e-6)
        assert layer.get_config()["num_bins"] == json.loads(str(REF[f"layer__{name}__config"]))["num_bins"]


@pytest.mark.parametrize("make", [
    lambda: layers.Rescaling([0.5, 2.0], offset=1.0),
    lambda: layers.Normalization(mean=[1.0, -2.0], variance=[4.0, 9.0]),
    lambda: layers.Normalization(mean=2.0, variance=3.0, invert=True),
    lambda: layers.Resizing(3, 5),
    lambda: layers.Resizing(5, 3, interpolation="nearest"),
    lambda: layers.Resizing(3, 3, crop_to_aspect_ratio=True),
    lambda: layers.CenterCrop(2, 3),
    lambda: layers.CenterCrop(6, 2),
], ids=["rescaling", "normalization", "normalization_invert", "resizing", "resizing_nearest", "resizing_crop",
        "center_crop", "center_crop_resize"])
def test_trainable_paths_have_input_gradients(make):
    """Rescaling, Normalization, Resizing and CenterCrop pass gradients to their input (finite differences)."""
    x = np.random.default_rng(1).uniform(size=(2, 4, 5, 2)).astype(np.float32)
    layer = make()
    shift = _OpLayer(lambda v: v)
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, layer(shift(inp)))
    model.compile(optimizer="sgd", loss="mse")
    out = model.predict(x, verbose=0)
    y = np.random.default_rng(2).normal(size=out.shape).astype(np.float32)
    report = keras.utils.gradient_check(model, x, y, samples_per_weight=12)
    assert report and all(entry["ok"] for entry in report.values()), report


def test_normalization_adapt_on_a_built_model_and_from_iterables():
    rng = np.random.default_rng(3)
    data = rng.normal(4.0, 2.0, size=(50, 3)).astype(np.float32)
    norm = layers.Normalization()
    model = _model(norm, (3,))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x, atol=1e-6)  # unadapted: mean 0, variance 1
    norm.adapt(data)
    expected = (x - data.mean(0)) / np.sqrt(data.var(0))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    again = layers.Normalization()
    again.adapt(iter([data[:20], data[20:]]))  # a generator of batches
    np.testing.assert_allclose(again.get_weights()[0], data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(again.get_weights()[1], data.var(0), rtol=1e-5)
    with pytest.raises(ValueError, match="normalization.*empty"):
        layers.Normalization().adapt(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        layers.Normalization().adapt(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="empty iterable"):
        layers.Normalization().adapt([])
    with pytest.raises(ValueError, match="incompatible shape"):
        norm.adapt(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        layers.Discretization(num_bins=2).adapt(np.array([np.inf, 1.0]))
    with pytest.raises(ValueError, match="initialized with `bin_boundaries`"):
        layers.Discretization(bin_boundaries=[0.0]).adapt(data)


def test_discretization_and_category_encoding_dtypes_and_shapes():
    x = np.array([[-1.0, 0.5], [3.0, 1.0]], np.float32)
    idx = layers.Discretization(bin_boundaries=[0.0, 1.0])(x)
    assert idx.dtype == np.int32 and idx.tolist() == [[0, 1], [2, 2]]
    inp = keras.Input((2,))
    assert layers.Discretization(bin_boundaries=[0.0, 1.0], output_mode="count")(inp).shape == (None, 3)
    assert layers.CategoryEncoding(4, output_mode="one_hot")(keras.Input((3,))).shape == (None, 3, 4)
    assert layers.CategoryEncoding(4, output_mode="one_hot")(keras.Input((1,))).shape == (None, 4)
    assert layers.CategoryEncoding(4).compute_output_shape((None, 3)) == (None, 4)
    with pytest.raises(ValueError, match="category_encoding.*rank 2"):
        layers.CategoryEncoding(4, output_mode="count")(keras.Input(()))
    with pytest.raises(ValueError, match="adapt"):
        layers.Discretization(num_bins=3)(keras.Input((2,)))


# ---- augmentation ------------------------------------------------------------------------------------------------
AUGMENTATIONS = {
    "flip": lambda: layers.RandomFlip(seed=1),
    "rotation": lambda: layers.RandomRotation(0.2, seed=1),
    "zoom": lambda: layers.RandomZoom(0.3, 0.2, seed=1),
    "translation": lambda: layers.RandomTranslation(0.2, 0.3, fill_mode="wrap", seed=1),
    "contrast": lambda: layers.RandomContrast(0.5, seed=1),
    "brightness": lambda: layers.RandomBrightness(0.2, seed=1),
}


def _images(n=8, h=6, w=5, c=2, seed=0):
    return np.random.default_rng(seed).uniform(40, 200, size=(n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(AUGMENTATIONS))
def test_augmentation_is_identity_in_inference(kind):
    x = _images()
    layer = AUGMENTATIONS[kind]()
    model = _model(layer, x.shape[1:])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(layer(x, training=False), x)  # eagerly
    np.testing.assert_array_equal(model.evaluate(x, x, verbose=0), 0.0)
    assert model.train_on_batch(x, x) > 1e-3  # and active in training


@pytest.mark.parametrize("kind", sorted(AUGMENTATIONS) + ["crop"])
def test_direct_calls_augment_from_the_layer_seed(kind):
    """Called on arrays (Keras's default `training=True` there), a layer augments at once, drawing from its own
    seed: the same seed gives the same images, call after call; another seed other images."""
    x = _images(h=7)
    make = AUGMENTATIONS.get(kind, lambda: layers.RandomCrop(4, 3, seed=1))
    a, b = make(), make()
    first = [a(x) for _ in range(3)]
    for got, again in zip(first, [b(x) for _ in range(3)]):
        np.testing.assert_array_equal(got, again)
    assert not all(np.array_equal(first[0], f) for f in first[1:])  # the seed generator moves on
    other = make()
    other.seed, other.generator = 99, keras.random.SeedGenerator(99)
    assert [other(x).tobytes() for _ in range(3)] != [f.tobytes() for f in first]
    assert first[0].shape == (len(x), *make()(x[0]).shape)  # one image as a batch of one


@pytest.mark.parametrize("kind", sorted(AUGMENTATIONS) + ["crop"])
def test_augmentation_is_reproducible_under_a_seed(kind):
    x = _images(h=7)
    make = AUGMENTATIONS.get(kind, lambda: layers.RandomCrop(4, 3, seed=1))

    def losses(seed):
        keras.utils.set_random_seed(seed)
        model = _model(make(), x.shape[1:])
        y = np.random.default_rng(0).uniform(40, 200, model.predict(x, verbose=0).shape).astype(np.float32)
        return [float(model.train_on_batch(x, y)) for _ in range(4)]

    first = losses(7)
    assert losses(7) == first
    assert len(set(first)) > 1  # new random numbers at every step
    assert losses(8) != first


def test_flip_happens_half_the_time():
    x = np.repeat(_images(1), 600, axis=0)
    for mode, flipped in (("horizontal", x[:, :, ::-1]), ("vertical", x[:, ::-1]),
                          ("horizontal_and_vertical", x[:, ::-1, ::-1])):
        keras.utils.set_random_seed(11)
        model = _model(layers.RandomFlip(mode), x.shape[1:])
        d = float(np.mean((flipped.astype(np.float64) - x) ** 2))
        for target in (x, flipped):
            # the loss is (images not equal to the target) / 600 * d: a whole number of images, each the image or
            # its flip (neither a blend nor the other flip), about half of them flipped
            flips = float(model.train_on_batch(x, target)) / d * len(x)
            assert abs(flips - round(flips)) < 0.05, (mode, flips)
            assert 0.42 * len(x) < flips < 0.58 * len(x), (mode, flips)


def test_brightness_and_contrast_factors_are_uniform():
    x = np.full((2000, 2, 2, 1), 127.5, np.float32)
    keras.utils.set_random_seed(12)
    model = _model(layers.RandomBrightness(0.2), x.shape[1:])
    delta2 = float(model.train_on_batch(x, x))  # E[delta^2] for delta ~ U(-51, 51)
    assert abs(delta2 - 51.0 ** 2 / 3) < 0.08 * 51.0 ** 2 / 3
    x = np.tile(np.array([[[[100.0], [140.0]], [[100.0], [140.0]]]], np.float32), (2000, 1, 1, 1))
    model = _model(layers.RandomContrast(0.4), x.shape[1:])
    # (x - mean) * c + mean with c ~ U(1, 1.4): the squared change is 400 * (c - 1)^2, mean 400 * 0.16 / 3
    change = float(model.train_on_batch(x, x))
    assert abs(change - 400 * 0.16 / 3) < 0.1 * 400 * 0.16 / 3


def test_random_crop_takes_one_window_per_batch():
    x = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 1)
    keras.utils.set_random_seed(13)
    model = _model(layers.RandomCrop(3, 3), x.shape[1:])
    windows = [x[:, i:i + 3, j:j + 3] for i in range(2) for j in range(3)]
    target = windows[0]
    possible = [float(np.mean((w - target) ** 2)) for w in windows]
    seen = set()
    for _ in range(40):
        loss = float(model.train_on_batch(x, target))
        match = [k for k, p in enumerate(possible) if abs(loss - p) <= 1e-4 * max(1.0, p)]
        assert match, (loss, possible)
        seen.update(match)
    assert len(seen) == len(windows)  # every start is drawn
    # in inference: the centred window of the target's aspect ratio, resized (Keras's smart_resize)
    _close(model.predict(x, verbose=0), ops.image.resize(x, (3, 3), crop_to_aspect_ratio=True))
    small = _model(layers.RandomCrop(4, 5), x.shape[1:])
    np.testing.assert_array_equal(small.predict(x, verbose=0), x)


def test_image_layers_take_one_image_and_channels_first():
    x = _images(2)
    resize = layers.Resizing(3, 4)
    batched = resize(x)
    _close(resize(x[0]), batched[0])
    first = layers.Resizing(3, 4, data_format="channels_first")
    _close(first(np.transpose(x, (0, 3, 1, 2))), np.transpose(batched, (0, 3, 1, 2)))
    crop = layers.CenterCrop(2, 3, data_format="channels_first")
    _close(crop(np.transpose(x, (0, 3, 1, 2))), np.transpose(layers.CenterCrop(2, 3)(x), (0, 3, 1, 2)))
    with pytest.raises(ValueError, match="resizing.*rank 4"):
        resize(keras.Input((4, 5)))


# ---- configs, files and errors -------------------------------------------------------------------------------------
ALL = [
    lambda: layers.Rescaling(1 / 255.0, offset=0.5),
    lambda: layers.Resizing(4, 4, interpolation="nearest", pad_to_aspect_ratio=True, fill_value=2.0),
    lambda: layers.CenterCrop(3, 3),
    lambda: layers.Normalization(axis=(1, 2), invert=True),
    lambda: layers.Normalization(mean=[1.0, 2.0], variance=[3.0, 4.0]),
    lambda: layers.CategoryEncoding(5, output_mode="count"),
    lambda: layers.Discretization(bin_boundaries=[0.0, 1.5], output_mode="one_hot"),
    lambda: layers.Discretization(num_bins=4, epsilon=0.1),
    lambda: layers.RandomFlip("vertical", seed=3),
    lambda: layers.RandomRotation((-0.2, 0.1), fill_mode="constant", fill_value=1.0, interpolation="nearest"),
    lambda: layers.RandomZoom((-0.2, 0.3), fill_mode="nearest"),
    lambda: layers.RandomTranslation(0.1, (-0.2, 0.2), fill_mode="wrap", seed=4),
    lambda: layers.RandomCrop(2, 3, seed=9),
    lambda: layers.RandomContrast((0.1, 0.3), value_range=(0, 1)),
    lambda: layers.RandomBrightness(0.4, value_range=(-1, 1), seed=2),
]


@pytest.mark.parametrize("make", ALL, ids=lambda f: "")
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    again = type(layer).from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert layers.deserialize(layers.serialize(layer)).get_config() == config


def _pipeline(random_crop=True):
    """Every layer in one model. (Keras 3.15 passes images through RandomCrop unchanged in inference, against its
    docstring and kerust's centred crop: the model Keras reads leaves it out.)"""
    inp = keras.Input((8, 7, 3))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.RandomFlip(seed=1)(x)
    x = layers.RandomRotation(0.1, fill_mode="nearest")(x)
    x = layers.RandomZoom(0.1)(x)
    x = layers.RandomTranslation(0.1, 0.1)(x)
    x = layers.RandomContrast(0.2, value_range=(0, 1))(x)
    x = layers.RandomBrightness(0.1, value_range=(0, 1))(x)
    if random_crop:
        x = layers.RandomCrop(6, 6, seed=5)(x)
    x = layers.Resizing(5, 5)(x)
    x = layers.CenterCrop(4, 4)(x)
    x = layers.Conv2D(2, 3)(x)
    x = layers.Flatten()(x)
    norm = layers.Normalization()
    out = norm(x)
    model = keras.Model(inp, out)
    norm.adapt(np.random.default_rng(4).normal(2.0, 3.0, size=(30, 8)).astype(np.float32))
    return model


def test_saved_files_round_trip_and_train(tmp_path):
    model = _pipeline()
    x = _images(4, 8, 7, 3)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "pipe.keras")
    again = keras.saving.load_model(tmp_path / "pipe.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert [type(a).__name__ for a in again.layers] == [type(a).__name__ for a in model.layers]
    for a, b in zip(again.layers, model.layers):
        assert a.get_config() == b.get_config()
    again.compile(optimizer="adam", loss="mse")
    history = again.fit(x, np.zeros_like(expected), epochs=2, batch_size=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


def test_keras_files_load_in_kerust(tmp_path):
    for name in ("pipeline", "features"):
        model = keras.saving.load_model(FIXTURES / f"{name}.keras")
        xs = [REF[k] for k in sorted(REF.files) if k.startswith(f"file__{name}__x_")]
        _close(model.predict(xs if len(xs) > 1 else xs[0], verbose=0), REF[f"file__{name}__out"])
        model.save(tmp_path / f"{name}.keras")
    norm = next(layer for layer in model.layers if isinstance(layer, layers.Normalization))
    assert [w.shape for w in norm.get_weights()] == [(3,), (3,), ()]
    out = run_in_keras(f"""
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "preprocessing.npz")!r})
        for name in ("pipeline", "features"):
            m = keras.saving.load_model({str(tmp_path)!r} + "/" + name + ".keras")
            xs = [ref[k] for k in sorted(ref.files) if k.startswith("file__" + name + "__x_")]
            p = m.predict(xs if len(xs) > 1 else xs[0], verbose=0)
            print(name, float(np.abs(np.asarray(p) - ref["file__" + name + "__out"]).max()))
    """)
    errors = dict(line.split() for line in out.strip().splitlines()[-2:])
    assert all(float(v) < 1e-5 for v in errors.values()), errors


def test_keras_reads_kerust_pipeline(tmp_path):
    model = _pipeline(random_crop=False)
    x = _images(3, 8, 7, 3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    model.save(tmp_path / "pipe.keras")
    out = run_in_keras(f"""
        import numpy as np, keras
        m = keras.saving.load_model({str(tmp_path / "pipe.keras")!r})
        p = m.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)
        print(float(np.abs(p - np.load({str(tmp_path / "y.npy")!r})).max()))
    """)
    assert float(out.strip().splitlines()[-1]) < 1e-4


@pytest.mark.parametrize("call, message", [
    ("layers.Rescaling('a')", "rescaling.*`scale`"),
    ("layers.Resizing(0, 3)", "resizing.*`height` must be a positive integer"),
    ("layers.Resizing(2, 3, interpolation='cubic')", "resizing.*interpolation.*Received: interpolation=cubic"),
    ("layers.Resizing(2, 3, antialias=True)", "resizing.*antialias"),
    ("layers.Resizing(2, 3, data_format='nhwc')", "resizing.*data_format"),
    ("layers.CenterCrop(2, -1)", "center_crop.*`width`"),
    ("layers.Normalization(mean=1.0)", "normalization.*both `mean` and `variance` must be set"),
    ("layers.Normalization(mean=[1.0, 2.0], variance=[1.0])", "normalization.*same shape"),
    ("layers.Normalization(axis='x')", "normalization.*`axis`"),
    ("layers.Normalization(axis=3)(keras.Input((2,)))", "normalization.*range \\[-ndim, ndim\\)"),
    ("layers.CategoryEncoding()", "category_encoding.*num_tokens must be set"),
    ("layers.CategoryEncoding(0)", "category_encoding.*`num_tokens` must be >= 1"),
    ("layers.CategoryEncoding(3, output_mode='tf_idf')", "category_encoding.*output_mode"),
    ("layers.Discretization()", "discretization.*either `num_bins` or `bin_boundaries`"),
    ("layers.Discretization([0.0], num_bins=2)", "discretization.*Both|both `num_bins` and `bin_boundaries`"),
    ("layers.Discretization([1.0, 0.0])", "discretization.*sorted"),
    ("layers.Discretization(num_bins=-1)", "discretization.*greater than or equal to 0"),
    ("layers.Discretization([0.0], output_mode='bins')", "discretization.*output_mode"),
    ("layers.RandomFlip('diagonal')", "random_flip.*mode"),
    ("layers.RandomRotation(1.5)", "random_rotation.*`factor` argument.*\\[-1, 1\\]"),
    ("layers.RandomRotation(0.1, fill_mode='edge')", "random_rotation.*fill_mode"),
    ("layers.RandomRotation(0.1, interpolation='cubic')", "random_rotation.*interpolation"),
    ("layers.RandomZoom(-1.0)", "random_zoom.*\\(-1.0, 1.0\\]"),
    ("layers.RandomTranslation(0.1, 2.0)", "random_translation.*\\[-1.0, 1.0\\]"),
    ("layers.RandomCrop(0, 2)", "random_crop.*`height`"),
    ("layers.RandomContrast(-0.5)", "random_contrast.*\\[0, 1\\]"),
    ("layers.RandomBrightness(0.1, value_range=(0, 1, 2))", "random_brightness.*value_range"),
    ("layers.RandomBrightness(0.1, seed='a')", "random_brightness.*`seed`"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        eval(call, {"layers": layers, "keras": keras})



def test_augmentation_model_inside_a_classifier(tmp_path):
    """Keras's tutorial pattern: a Sequential of augmentation layers called on the input of a classifier; it
    trains, and predicts (no augmentation) the same after a save and a load, in kerust and in Keras."""
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                                layers.RandomZoom(0.1)], name="augment")
    inp = keras.Input((8, 8, 3))
    x = layers.Rescaling(1 / 255.0)(augment(inp))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(x))
    model = keras.Model(inp, layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x_train = _images(16, 8, 8, 3)
    y_train = np.arange(16) % 2
    losses = model.fit(x_train, y_train, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert all(np.isfinite(losses))
    expected = model.predict(x_train, verbose=0)
    np.testing.assert_array_equal(augment.predict(x_train, verbose=0), x_train)  # inference: images alone
    model.save(tmp_path / "clf.keras")
    np.save(tmp_path / "x.npy", x_train)
    np.save(tmp_path / "y.npy", expected)
    _close(keras.saving.load_model(tmp_path / "clf.keras").predict(x_train, verbose=0), expected)
    out = run_in_keras(f"""
        import numpy as np, keras
        m = keras.saving.load_model({str(tmp_path / "clf.keras")!r})
        print(float(np.abs(m.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)
                           - np.load({str(tmp_path / "y.npy")!r})).max()))
    """)
    assert float(out.strip().splitlines()[-1]) < 1e-5
