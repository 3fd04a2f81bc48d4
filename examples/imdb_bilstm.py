"""Sentiment classification, IMDB-style: pad_sequences -> Embedding -> Bidirectional(LSTM, sequences) ->
Bidirectional(LSTM) -> Dense(1, sigmoid), as Keras's text-classification example builds it.

With `--data imdb.npz` (Keras's own file: `x_train`, `y_train`, `x_test`, `y_test` as arrays of word-index lists,
the download of `keras.datasets.imdb`) it trains on the real reviews; without it, on a synthetic set whose label is
whether "positive" tokens outnumber "negative" ones, so the run needs no download.

Run: python examples/imdb_bilstm.py [--data PATH] [--epochs N] [--maxlen 200] [--num-words 20000] [--samples N]
     [--mask-zero]
"""

from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np

import kerust as keras
from kerust import layers

Split = Tuple[list, np.ndarray]


def real_reviews(path: str, num_words: int) -> Tuple[Split, Split]:
    """Keras's imdb.npz through `keras.datasets.imdb.load_data`, with Keras's defaults: start token 1,
    out-of-vocabulary 2, word indices shifted by 3 (and no download: the file must be at `path`)."""
    (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(path=path, num_words=num_words)
    return (list(x_train), y_train.astype(np.float32)), (list(x_test), y_test.astype(np.float32))


def synthetic_reviews(n: int, num_words: int, seed: int) -> Tuple[Split, Split]:
    """Reviews of 20-300 tokens; tokens 10-59 are "positive", 60-109 "negative", the rest neutral."""
    rng = np.random.default_rng(seed)

    def split(count: int) -> Split:
        reviews, labels = [], []
        for _ in range(count):
            length = int(rng.integers(20, 300))
            tokens = rng.integers(110, num_words, size=length)
            sentiment = int(rng.integers(0, 2))
            cues = rng.integers(0, 50, size=max(2, length // 10)) + (10 if sentiment else 60)
            tokens[rng.choice(length, size=len(cues), replace=False)] = cues
            reviews.append(tokens.tolist())
            labels.append(sentiment)
        return reviews, np.array(labels, dtype=np.float32)

    return split(n), split(max(1, n // 4))


def build(num_words: int, maxlen: int, units: int, mask_zero: bool = False) -> keras.Model:
    """`mask_zero=True`: the padding (id 0) is masked, so the LSTMs skip it (Keras's text-classification idiom)."""
    return keras.Sequential([
        keras.Input(shape=(maxlen,)),
        layers.Embedding(num_words, 128, mask_zero=mask_zero),
        layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
        layers.Bidirectional(layers.LSTM(units)),
        layers.Dense(1, activation="sigmoid"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="Keras's imdb.npz (synthetic reviews without it)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=200)
    parser.add_argument("--num-words", type=int, default=20000)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--samples", type=int, default=2000, help="synthetic training reviews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mask-zero", action="store_true", help="mask the padding (Embedding(mask_zero=True))")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    if args.data:
        (x_train, y_train), (x_test, y_test) = real_reviews(args.data, args.num_words)
    else:
        (x_train, y_train), (x_test, y_test) = synthetic_reviews(args.samples, args.num_words, args.seed)
    x_train = keras.utils.pad_sequences(x_train, maxlen=args.maxlen)
    x_test = keras.utils.pad_sequences(x_test, maxlen=args.maxlen)

    model = build(args.num_words, args.maxlen, args.units, args.mask_zero)
    model.summary()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_data=(x_test, y_test))
    _, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print("Test accuracy:", test_acc)


if __name__ == "__main__":
    main()
