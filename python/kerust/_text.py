"""``keras.layers.TextVectorization``: strings to token ids (or multi-hot / count / TF-IDF vectors).

A preprocessing layer: it runs in Python and NumPy on the host, never in the Rust engine (the engine computes on
float32 tensors; strings stop here). Its vocabulary, its order and every output follow Keras 3's
``TextVectorization`` (itself a ``StringLookup`` with ``mask_token=""`` and ``oov_token="[UNK]"``):

- ``standardize="lower_and_strip_punctuation"`` lower-cases ASCII letters only (as ``tf.strings.lower``) and then
  removes the 32 ASCII punctuation characters of Keras's regex ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']``;
- ``split="whitespace"`` splits on runs of ASCII whitespace (space, ``\\t \\n \\v \\f \\r``; other Unicode spaces
  stay inside tokens, as in ``tf.strings.split``); ``"character"`` splits into Unicode code points;
- ``adapt`` ranks tokens by count, ties broken by the token's UTF-8 bytes, larger first (Keras's
  ``np.lexsort((tokens, counts))[::-1]``); ``max_tokens`` keeps the first ``max_tokens - 2`` (``- 1`` outside
  ``"int"``, where there is no mask slot);
- ``"tf_idf"`` weights are ``log(1 + documents / (1 + documents containing the token))``; the OOV slot gets their
  mean.

Where kerust differs, on purpose: callables for ``standardize`` and ``split`` receive NumPy arrays of ``str`` (as on
Keras's JAX and PyTorch backends for ``standardize``; Keras hands ``split`` a TensorFlow tensor), and ``split`` must
return one sequence of tokens per string. ``"int"`` outputs are int64 (Keras's declared dtype; its JAX backend gives
int32), the other modes float32 (Keras's declared dtype; its TensorFlow backend gives int64 counts). ``sparse`` and
``ragged`` are refused, as on Keras's non-TensorFlow backends. ``get_vocabulary()`` returns plain ``str``.

As a model's first layer (``keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorizer, ...])`` or
``vectorizer(string_input)`` in a functional model) it runs on the host before the engine: see
``kerust._preprocess``.
"""

from __future__ import annotations

import collections
import os
import re
import string
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .layers import Layer

_MASK = ""
_OOV = "[UNK]"
_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")
# ASCII letters only: tf.strings.lower with no encoding leaves other letters alone.
_LOWER = {ord(c): ord(c.lower()) for c in string.ascii_uppercase}
_STRIP = {ord(c): None for c in string.punctuation}
_BOTH = {**_LOWER, **_STRIP}
_WORD = re.compile(r"[^ \t\n\v\f\r]+")

Tokens = List[List[str]]


def _check_choice(layer: str, arg: str, value: Any, allowed: Sequence[str], allow_none: bool,
                  allow_callable: bool) -> None:
    if value is None and allow_none:
        return
    if callable(value) and allow_callable:
        return
    if isinstance(value, str) and value in allowed:
        return
    raise ValueError(f"Unknown value for `{arg}` argument of {layer}. Allowed values are: {tuple(allowed)}. "
                     f"Received: {arg}={value}")


def _listify(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else x


class TextVectorization(Layer):
    """Strings to token ids (or multi-hot, count or TF-IDF vectors) as Keras's ``TextVectorization``, run in
    Python/NumPy on the host, not in the engine.

    Call it on strings (a list, or a NumPy array of shape ``(n,)`` or ``(n, 1)``) to get NumPy arrays; ``adapt``
    learns the vocabulary. See the module docstring for the rules (all Keras's) and the few differences."""

    def __init__(
        self,
        max_tokens: Optional[int] = None,
        standardize: Union[str, Callable[..., Any], None] = "lower_and_strip_punctuation",
        split: Union[str, Callable[..., Any], None] = "whitespace",
        ngrams: Union[int, Tuple[int, ...], None] = None,
        output_mode: str = "int",
        output_sequence_length: Optional[int] = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Any = None,
        idf_weights: Any = None,
        sparse: bool = False,
        ragged: bool = False,
        encoding: str = "utf-8",
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        who = "TextVectorization"
        if sparse:
            raise ValueError(f"{who}: `sparse=True` is not supported by kerust (Keras allows it only with the "
                             "TensorFlow backend)")
        if ragged:
            raise ValueError(f"{who}: `ragged=True` is not supported by kerust (Keras allows it only with the "
                             "TensorFlow backend)")
        _check_choice(who, "standardize", standardize, _STANDARDIZE, True, True)
        _check_choice(who, "split", split, _SPLIT, True, True)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        _check_choice(who, "output_mode", output_mode, _MODES, False, False)
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(n, int) for n in ngrams))):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams}")
        widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        if widths is not None and any(n < 1 for n in widths):
            raise ValueError(f"{who}: every n-gram width must be at least 1. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or (
                isinstance(output_sequence_length, int) and not isinstance(output_sequence_length, bool))):
            raise ValueError("`output_sequence_length` must be either None or an integer when `output_mode` is "
                             f"'int'. Received: output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError("`output_sequence_length` must not be set if `output_mode` is not 'int'. "
                             f"Received output_sequence_length={output_sequence_length}.")
        if output_sequence_length is not None and output_sequence_length < 0:
            raise ValueError(f"{who}: `output_sequence_length` must be >= 0. "
                             f"Received: output_sequence_length={output_sequence_length}")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer))):
            raise TypeError(f"{who}: `max_tokens` must be an integer or None. Received: max_tokens={max_tokens!r}")
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. Received: max_tokens={max_tokens}")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError("`idf_weights` should only be set if `output_mode` is `'tf_idf'`. Received: "
                             f"idf_weights={idf_weights} and output_mode={output_mode}")
        if not isinstance(encoding, str):
            raise TypeError(f"{who}: `encoding` must be a codec name. Received: encoding={encoding!r}")
        self._has_input_vocabulary = bool(kwargs.pop("has_input_vocabulary", vocabulary is not None))
        self._frozen_vocab_size: Optional[int] = kwargs.pop("vocabulary_size", None)
        super().__init__(name=name, **kwargs)
        self._max_tokens = None if max_tokens is None else int(max_tokens)
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        self._ngrams = widths
        self._output_mode = output_mode
        self._output_sequence_length = output_sequence_length
        self._pad_to_max_tokens = bool(pad_to_max_tokens)
        self._encoding = encoding
        self._input_vocabulary = vocabulary if not isinstance(vocabulary, str) else None
        self._input_idf_weights = idf_weights
        self._tokens: List[str] = []
        self._vocabulary_set = False
        self._index: Dict[str, int] = {}
        self._idf: Optional[np.ndarray] = None
        # adapt's running state
        self._counts: collections.Counter = collections.Counter()
        self._doc_counts: collections.Counter = collections.Counter()
        self._num_documents = 0
        if output_mode == "tf_idf":
            if self._has_input_vocabulary and idf_weights is None:
                raise ValueError("When specifying the `vocabulary` argument, in TF-IDF output mode, the "
                                 "`idf_weights` argument must also be provided.")
            if idf_weights is not None:
                self._idf = np.asarray(idf_weights, dtype=np.float32)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    # ---- indices ------------------------------------------------------------------------------------------
    def _what(self) -> str:
        return f"TextVectorization '{self.name}'"

    def _oov_index(self) -> int:
        return 1 if self._output_mode == "int" else 0

    def _token_start(self) -> int:
        return self._oov_index() + 1

    # ---- vocabulary ---------------------------------------------------------------------------------------
    def get_vocabulary(self, include_special_tokens: bool = True) -> List[str]:
        """The vocabulary by index: in ``"int"`` mode ``""`` (padding, 0), ``"[UNK]"`` (1), then the tokens;
        in the other modes ``"[UNK]"`` then the tokens. Without the special tokens: the learned tokens only."""
        specials = [_MASK, _OOV] if self._output_mode == "int" else [_OOV]
        return (specials if include_special_tokens else []) + list(self._tokens)

    def vocabulary_size(self) -> int:
        """The number of indices the layer produces, the special tokens included."""
        return len(self._tokens) + self._token_start()

    def _record_vocabulary_size(self, new_size: int) -> None:
        if self._output_mode != "int" and not self._pad_to_max_tokens and self._frozen_vocab_size is not None \
                and new_size != self._frozen_vocab_size:
            raise RuntimeError(f"When using `output_mode={self._output_mode}` and `pad_to_max_tokens=False`, the "
                               "vocabulary size cannot be changed after the layer is called. Old vocab size is "
                               f"{self._frozen_vocab_size}, new vocab size is {new_size}")
        self._frozen_vocab_size = new_size

    def _install(self, tokens: List[str], idf: Optional[np.ndarray]) -> None:
        self._record_vocabulary_size(self._token_start() + len(tokens))
        self._tokens = tokens
        self._vocabulary_set = True
        start = self._token_start()
        self._index = {t: start + i for i, t in enumerate(tokens)}
        if idf is not None:
            self._idf = idf

    def _text(self, value: Any, what: str) -> str:
        if isinstance(value, bytes):
            return value.decode(self._encoding)
        if isinstance(value, str):
            return str(value)
        raise TypeError(f"{self._what()}: {what} must hold strings, received {value!r} ({type(value).__name__})")

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Set the vocabulary (a list or array of strings, or a text file with one token per line), with
        ``idf_weights`` in ``"tf_idf"`` mode. It may start with the special tokens (``""``, ``"[UNK]"`` in
        ``"int"`` mode; ``"[UNK]"`` otherwise); the rest must be unique and must not contain ``""``."""
        if self._output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError("`idf_weights` should only be set if output_mode is `'tf_idf'`. Received: "
                             f"output_mode={self._output_mode} and idf_weights={idf_weights}")
        start = self._token_start()
        if isinstance(vocabulary, (str, os.PathLike)):
            if not os.path.isfile(vocabulary):
                raise ValueError(f"Vocabulary file {vocabulary} does not exist.")
            if self._output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary from file.")
            with open(vocabulary, encoding=self._encoding) as f:
                lines = f.read().split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            repeated = [t for t, c in collections.Counter(lines).items() if c > 1]
            if repeated:
                raise ValueError(f"{self._what()}: the vocabulary file {vocabulary} repeats {repeated}")
            self._install(lines, None)
            return
        if isinstance(vocabulary, np.ndarray):
            items = vocabulary.reshape(-1).tolist() if vocabulary.ndim else [vocabulary.item()]
        elif isinstance(vocabulary, (list, tuple)):
            items = list(vocabulary)
        else:
            raise TypeError(f"{self._what()}: `vocabulary` must be a list or array of strings or a file path, "
                            f"received {type(vocabulary).__name__}")
        vocab = [self._text(v, "`vocabulary`") for v in items]
        if not vocab:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        special = [_MASK, _OOV] if self._output_mode == "int" else [_OOV]
        found_special = vocab[:start] == special
        tokens = vocab[start:] if found_special else vocab
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError("The passed vocabulary has at least one repeated term. Please uniquify your dataset. "
                             f"The repeated terms are: {repeated}")
        if _MASK in tokens:
            where = [i for i, v in enumerate(vocab) if v == _MASK][-1]
            raise ValueError("Found reserved mask token at unexpected location in `vocabulary`. Note that passed "
                             "`vocabulary` does not need to include the OOV and mask tokens. Either remove all mask "
                             "and OOV tokens, or include them only at the start of the vocabulary in precisely this "
                             f"order: {special}. Received: mask_token= at vocabulary index [{where}]")
        new_size = start + len(tokens)
        if self._max_tokens is not None and new_size > self._max_tokens:
            raise ValueError("Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary "
                             f"size is {new_size}; `max_tokens` is {self._max_tokens}.")
        idf: Optional[np.ndarray] = None
        if self._output_mode == "tf_idf":
            weights = np.asarray(idf_weights)
            if weights.ndim != 1:
                raise ValueError("TF-IDF data must be a 1-index array. Received: "
                                 f"type(idf_weights)={type(idf_weights)}")
            if len(vocab) != len(weights):
                raise ValueError("`idf_weights` must be the same length as vocabulary. len(idf_weights) is "
                                 f"{len(weights)}; len(vocabulary) is {len(vocab)}")
            weights = weights.astype(np.float64)
            front = 0 if found_special else start
            front_value = 0.0 if found_special else float(np.average(weights))
            back = self._max_tokens - front - len(weights) if (self._pad_to_max_tokens and self._max_tokens) else 0
            idf = np.pad(weights, (front, max(back, 0)), "constant",
                         constant_values=(front_value, 0.0)).astype(np.float32)
        self._install(tokens, idf)

    # ---- adapt ----------------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self._counts = collections.Counter()
        self._doc_counts = collections.Counter()
        self._num_documents = 0

    def adapt(self, data: Any, batch_size: Any = None, steps: Optional[int] = None) -> None:
        """Learn the vocabulary (and TF-IDF weights) from ``data``: a list of strings, a NumPy string array of
        shape ``(n,)`` or ``(n, 1)``, or an iterable of such batches (at most ``steps`` of them)."""
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            arr = self._as_strings(data, "adapt")
            if arr.ndim == 1:
                arr = arr[:, None]
            self.update_state(arr)
        elif hasattr(data, "__iter__"):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            raise TypeError(f"{self._what()}: adapt takes strings (a list, a NumPy array or an iterable of "
                            f"batches), received {type(data).__name__}")
        self.finalize_state()

    def update_state(self, data: Any) -> None:
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static vocabulary via "
                             "`vocabulary` argument or `set_vocabulary()` method.")
        docs, _ = self._documents(self._preprocess(self._as_strings(data, "adapt")))
        for doc in docs:
            self._counts.update(doc)
        if self._output_mode == "tf_idf":
            for doc in docs:
                self._doc_counts.update(set(doc))
            self._num_documents += len(docs)

    def finalize_state(self) -> None:
        if self._has_input_vocabulary or not self._counts:
            self._record_vocabulary_size(self.vocabulary_size())
            return
        counts = dict(self._counts)
        counts.pop(_MASK, None)
        counts.pop(_OOV, None)
        # Keras: np.lexsort((tokens, counts))[::-1] over the UTF-8 bytes of the tokens
        ranked = sorted(counts, key=lambda t: (counts[t], t.encode("utf-8")), reverse=True)
        if self._max_tokens:
            ranked = ranked[:self._max_tokens - self._token_start()]
        idf: Optional[np.ndarray] = None
        if self._output_mode == "tf_idf":
            docs = np.array([self._doc_counts[t] for t in ranked], dtype=np.float64)
            learned = np.log(1.0 + self._num_documents / (1.0 + docs)).astype(np.float32)
            mean = np.float32(learned.mean(dtype=np.float32)) if learned.size else np.float32(np.nan)
            idf = np.concatenate([np.full(self._token_start(), mean, dtype=np.float32), learned])
            if self._pad_to_max_tokens and self._max_tokens is not None:
                idf = np.pad(idf, (0, max(self._max_tokens - idf.size, 0)))
        self._install(ranked, idf)
        self.reset_state()

    # ---- strings to tokens ----------------------------------------------------------------------------------
    def _as_strings(self, data: Any, where: str) -> np.ndarray:
        """Any string input as a NumPy array of Python ``str`` (object dtype), bytes decoded with ``encoding``."""
        try:
            arr = np.asarray(data, dtype=object) if isinstance(data, (list, tuple)) else np.asarray(data)
        except ValueError as e:
            raise ValueError(f"{self._what()}: {where}: the strings must form a rectangular array ({e})") from None
        if arr.dtype.kind in "US":
            flat = [self._text(v, where) for v in arr.reshape(-1).tolist()]
        elif arr.dtype.kind == "O":
            flat = [self._text(v, where) for v in arr.reshape(-1).tolist()]
        else:
            raise TypeError(f"{self._what()}: {where} takes strings, received an array of dtype {arr.dtype}")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(arr.shape)

    def _standardized(self, arr: np.ndarray) -> np.ndarray:
        std = self._standardize
        if std is None:
            return arr
        if callable(std):
            result = np.asarray(std(arr.astype(str) if arr.size else arr.astype("<U1")))
            out = self._as_strings(result, "the `standardize` callable's result")
            if out.shape != arr.shape:
                raise ValueError(f"{self._what()}: the `standardize` callable returned shape {out.shape} for "
                                 f"inputs of shape {arr.shape}")
            return out
        table = _BOTH if std == "lower_and_strip_punctuation" else _LOWER if std == "lower" else _STRIP
        flat = [s.translate(table) for s in arr.reshape(-1).tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(arr.shape)

    def _preprocess(self, arr: np.ndarray) -> Tuple[Any, int]:
        """Standardize, split and make n-grams. Returns ``(tokens, rank)``: with a ``split``, a list of token
        lists (one per string) and the rank of the strings (0 or 1); without, the standardized array itself and
        its rank."""
        arr = self._standardized(arr)
        if self._split is None:
            if self._ngrams is None:
                return arr, arr.ndim
            rows = [list(arr.reshape(-1))] if arr.ndim <= 1 else [list(r) for r in arr.reshape(-1, arr.shape[-1])]
            return [self._grams(r) for r in rows], (0 if arr.ndim <= 1 else 1)
        if arr.ndim > 1:
            if arr.shape[-1] != 1:
                raise ValueError("When using `TextVectorization` to tokenize strings, the input rank must be 1 or "
                                 f"the last shape dimension must be 1. Received: inputs.shape={arr.shape} with "
                                 f"rank={arr.ndim}")
            arr = arr[..., 0]
        if arr.ndim > 1:
            raise ValueError(f"{self._what()}: takes strings of shape (n,) or (n, 1), received shape "
                             f"{arr.shape + (1,)}")
        rank = arr.ndim
        strings = arr.reshape(-1).tolist()
        if self._split == "whitespace":
            docs = [_WORD.findall(s) for s in strings]
        elif self._split == "character":
            docs = [list(s) for s in strings]
        else:
            split_fn: Callable[..., Any] = self._split  # type: ignore[assignment]
            result = split_fn(np.array(strings, dtype=str) if strings else np.array([], dtype="<U1"))
            try:
                docs = [[self._text(t, "the `split` callable's result") for t in doc] for doc in result]
            except TypeError as e:
                raise TypeError(f"{self._what()}: the `split` callable must return one sequence of tokens per "
                                f"string ({e})") from None
            if len(docs) != len(strings):
                raise ValueError(f"{self._what()}: the `split` callable returned {len(docs)} token lists for "
                                 f"{len(strings)} strings")
        if self._ngrams is not None:
            docs = [self._grams(d) for d in docs]
        return docs, rank

    def _grams(self, tokens: List[str]) -> List[str]:
        out: List[str] = []
        for n in self._ngrams or ():
            out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return out

    def _documents(self, pre: Tuple[Any, int]) -> Tuple[Tokens, bool]:
        """The token lists that adapt counts and the non-int modes encode, one per document (Keras's rows of
        the lookup: a rank-1 result is one document). Returns them and whether the input was one document."""
        tokens, rank = pre
        if isinstance(tokens, np.ndarray):
            if tokens.ndim <= 1:
                return [list(tokens.reshape(-1))], True
            return [list(r) for r in tokens.reshape(-1, tokens.shape[-1])], False
        return tokens, rank == 0

    # ---- calling ----------------------------------------------------------------------------------------------
    def _lookup(self, token: str) -> int:
        if token == _MASK:
            return 0 if self._output_mode == "int" else -1
        return self._index.get(token, self._oov_index())

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        """Vectorize strings now: int64 ids (``"int"``) or float32 vectors (the other modes), as NumPy arrays."""
        from ._graph import KerasTensor

        if isinstance(inputs, KerasTensor):  # the front of a model: the engine starts at the output
            from ._preprocess import symbolic_call

            return symbolic_call(self, inputs)
        if kwargs:
            raise TypeError(f"{self._what()}: unexpected call arguments {sorted(kwargs)}")
        if mask is not None:
            raise ValueError(f"{self._what()}: masks are not supported")
        return self._vectorize(self._as_strings(inputs, "call"))

    def _vectorize(self, arr: np.ndarray) -> np.ndarray:
        mode = self._output_mode
        if mode != "int" and not self._pad_to_max_tokens and self._frozen_vocab_size is None:
            raise RuntimeError(f"When using `output_mode={mode}` and `pad_to_max_tokens=False`, you must set the "
                               "layer's vocabulary before calling it. Either pass a `vocabulary` argument to the "
                               "layer, or call `adapt` with some sample data.")
        if not self._vocabulary_set:
            raise RuntimeError(f"{self._what()}: the layer has no vocabulary yet; call `adapt` with some sample "
                               "data, or pass `vocabulary` (Keras fails here too, on its uninitialized table)")
        pre = self._preprocess(arr)
        if mode == "int":
            return self._int_output(pre)
        depth = int(self._max_tokens if self._pad_to_max_tokens else self._frozen_vocab_size)  # type: ignore[arg-type]
        if mode == "one_hot":
            return self._one_hot(pre, depth)
        docs, single = self._documents(pre)
        out = np.zeros((len(docs), depth), dtype=np.float32)
        for row, doc in enumerate(docs):
            ids = np.array([self._lookup(t) for t in doc], dtype=np.int64)
            ids = ids[(ids >= 0) & (ids < depth)]
            counts = np.bincount(ids, minlength=depth)[:depth]
            out[row] = (counts > 0) if mode == "multi_hot" else counts
        if mode == "tf_idf":
            idf = self._idf
            if idf is None or idf.shape[0] != depth:
                raise ValueError(f"{self._what()}: the TF-IDF weights ({None if idf is None else idf.shape[0]}) "
                                 f"do not match the output depth {depth}")
            out = out * idf[None, :]
        return out[0] if single else out

    def _int_output(self, pre: Tuple[Any, int]) -> np.ndarray:
        length = self._output_sequence_length
        tokens, rank = pre
        if isinstance(tokens, np.ndarray):  # no split: one id per string, the shape kept
            flat = np.array([self._lookup(t) for t in tokens.reshape(-1).tolist()], dtype=np.int64)
            ids = flat.reshape(tokens.shape)
            if length is None:
                return ids
            if ids.ndim == 0:
                raise ValueError(f"{self._what()}: `output_sequence_length` needs inputs of rank 1 or more")
            ids = ids[..., :length]
            pad = [(0, 0)] * (ids.ndim - 1) + [(0, length - ids.shape[-1])]
            return np.pad(ids, pad)
        width = length if length is not None else max((len(d) for d in tokens), default=0)
        out = np.zeros((len(tokens), width), dtype=np.int64)
        for row, doc in enumerate(tokens):
            row_ids = [self._lookup(t) for t in doc[:width]]
            out[row, :len(row_ids)] = row_ids
        return out[0] if rank == 0 else out

    def _one_hot(self, pre: Tuple[Any, int], depth: int) -> np.ndarray:
        tokens, rank = pre
        if isinstance(tokens, np.ndarray):
            ids = np.array([self._lookup(t) for t in tokens.reshape(-1).tolist()], dtype=np.int64)
            shape = tokens.shape if tokens.ndim else (1,)
            ids = ids.reshape(shape)
            if ids.ndim > 1 and ids.shape[-1] == 1:
                ids = ids[..., 0]
        else:
            lengths = {len(d) for d in tokens}
            if len(lengths) > 1:
                raise ValueError(f"{self._what()}: output_mode='one_hot' on split text needs the same number of "
                                 f"tokens in every string (Keras returns a ragged tensor here); received lengths "
                                 f"{sorted(lengths)}. Use 'multi_hot' or 'count', or output_mode='int'")
            ids = np.array([[self._lookup(t) for t in d] for d in tokens], dtype=np.int64).reshape(
                len(tokens), lengths.pop() if lengths else 0)
            if rank == 0:
                ids = ids[0]
        valid = (ids >= 0) & (ids < depth)
        out = np.zeros(ids.shape + (depth,), dtype=np.float32)
        idx = np.nonzero(valid)
        out[idx + (ids[idx],)] = 1.0
        return out

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self._output_mode == "int":
            return (shape[0] if shape else None, self._output_sequence_length)
        depth = self._max_tokens if self._pad_to_max_tokens else self._frozen_vocab_size
        if self._split is None:
            if len(shape) <= 1:
                shape = shape + (1,)
        else:
            shape = shape + (None,)
        if self._output_mode == "one_hot":
            if len(shape) > 1 and shape[-1] == 1:
                return shape[:-1] + (depth,)
            return shape + (depth,)
        return shape[:-1] + (depth,)

    # ---- config and files -------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from ._registry import serialize_function

        def fn(v: Any) -> Any:
            return serialize_function(v) if callable(v) else v

        config = super().get_config()
        config.update({
            "max_tokens": self._max_tokens,
            "standardize": fn(self._standardize),
            "split": fn(self._split),
            "ngrams": self._ngrams_arg,
            "output_mode": self._output_mode,
            "output_sequence_length": self._output_sequence_length,
            "pad_to_max_tokens": self._pad_to_max_tokens,
            "sparse": False,
            "ragged": False,
            "vocabulary": _listify(self._input_vocabulary),
            "idf_weights": _listify(self._input_idf_weights),
            "encoding": self._encoding,
            "vocabulary_size": self.vocabulary_size(),
        })
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None,
                    safe_mode: Optional[bool] = None) -> "TextVectorization":
        from ._registry import deserialize_function

        config = dict(config)
        config.pop("dtype", None)
        for key in ("standardize", "split"):
            if config.get(key) is not None and not isinstance(config[key], str):
                config[key] = deserialize_function(config[key], custom_objects, safe_mode)
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    def save_own_variables(self, store: Any) -> None:
        """Keras's weights of this layer: ``idf_weights`` in ``"tf_idf"`` mode (as ``store["idf_weights"]``)."""
        if self._output_mode == "tf_idf" and self._idf is not None:
            store["idf_weights"] = np.asarray(self._idf, dtype=np.float32)

    def load_own_variables(self, store: Any) -> None:
        if self._output_mode == "tf_idf" and "idf_weights" in store:
            self._idf = np.asarray(store["idf_weights"], dtype=np.float32)

    def save_assets(self, dir_path: str) -> None:
        """Keras's asset: ``vocabulary.txt`` (the whole vocabulary, one token per line, joined by ``\\n``),
        written only when the vocabulary was not given to the constructor (then it is in the config)."""
        if self._input_vocabulary is not None:
            return
        from ._files import atomic_write

        # atomic (a temporary file beside it, fsynced, renamed over it): a save that fails (a full disk, an
        # interrupt) leaves the previous vocabulary.txt as it was
        text = "\n".join(self.get_vocabulary(include_special_tokens=True))
        atomic_write(os.path.join(dir_path, "vocabulary.txt"), text.encode("utf-8"))

    def load_assets(self, dir_path: str) -> None:
        if self._input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, "vocabulary.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        if self._output_mode == "tf_idf":
            idf = self._idf
            self.set_vocabulary(lines, idf_weights=idf)
        else:
            self.set_vocabulary(lines)

