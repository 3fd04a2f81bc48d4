"""Writes directory_datasets.json + directory_datasets.npz from real Keras 3.15.1 (TensorFlow backend: Keras's
image/text dataset functions need TensorFlow): ``keras.utils.image_dataset_from_directory`` and
``keras.utils.text_dataset_from_directory`` on a tiny tree that ``write_tree`` makes deterministically (8x8-ish
PNG/BMP/GIF images of every colour mode, text files with CRLF and multi-byte characters, hidden folders, nested
folders, ignored extensions, a symbolic link). Recorded: the printed messages, ``file_paths`` (relative to the
tree), ``class_names``, labels, the decoded pixel values and texts of unshuffled data sets (tf.data's shuffle
buffer is not reproduced by kerust), Keras's index order for seeded shuffles and Keras's error messages.
tests/test_directory_datasets.py builds the same tree with ``write_tree`` and checks kerust against this. Run from
the repository root:

    KERAS_BACKEND=tensorflow bench-venv/bin/python tests/reference/directory_datasets/generate_directory_datasets.py
"""

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _pixels(shape, seed):
    return np.random.RandomState(seed).randint(0, 256, size=shape).astype(np.uint8)


def write_tree(root):
    """The image tree under root/images, the text tree under root/texts, the link tree under root/linked."""
    from PIL import Image

    def save(rel, img):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path)

    save("images/birds/b0.png", Image.fromarray(_pixels((8, 8, 3), 1), "RGB"))
    save("images/birds/b1.png", Image.fromarray(_pixels((8, 8, 2), 2), "LA"))  # gray + alpha
    save("images/cats/c0.png", Image.fromarray(_pixels((8, 8, 3), 3), "RGB"))
    save("images/cats/c1.PNG", Image.fromarray(_pixels((6, 8, 3), 4), "RGB"))  # wide, capital extension
    save("images/cats/sub/c2.bmp", Image.fromarray(_pixels((8, 5, 3), 5), "RGB"))  # tall, nested
    save("images/cats/a_c3.png", Image.fromarray(_pixels((7, 7, 3), 6), "RGB"))
    save("images/dogs/d0.png", Image.fromarray(_pixels((8, 8, 4), 7), "RGBA"))
    palette = Image.fromarray(_pixels((8, 8), 8) % 16, "L").convert("P")
    palette.putpalette(list(_pixels((16 * 3,), 9)) + [0] * (256 - 16) * 3)
    save("images/dogs/d1.gif", palette)
    save("images/dogs/d2.png", Image.fromarray(_pixels((6, 8), 10), "L"))
    save("images/dogs/d3.png", Image.fromarray(_pixels((8, 8, 3), 11), "RGB"))
    save("images/.hidden/h0.png", Image.fromarray(_pixels((8, 8, 3), 12), "RGB"))
    save("images/top.png", Image.fromarray(_pixels((8, 8, 3), 13), "RGB"))
    for rel, data in (("images/cats/notes.txt", b"not an image"), ("images/dogs/d4.webp.bak", b"x"),
                      ("texts/neg/n0.txt", b"bad movie"),
                      ("texts/neg/n1.txt", b"awful\r\nplot twist"),
                      ("texts/neg/n2.txt", "tr\u00e8s mauvais \u2603 film".encode()),
                      ("texts/neg/sub/n3.txt", b"nested and negative"),
                      ("texts/pos/p0.txt", b"great film"),
                      ("texts/pos/p1.TXT", b"LOVED it"),
                      ("texts/pos/p2.txt", b""),
                      ("texts/pos/p3.txt", b"fine, really fine, truly"),
                      ("texts/pos/readme.md", b"ignored"),
                      ("texts/top.txt", b"top level"),
                      ("empty/a/readme.md", b"no images here")):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    # only PNGs (TensorFlow decodes BMP in 3 or 4 channels only, GIF in 3): the colour-mode cases
    save("plain/x/p_rgb.png", Image.fromarray(_pixels((8, 6, 3), 16), "RGB"))
    save("plain/x/p_l.png", Image.fromarray(_pixels((8, 8), 17), "L"))
    save("plain/x/p_la.png", Image.fromarray(_pixels((7, 8, 2), 18), "LA"))
    save("plain/y/p_rgba.png", Image.fromarray(_pixels((8, 8, 4), 19), "RGBA"))
    save("plain/y/p_p.png", palette)
    # JPEGs (smooth gradients), committed beside this script: another Pillow could encode other bytes, and the
    # decoders (TensorFlow's, Pillow's) already differ by a few levels
    yy, xx = np.mgrid[0:8, 0:8]
    grad = np.stack([yy * 30, xx * 30, (yy + xx) * 15], axis=-1).astype(np.uint8)
    for rel, img in (("photos/x/a.jpg", Image.fromarray(grad, "RGB")),
                     ("photos/x/b.JPEG", Image.fromarray(grad[::-1].copy(), "RGB")),
                     ("photos/y/c.jpeg", Image.fromarray(grad[:, :, 0].copy(), "L"))):
        kept = os.path.join(HERE, rel)
        if not os.path.exists(kept):
            os.makedirs(os.path.dirname(kept), exist_ok=True)
            img.save(kept)
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copyfile(kept, os.path.join(root, rel))
    save("linked/a/x0.png", Image.fromarray(_pixels((8, 8, 3), 14), "RGB"))
    save("linked/b/y0.png", Image.fromarray(_pixels((8, 8, 3), 15), "RGB"))
    os.symlink(os.path.join("..", "..", "images", "birds"), os.path.join(root, "linked", "a", "more"))


# ---- the cases: one list for Keras (here) and kerust (the test) ---------------------------------------------------
IMAGE_CASES = {
    # name: (subfolder, kwargs); shuffle=False unless the case records only file order
    "rgb": ("images", dict(image_size=(6, 10), batch_size=4, shuffle=False)),
    "plain_rgb": ("plain", dict(image_size=(6, 10), batch_size=4, shuffle=False)),
    "grayscale": ("plain", dict(image_size=(6, 10), batch_size=4, shuffle=False, color_mode="grayscale")),
    "rgba": ("plain", dict(image_size=(6, 10), batch_size=4, shuffle=False, color_mode="rgba")),
    "jpeg": ("photos", dict(image_size=(6, 10), batch_size=4, shuffle=False)),
    "jpeg_grayscale": ("photos", dict(image_size=(6, 10), batch_size=4, shuffle=False, color_mode="grayscale")),
    "crop": ("images", dict(image_size=(6, 10), batch_size=4, shuffle=False, crop_to_aspect_ratio=True)),
    "pad": ("images", dict(image_size=(6, 10), batch_size=4, shuffle=False, pad_to_aspect_ratio=True)),
    "pad_tall": ("images", dict(image_size=(9, 4), batch_size=4, shuffle=False, pad_to_aspect_ratio=True)),
    "nearest": ("images", dict(image_size=(5, 12), batch_size=4, shuffle=False, interpolation="nearest")),
    "same_size": ("images", dict(image_size=8, batch_size=3, shuffle=False, label_mode="categorical")),
    "channels_first": ("images", dict(image_size=(6, 10), batch_size=4, shuffle=False,
                                      data_format="channels_first")),
    "binary": ("images", dict(image_size=(4, 4), batch_size=5, shuffle=False, label_mode="binary",
                              class_names=["dogs", "cats"])),
    "no_labels": ("images", dict(image_size=(4, 4), batch_size=4, shuffle=False, labels=None)),
    "label_mode_none": ("images", dict(image_size=(4, 4), batch_size=4, shuffle=False, label_mode=None)),
    "manual": ("images", dict(image_size=(4, 4), batch_size=4, shuffle=False,
                              labels=[3, 1, 3, 0, 1, 1, 0, 3, 3, 1, 0, 1])),
    "manual_categorical": ("images", dict(image_size=(4, 4), batch_size=4, shuffle=False, label_mode="categorical",
                                          labels=[3, 1, 3, 0, 1, 1, 0, 3, 3, 1, 0, 1])),
    "unbatched": ("images", dict(image_size=(4, 4), batch_size=None, shuffle=False)),
    "both": ("images", dict(image_size=(4, 4), batch_size=2, validation_split=0.3, subset="both", seed=3)),
    "training": ("images", dict(image_size=(4, 4), validation_split=0.3, subset="training", seed=3)),
    "validation": ("images", dict(image_size=(4, 4), validation_split=0.3, subset="validation", seed=3)),
    "both_unshuffled": ("images", dict(image_size=(4, 4), batch_size=3, shuffle=False, validation_split=0.4,
                                       subset="both", label_mode="categorical")),
    "shuffled": ("images", dict(image_size=(4, 4), seed=1337)),
    "shuffled_no_labels": ("images", dict(image_size=(4, 4), seed=1337, labels=None)),
    "global_seed": ("images", dict(image_size=(4, 4))),  # after np.random.seed(5)
    "links": ("linked", dict(image_size=(4, 4), shuffle=False)),
    "links_followed": ("linked", dict(image_size=(4, 4), shuffle=False, follow_links=True)),
}
TEXT_CASES = {
    "int": ("texts", dict(batch_size=3, shuffle=False)),
    "max_length": ("texts", dict(batch_size=3, shuffle=False, max_length=7, label_mode="categorical")),
    "binary": ("texts", dict(batch_size=4, shuffle=False, label_mode="binary")),
    "no_labels": ("texts", dict(batch_size=4, shuffle=False, labels=None)),
    "class_names": ("texts", dict(batch_size=4, shuffle=False, class_names=["pos", "neg"])),
    "manual": ("texts", dict(batch_size=4, shuffle=False, labels=[1, 0, 0, 1, 1, 0, 1, 1, 0])),
    "unbatched": ("texts", dict(batch_size=None, shuffle=False)),
    "both": ("texts", dict(batch_size=2, validation_split=0.25, subset="both", seed=11)),
    "shuffled": ("texts", dict(seed=99)),
}
IMAGE_ERRORS = {
    "labels_str": ("images", dict(labels="wrong")),
    "labels_class_names": ("images", dict(labels=[0, 1], class_names=["a", "b"])),
    "label_mode": ("images", dict(label_mode="sparse")),
    "color_mode": ("images", dict(color_mode="cmyk")),
    "image_size": ("images", dict(image_size=(1, 2, 3))),
    "interpolation": ("images", dict(interpolation="cubic")),
    "format": ("images", dict(format="torch")),
    "split_range": ("images", dict(validation_split=2, subset="training", seed=1)),
    "subset_alone": ("images", dict(subset="training")),
    "split_alone": ("images", dict(validation_split=0.2, seed=1)),
    "subset_value": ("images", dict(validation_split=0.2, subset="testing", seed=1)),
    "no_seed": ("images", dict(validation_split=0.2, subset="training")),
    "binary_classes": ("images", dict(label_mode="binary")),
    "class_names_mismatch": ("images", dict(class_names=["cats", "horses"])),
    "no_labels_class_names": ("images", dict(labels=None, class_names=["cats"])),
    "manual_length": ("images", dict(labels=[0, 1, 0])),
    "no_images": ("empty", dict()),
    "no_training_images": ("images", dict(validation_split=0.01, subset="both", seed=1)),
    "data_format": ("images", dict(data_format="channels_middle")),
    "crop_and_pad": ("images", dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)),
}
TEXT_ERRORS = {
    "labels_str": ("texts", dict(labels="wrong")),
    "labels_class_names": ("texts", dict(labels=[0, 1], class_names=["a", "b"])),
    "label_mode": ("texts", dict(label_mode="sparse")),
    "format": ("texts", dict(format="torch")),
    "no_seed": ("texts", dict(validation_split=0.2, subset="both")),
    "binary_classes": ("texts", dict(label_mode="binary", labels=[0, 1, 2, 0, 1, 2, 0, 1, 2])),
    "manual_length": ("texts", dict(labels=[0, 1])),
    "no_text_files": ("images", dict(labels=None)),
    "no_validation_files": ("texts", dict(validation_split=0.05, subset="validation", seed=1)),
}


def _rel(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def _text(t):
    return t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)


def _record(ds, root, arrays, key, kind, iterate):
    entry = {"class_names": ds.class_names}
    if hasattr(ds, "file_paths"):
        entry["file_paths"] = _rel(ds.file_paths, root)
    if not iterate:
        return entry
    xs, ys = [], []
    for item in ds:
        x, y = item if isinstance(item, tuple) else (item, None)
        x = np.asarray(x.numpy(), dtype=None if kind == "image" else object)
        if kind == "image":
            entry.setdefault("x_dtype", str(x.dtype))
            xs.append(x.astype(np.float32))
        else:
            xs.extend([_text(t) for t in (x.reshape(-1) if x.ndim else [x.item()])])
        if y is not None:
            entry.setdefault("y_dtype", str(y.numpy().dtype))
            ys.append(y.numpy())
        entry.setdefault("batch_shapes", []).append(list(x.shape))
    if kind == "image":
        arrays[f"{key}/x"] = np.concatenate(xs) if xs[0].ndim == 4 else np.stack(xs)
    else:
        entry["texts"] = xs
    if ys:
        arrays[f"{key}/y"] = np.concatenate(ys) if ys[0].ndim else np.stack(ys)
    return entry


def main():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras.src.utils import dataset_utils

    assert keras.__version__ == "3.15.1", keras.__version__
    out = {"keras": keras.__version__, "image": {}, "text": {}, "image_errors": {}, "text_errors": {},
           "text_index": {}}
    arrays = {}
    with tempfile.TemporaryDirectory() as root:
        write_tree(root)
        for kind, cases, fn in (("image", IMAGE_CASES, keras.utils.image_dataset_from_directory),
                                ("text", TEXT_CASES, keras.utils.text_dataset_from_directory)):
            for name, (sub, kwargs) in cases.items():
                kwargs = {k: (list(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
                if name == "global_seed":
                    np.random.seed(5)
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    result = fn(os.path.join(root, sub), **kwargs)
                # an unshuffled data set's batches are comparable; a shuffled one's only through its file order
                if isinstance(result, list):
                    entry = {"printed": buf.getvalue(), "parts": [
                        _record(part, root, arrays, f"{kind}/{name}/{i}", kind,
                                iterate=(not kwargs.get("shuffle", True)) or i == 1)
                        for i, part in enumerate(result)]}
                else:
                    entry = {"printed": buf.getvalue(), **_record(result, root, arrays, f"{kind}/{name}", kind,
                                                                  iterate=not kwargs.get("shuffle", True))}
                out[kind][name] = entry
        # text data sets have no file_paths: Keras's index order for the shuffled text cases
        for name in ("both", "shuffled"):
            kwargs = TEXT_CASES[name][1]
            with contextlib.redirect_stdout(io.StringIO()):
                paths, labels, names = dataset_utils.index_directory(
                    os.path.join(root, "texts"), "inferred", formats=(".txt",), shuffle=True, seed=kwargs["seed"])
            out["text_index"][name] = {"file_paths": _rel(paths, root), "labels": np.asarray(labels).tolist(),
                                       "class_names": names}
        for kind, cases, fn in (("image_errors", IMAGE_ERRORS, keras.utils.image_dataset_from_directory),
                                ("text_errors", TEXT_ERRORS, keras.utils.text_dataset_from_directory)):
            for name, (sub, kwargs) in cases.items():
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        fn(os.path.join(root, sub), **kwargs)
                except ValueError as e:
                    out[kind][name] = str(e).replace(root, "<root>")
                else:
                    out[kind][name] = None
    with open(os.path.join(HERE, "directory_datasets.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    np.savez_compressed(os.path.join(HERE, "directory_datasets.npz"), **arrays)
    print("wrote", len(arrays), "arrays;", sum(a.nbytes for a in arrays.values()), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
