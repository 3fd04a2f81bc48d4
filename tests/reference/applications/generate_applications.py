"""Writes the applications references from real Keras 3.15 (JAX backend). Run from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/applications/generate_applications.py

- architectures.json.gz: for each case of CASES (a model function and its arguments, weights=None, small inputs),
  the model's name, input shapes (and whether `model.input` is a list), count_params and, per layer in order,
  its name, class, output shape, weight shapes, the names of the layers it takes its inputs from, and its config.
- mobilenetv2_035_32.weights.h5: a MobileNetV2(alpha=0.35, 32x32, include_top=False, pooling="avg") with Keras's
  initialisation and random BatchNormalization statistics, saved with `model.save_weights`; predictions.npz: an
  input batch (pixels in [0, 255]), its preprocess_input and Keras's predictions with those weights.
- preprocess.npz: imagenet_utils.preprocess_input in each mode and data format, and decode_predictions with a
  made-up class index (class_index.json, written here) on a few predictions.
"""

import gzip
import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
from keras.src.applications import imagenet_utils  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# (case name, function, keyword arguments); "input_tensor" True: an Input((32, 32, 3), name="image") is passed
CASES = [
    ("mobilenetv2_035_top", "MobileNetV2", {"input_shape": (32, 32, 3), "alpha": 0.35, "classes": 10}),
    ("mobilenetv2_100_avg", "MobileNetV2", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"}),
    ("mobilenetv2_140_max", "MobileNetV2", {"input_shape": (40, 48, 3), "alpha": 1.4, "include_top": False,
                                            "pooling": "max"}),
    ("mobilenetv2_050_96_logits", "MobileNetV2", {"input_shape": (96, 96, 3), "alpha": 0.5, "classes": 7,
                                                  "classifier_activation": None}),
    ("mobilenetv2_none_shape", "MobileNetV2", {"alpha": 0.75, "include_top": False}),
    ("mobilenetv2_tensor", "MobileNetV2", {"input_tensor": True, "alpha": 0.35, "include_top": False}),
    ("resnet50_top", "ResNet50", {"input_shape": (32, 32, 3), "classes": 5}),
    ("resnet50_none", "ResNet50", {"input_shape": (33, 35, 3), "include_top": False}),
    ("resnet50_max", "ResNet50", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "max",
                                  "name": "backbone"}),
    ("vgg16_top", "VGG16", {"input_shape": (32, 32, 3), "classes": 4, "classifier_activation": "sigmoid"}),
    ("vgg16_avg", "VGG16", {"input_shape": (48, 32, 3), "include_top": False, "pooling": "avg"}),
    ("densenet121_top", "DenseNet121", {"input_shape": (32, 32, 3), "classes": 3}),
    ("densenet121_max", "DenseNet121", {"input_shape": (64, 64, 3), "include_top": False, "pooling": "max"}),
    ("efficientnetb0_top", "EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 10}),
    ("efficientnetb0_avg", "EfficientNetB0", {"input_shape": (33, 32, 3), "include_top": False,
                                              "pooling": "avg"}),
]


def _shape(s):
    return None if s is None else [None if d is None else int(d) for d in s]


def _inbound(node_list):
    names = []
    for node in node_list:
        for arg in node["args"]:
            items = arg if isinstance(arg, list) else [arg]
            for item in items:
                if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                    names.append(item["config"]["keras_history"][0])
    return names


def build(fn, kwargs):
    kwargs = dict(kwargs)
    if kwargs.pop("input_tensor", False):
        kwargs["input_tensor"] = keras.Input((32, 32, 3), name="image")
    return getattr(keras.applications, fn)(weights=None, **kwargs)


def describe(model):
    config = model.get_config()
    layers = []
    for layer, layer_config in zip(model.layers, config["layers"]):
        assert layer.name == layer_config["name"]
        layers.append({
            "name": layer.name,
            "class": type(layer).__name__,
            "output_shape": _shape(layer.output.shape),
            "weights": [_shape(w.shape) for w in layer.weights],
            "trainable_weights": len(layer.trainable_weights),
            "inbound": _inbound(layer_config.get("inbound_nodes", [])),
            "config": layer_config["config"],
        })
    return {"name": model.name, "input_shapes": [_shape(t.shape) for t in model.inputs],
            "input_is_list": isinstance(model.input, list), "output_shape": _shape(model.output.shape),
            "count_params": int(model.count_params()), "layers": layers}


def main() -> None:
    out = {}
    for case, fn, kwargs in CASES:
        keras.backend.clear_session()  # automatic names start from 0 in each case, as in a fresh session
        model = build(fn, kwargs)
        out[case] = {"function": fn, "kwargs": kwargs, **describe(model)}
        print(case, out[case]["count_params"], len(out[case]["layers"]))
    text = json.dumps(out, separators=(",", ":")).encode()
    with open(os.path.join(HERE, "architectures.json.gz"), "wb") as f:
        f.write(gzip.compress(text, mtime=0))

    # weights saved by Keras, and its predictions with them
    keras.backend.clear_session()
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="avg",
                                           weights=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, var.shape).astype("float32")])
    model.save_weights(os.path.join(HERE, "mobilenetv2_035_32.weights.h5"))
    images = rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    x = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    y = np.asarray(model.predict(x, verbose=0))
    np.savez_compressed(os.path.join(HERE, "predictions.npz"), images=images, x=x, y=y)

    # preprocess_input and decode_predictions
    pre = {}
    img4 = rng.uniform(0, 255, (2, 4, 5, 3)).astype("float32")
    img3 = rng.uniform(0, 255, (3, 4, 5)).astype("float32")
    pre["img4"], pre["img3"] = img4, img3
    for mode in ("caffe", "tf", "torch"):
        pre[f"{mode}/last4"] = imagenet_utils.preprocess_input(img4.copy(), mode=mode)
        pre[f"{mode}/first4"] = imagenet_utils.preprocess_input(img4.transpose(0, 3, 1, 2).copy(),
                                                                data_format="channels_first", mode=mode)
        pre[f"{mode}/first3"] = imagenet_utils.preprocess_input(img3.copy(), data_format="channels_first",
                                                                mode=mode)
        pre[f"{mode}/last3"] = imagenet_utils.preprocess_input(img3.transpose(1, 2, 0).copy(), mode=mode)
    pre["uint8/caffe"] = imagenet_utils.preprocess_input(img4.astype("uint8"), mode="caffe")
    for fn in ("resnet50", "vgg16", "densenet", "mobilenet_v2", "efficientnet"):
        pre[f"{fn}/preprocess"] = np.asarray(getattr(keras.applications, fn).preprocess_input(img4.copy()))
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    with open(os.path.join(HERE, "class_index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    imagenet_utils.CLASS_INDEX = index
    preds = rng.uniform(0, 1, (2, 1000)).astype("float32")
    pre["preds"] = preds
    decoded = imagenet_utils.decode_predictions(preds, top=4)
    pre["decoded/names"] = np.array([[d[1] for d in row] for row in decoded])
    pre["decoded/ids"] = np.array([[d[0] for d in row] for row in decoded])
    pre["decoded/scores"] = np.array([[d[2] for d in row] for row in decoded], dtype="float32")
    np.savez_compressed(os.path.join(HERE, "preprocess.npz"), **pre)
    print("wrote architectures.json.gz, the weights files, predictions.npz and preprocess.npz")


if __name__ == "__main__":
    main()
