"""Reuters newswire topics, as ``keras.datasets.reuters``: ``load_data``, ``get_word_index``, ``get_label_names``.

kerust reads Keras's own files (``reuters.npz``, ``reuters_word_index.json``) and never downloads them; ``path``
is found as in ``kerust.datasets.imdb`` (the file, a folder holding it, or a bare name looked up in
``$KERUST_DATA``, ``~/.kerust/datasets`` and Keras's cache ``~/.keras/datasets``). The results are Keras's.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _sequences as _seq

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]

_LABELS = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee", "sugar",
    "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp",
    "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi", "iron-steel",
    "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog",
    "lead",
)


def load_data(
    path: _seq.PathLike = "reuters.npz",
    num_words: Optional[int] = None,
    skip_top: int = 0,
    maxlen: Optional[int] = None,
    test_split: float = 0.2,
    seed: int = 113,
    start_char: Optional[int] = 1,
    oov_char: Optional[int] = 2,
    index_from: int = 3,
) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: the file's ``x`` and ``y`` shuffled with
    ``seed``, shifted by ``index_from`` and led by ``start_char``, newswires of ``maxlen`` words or more dropped,
    words outside ``[skip_top, num_words)`` made ``oov_char``, then the first ``int(n * (1 - test_split))`` for
    training and the rest for test."""
    caller = "reuters.load_data"
    for name, value, none_ok in (("num_words", num_words, True), ("skip_top", skip_top, False),
                                 ("maxlen", maxlen, True), ("seed", seed, True), ("start_char", start_char, True),
                                 ("oov_char", oov_char, True), ("index_from", index_from, False)):
        _seq.check_int(value, name, caller, none_ok)
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float, np.floating)):
        raise TypeError(f"{caller}: `test_split` must be a float between 0 and 1, received test_split={test_split!r}")
    file = _seq.find_file(path, "reuters.npz", "reuters", caller)
    f = _seq.load_npz(file, ("x", "y"))
    xs_raw = f["x"]
    labels: Any = f["y"]
    if len(xs_raw) != len(labels):
        raise ValueError(f"{caller}: {file} holds {len(xs_raw)} sequences and {len(labels)} labels")

    rng = np.random.RandomState(seed)
    order = np.arange(len(xs_raw))
    rng.shuffle(order)
    xs_raw, labels = xs_raw[order], labels[order]

    xs = _seq.offset(xs_raw, start_char, index_from)
    if maxlen:
        xs, labels = _seq.drop_long(maxlen, xs, labels)
    xs = _seq.restrict(xs, num_words, skip_top, oov_char)
    n = int(len(xs) * (1 - test_split))
    return ((np.array(xs[:n], dtype="object"), np.array(labels[:n])),
            (np.array(xs[n:], dtype="object"), np.array(labels[n:])))


def get_word_index(path: _seq.PathLike = "reuters_word_index.json") -> Dict[str, int]:
    """The word -> index dictionary of Keras's ``reuters_word_index.json`` (before the ``index_from`` shift)."""
    caller = "reuters.get_word_index"
    return _seq.read_word_index(_seq.find_file(path, "reuters_word_index.json", "reuters", caller), caller)


def get_label_names() -> Tuple[str, ...]:
    """The 46 topic names, indexed as the labels (Keras's tuple)."""
    return _LABELS
