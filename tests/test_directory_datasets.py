"""keras.utils.image_dataset_from_directory / text_dataset_from_directory against Keras 3.15.1 (TensorFlow
backend; tests/reference/directory_datasets/, made by generate_directory_datasets.py on the tree its
``write_tree`` writes, which these tests write again with Pillow): printed messages, file order, class names,
labels, decoded pixels and texts, seeded shuffles, splits and Keras's error messages; then kerust's own parts
(the per-epoch reshuffle, the returned PyDataset, fit on it, Pillow missing, the "grain" format)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys

import kerust
import numpy as np
import pytest
from kerust import layers

HERE = pathlib.Path(__file__).parent / "reference" / "directory_datasets"
_spec = importlib.util.spec_from_file_location("generate_directory_datasets",
                                               HERE / "generate_directory_datasets.py")
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

image_dataset_from_directory = kerust.utils.image_dataset_from_directory
text_dataset_from_directory = kerust.utils.text_dataset_from_directory


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("tree"))
    gen.write_tree(path)
    return path


@pytest.fixture(scope="module")
def ref() -> dict:
    with open(HERE / "directory_datasets.json", encoding="utf-8") as f:
        out = json.load(f)
    with np.load(HERE / "directory_datasets.npz") as data:
        out["arrays"] = {k: data[k] for k in data.files}
    return out


def _kwargs(kwargs: dict) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in kwargs.items()}


def _check_part(ds, expected: dict, key: str, kind: str, root: str, arrays: dict) -> None:
    assert isinstance(ds, kerust.utils.PyDataset)
    assert ds.class_names == expected["class_names"]
    if "file_paths" in expected:
        assert [os.path.relpath(p, root) for p in ds.file_paths] == expected["file_paths"]
    if "batch_shapes" not in expected:
        return
    xs, ys = [], []
    for item in ds:
        x, y = item if isinstance(item, tuple) else (item, None)
        xs.append(x)
        if y is not None:
            ys.append(np.asarray(y))
    assert [list(np.shape(x)) for x in xs] == expected["batch_shapes"]
    assert len(ds) == len(expected["batch_shapes"])
    if kind == "image":
        batched = xs[0].ndim == 4
        got = np.concatenate(xs) if batched else np.stack(xs)
        assert got.dtype == np.float32  # TensorFlow keeps uint8 for "nearest": the values are the same
        want = arrays[f"{key}/x"]
        # JPEG: another decoder, a few levels apart; everything else: the same pixels, resized the same way
        atol = 4.0 if "jpeg" in key else 1e-3
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    else:
        texts = [t for x in xs for t in (x.tolist() if isinstance(x, np.ndarray) else [x])]
        assert all(type(t) is str for t in texts)
        assert texts == expected["texts"]
        if xs and isinstance(xs[0], np.ndarray):
            assert xs[0].dtype == object
    if ys:
        got_y = np.concatenate(ys) if ys[0].ndim else np.stack(ys)
        want_y = arrays[f"{key}/y"]
        assert got_y.dtype == want_y.dtype == np.dtype(expected["y_dtype"])
        np.testing.assert_array_equal(got_y, want_y)
    else:
        assert "y_dtype" not in expected


def _check_case(kind: str, name: str, sub: str, kwargs: dict, root: str, ref: dict, capsys) -> None:
    fn = image_dataset_from_directory if kind == "image" else text_dataset_from_directory
    if name == "global_seed":
        np.random.seed(5)  # seed=None: Keras's np.random.randint(1e6) from NumPy's global generator
    capsys.readouterr()
    result = fn(os.path.join(root, sub), **_kwargs(kwargs))
    expected = ref[kind][name]
    assert capsys.readouterr().out == expected["printed"]
    if "parts" in expected:
        assert isinstance(result, list) and len(result) == 2
        for i, (part, exp) in enumerate(zip(result, expected["parts"])):
            _check_part(part, exp, f"{kind}/{name}/{i}", kind, root, ref["arrays"])
    else:
        _check_part(result, expected, f"{kind}/{name}", kind, root, ref["arrays"])


@pytest.mark.parametrize("name", list(gen.IMAGE_CASES))
def test_image_dataset_matches_keras(name, root, ref, capsys):
    sub, kwargs = gen.IMAGE_CASES[name]
    _check_case("image", name, sub, kwargs, root, ref, capsys)


@pytest.mark.parametrize("name", list(gen.TEXT_CASES))
def test_text_dataset_matches_keras(name, root, ref, capsys):
    sub, kwargs = gen.TEXT_CASES[name]
    _check_case("text", name, sub, kwargs, root, ref, capsys)


@pytest.mark.parametrize("name", ["both", "shuffled"])
def test_shuffled_text_files_and_labels_are_keras_index_order(name, root, ref, capsys):
    """Keras's text data sets have no file_paths: its index_directory order for the same seed, and the labels of
    kerust's first pass, which follows it."""
    sub, kwargs = gen.TEXT_CASES[name]
    result = text_dataset_from_directory(os.path.join(root, sub), **_kwargs(kwargs))
    expected = ref["text_index"][name]
    paths = expected["file_paths"]
    if isinstance(result, list):  # the training part, then the validation part
        n_val = int(kwargs["validation_split"] * len(paths))
        parts = [(result[0], paths[:-n_val], expected["labels"][:-n_val]),
                 (result[1], paths[-n_val:], expected["labels"][-n_val:])]
    else:
        parts = [(result, paths, expected["labels"])]
    for ds, want_paths, want_labels in parts:
        assert [os.path.relpath(p, root) for p in ds.file_paths] == want_paths
        assert ds.class_names == expected["class_names"]
        labels = [int(v) for _, y in ds for v in y]
        assert labels == want_labels
        by_file = {p: open(os.path.join(root, p), "rb").read().decode() for p in want_paths}
        ds.on_epoch_end()  # any epoch: each text still goes with its own label
        ds.on_epoch_end()
        for x, y in ds:
            for text, label in zip(x, y):
                matches = [p for p, t in by_file.items() if t == text]
                assert matches and want_labels[want_paths.index(matches[0])] == int(label)


@pytest.mark.parametrize("kind,name", [("image_errors", n) for n in gen.IMAGE_ERRORS]
                         + [("text_errors", n) for n in gen.TEXT_ERRORS])
def test_errors_are_keras_errors(kind, name, root, ref, capsys):
    sub, kwargs = (gen.IMAGE_ERRORS if kind == "image_errors" else gen.TEXT_ERRORS)[name]
    fn = image_dataset_from_directory if kind == "image_errors" else text_dataset_from_directory
    who = fn.__name__
    expected = ref[kind][name]
    if expected is None:  # Keras accepts it (e.g. a validation split of 0 files keeps every file)
        fn(os.path.join(root, sub), **_kwargs(kwargs))
        return
    with pytest.raises(ValueError) as info:
        fn(os.path.join(root, sub), **_kwargs(kwargs))
    assert str(info.value).replace(root, "<root>") == f"{who}: {expected}"


# ---- kerust's own parts ---------------------------------------------------------------------------------------------
def _epoch_paths(ds) -> list:
    """The file of each sample of the current pass, in order."""
    return [ds.file_paths[i] for i in ds._order]


def test_each_epoch_is_a_seeded_permutation_of_every_file(root, capsys):
    folder = os.path.join(root, "images")
    a = image_dataset_from_directory(folder, image_size=4, batch_size=3, seed=21)
    b = image_dataset_from_directory(folder, image_size=4, batch_size=3, seed=21)
    c = image_dataset_from_directory(folder, image_size=4, batch_size=3, seed=22)
    assert _epoch_paths(a) == a.file_paths  # the first pass: Keras's shuffled order
    seen_a, seen_b, seen_c = [], [], []
    for _ in range(4):
        a.on_epoch_end()
        b.on_epoch_end()
        c.on_epoch_end()
        seen_a.append(_epoch_paths(a))
        seen_b.append(_epoch_paths(b))
        seen_c.append(_epoch_paths(c))
        assert sorted(seen_a[-1]) == sorted(a.file_paths)
    assert seen_a == seen_b  # the same seed: the same epochs
    assert seen_a != seen_c
    assert len({tuple(s) for s in seen_a}) == 4  # every epoch its own order
    # the labels travel with their files
    rows = [a.file_paths[i] for i in a._order]
    labels = np.concatenate([a[i][1] for i in range(len(a))])
    assert [a.class_names[v] for v in labels] == [os.path.relpath(p, folder).split(os.sep)[0] for p in rows]
    # a complete for loop is an epoch too; an incomplete one is not
    before = _epoch_paths(a)
    list(a)
    assert _epoch_paths(a) != before
    before = _epoch_paths(a)
    next(iter(a))
    assert _epoch_paths(a) == before


def test_unshuffled_and_validation_data_keep_their_order(root, capsys):
    folder = os.path.join(root, "images")
    plain = image_dataset_from_directory(folder, image_size=4, shuffle=False)
    train, val = image_dataset_from_directory(folder, image_size=4, seed=4, validation_split=0.5, subset="both")
    first_plain, first_val = [y.tolist() for _, y in plain], [y.tolist() for _, y in val]
    for ds in (plain, val, train):
        ds.on_epoch_end()
    assert [y.tolist() for _, y in plain] == first_plain
    assert [y.tolist() for _, y in val] == first_val
    assert _epoch_paths(train) != train.file_paths or len(train.file_paths) < 3
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(train.file_paths) + len(val.file_paths) == 10
    # the validation subset alone is shuffled per epoch, as Keras's (which shuffles it too)
    alone = image_dataset_from_directory(folder, image_size=4, seed=4, validation_split=0.5, subset="validation")
    assert alone.file_paths == val.file_paths
    assert alone.shuffle and not val.shuffle


def test_the_result_is_a_pydataset_of_numpy_batches(root, capsys):
    ds = image_dataset_from_directory(pathlib.Path(root) / "images", image_size=(5, 7), batch_size=4,
                                      shuffle=False, label_mode="categorical", verbose=False)
    assert capsys.readouterr().out == ""
    assert len(ds) == 3 and ds.num_batches == 3
    x, y = ds[-1]
    assert x.shape == (2, 5, 7, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (2, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(ds[2][0], x)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds[-4]
    with pytest.raises(TypeError, match="must be an int"):
        ds["0"]
    assert all(isinstance(p, str) for p in ds.file_paths)
    assert "10 files" in repr(ds)
    single = image_dataset_from_directory(os.path.join(root, "images"), image_size=(5, 7), batch_size=None,
                                          shuffle=False, labels=None, color_mode="grayscale", verbose=False)
    assert len(single) == 12 and single[0].shape == (5, 7, 1)
    texts = text_dataset_from_directory(os.path.join(root, "texts"), batch_size=None, shuffle=False, verbose=False)
    text, label = texts[0]
    assert text == "bad movie" and label.dtype == np.int32 and label.shape == ()
    # "Using K files" is printed whatever `verbose` says, as Keras
    text_dataset_from_directory(os.path.join(root, "texts"), seed=1, validation_split=0.5, subset="training",
                                verbose=False)
    assert capsys.readouterr().out == "Using 4 files for training.\n"


def test_manual_labels_are_not_shuffled_in_place(root, capsys):
    labels = [1, 0, 0, 1, 1, 0, 1, 1, 0]
    kept = list(labels)
    ds = text_dataset_from_directory(os.path.join(root, "texts"), labels=labels, seed=3)
    assert labels == kept
    as_tuple = text_dataset_from_directory(os.path.join(root, "texts"), labels=tuple(labels), seed=3)
    assert as_tuple.file_paths == ds.file_paths
    np.testing.assert_array_equal(np.concatenate([y for _, y in as_tuple]), np.concatenate([y for _, y in ds]))
    order = [(x, int(y)) for xb, yb in ds for x, y in zip(xb, yb)]
    unshuffled = text_dataset_from_directory(os.path.join(root, "texts"), labels=labels, shuffle=False)
    assert sorted(order) == sorted((x, int(y)) for xb, yb in unshuffled for x, y in zip(xb, yb))


def test_fit_a_small_cnn_on_an_image_dataset(root, capsys):
    train, val = image_dataset_from_directory(os.path.join(root, "images"), image_size=(8, 8), batch_size=4,
                                              seed=5, validation_split=0.3, subset="both")
    ends = []
    train.on_epoch_end = lambda real=train.on_epoch_end: (ends.append(1), real())[1]
    kerust.utils.set_random_seed(0)
    model = kerust.Sequential([kerust.Input((8, 8, 3)), layers.Rescaling(1 / 255.0),
                               layers.Conv2D(4, 3, activation="relu"), layers.GlobalAveragePooling2D(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=3, verbose=0)
    assert len(ends) == 3  # fit reshuffles the data set after every epoch
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(np.isfinite(v) for v in history.history["loss"])
    assert model.predict(val, verbose=0).shape == (3, 3)
    loss, acc = model.evaluate(val, verbose=0)
    assert np.isfinite(loss) and 0 <= acc <= 1


def test_fit_a_text_vectorization_model_on_a_text_dataset(root, capsys):
    ds = text_dataset_from_directory(os.path.join(root, "texts"), batch_size=3, seed=2, label_mode="binary")
    vectorizer = layers.TextVectorization(max_tokens=40, output_sequence_length=5)
    vectorizer.adapt(np.concatenate([x for x, _ in ds]))
    assert "film" in vectorizer.get_vocabulary()
    kerust.utils.set_random_seed(0)
    model = kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), vectorizer, layers.Embedding(40, 4),
                               layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=kerust.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(ds, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(ds, verbose=0).shape == (8, 1)


def test_what_kerust_does_not_have_is_refused_at_once(root, capsys):
    folder = os.path.join(root, "images")
    who = "image_dataset_from_directory"
    with pytest.raises(ValueError, match=f"{who}: interpolation='bicubic' is not supported by kerust yet"):
        image_dataset_from_directory(folder, interpolation="bicubic")
    assert capsys.readouterr().out == ""  # before reading the folder
    ds = image_dataset_from_directory(folder, interpolation="NEAREST", image_size=3, shuffle=False)
    assert ds[0][0].shape == (10, 3, 3, 3)
    with pytest.raises(TypeError, match=f"{who}: `interpolation` must be a string"):
        image_dataset_from_directory(folder, interpolation=1)
    with pytest.raises(ValueError, match=r"`image_size` must be 2 positive integers .* image_size=\(0, 4\)"):
        image_dataset_from_directory(folder, image_size=(0, 4))
    for fn in (image_dataset_from_directory, text_dataset_from_directory):
        with pytest.raises(ValueError, match=f"{fn.__name__}: `batch_size` must be a positive integer or None. "
                                             "Received: batch_size=0"):
            fn(folder, batch_size=0)
    with pytest.raises(ValueError, match="text_dataset_from_directory: `max_length` must be a non-negative"):
        text_dataset_from_directory(folder, max_length=-1)
    with pytest.raises(FileNotFoundError):
        image_dataset_from_directory(os.path.join(root, "missing"))


def test_missing_pillow_says_how_to_install_it(root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"image_dataset_from_directory needs Pillow .*`pip install pillow`"):
        image_dataset_from_directory(os.path.join(root, "images"))
    assert capsys.readouterr().out == ""
    # texts need no Pillow
    assert len(text_dataset_from_directory(os.path.join(root, "texts"), verbose=False)) == 1


def test_grain_format_pads_then_resizes_and_cuts_characters(root, capsys):
    from PIL import Image

    folder = os.path.join(root, "images")
    common = dict(image_size=(6, 10), batch_size=None, shuffle=False, pad_to_aspect_ratio=True, verbose=False)
    tf_ds = image_dataset_from_directory(folder, **common)
    grain_ds = image_dataset_from_directory(folder, format="grain", **common)
    index = [os.path.basename(p) for p in grain_ds.file_paths].index("c2.bmp")  # 8 x 5: padded on both sides
    with Image.open(grain_ds.file_paths[index]) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    want = kerust.ops.image.resize(pixels, (6, 10), pad_to_aspect_ratio=True)
    np.testing.assert_allclose(grain_ds[index][0], want, atol=1e-4)
    assert np.abs(grain_ds[index][0] - tf_ds[index][0]).max() > 1  # resize-then-pad is another image
    # grain reads text files as text: characters (not bytes) and universal newlines
    texts = text_dataset_from_directory(os.path.join(root, "texts"), shuffle=False, max_length=7, format="grain",
                                        verbose=False)
    assert texts[0][0].tolist()[:3] == ["bad mov", "awful\np", "tr\u00e8s ma"]
    tf_texts = text_dataset_from_directory(os.path.join(root, "texts"), shuffle=False, max_length=3, verbose=False)
    assert tf_texts[0][0].tolist()[:3] == ["bad", "awf", "tr\ufffd"]  # "è" cut in half by the byte limit
