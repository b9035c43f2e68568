"""LayerNorm (Ba, Kiros & Hinton 2016), as PyTorch's ``nn.LayerNorm`` over the last axis.

For each row x (the last axis, D features)::

    μ = mean(x),  σ² = mean((x − μ)²)   (the biased variance, as PyTorch)
    x̂ = (x − μ) / √(σ² + ε)
    y = γ ⊙ x̂ + β

Composed from the primitives this is about ten graph nodes, each holding a (rows, D)
array; :class:`LayerNormFunction` is one node that keeps two arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.checks import is_finite_positive, is_int
from lora_np.nn.module import Module, Parameter
from lora_np.tensor import Function, Tensor


class LayerNormFunction(Function):
    """y = γ ⊙ x̂ + β with x̂ = (x − μ)/√(σ² + ε) over the last axis; x (..., D), γ, β (D,).

    VJP, with r = 1/√(σ² + ε) per row and ĝ = G ⊙ γ::

        dL/dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))      (means over the last axis)
        dL/dγ = Σ_rows G ⊙ x̂,   dL/dβ = Σ_rows G

    (the two means are there because μ and σ² depend on every entry of the row: moving
    one x shifts the mean of all of them and rescales all of them.)
    Saves what the rule reads for the inputs that need a gradient: x̂ (for x and γ), r and
    γ (for x); β's gradient reads nothing.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = eps

    def forward(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        centred = x - x.mean(axis=-1, keepdims=True)
        variance = np.square(centred).mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(variance + self.eps)
        centred *= rstd  # x̂, normalised in place
        needs_x, needs_weight, _ = self.needs_input_grad
        if needs_x or needs_weight:
            self.normalized = centred
        if needs_x:
            self.rstd, self.weight = rstd, weight
        out = centred * weight
        out += bias
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        needs_x, needs_weight, needs_bias = self.needs_input_grad
        gx = gw = gb = None
        rows = grad.reshape(-1, grad.shape[-1])
        if needs_x or needs_weight:
            x_hat = self.normalized
            scratch = np.empty_like(x_hat)
        if needs_x:
            gx = grad * self.weight  # ĝ, turned into dL/dx in place
            np.multiply(gx, x_hat, out=scratch)
            mean_gx = scratch.mean(axis=-1, keepdims=True)  # mean(ĝ ⊙ x̂)
            gx -= gx.mean(axis=-1, keepdims=True)
            np.multiply(x_hat, mean_gx, out=scratch)
            gx -= scratch
            gx *= self.rstd
        if needs_weight:
            np.multiply(grad, x_hat, out=scratch)
            gw = scratch.reshape(rows.shape).sum(axis=0)
        if needs_bias:
            gb = rows.sum(axis=0)
        return gx, gw, gb


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm of ``x`` over its last axis with scale ``weight`` and shift ``bias`` (D,)."""
    if x.shape[-1:] != weight.shape or weight.shape != bias.shape:
        raise ValueError(
            f"layer_norm: x's last axis must match weight and bias, got x {x.shape}, "
            f"weight {weight.shape}, bias {bias.shape}"
        )
    return LayerNormFunction.apply(x, weight, bias, eps=eps)


class LayerNorm(Module):
    """Normalise each row over the last axis, then scale by ``weight`` and shift by ``bias``.

    ``weight`` starts at ones and ``bias`` at zeros, as in PyTorch; ``eps`` = 1e-5.
    """

    def __init__(
        self, normalized_shape: int, eps: float = 1e-5, *, dtype: Any = np.float32
    ) -> None:
        super().__init__()
        if not is_int(normalized_shape) or normalized_shape < 1:
            raise ValueError(
                f"LayerNorm: normalized_shape must be a positive int (the size of the last "
                f"axis), got {normalized_shape!r}"
            )
        if not is_finite_positive(eps):
            raise ValueError(f"LayerNorm: eps must be a finite number > 0, got {eps!r}")
        self.normalized_shape = int(normalized_shape)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}"
