"""Custom layers and a subclassed model written only with the public Keras 3 API, so that the same source runs on
real Keras and on kerust.

``define(keras)`` takes a keras module (``import keras`` or ``import kerust as keras``) and returns a
``types.SimpleNamespace`` of classes built on that module. Nothing is registered here: the generator
(``generate_custom.py``) registers the Keras versions with ``keras.saving.register_keras_serializable()``, and
``tests/test_custom_layers.py`` passes the kerust versions as ``custom_objects``.

Only these pieces of the API are used: ``keras.layers.Layer``, ``keras.Model``, ``keras.ops``,
``Layer.add_weight``, and the built-in layers ``Dense``, ``Dropout``, ``Conv2D``, ``MaxPooling2D``, ``Flatten`` and
``Activation``. Attention, layer normalisation and embeddings are written from ops.

Every class has ``get_config`` returning its constructor arguments on top of the base config, so
``from_config(get_config())`` rebuilds it and a saved model can be loaded with ``custom_objects``.
"""

from __future__ import annotations

import math
import types


def define(keras):  # noqa: C901 - one closure per class keeps the classes bound to the given module
    ops = keras.ops
    layers = keras.layers

    class TokenAndPositionEmbedding(layers.Layer):
        """Token embedding plus learned position embedding (as in Keras's text-classification-with-transformer
        example), with both tables made by ``add_weight`` instead of two ``Embedding`` layers."""

        def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.maxlen = maxlen
            self.vocab_size = vocab_size
            self.embed_dim = embed_dim

        def build(self, input_shape):
            self.token_embeddings = self.add_weight(
                shape=(self.vocab_size, self.embed_dim), initializer="uniform", name="token_embeddings")
            self.position_embeddings = self.add_weight(
                shape=(self.maxlen, self.embed_dim), initializer="random_normal", name="position_embeddings")

        def call(self, x):
            positions = ops.arange(0, self.maxlen)
            tokens = ops.take(self.token_embeddings, ops.cast(x, "int32"), axis=0)
            return tokens + ops.take(self.position_embeddings, positions, axis=0)

        def compute_output_shape(self, input_shape):
            return tuple(input_shape) + (self.embed_dim,)

        def get_config(self):
            config = super().get_config()
            config.update({"maxlen": self.maxlen, "vocab_size": self.vocab_size, "embed_dim": self.embed_dim})
            return config

    class LayerNorm(layers.Layer):
        """Layer normalisation over the last axis: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``."""

        def __init__(self, epsilon=1e-3, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            dim = input_shape[-1]
            self.gamma = self.add_weight(shape=(dim,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(dim,), initializer="zeros", name="beta")

        def call(self, x):
            mean = ops.mean(x, axis=-1, keepdims=True)
            var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
            return (x - mean) / ops.sqrt(var + self.epsilon) * self.gamma + self.beta

        def get_config(self):
            config = super().get_config()
            config.update({"epsilon": self.epsilon})
            return config

    class SelfAttention(layers.Layer):
        """Multi-head scaled dot-product self-attention from four Dense layers and ops."""

        def __init__(self, embed_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            if embed_dim % num_heads:
                raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
            self.embed_dim = embed_dim
            self.num_heads = num_heads
            self.head_dim = embed_dim // num_heads
            self.query = layers.Dense(embed_dim, name="q")
            self.key = layers.Dense(embed_dim, name="k")
            self.value = layers.Dense(embed_dim, name="v")
            self.combine = layers.Dense(embed_dim, name="o")

        def _heads(self, x, seq):
            x = ops.reshape(x, (-1, seq, self.num_heads, self.head_dim))
            return ops.transpose(x, (0, 2, 1, 3))  # (batch, heads, seq, head_dim)

        def call(self, x):
            seq = ops.shape(x)[1]
            q = self._heads(self.query(x), seq)
            k = self._heads(self.key(x), seq)
            v = self._heads(self.value(x), seq)
            scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(self.head_dim))
            weights = ops.softmax(scores, axis=-1)
            out = ops.einsum("bhqk,bhkd->bhqd", weights, v)
            out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, seq, self.embed_dim))
            return self.combine(out)

        def get_config(self):
            config = super().get_config()
            config.update({"embed_dim": self.embed_dim, "num_heads": self.num_heads})
            return config

    class TransformerBlock(layers.Layer):
        """The block of Keras's text-classification-with-transformer example, written with the layers above.

        The sublayers are assigned in the example's order (attention, feed-forward, norms, dropouts), which is
        not their call order (attention, dropout1, layernorm1, feed-forward, dropout2, layernorm2)."""

        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim = embed_dim
            self.num_heads = num_heads
            self.ff_dim = ff_dim
            self.rate = rate
            # explicit names, unlike the attribute names, so weight paths (layer names) and the .keras file's h5
            # groups (attribute names) can be told apart, and do not depend on the session's name counters
            self.att = SelfAttention(embed_dim, num_heads, name="attention")
            self.ffn1 = layers.Dense(ff_dim, activation="relu", name="ffn_hidden")
            self.ffn2 = layers.Dense(embed_dim, name="ffn_out")
            self.layernorm1 = LayerNorm(epsilon=1e-6, name="norm_attention")
            self.layernorm2 = LayerNorm(epsilon=1e-6, name="norm_ffn")
            self.dropout1 = layers.Dropout(rate, name="drop_attention")
            self.dropout2 = layers.Dropout(rate, name="drop_ffn")

        def call(self, inputs, training=None):
            attn_output = self.att(inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn2(self.ffn1(out1))
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

        def get_config(self):
            config = super().get_config()
            config.update({"embed_dim": self.embed_dim, "num_heads": self.num_heads, "ff_dim": self.ff_dim,
                           "rate": self.rate})
            return config

    class MeanOverTime(layers.Layer):
        """Mean over axis 1: (batch, seq, features) -> (batch, features)."""

        def call(self, x):
            return ops.mean(x, axis=1)

        def get_config(self):
            # explicit, so Keras writes only the base config (name, trainable, dtype) rather than the arguments it
            # records automatically for layers without get_config (activity_regularizer, autocast)
            return super().get_config()

    class Scale(layers.Layer):
        """Multiplies the input by one trainable scalar."""

        def __init__(self, initializer="ones", **kwargs):
            super().__init__(**kwargs)
            self.initializer = initializer

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(), initializer=self.initializer, name="scale")

        def call(self, x):
            return x * self.scale

        def get_config(self):
            config = super().get_config()
            config.update({"initializer": self.initializer})
            return config

    class Linear(layers.Layer):
        """``matmul(x, w) + b`` with ``w`` and ``b`` made by ``add_weight``."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                     trainable=True, name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

        def call(self, x):
            return ops.matmul(x, self.w) + self.b

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:-1]) + (self.units,)

        def get_config(self):
            config = super().get_config()
            config.update({"units": self.units})
            return config

    class ScaledResidual(layers.Layer):
        """``x + alpha * proj(x)``: a layer with its own weight (``alpha``, made in ``build``) AND a Dense sublayer
        (made in ``__init__``), to pin down the order and the names Keras gives to both kinds. The sublayer keeps
        its automatic name (``dense``, ``dense_<n>``: the path depends on the session's name counter)."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.proj = layers.Dense(units, activation="tanh")

        def build(self, input_shape):
            self.alpha = self.add_weight(shape=(self.units,), initializer="ones", name="alpha")

        def call(self, x):
            return x + self.alpha * self.proj(x)

        def get_config(self):
            config = super().get_config()
            config.update({"units": self.units})
            return config

    class SmallCNN(keras.Model):
        """A subclassed MNIST-style CNN: Conv2D(8, 3x3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(softmax)."""

        def __init__(self, num_classes=10, **kwargs):
            super().__init__(**kwargs)
            self.num_classes = num_classes
            self.conv = layers.Conv2D(8, (3, 3), activation="relu", name="features")
            self.pool = layers.MaxPooling2D(2, name="downsample")
            self.flatten = layers.Flatten(name="flat")
            self.classifier = layers.Dense(num_classes, activation="softmax", name="probs")

        def call(self, x):
            return self.classifier(self.flatten(self.pool(self.conv(x))))

        def get_config(self):
            config = super().get_config()
            config.update({"num_classes": self.num_classes})
            return config

    classes = [TokenAndPositionEmbedding, LayerNorm, SelfAttention, TransformerBlock, MeanOverTime, Scale, Linear,
               ScaledResidual, SmallCNN]
    ns = types.SimpleNamespace(**{c.__name__: c for c in classes})
    ns.custom_objects = {c.__name__: c for c in classes}
    return ns


# ---- model builders shared by the generator and the tests --------------------------------------------------------
# Every layer of these models has an explicit name (except ScaledResidual's Dense sublayer), so the weight paths do
# not depend on how many layers the session made before.
MAXLEN, VOCAB, EMBED, HEADS, FF = 8, 20, 16, 2, 32


def _body(keras, ns, rate):
    inp = keras.Input((MAXLEN,), name="tokens")
    x = ns.TokenAndPositionEmbedding(MAXLEN, VOCAB, EMBED, name="embedding")(inp)
    x = ns.TransformerBlock(EMBED, HEADS, FF, rate=rate, name="block")(x)
    return inp, ns.MeanOverTime(name="mean")(x)


def transformer_classifier(keras, ns, rate=0.1, name="transformer_classifier"):
    """(a): Input((8,)) -> TokenAndPositionEmbedding -> TransformerBlock -> MeanOverTime -> Dense(2, softmax)."""
    inp, x = _body(keras, ns, rate)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name=name)


def linear_scale_classifier(keras, ns, rate=0.1, name="linear_scale_classifier"):
    """(b): (a) with a head of custom layers: ... -> MeanOverTime -> Linear(8) -> ScaledResidual(8) -> Scale
    -> Dense(2, softmax)."""
    inp, x = _body(keras, ns, rate)
    x = ns.Linear(8, name="linear")(x)
    x = ns.ScaledResidual(8, name="residual")(x)
    x = ns.Scale(name="scale")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name=name)


def small_cnn(keras, ns, name="small_cnn"):
    """(c): the subclassed SmallCNN, built by calling it on a batch of 8x8x1 zeros (Keras's ``Model.build(shape)``
    does not build a subclassed model that has no ``build`` method: it warns and leaves the sublayers unbuilt)."""
    import numpy as np

    model = ns.SmallCNN(10, name=name)
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model
