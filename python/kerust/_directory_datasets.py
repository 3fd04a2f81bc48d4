"""``keras.utils.image_dataset_from_directory`` and ``keras.utils.text_dataset_from_directory``.

What is Keras's (3.15.1, ``keras/src/utils/{image,text,}dataset_utils.py``), reproduced exactly:

- the arguments, their defaults, their checks and Keras's ``ValueError`` messages (each prefixed with the
  function's name);
- which files are found and in which order (Keras's ``index_directory``): with ``labels="inferred"`` the
  subfolders of ``directory`` in sorted order (hidden ones skipped; ``class_names`` picks and orders them), each
  walked with ``os.walk`` (its folders sorted by path, the files of each sorted by name, symbolic links to
  folders followed only with ``follow_links=True``), keeping the names that end, case-insensitively, in
  ``.bmp .gif .jpeg .jpg .png`` (images) or ``.txt`` (text); with ``labels=None`` or a list of labels the whole
  tree of ``directory`` is walked the same way;
- ``seed=None`` draws ``np.random.randint(1e6)`` from NumPy's global generator (even when ``shuffle=False``),
  and ``shuffle=True`` shuffles the paths and labels with ``np.random.RandomState(seed).shuffle`` (so
  ``file_paths`` and the labels are Keras's for the same seed);
- ``validation_split`` keeps the last ``int(validation_split * n)`` shuffled files for validation and the rest
  for training, with Keras's messages (``"Found N files belonging to M classes."`` when ``verbose``; ``"Using K
  files for training."`` / ``"... for validation."`` always, as Keras); ``subset="both"`` returns
  ``[training, validation]``;
- labels: ``"int"`` int32 ``(batch,)``, ``"categorical"`` float32 one-hot ``(batch, num_classes)`` (a label
  outside ``range(num_classes)`` is all zeros, as ``tf.one_hot``), ``"binary"`` float32 ``(batch, 1)``;
- images (``format="tf"``, the default): decoded with ``color_mode``'s channels (``"grayscale"`` 1, ``"rgb"``
  3, ``"rgba"`` 4; a GIF gives its first frame), resized to ``image_size`` with ``kerust.ops.image.resize``
  (bilinear with half-pixel centres, or nearest; no antialiasing, as ``tf.image.resize``), float32 values in
  the files' range (0-255 for 8-bit images), ``(batch, height, width, channels)`` (``data_format=
  "channels_first"``: ``(batch, channels, height, width)``). ``crop_to_aspect_ratio`` crops the largest
  centred window of the target's aspect ratio first (Keras's ``smart_resize``); ``pad_to_aspect_ratio``
  resizes to fit inside ``image_size`` and pads with zeros around it (``tf.image.resize_with_pad``). With
  ``format="grain"`` the image is padded first and then resized (Keras's ``ops.image.resize`` with
  ``pad_to_aspect_ratio=True``, which Keras's grain loader uses);
- texts: the bytes of each file (cut to ``max_length`` bytes, as ``tf.strings.substr``), with ``format="grain"``
  the file read as text (cut to ``max_length`` characters, as Keras's grain loader).

What kerust returns instead of a ``tf.data.Dataset`` (it has no tf.data): a :class:`DirectoryDataset`, a
``keras.utils.PyDataset`` that ``fit`` / ``evaluate`` / ``predict`` take, ``len(ds)`` batches of NumPy arrays
(``(x, y)``, or ``x`` alone with ``labels=None`` / ``label_mode=None``; single samples with ``batch_size=None``),
iterable (``for x, y in ds``), with ``class_names`` and ``file_paths``. Images are read and decoded (with
Pillow, an optional dependency: ``pip install pillow``) batch by batch, never the whole folder at once. Texts
are NumPy arrays of Python ``str`` (dtype object): what ``tf.string``'s ``numpy()`` gives, decoded as UTF-8
(bytes that are not UTF-8, or a character cut by ``max_length``, become U+FFFD).

Where kerust differs, and why:

- the order within an epoch: Keras streams the (already shuffled) files through ``tf.data``'s
  ``shuffle(buffer_size=8 * batch_size, seed=seed)``, reshuffled on every pass; that sequence is TensorFlow's
  and cannot be reproduced. kerust's first pass yields the files in ``file_paths`` order (Keras's shuffled
  order) and every ``on_epoch_end()`` (``fit`` calls it after each epoch; a complete ``for`` loop over the data
  set calls it too) draws a new order of all the files from ``np.random.default_rng(seed)``: the same seed gives
  the same sequence of epochs. Data sets Keras does not shuffle (``shuffle=False``, the validation half of
  ``subset="both"``) keep ``file_paths`` order.
- the decoder: Pillow instead of TensorFlow's. PNG, BMP and GIF pixels are the same (a colour PNG read as
  ``"grayscale"`` too: kerust applies libpng's weights, as TensorFlow); JPEG pixels may differ by a few levels
  (another JPEG library), and so may ``"grayscale"`` of a colour JPEG, which uses Pillow's ``L`` conversion (as
  Keras's grain loader does for every format). Where TensorFlow refuses a conversion (a BMP or a GIF in
  ``"grayscale"``, a GIF or a JPEG in ``"rgba"``), kerust converts with Pillow.
- ``interpolation``: Keras's eight names are accepted, but kerust's resize has only ``"bilinear"`` and
  ``"nearest"``; the others raise ``ValueError`` when the data set is made. ``"nearest"`` gives float32 values
  (TensorFlow keeps the file's dtype, uint8, for it).
- text data sets have ``file_paths`` too (Keras sets it only on image data sets), and a list of labels is not
  shuffled in place (Keras shuffles the caller's list).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._data_sources import PyDataset

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TEXT_FORMATS = (".txt",)
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
_KERUST_INTERPOLATIONS = ("bilinear", "nearest")
_LABEL_MODES = ("int", "categorical", "binary", None)


def _print_msg(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# ---- Keras's dataset_utils ----------------------------------------------------------------------------------------
def _iter_valid_files(directory: str, follow_links: bool, formats: Tuple[str, ...]) -> Iterator[Tuple[str, str]]:
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def _index_subdirectory(directory: str, class_indices: dict, follow_links: bool,
                        formats: Tuple[str, ...]) -> Tuple[List[str], List[int]]:
    dirname = os.path.basename(directory)
    labels: List[int] = []
    filenames: List[str] = []
    for root, fname in _iter_valid_files(directory, follow_links, formats):
        labels.append(class_indices[dirname])
        absolute_path = os.path.join(root, fname)
        filenames.append(os.path.join(dirname, os.path.relpath(absolute_path, directory)))
    return filenames, labels


def index_directory(directory: Any, labels: Any, formats: Tuple[str, ...], class_names: Any = None,
                    shuffle: bool = True, seed: Optional[int] = None, follow_links: bool = False,
                    verbose: bool = True, who: str = "index_directory") -> Tuple[List[str], Any, Any]:
    """Keras's ``index_directory``: (file paths, their labels, class names), shuffled as Keras shuffles them."""
    directory = os.fspath(directory)
    if isinstance(labels, str) and labels == "inferred":
        subdirs: List[str] = []
        for subdir in sorted(os.listdir(directory)):
            if os.path.isdir(os.path.join(directory, subdir)) and not subdir.startswith("."):
                subdirs.append(subdir[:-1] if subdir.endswith("/") else subdir)
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(f"{who}: The `class_names` passed did not match the names of the subdirectories "
                                 f"of the target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)  # the order given
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError(f"{who}: When `labels=None` (no labels), argument `class_names` cannot be "
                                 "specified.")
            raise ValueError(f"{who}: When argument `labels` is specified, argument `class_names` cannot be "
                             "specified (the `class_names` will be the sorted list of labels).")
    class_indices = dict(zip(subdirs, range(len(subdirs))))
    filenames: List[str] = []
    labels_list: List[List[int]] = []
    for subdir in subdirs:
        names, part = _index_subdirectory(os.path.join(directory, subdir), class_indices, follow_links, formats)
        filenames += names
        labels_list.append(part)
    out_names: Any = subdirs
    out_labels: Any
    if isinstance(labels, str) and labels == "inferred":
        out_labels = np.zeros((len(filenames),), dtype="int32")
        i = 0
        for part in labels_list:
            out_labels[i:i + len(part)] = part
            i += len(part)
    elif labels is None:
        out_labels, out_names = None, None
    else:
        if len(labels) != len(filenames):
            raise ValueError(f"{who}: Expected the lengths of `labels` to match the number of files in the target "
                             f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files in "
                             f"directory {directory}.")
        out_labels = list(labels)  # a copy: Keras shuffles the caller's list in place
        out_names = [str(label) for label in sorted(set(out_labels))]
    if verbose:
        if out_labels is None:
            _print_msg(f"Found {len(filenames)} files.")
        else:
            _print_msg(f"Found {len(filenames)} files belonging to {len(out_names)} classes.")
    file_paths = [os.path.join(directory, fname) for fname in filenames]
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1000000))  # Keras: np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if out_labels is not None:
            np.random.RandomState(seed).shuffle(out_labels)
    return file_paths, out_labels, out_names


def get_training_or_validation_split(samples: List[str], labels: Any, validation_split: Optional[float],
                                     subset: Optional[str], who: str = "get_training_or_validation_split"
                                     ) -> Tuple[List[str], Any]:
    """Keras's split: the last ``int(validation_split * n)`` samples are the validation subset."""
    if not validation_split:
        return samples, labels
    num_val_samples = int(validation_split * len(samples))
    if subset == "training":
        _print_msg(f"Using {len(samples) - num_val_samples} files for training.")
        samples = samples[:-num_val_samples]
        if labels is not None:
            labels = labels[:-num_val_samples]
    elif subset == "validation":
        _print_msg(f"Using {num_val_samples} files for validation.")
        samples = samples[-num_val_samples:]
        if labels is not None:
            labels = labels[-num_val_samples:]
    else:
        raise ValueError(f'{who}: `subset` must be either "training" or "validation", received: {subset}')
    return samples, labels


def check_validation_split_arg(validation_split: Any, subset: Any, shuffle: Any, seed: Any,
                               who: str = "check_validation_split_arg") -> None:
    """Keras's checks of ``validation_split`` / ``subset`` / ``seed``."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"{who}: `validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError(f"{who}: If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'{who}: `subset` must be either "training", "validation" or "both", received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError(f"{who}: If using `validation_split` and shuffling the data, you must provide a `seed` "
                         "argument, to make sure that there is no overlap between the training and validation "
                         "subset.")


def _encode_labels(labels: Any, label_mode: Optional[str], num_classes: int) -> Optional[np.ndarray]:
    """The labels as Keras's ``labels_to_dataset_tf`` makes them (one row per file)."""
    if label_mode is None or labels is None:
        return None
    arr = np.asarray(labels)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.int32)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    if label_mode == "binary":
        return arr.astype(np.float32).reshape(-1, 1)
    if label_mode == "categorical":
        ids = arr.astype(np.int64)
        out = np.zeros((len(ids), num_classes), dtype=np.float32)
        inside = (ids >= 0) & (ids < num_classes)
        out[np.nonzero(inside)[0], ids[inside]] = 1.0
        return out
    return arr


def _check_common(who: str, labels: Any, label_mode: Any, class_names: Any, what: str) -> None:
    if not (labels is None or (isinstance(labels, str) and labels == "inferred")):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(f"{who}: `labels` argument should be a list/tuple of integer labels, of the same size "
                             f"as the number of {what} files in the target directory. If you wish to infer the "
                             "labels from the subdirectory names in the target directory, pass "
                             '`labels="inferred"`. If you wish to get a dataset that only contains '
                             f"{'images' if what == 'image' else 'text samples'} (no labels), pass `labels=None`. "
                             f"Received: labels={labels}")
        if class_names:
            raise ValueError(f'{who}: You can only pass `class_names` if `labels="inferred"`. Received: '
                             f"labels={labels}, and class_names={class_names}")
    if not any(label_mode is m or (isinstance(label_mode, str) and label_mode == m) for m in _LABEL_MODES):
        raise ValueError(f'{who}: `label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode}")


def _check_format(who: str, format: Any) -> None:
    if format not in ("tf", "grain"):
        raise ValueError(f'{who}: `format` should be either "tf" or "grain". Received: format={format}')


def _check_batch_size(who: str, batch_size: Any) -> Optional[int]:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{who}: `batch_size` must be a positive integer or None. Received: batch_size="
                         f"{batch_size!r}")
    return int(batch_size)


# ---- the data set ---------------------------------------------------------------------------------------------------
class DirectoryDataset(PyDataset):
    """The files of ``image_dataset_from_directory`` / ``text_dataset_from_directory`` as a
    ``keras.utils.PyDataset``: ``len(ds)`` batches of NumPy arrays, ``(x, y)`` or ``x`` alone without labels
    (one sample at a time with ``batch_size=None``), read from disk when a batch is asked for.

    ``class_names`` (None without labels) and ``file_paths`` (Keras's shuffled order) are Keras's attributes.
    With ``shuffle``, the first pass follows ``file_paths`` and each ``on_epoch_end()`` (after every ``fit`` epoch,
    and after a complete ``for`` loop) draws a new order of all the files from ``np.random.default_rng(seed)``
    (Keras's ``tf.data`` shuffle buffer cannot be reproduced)."""

    def __init__(self, file_paths: List[str], labels: Optional[np.ndarray], class_names: Optional[List[str]],
                 batch_size: Optional[int], shuffle: bool, seed: Optional[int], load: Callable[[str], Any],
                 stack: Callable[[List[Any]], np.ndarray], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_paths = list(file_paths)
        self.class_names = class_names
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = seed
        self._labels = labels
        self._load = load
        self._stack = stack
        self._order = np.arange(len(self.file_paths))
        self._rng = np.random.default_rng(seed) if self.shuffle else None

    def __len__(self) -> int:
        n = len(self.file_paths)
        return n if self.batch_size is None else -(-n // self.batch_size)

    def _rows(self, index: int) -> np.ndarray:
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"DirectoryDataset: the batch index must be an int, received {index!r}")
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"DirectoryDataset: batch index {index} is out of range for {n} batches")
        if self.batch_size is None:
            return self._order[i:i + 1]
        return self._order[i * self.batch_size:(i + 1) * self.batch_size]

    def __getitem__(self, index: int) -> Any:
        rows = self._rows(index)
        xs = [self._load(self.file_paths[r]) for r in rows]
        if self.batch_size is None:
            x = xs[0]
            return x if self._labels is None else (x, self._labels[rows[0]])
        x = self._stack(xs)
        return x if self._labels is None else (x, self._labels[rows])

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()  # a complete pass, as an epoch: the next one is reshuffled

    def on_epoch_end(self) -> None:
        """Draw the next epoch's order (only when the data set shuffles)."""
        if self._rng is not None:
            self._order = self._rng.permutation(len(self.file_paths))

    def __repr__(self) -> str:
        return (f"<DirectoryDataset: {len(self.file_paths)} files, {len(self)} batches of {self.batch_size}, "
                f"class_names={self.class_names}>")


# ---- images ---------------------------------------------------------------------------------------------------------
def _pil_image() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("image_dataset_from_directory needs Pillow to decode images: `pip install pillow`") \
            from None
    return Image


def _png_gray(img: Any) -> np.ndarray:
    """A colour PNG in one channel as TensorFlow's decoder (libpng's ``png_set_rgb_to_gray(0.299, 0.587)``)
    gives it: alpha dropped, ``(9797 R + 19234 G + 3737 B) >> 15``."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
    gray = (rgb[..., 0] * 9797 + rgb[..., 1] * 19234 + rgb[..., 2] * 3737) >> 15
    return gray.astype(np.uint8)


def _resize_with_pad(img: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """``tf.image.resize_with_pad``: resized (float32 arithmetic, as TensorFlow) to fit, then padded with zeros."""
    from ._image_ops import resize

    h, w = img.shape[:2]
    f32 = np.float32
    ratio = max(f32(w) / f32(width), f32(h) / f32(height))
    rh_f, rw_f = f32(h) / ratio, f32(w) / ratio
    rh, rw = int(np.floor(rh_f)), int(np.floor(rw_f))
    top = max(0, int(np.floor((f32(height) - rh_f) / f32(2))))
    left = max(0, int(np.floor((f32(width) - rw_f) / f32(2))))
    resized = np.asarray(resize(img, (rh, rw), interpolation=interpolation), dtype=np.float32)
    out = np.zeros((height, width, img.shape[2]), dtype=np.float32)
    out[top:top + rh, left:left + rw] = resized
    return out


def _image_loader(image_size: Tuple[int, int], num_channels: int, interpolation: str, data_format: str,
                  crop_to_aspect_ratio: bool, pad_to_aspect_ratio: bool, format: str) -> Callable[[str], np.ndarray]:
    from ._image_ops import resize

    Image = _pil_image()
    height, width = image_size

    def load(path: str) -> np.ndarray:
        with Image.open(path) as img:
            if num_channels == 1:
                if format == "tf" and img.format == "PNG" and img.mode in ("RGB", "RGBA", "P", "PA"):
                    img = _png_gray(img)
                elif img.mode not in ("L", "I;16", "I"):  # as Keras's grain loader: 8-bit gray unless gray
                    img = img.convert("L")
            elif num_channels == 4:
                if img.mode != "RGBA":
                    img = img.convert("RGBA")
            elif img.mode != "RGB":
                img = img.convert("RGB")
            arr = np.asarray(img)
        arr = arr.astype(np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if pad_to_aspect_ratio and format == "tf":
            out = _resize_with_pad(arr, height, width, interpolation)
        else:
            out = np.asarray(resize(arr, (height, width), interpolation=interpolation,
                                    crop_to_aspect_ratio=crop_to_aspect_ratio,
                                    pad_to_aspect_ratio=pad_to_aspect_ratio), dtype=np.float32)
        if data_format == "channels_first":
            out = np.ascontiguousarray(out.transpose(2, 0, 1))
        return out

    return load


def _stack_images(images: List[np.ndarray]) -> np.ndarray:
    return np.stack(images).astype(np.float32, copy=False)


def _indexed(directory: Any, labels: Any, formats: Any, class_names: Any, shuffle: bool, seed: Any,
             follow_links: bool, verbose: bool, label_mode: Any, who: str) -> tuple:
    """What both dataset functions do after their argument checks: Keras's seed when none is given (drawn even
    without shuffling, as Keras), the folder's index, and the binary label mode's two-class check. Returns
    (seed, file paths, labels, class names)."""
    if seed is None:
        seed = int(np.random.randint(1000000))  # Keras: np.random.randint(1e6)
    paths, found_labels, names = index_directory(directory, labels, formats=formats, class_names=class_names,
                                                 shuffle=shuffle, seed=seed, follow_links=follow_links,
                                                 verbose=verbose, who=who)
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f'{who}: When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={names}")
    return seed, paths, found_labels, names


def image_dataset_from_directory(
    directory: Any,
    labels: Any = "inferred",
    label_mode: Optional[str] = "int",
    class_names: Optional[Sequence[str]] = None,
    color_mode: str = "rgb",
    batch_size: Optional[int] = 32,
    image_size: Union[int, Tuple[int, int]] = (256, 256),
    shuffle: bool = True,
    seed: Optional[int] = None,
    validation_split: Optional[float] = None,
    subset: Optional[str] = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: Optional[str] = None,
    format: str = "tf",
    verbose: bool = True,
) -> Any:
    """Keras's ``keras.utils.image_dataset_from_directory``: the images under ``directory`` (``.bmp .gif .jpeg
    .jpg .png``; with ``labels="inferred"`` one subfolder per class), as a :class:`DirectoryDataset` (a
    ``keras.utils.PyDataset``) of ``(images, labels)`` batches: images float32 ``(batch, *image_size,
    channels)`` (``channels_first``: ``(batch, channels, *image_size)``), labels as ``label_mode`` says. With
    ``subset="both"``, ``[training, validation]``. Needs Pillow (``pip install pillow``).

    Files, labels, ``class_names``, ``file_paths``, the seeded shuffle and the split are Keras's; how the order
    changes from epoch to epoch, and the other differences, are in ``kerust._directory_datasets``'s docstring."""
    who = "image_dataset_from_directory"
    _check_common(who, labels, label_mode, class_names, "image")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}
    if not isinstance(color_mode, str) or color_mode not in channels:
        raise ValueError(f'{who}: `color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. Received: '
                         f"color_mode={color_mode}")
    num_channels = channels[color_mode]
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    elif not isinstance(image_size, (list, tuple)) or not len(image_size) == 2:
        raise ValueError(f"{who}: Invalid `image_size` value. Expected a tuple of 2 integers. Received: "
                         f"image_size={image_size}")
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in image_size):
        raise ValueError(f"{who}: `image_size` must be 2 positive integers (height, width). Received: "
                         f"image_size={image_size}")
    size = (int(image_size[0]), int(image_size[1]))
    if not isinstance(interpolation, str):
        raise TypeError(f"{who}: `interpolation` must be a string, one of {_INTERPOLATIONS}. Received: "
                        f"interpolation={interpolation!r}")
    interpolation = interpolation.lower()
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{who}: Argument `interpolation` should be one of {_INTERPOLATIONS}. Received: "
                         f"interpolation={interpolation}")
    if interpolation not in _KERUST_INTERPOLATIONS:
        raise ValueError(f"{who}: interpolation={interpolation!r} is not supported by kerust yet (its resize has "
                         f"{', '.join(repr(i) for i in _KERUST_INTERPOLATIONS)})")
    _check_format(who, format)
    check_validation_split_arg(validation_split, subset, shuffle, seed, who)
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError(f"{who}: Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to "
                         "`True`.")
    bs = _check_batch_size(who, batch_size)
    Image = _pil_image()  # before reading the folder: a missing Pillow is said at once
    del Image
    seed, image_paths, found_labels, names = _indexed(directory, labels, ALLOWLIST_FORMATS, class_names, shuffle,
                                                      seed, follow_links, verbose, label_mode, who)
    from ._image_ops import _data_format

    try:
        fmt = _data_format(data_format)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
    load = _image_loader(size, num_channels, interpolation, fmt, bool(crop_to_aspect_ratio),
                         bool(pad_to_aspect_ratio), format)
    num_classes = len(names) if names else 0

    def make(paths: List[str], labs: Any, shuffled: bool) -> DirectoryDataset:
        return DirectoryDataset(paths, _encode_labels(labs, label_mode, num_classes), names, bs, shuffled,
                                seed, load, _stack_images)

    allowed = f"Allowed formats: {ALLOWLIST_FORMATS}"
    if subset == "both":
        train_paths, train_labels = get_training_or_validation_split(image_paths, found_labels, validation_split,
                                                                     "training", who)
        val_paths, val_labels = get_training_or_validation_split(image_paths, found_labels, validation_split,
                                                                 "validation", who)
        if not train_paths:
            raise ValueError(f"{who}: No training images found in directory {directory}. {allowed}")
        if not val_paths:
            raise ValueError(f"{who}: No validation images found in directory {directory}. {allowed}")
        return [make(train_paths, train_labels, bool(shuffle)), make(val_paths, val_labels, False)]
    image_paths, found_labels = get_training_or_validation_split(image_paths, found_labels, validation_split,
                                                                 subset, who)
    if not image_paths:
        raise ValueError(f"{who}: No images found in directory {directory}. {allowed}")
    return make(image_paths, found_labels, bool(shuffle))


# ---- texts ----------------------------------------------------------------------------------------------------------
def _text_loader(max_length: Optional[int], format: str) -> Callable[[str], str]:
    def load(path: str) -> str:
        if format == "grain":
            with open(path, encoding="utf-8", errors="replace") as f:
                txt = f.read()
            return txt if max_length is None else txt[:max_length]
        with open(path, "rb") as fb:
            data = fb.read()
        if max_length is not None:
            data = data[:max_length]
        return data.decode("utf-8", errors="replace")

    return load


def _stack_texts(texts: List[str]) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


def text_dataset_from_directory(
    directory: Any,
    labels: Any = "inferred",
    label_mode: Optional[str] = "int",
    class_names: Optional[Sequence[str]] = None,
    batch_size: Optional[int] = 32,
    max_length: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = None,
    validation_split: Optional[float] = None,
    subset: Optional[str] = None,
    follow_links: bool = False,
    format: str = "tf",
    verbose: bool = True,
) -> Any:
    """Keras's ``keras.utils.text_dataset_from_directory``: the ``.txt`` files under ``directory`` (with
    ``labels="inferred"`` one subfolder per class), as a :class:`DirectoryDataset` (a ``keras.utils.PyDataset``)
    of ``(texts, labels)`` batches: texts a NumPy array of Python ``str`` (dtype object, shape ``(batch,)``; the
    files' bytes decoded as UTF-8, cut to ``max_length`` bytes first), labels as ``label_mode`` says. With
    ``subset="both"``, ``[training, validation]``. A model that starts with a ``TextVectorization`` (after a
    ``keras.Input(shape=(1,), dtype="string")``) trains on it directly.

    Files, labels, ``class_names``, the seeded shuffle and the split are Keras's; how the order changes from
    epoch to epoch, and the other differences, are in ``kerust._directory_datasets``'s docstring."""
    who = "text_dataset_from_directory"
    _check_common(who, labels, label_mode, class_names, "text")
    _check_format(who, format)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    check_validation_split_arg(validation_split, subset, shuffle, seed, who)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
                                   or max_length < 0):
        raise ValueError(f"{who}: `max_length` must be a non-negative integer or None. Received: "
                         f"max_length={max_length!r}")
    bs = _check_batch_size(who, batch_size)
    seed, file_paths, found_labels, names = _indexed(directory, labels, TEXT_FORMATS, class_names, shuffle, seed,
                                                     follow_links, verbose, label_mode, who)
    load = _text_loader(None if max_length is None else int(max_length), format)
    num_classes = len(names) if names else 0

    def make(paths: List[str], labs: Any, shuffled: bool) -> DirectoryDataset:
        return DirectoryDataset(paths, _encode_labels(labs, label_mode, num_classes), names, bs, shuffled,
                                seed, load, _stack_texts)

    if subset == "both":
        train_paths, train_labels = get_training_or_validation_split(file_paths, found_labels, validation_split,
                                                                     "training", who)
        val_paths, val_labels = get_training_or_validation_split(file_paths, found_labels, validation_split,
                                                                 "validation", who)
        if not train_paths:
            raise ValueError(f"{who}: No training text files found in directory {directory}. Allowed format: .txt")
        if not val_paths:
            raise ValueError(f"{who}: No validation text files found in directory {directory}. Allowed format: "
                             ".txt")
        return [make(train_paths, train_labels, bool(shuffle)), make(val_paths, val_labels, False)]
    file_paths, found_labels = get_training_or_validation_split(file_paths, found_labels, validation_split,
                                                                subset, who)
    if not file_paths:
        raise ValueError(f"{who}: No text files found in directory {directory}. Allowed format: .txt")
    return make(file_paths, found_labels, bool(shuffle))
