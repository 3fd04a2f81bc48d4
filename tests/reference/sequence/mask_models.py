"""Models with masks, initial states and returned states, written once for Keras and for kerust: `build(keras,
name)` makes the same model in either library (the generator runs it on Keras, the tests on kerust)."""

NAMES = ["emb_lstm_seq", "emb_gru_state", "emb_rnn_back", "masking_lstm_init", "bi_gap", "bi_none", "concat_mask",
         "add_mask", "emb_gap"]
STEPS = 6
VOCAB = 12

# causal and dilated Conv1D layers, checked on inputs (4, 9, 3)
CONV_CASES = {
    "causal": dict(filters=2, kernel_size=3, padding="causal", bias_initializer="random_normal"),
    "dilated": dict(filters=2, kernel_size=3, dilation_rate=2),
    "causal_dilated": dict(filters=2, kernel_size=2, padding="causal", dilation_rate=3),
    "same_dilated": dict(filters=3, kernel_size=3, padding="same", dilation_rate=2),
    "causal_strided": dict(filters=2, kernel_size=3, padding="causal", strides=2, activation="relu"),
}


# GRU with reset_after=False, on inputs (4, 5, 3): its output, with a mask (steps kept: MASK_STEPS), and two
# SGD epochs of a small model on it
GRU_V1_MASK = [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]]


def gru_v1_model(keras):
    return keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(3, reset_after=False), keras.layers.Dense(1)])


def build(keras, name):
    layers = keras.layers
    ids = keras.Input((STEPS,), dtype="int32", name="ids")

    def embed(x, dim=3, layer_name=None):
        return layers.Embedding(VOCAB, dim, mask_zero=True, name=layer_name)(x)

    if name == "emb_lstm_seq":
        return keras.Model(ids, layers.LSTM(4, return_sequences=True)(embed(ids)))
    if name == "emb_gru_state":
        out, h = layers.GRU(3, return_state=True)(embed(ids))
        return keras.Model(ids, [out, h])
    if name == "emb_rnn_back":
        return keras.Model(ids, layers.SimpleRNN(3, go_backwards=True, return_sequences=True)(embed(ids)))
    if name == "masking_lstm_init":
        x = keras.Input((STEPS, 3), name="x")
        h0 = keras.Input((4,), name="h0")
        c0 = keras.Input((4,), name="c0")
        seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(layers.Masking(0.0)(x),
                                                                            initial_state=[h0, c0])
        return keras.Model([x, h0, c0], [seq, h, c])
    if name == "bi_gap":
        seq = layers.Bidirectional(layers.LSTM(3, return_sequences=True))(embed(ids))
        pooled = layers.GlobalAveragePooling1D()(seq)
        return keras.Model(ids, layers.Dense(1, activation="sigmoid")(pooled))
    if name == "bi_none":
        a, b = layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode=None)(embed(ids))
        return keras.Model(ids, [a, b])
    if name == "concat_mask":
        other = keras.Input((STEPS,), dtype="int32", name="other")
        joined = layers.Concatenate(axis=1)([embed(ids, layer_name="e1"), embed(other, layer_name="e2")])
        return keras.Model([ids, other], layers.LSTM(2)(joined))
    if name == "add_mask":
        other = keras.Input((STEPS,), dtype="int32", name="other")
        summed = layers.Add()([embed(ids, layer_name="e1"), embed(other, layer_name="e2")])
        return keras.Model([ids, other], layers.GRU(2)(summed))
    if name == "emb_gap":
        dense = layers.Dense(2, activation="tanh")(embed(ids, 4))  # Dense hands the mask on
        return keras.Model(ids, layers.GlobalAveragePooling1D()(dense))
    raise ValueError(name)
