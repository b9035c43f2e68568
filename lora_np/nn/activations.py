"""GELU (Hendrycks & Gimpel 2016) in its tanh approximation, as GPT-2 and PyTorch's
``gelu(x, approximate="tanh")``::

    gelu(x) = ½ · x · (1 + tanh(u)),   u = √(2/π) · (x + 0.044715 · x³)

The exact GELU is x·Φ(x) with Φ the standard normal CDF; the tanh form agrees with it to
about 1e-3 and is what GPT-2 was trained with.
"""

from __future__ import annotations

import math

import numpy as np

from lora_np.nn.module import Module
from lora_np.ops import as_floating
from lora_np.tensor import Function, Tensor

#: √(2/π) and the cubic coefficient of the tanh approximation (Python floats, so that a
#: float32 input stays float32).
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


class GELUFunction(Function):
    """out = ½ x (1 + tanh(u)), u = √(2/π)(x + 0.044715 x³).

    VJP, with t = tanh(u)::

        dL/dx = G · [½ (1 + t) + ½ x (1 − t²) · √(2/π) (1 + 3 · 0.044715 x²)]

    Saves: x and t, when x needs a gradient.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_floating(x)  # integers are computed in floating point, as np.tanh does
        # (written with in-place steps: each temporary (rows, hidden) array costs time)
        u = x * x  # u = √(2/π) · x · (1 + 0.044715 x²)
        u *= CUBIC
        u += 1.0
        u *= x
        u *= SQRT_2_OVER_PI
        t = np.tanh(u, out=u)
        if self.needs_input_grad[0]:
            self.x, self.t = x, t
        out = t + 1.0
        out *= x
        out *= 0.5
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        x, t = self.x, self.t
        slope = x * x  # du/dx = √(2/π) (1 + 3 · 0.044715 x²)
        slope *= 3.0 * CUBIC
        slope += 1.0
        slope *= SQRT_2_OVER_PI
        sech2 = t * t  # 1 − t², the derivative of tanh
        np.subtract(1.0, sech2, out=sech2)
        slope *= sech2
        slope *= x  # x (1 − t²) du/dx
        slope += t
        slope += 1.0
        slope *= 0.5  # ½ (1 + t) + ½ x (1 − t²) du/dx
        slope *= grad
        return (slope,)


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (PyTorch's ``gelu(x, approximate="tanh")``)."""
    return GELUFunction.apply(x)


class GELU(Module):
    """The GELU activation (tanh approximation) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x)

    def extra_repr(self) -> str:
        return "approximate='tanh'"
