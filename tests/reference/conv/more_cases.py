"""Conv2DTranspose, DepthwiseConv2D and SeparableConv2D cases, written once for Keras (generate_more.py) and
kerust (tests/test_conv_more.py): a name, the layer class, its arguments and the sample shape of its input."""

CASES = {
    "transpose_valid_strided": ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2}, (4, 5, 2)),
    "transpose_same": ("Conv2DTranspose", {"filters": 2, "kernel_size": (2, 3), "strides": (2, 1),
                                           "padding": "same", "activation": "relu"}, (4, 4, 3)),
    "transpose_same_output_padding": ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                                          "padding": "same", "output_padding": 1}, (3, 4, 2)),
    "transpose_valid_output_padding": ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 3,
                                                           "output_padding": (2, 1)}, (3, 3, 2)),
    "transpose_kernel_below_stride": ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3},
                                      (3, 3, 1)),
    "transpose_dilated": ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "dilation_rate": 2,
                                              "use_bias": False}, (4, 4, 2)),
    "depthwise_same_multiplier": ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
                                  (5, 5, 3)),
    "depthwise_strided": ("DepthwiseConv2D", {"kernel_size": (3, 2), "strides": 2, "activation": "relu"},
                          (7, 6, 4)),
    "depthwise_dilated": ("DepthwiseConv2D", {"kernel_size": 2, "dilation_rate": 2, "use_bias": False},
                          (6, 6, 2)),
    "separable_same": ("SeparableConv2D", {"filters": 4, "kernel_size": 3, "padding": "same",
                                           "depth_multiplier": 2, "activation": "tanh"}, (6, 5, 3)),
    "separable_strided": ("SeparableConv2D", {"filters": 3, "kernel_size": 2, "strides": 2}, (6, 6, 2)),
}
