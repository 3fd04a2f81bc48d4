"""The dilated and grouped convolution cases, written once for Keras (generate_conv.py) and kerust
(tests/test_conv_groups.py): a name, the layer class, its arguments and the sample shape of its input."""

CASES = {
    "conv2d_dilated_valid": ("Conv2D", {"filters": 3, "kernel_size": 3, "dilation_rate": 2}, (9, 8, 2)),
    "conv2d_dilated_same": ("Conv2D", {"filters": 2, "kernel_size": (2, 3), "dilation_rate": (3, 2),
                                       "padding": "same", "activation": "relu"}, (7, 8, 3)),
    "conv2d_groups": ("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2, "strides": 2, "padding": "same"},
                      (7, 6, 4)),
    "conv2d_groups_dilated": ("Conv2D", {"filters": 6, "kernel_size": 2, "groups": 3, "dilation_rate": 2,
                                         "use_bias": False}, (6, 7, 6)),
    "conv2d_depthwise_like": ("Conv2D", {"filters": 3, "kernel_size": 3, "groups": 3, "padding": "same"},
                              (5, 5, 3)),
    "conv1d_groups": ("Conv1D", {"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same"}, (9, 6)),
    "conv1d_groups_causal_dilated": ("Conv1D", {"filters": 6, "kernel_size": 2, "groups": 3, "padding": "causal",
                                                "dilation_rate": 2, "activation": "tanh"}, (10, 3)),
}
