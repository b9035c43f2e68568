"""The small networks the intrinsic-dimension experiment trains on the 8×8 digits.

* :func:`digits_mlp` — a fully connected ReLU net 64 → width (× depth) → 10;
* :class:`DigitsConvNet` — two 3×3 convolutions and a linear head, about as many weights
  as the width-32 MLP (3,818 against 3,466), so the two compare architectures, not sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lora_np.nn import MLP, Conv2d, Linear, Module
from lora_np.nn import functional as F
from lora_np.tensor import Tensor

IMAGE_SIDE = 8  # the digits are 8×8 images, flattened to 64 pixels
CLASSES = 10


def digits_mlp(width: int, depth: int = 2) -> Callable[[np.random.Generator], MLP]:
    """``rng -> MLP([64, width, …, width, 10])`` with ``depth`` hidden layers."""

    def make(rng: np.random.Generator) -> MLP:
        return MLP([IMAGE_SIDE**2, *[width] * depth, CLASSES], rng=rng)

    return make


class DigitsConvNet(Module):
    """conv 3×3 (1 → c1, padding 1) → ReLU → conv 3×3 (c1 → c2, stride 2, padding 1) →
    ReLU → Linear (c2·4·4 → 10), on the digits as (N, 1, 8, 8) images.

    The input is the flat (N, 64) pixel vector the MLPs read; ``forward`` reshapes it. With
    c1 = 8, c2 = 16: D = 80 + 1,168 + 2,570 = 3,818 weights.
    """

    def __init__(self, c1: int = 8, c2: int = 16, *, rng: np.random.Generator | None = None):
        super().__init__()
        self.conv1 = Conv2d(1, c1, 3, padding=1, rng=rng)
        self.conv2 = Conv2d(c1, c2, 3, stride=2, padding=1, rng=rng)
        side = IMAGE_SIDE // 2
        self.head = Linear(c2 * side * side, CLASSES, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], 1, IMAGE_SIDE, IMAGE_SIDE)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        return self.head(h.reshape(h.shape[0], -1))


def digits_convnet(rng: np.random.Generator) -> DigitsConvNet:
    """``rng -> DigitsConvNet()``, the form :func:`lora_np.subspace.intrinsic_dimension`
    takes."""
    return DigitsConvNet(rng=rng)
