"""IMDB movie-review sentiment, as ``keras.datasets.imdb``: ``load_data`` and ``get_word_index``.

kerust reads Keras's own files (``imdb.npz``, ``imdb_word_index.json``) and never downloads them. ``path`` is the
file itself, a folder holding it, or a bare file name (Keras's default) looked up in ``$KERUST_DATA`` (or its
``imdb/`` subfolder), ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache ``$KERAS_HOME/datasets``
(``~/.keras/datasets``, where Keras's ``load_data`` stores what it downloads). The results are Keras's, seed for
seed: the same shuffle, index shift, ``maxlen`` filter and ``num_words``/``skip_top`` cut.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _sequences as _seq

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def load_data(
    path: _seq.PathLike = "imdb.npz",
    num_words: Optional[int] = None,
    skip_top: int = 0,
    maxlen: Optional[int] = None,
    seed: int = 113,
    start_char: Optional[int] = 1,
    oov_char: Optional[int] = 2,
    index_from: int = 3,
    **kwargs: Any,
) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: ``x_*`` object arrays of lists of word
    indices (shifted by ``index_from``, led by ``start_char``), ``y_*`` the 0/1 labels. Words outside
    ``[skip_top, num_words)`` become ``oov_char`` (dropped when it is None); reviews of ``maxlen`` words or more
    (start character counted) are left out. Extra keyword arguments are accepted and ignored, as in Keras."""
    caller = "imdb.load_data"
    for name, value, none_ok in (("num_words", num_words, True), ("skip_top", skip_top, False),
                                 ("maxlen", maxlen, True), ("seed", seed, True), ("start_char", start_char, True),
                                 ("oov_char", oov_char, True), ("index_from", index_from, False)):
        _seq.check_int(value, name, caller, none_ok)
    file = _seq.find_file(path, "imdb.npz", "imdb", caller)
    f = _seq.load_npz(file, ("x_train", "y_train", "x_test", "y_test"))
    x_train_raw, x_test_raw = f["x_train"], f["x_test"]
    labels_train: Any = f["y_train"]
    labels_test: Any = f["y_test"]
    if len(x_train_raw) != len(labels_train) or len(x_test_raw) != len(labels_test):
        raise ValueError(f"{caller}: {file} holds {len(x_train_raw)}/{len(labels_train)} training and "
                         f"{len(x_test_raw)}/{len(labels_test)} test sequences/labels (counts should match)")

    # One RandomState shuffles the training set, then the test set (Keras's order of draws).
    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train_raw))
    rng.shuffle(order)
    x_train_raw, labels_train = x_train_raw[order], labels_train[order]
    order = np.arange(len(x_test_raw))
    rng.shuffle(order)
    x_test_raw, labels_test = x_test_raw[order], labels_test[order]

    x_train = _seq.offset(x_train_raw, start_char, index_from)
    x_test = _seq.offset(x_test_raw, start_char, index_from)
    if maxlen:
        x_train, labels_train = _seq.drop_long(maxlen, x_train, labels_train)
        x_test, labels_test = _seq.drop_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"{caller}: After filtering for sequences shorter than maxlen={maxlen}, no sequence "
                             "was kept. Increase maxlen.")
    labels = np.concatenate([labels_train, labels_test])
    xs = _seq.restrict(x_train + x_test, num_words, skip_top, oov_char)
    n = len(x_train)
    return (np.array(xs[:n], dtype="object"), labels[:n]), (np.array(xs[n:], dtype="object"), labels[n:])


def get_word_index(path: _seq.PathLike = "imdb_word_index.json") -> Dict[str, int]:
    """The word -> index dictionary of Keras's ``imdb_word_index.json`` (indices before the ``index_from`` shift)."""
    caller = "imdb.get_word_index"
    return _seq.read_word_index(_seq.find_file(path, "imdb_word_index.json", "imdb", caller), caller)
