"""Issue 18's vision workloads for benches/workloads.py: MobileNetV2 (Keras's architecture, alpha 1.0, 32x32x3,
10 classes, weights=None) on 10,000 random images, and Keras's convolutional denoising autoencoder
(examples/denoising_autoencoder.py) on 10,000 noisy MNIST digits. The same arrays in every framework (a fixed
seed); PyTorch gets the same networks written by hand (NCHW, its usual layout)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

VISION_WORKLOADS = ("mobilenetv2_fit", "autoencoder_fit")
VISION_SAMPLES = 10_000
_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "denoising_autoencoder.py"


def vision_data(workload: str, samples: int, mnist) -> tuple:
    rng = np.random.default_rng(0)
    if workload == "mobilenetv2_fit":
        x = rng.random((samples, 32, 32, 3), dtype=np.float32)
        return x, rng.integers(0, 10, samples).astype(np.int64)
    clean = mnist(False)[0][:samples]
    noisy = np.clip(clean + 0.4 * rng.normal(size=clean.shape), 0, 1).astype(np.float32)
    return noisy, clean


def keras_vision_model(keras, workload: str):
    if workload == "mobilenetv2_fit":
        return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10)
    spec = importlib.util.spec_from_file_location("denoising_autoencoder", _EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    # the example imports kerust: give it this framework's module instead
    import sys

    sys.modules["kerust"], saved = keras, sys.modules.get("kerust")
    sys.modules["kerust.layers"], saved_layers = keras.layers, sys.modules.get("kerust.layers")
    try:
        spec.loader.exec_module(example)
    finally:
        for name, mod in (("kerust", saved), ("kerust.layers", saved_layers)):
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
    return example.build()


def keras_vision(keras, workload: str, batch_size: int, samples: int, mnist) -> float:
    import time

    x, y = vision_data(workload, samples, mnist)
    keras.utils.set_random_seed(0)
    model = keras_vision_model(keras, workload)
    loss = "sparse_categorical_crossentropy" if workload == "mobilenetv2_fit" else "binary_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    model.fit(x[: batch_size * 4], y[: batch_size * 4], batch_size=batch_size, epochs=1, verbose=0)  # warm-up
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return time.perf_counter() - t


def torch_vision_model(workload: str):
    import torch
    from torch import nn
    from torch.nn import functional as F

    if workload == "autoencoder_fit":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1),  # logits: BCEWithLogits is Keras's sigmoid + cross-entropy
        )

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=1e-3)

    class Block(nn.Module):
        """Keras's inverted residual: 1x1 expand, 3x3 depthwise (stride 2: pad right/bottom, as correct_pad),
        1x1 project, the residual when shapes allow."""

        def __init__(self, cin, cout, expansion, stride):
            super().__init__()
            mid = cin * expansion
            self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), bn(mid), nn.ReLU6()) \
                if expansion != 1 else nn.Identity()
            self.stride = stride
            self.depthwise = nn.Conv2d(mid, mid, 3, stride, padding=0 if stride == 2 else 1, groups=mid, bias=False)
            self.dw_bn = nn.Sequential(bn(mid), nn.ReLU6())
            self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), bn(cout))
            self.residual = cin == cout and stride == 1

        def forward(self, x):
            h = self.expand(x)
            if self.stride == 2:
                h = F.pad(h, (0, 1, 0, 1))
            h = self.project(self.dw_bn(self.depthwise(h)))
            return x + h if self.residual else h

    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    blocks, cin = [], 32
    for t, c, n, s in settings:
        for i in range(n):
            blocks.append(Block(cin, c, t, s if i == 0 else 1))
            cin = c

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, bias=False), bn(32), nn.ReLU6())
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Sequential(nn.Conv2d(320, 1280, 1, bias=False), bn(1280), nn.ReLU6())
            self.out = nn.Linear(1280, 10)

        def forward(self, x):
            h = self.head(self.blocks(self.stem(F.pad(x, (0, 1, 0, 1)))))
            return self.out(h.mean(dim=(2, 3)))

    torch.manual_seed(0)
    return MobileNetV2()


def torch_vision(workload: str, batch_size: int, samples: int, mnist, timed_epoch) -> float:
    import torch
    from torch import nn

    x, y = vision_data(workload, samples, mnist)
    xs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ys = torch.from_numpy(y) if workload == "mobilenetv2_fit" else \
        torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)))
    torch.manual_seed(0)
    model = torch_vision_model(workload)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss() if workload == "mobilenetv2_fit" else nn.BCEWithLogitsLoss()
    return timed_epoch(model, opt, loss_fn, xs, ys, batch_size)
