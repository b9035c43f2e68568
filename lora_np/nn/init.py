"""In-place initialisers with PyTorch's formulas (so readers' numbers carry over).

Kaiming (He et al. 2015): for a layer with ``fan_in`` inputs and a leaky-ReLU of
negative slope ``a``, the gain is ``√(2 / (1 + a²))`` and the target standard deviation
``std = gain / √fan``. Uniform draws use the bound ``√3 · std`` (the uniform distribution
on [-b, b] has variance b²/3). PyTorch's ``nn.Linear`` uses ``kaiming_uniform_(a=√5)``,
which works out to a bound of ``1/√fan_in``.
"""

from __future__ import annotations

import math

import numpy as np

from lora_np.rng import get_rng
from lora_np.tensor import Tensor


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in/out need a tensor with at least 2 dimensions, got shape {tensor.shape}"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, a: float | None = None) -> float:
    """PyTorch's gains: linear/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2/(1+a²)) with
    negative slope ``a`` (0.01 if not given, PyTorch's default; the kaiming inits pass
    their own ``a``, 0 by default)."""
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if a is None else a
        return math.sqrt(2.0 / (1 + slope * slope))
    raise ValueError(
        f"unknown nonlinearity {nonlinearity!r}; expected linear, sigmoid, tanh, relu, leaky_relu"
    )


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Fill with U(-b, b), b = √3 · gain(a) / √fan."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng=rng)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Fill with N(0, std²), std = gain(a) / √fan."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), rng=rng)


def uniform_(
    tensor: Tensor, low: float = 0.0, high: float = 1.0, rng: np.random.Generator | None = None
) -> Tensor:
    """Fill with U(low, high), keeping the tensor's dtype."""
    tensor.data = get_rng(rng).uniform(low, high, size=tensor.shape).astype(tensor.dtype)
    return tensor


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, rng: np.random.Generator | None = None
) -> Tensor:
    """Fill with N(mean, std²), keeping the tensor's dtype."""
    tensor.data = get_rng(rng).normal(mean, std, size=tensor.shape).astype(tensor.dtype)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    tensor.data = np.zeros(tensor.shape, dtype=tensor.dtype)
    return tensor
