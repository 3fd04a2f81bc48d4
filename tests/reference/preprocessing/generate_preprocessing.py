"""Write the Keras fixture for the preprocessing and augmentation layers and ``keras.ops.image``
(``tests/test_preprocessing_layers.py``).

Run with the Keras venv (real Keras 3.15, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/preprocessing/generate_preprocessing.py

It writes ``preprocessing.npz`` next to itself:

- ``op__K__x`` / ``op__K__out`` (and ``op__K__spec``, JSON: the op and its arguments; ``op__K__t`` the transform
  of an affine case): ``keras.ops.image`` results.
- ``layer__K__x`` / ``layer__K__out`` / ``layer__K__spec`` (JSON: class, arguments, ``training`` of the call,
  and ``adapt`` when the layer is adapted first, on ``layer__K__adapt`` or on the batches ``layer__K__adapt_NN``):
  a layer called eagerly. Augmentation layers are called in training with factors that leave no randomness
  (a rotation of exactly 90 degrees, a fixed translation or zoom, a fixed brightness delta or contrast factor).
  ``layer__K__config`` is Keras's ``get_config()`` (JSON), ``layer__K__weights_NN`` its weights.
- ``K.keras`` for the models of ``FILES``: Keras's own files, which kerust loads (inputs ``file__K__x``, outputs
  ``file__K__out``).

Deterministic; a few seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(18)


def image(*shape: int) -> np.ndarray:
    return RNG.uniform(0, 255, size=shape).astype(np.float32)


def matrix(batch: int) -> np.ndarray:
    """Affine rows [a0, a1, a2, b0, b1, b2, 0, 0] that move pixels partly outside the image."""
    t = np.zeros((batch, 8), dtype=np.float32)
    angle = RNG.uniform(-0.8, 0.8, size=batch)
    scale = RNG.uniform(0.7, 1.4, size=batch)
    t[:, 0] = scale * np.cos(angle)
    t[:, 1] = -scale * np.sin(angle)
    t[:, 2] = RNG.uniform(-2.5, 2.5, size=batch)
    t[:, 3] = scale * np.sin(angle)
    t[:, 4] = scale * np.cos(angle)
    t[:, 5] = RNG.uniform(-2.5, 2.5, size=batch)
    return t


OPS = {
    "resize_down_bilinear": ("resize", {"size": [3, 4]}, (2, 7, 9, 2)),
    "resize_up_bilinear": ("resize", {"size": [8, 11]}, (2, 3, 5, 2)),
    "resize_mixed_nearest": ("resize", {"size": [7, 3], "interpolation": "nearest"}, (2, 4, 8, 3)),
    "resize_crop_aspect": ("resize", {"size": [4, 4], "crop_to_aspect_ratio": True}, (2, 6, 9, 1)),
    "resize_pad_aspect": ("resize", {"size": [4, 6], "pad_to_aspect_ratio": True, "fill_value": 7.0},
                          (2, 6, 5, 2)),
    "resize_pad_aspect_wide": ("resize", {"size": [6, 3], "pad_to_aspect_ratio": True}, (1, 3, 4, 1)),
    "resize_unbatched": ("resize", {"size": [5, 2]}, (3, 4, 2)),
    "resize_channels_first": ("resize", {"size": [3, 5], "data_format": "channels_first"}, (2, 2, 6, 4)),
    "crop": ("crop_images", {"top_cropping": 1, "left_cropping": 2, "target_height": 3, "target_width": 2},
             (2, 5, 6, 2)),
    "crop_bottom_right": ("crop_images", {"bottom_cropping": 1, "right_cropping": 2, "target_height": 2,
                                          "target_width": 3}, (1, 4, 6, 1)),
    "pad": ("pad_images", {"top_padding": 1, "bottom_padding": 2, "left_padding": 0, "target_width": 7},
            (2, 3, 4, 2)),
}
for mode in ("constant", "nearest", "wrap", "mirror", "reflect"):
    for interp in ("bilinear", "nearest"):
        OPS[f"affine_{mode}_{interp}"] = ("affine_transform", {"interpolation": interp, "fill_mode": mode,
                                                               "fill_value": 3.5}, (3, 5, 6, 2))
OPS["affine_single_transform"] = ("affine_transform", {}, (4, 5, 1))  # one image, one transform
OPS["affine_channels_first"] = ("affine_transform", {"data_format": "channels_first"}, (2, 2, 4, 5))

# name: (class, arguments, training, input shape or array, adapt data)
LAYERS = {
    "rescaling": ("Rescaling", {"scale": 1 / 255.0}, False, (2, 3, 4, 3), None),
    "rescaling_offset_channels": ("Rescaling", {"scale": [0.5, 2.0, -1.0], "offset": -1.0}, False, (2, 3, 4, 3),
                                  None),
    "rescaling_dense": ("Rescaling", {"scale": 2.0, "offset": 0.5}, False, (3, 5), None),
    "resizing_bilinear": ("Resizing", {"height": 4, "width": 3}, False, (2, 6, 5, 2), None),
    "resizing_nearest_up": ("Resizing", {"height": 7, "width": 9, "interpolation": "nearest"}, False,
                            (2, 3, 4, 1), None),
    "resizing_crop": ("Resizing", {"height": 3, "width": 3, "crop_to_aspect_ratio": True}, False, (2, 4, 7, 2),
                      None),
    "resizing_pad": ("Resizing", {"height": 4, "width": 8, "pad_to_aspect_ratio": True, "fill_value": 1.0},
                     False, (1, 4, 5, 2), None),
    "center_crop": ("CenterCrop", {"height": 3, "width": 2}, False, (2, 6, 5, 2), None),
    "center_crop_small": ("CenterCrop", {"height": 6, "width": 4}, False, (2, 4, 5, 1), None),
    "normalization_given": ("Normalization", {"mean": [1.0, 2.0, 3.0], "variance": [4.0, 0.25, 1.0]}, False,
                            (4, 3), None),
    "normalization_scalar_invert": ("Normalization", {"mean": 2.0, "variance": 9.0, "invert": True}, False,
                                    (3, 2, 2), None),
    "normalization_adapt": ("Normalization", {}, False, (4, 3), (20, 3)),
    "normalization_adapt_axis_none": ("Normalization", {"axis": None}, False, (3, 2, 2), (10, 2, 2)),
    "normalization_adapt_axes": ("Normalization", {"axis": (1, 2)}, False, (3, 2, 3), (9, 2, 3)),
    "normalization_adapt_batches": ("Normalization", {"axis": -1, "invert": True}, False, (3, 4),
                                    [(5, 4), (3, 4), (7, 4)]),
    "category_one_hot": ("CategoryEncoding", {"num_tokens": 5, "output_mode": "one_hot"}, False,
                         np.array([[1], [4], [0], [2]], np.float32), None),
    "category_one_hot_rank2": ("CategoryEncoding", {"num_tokens": 4, "output_mode": "one_hot"}, False,
                               np.array([[1, 3], [0, 0], [2, 1]], np.float32), None),
    "category_multi_hot": ("CategoryEncoding", {"num_tokens": 6}, False,
                           np.array([[1, 1, 5], [0, 2, 3], [4, 4, 4]], np.float32), None),
    "category_count": ("CategoryEncoding", {"num_tokens": 4, "output_mode": "count"}, False,
                       np.array([[1, 1, 3, 0], [2, 2, 2, 2]], np.float32), None),
    "discretization_int": ("Discretization", {"bin_boundaries": [-1.0, 0.0, 0.5, 2.0]}, False,
                           np.array([[-3.0, -1.0, -0.5], [0.0, 0.49, 0.5], [1.9, 2.0, 7.0]], np.float32), None),
    "discretization_one_hot": ("Discretization", {"bin_boundaries": [0.0, 1.0], "output_mode": "one_hot"}, False,
                               np.array([[-1.0], [0.5], [1.0], [3.0]], np.float32), None),
    "discretization_multi_hot": ("Discretization", {"bin_boundaries": [0.0, 1.0, 2.0],
                                                    "output_mode": "multi_hot"}, False,
                                 np.array([[-1.0, 0.5, 0.7], [2.5, 2.5, 1.0]], np.float32), None),
    "discretization_count": ("Discretization", {"bin_boundaries": [0.0, 1.0, 2.0], "output_mode": "count"},
                             False, np.array([[-1.0, 0.5, 0.7], [2.5, 2.5, 1.0]], np.float32), None),
    "discretization_adapt": ("Discretization", {"num_bins": 4}, False, (5, 3), (50, 3)),
    "discretization_adapt_batches": ("Discretization", {"num_bins": 3, "epsilon": 0.05}, False, (4, 2),
                                     [(30, 2), (20, 2)]),
    "rotation_90": ("RandomRotation", {"factor": (0.25, 0.25)}, True, (2, 5, 5, 2), None),
    "rotation_constant_nearest": ("RandomRotation", {"factor": (-0.1, -0.1), "fill_mode": "constant",
                                                     "interpolation": "nearest", "fill_value": 9.0}, True,
                                  (2, 6, 4, 1), None),
    "rotation_wrap": ("RandomRotation", {"factor": (0.07, 0.07), "fill_mode": "wrap"}, True, (1, 5, 7, 2), None),
    "translation_reflect": ("RandomTranslation", {"height_factor": (0.2, 0.2), "width_factor": (-0.35, -0.35)},
                            True, (2, 5, 6, 2), None),
    "translation_nearest": ("RandomTranslation", {"height_factor": (-0.3, -0.3), "width_factor": (0.15, 0.15),
                                                  "fill_mode": "nearest", "interpolation": "nearest"}, True,
                            (1, 6, 5, 1), None),
    "zoom_in": ("RandomZoom", {"height_factor": (-0.4, -0.4)}, True, (2, 6, 6, 1), None),
    "zoom_out_constant": ("RandomZoom", {"height_factor": (0.5, 0.5), "width_factor": (0.25, 0.25),
                                        "fill_mode": "constant", "fill_value": 2.0}, True, (1, 5, 7, 2), None),
    "brightness": ("RandomBrightness", {"factor": (0.3, 0.3)}, True, (2, 3, 3, 2), None),
    "brightness_range": ("RandomBrightness", {"factor": (-0.2, -0.2), "value_range": (0.0, 1.0)}, True,
                         (2, 3, 3, 1), None),
    "contrast": ("RandomContrast", {"factor": (-0.5, 0.5)}, True, (2, 4, 3, 3), None),
    "contrast_range": ("RandomContrast", {"factor": (-0.3, 0.3), "value_range": (0, 100)}, True, (2, 3, 3, 1),
                       None),
    "random_crop_inference": ("RandomCrop", {"height": 3, "width": 4}, False, (2, 6, 5, 2), None),
    "flip_inference": ("RandomFlip", {}, False, (2, 3, 4, 1), None),
}

FILES = {
    "pipeline": lambda: keras.Sequential([
        keras.Input((6, 5, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1.0),
        keras.layers.Resizing(4, 4),
        keras.layers.RandomFlip("horizontal", seed=3),
        keras.layers.RandomRotation(0.1, seed=4),
        keras.layers.Conv2D(2, 3),
        keras.layers.Flatten(),
    ]),
    "features": None,  # built below: Normalization adapted, Discretization adapted, CategoryEncoding
}


def features_model() -> keras.Model:
    norm = keras.layers.Normalization()
    norm.adapt(RNG.normal(3.0, 2.0, size=(40, 3)).astype(np.float32))
    disc = keras.layers.Discretization(num_bins=3)
    disc.adapt(RNG.normal(size=(40, 2)).astype(np.float32))
    a = keras.Input((3,))
    b = keras.Input((2,))
    n = norm(a)
    d = keras.layers.CategoryEncoding(3, output_mode="multi_hot")(disc(b))
    out = keras.layers.Concatenate()([n, d])
    return keras.Model([a, b], keras.layers.Dense(2)(out))


def _without_tensorflow() -> None:
    """Keras's Normalization.adapt and Discretization.adapt ask `isinstance(data, tf.data.Dataset)` (and
    `tf.is_tensor`) before they read arrays or iterables of batches; without TensorFlow installed those checks
    raise, so they get a class nothing is an instance of."""
    import types

    from keras.src.layers.preprocessing import discretization, normalization

    class _NoDataset:
        pass

    stub = types.SimpleNamespace(data=types.SimpleNamespace(Dataset=_NoDataset), is_tensor=lambda x: False)
    normalization.tf = stub
    discretization.tf = stub


def main() -> None:
    keras.utils.set_random_seed(18)  # the models' initial weights and RandomCrop's default seed
    _without_tensorflow()
    out: dict = {}
    for name, (op, args, shape) in OPS.items():
        x = image(*shape)
        fn = getattr(keras.ops.image, op)
        if op == "affine_transform":
            t = matrix(1 if name == "affine_single_transform" else shape[0])
            if name == "affine_single_transform":
                t = t[0]
            out[f"op__{name}__t"] = t
            y = fn(x, t, **args)
        else:
            y = fn(x, **args)
        out[f"op__{name}__x"] = x
        out[f"op__{name}__out"] = np.asarray(y)
        out[f"op__{name}__spec"] = json.dumps({"op": op, "args": args})
    for name, (cls, args, training, shape, adapt) in LAYERS.items():
        layer = getattr(keras.layers, cls)(**args)
        x = shape if isinstance(shape, np.ndarray) else image(*shape)
        spec = {"class_name": cls, "args": args, "training": training, "adapt": None}
        if adapt is not None:
            if isinstance(adapt, list):
                batches = [RNG.normal(1.0, 3.0, size=s).astype(np.float32) for s in adapt]
                for i, b in enumerate(batches):
                    out[f"layer__{name}__adapt_{i:02d}"] = b
                layer.adapt(batches)
                spec["adapt"] = "batches"
            else:
                data = RNG.normal(1.0, 3.0, size=adapt).astype(np.float32)
                out[f"layer__{name}__adapt"] = data
                layer.adapt(data)
                spec["adapt"] = "array"
            x = RNG.normal(1.0, 3.0, size=shape).astype(np.float32)
        y = layer(x, training=training)
        if cls == "RandomCrop":
            # Keras 3.15 passes images through unchanged in inference, though its docstring (and Keras 2) crops
            # the centred window of the target's aspect ratio and resizes it: kerust does that (one output shape
            # in training and inference), so the reference is Keras's smart_resize
            from keras.src.utils.image_utils import smart_resize

            y = smart_resize(x, (args["height"], args["width"]))
        out[f"layer__{name}__x"] = x
        out[f"layer__{name}__out"] = np.asarray(y)
        out[f"layer__{name}__spec"] = json.dumps(spec)
        out[f"layer__{name}__config"] = json.dumps(keras.saving.serialize_keras_object(layer)["config"])
        for i, w in enumerate(layer.get_weights()):
            out[f"layer__{name}__weights_{i:02d}"] = np.asarray(w)
    for name in FILES:
        model = features_model() if name == "features" else FILES[name]()
        if name == "features":
            xs = [RNG.normal(3.0, 2.0, size=(4, 3)).astype(np.float32), RNG.normal(size=(4, 2)).astype(np.float32)]
            out[f"file__{name}__x_00"], out[f"file__{name}__x_01"] = xs
            y = model.predict(xs, verbose=0)
        else:
            x = image(3, 6, 5, 3)
            out[f"file__{name}__x_00"] = x
            y = model.predict(x, verbose=0)
        out[f"file__{name}__out"] = np.asarray(y)
        model.save(HERE / f"{name}.keras")
    np.savez(HERE / "preprocessing.npz", **out)
    print(f"wrote {len(out)} arrays to {HERE / 'preprocessing.npz'}")


if __name__ == "__main__":
    main()
