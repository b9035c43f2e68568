"""DoRA's weight decomposition (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation").

DoRA splits a weight into a *magnitude* and a *direction* and lets LoRA move the direction
only (paper Eq. 5)::

    W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row

* ``W`` (out, in) is the frozen pretrained weight, ``s·B·A`` the usual LoRA update;
* ``‖V‖_row`` is the Euclidean norm of each *output row* of ``V`` — one number per output
  unit, as PyTorch's PEFT computes it for a Linear layer (``norm(V, dim=1)``);
* ``m`` (out,) is a trainable magnitude, initialised to the row norms of ``W`` so that
  ``W' = W`` when ``B = 0``.

Section 4.3 of the paper treats the norm as a constant in the backward pass ("we detach
‖V‖ from the gradient graph"): this saves memory and, the authors report, changes accuracy
very little. PEFT always does this. ``detach_norm=False`` keeps the exact gradient, so that
the two can be compared (and both can be gradient-checked).

These functions build the computation from engine primitives only; the engine
differentiates them. :class:`DoRAVariant` is how a :class:`~lora_np.lora.LoRALinear`
runs DoRA: one more parameter (the magnitude), its own forward and its own merge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lora_np.lora.options import LoRAOptions
from lora_np.lora.variants import AdapterParameter, LoRAVariant
from lora_np.nn import Parameter
from lora_np.tensor import Tensor

if TYPE_CHECKING:
    from lora_np.lora.layer import LoRALinear


def row_norm(v: Tensor, detach: bool = False) -> Tensor:
    """‖V‖_row: the Euclidean norm of each row of ``v`` (out, in), as a column (out, 1).

    With ``detach=True`` the result is a constant: no gradient flows through the norm
    (DoRA §4.3).
    """
    if detach:
        return Tensor(np.sqrt(np.sum(v.data * v.data, axis=1, keepdims=True)))
    return (v * v).sum(axis=1, keepdims=True).sqrt()


def dora_weight(
    weight: Tensor, delta: Tensor, magnitude: Tensor, detach_norm: bool = True
) -> Tensor:
    """W' = m ⊙ (W + ΔW) / ‖W + ΔW‖_row, with ``delta`` = s·B·A (DoRA Eq. 5).

    ``weight`` and ``delta`` are (out, in), ``magnitude`` is (out,); the result is (out, in).
    """
    direction = weight + delta
    norm = row_norm(direction, detach=detach_norm)
    return magnitude.reshape(-1, 1) * direction / norm


def dora_scale(
    weight: Tensor, delta: Tensor, magnitude: Tensor, detach_norm: bool = True
) -> Tensor:
    """g = m / ‖W + ΔW‖_row, one factor per output unit, shape (out,).

    With it, W' = g ⊙ (W + ΔW) row by row, so for an input x the DoRA output is
    ``g ⊙ (x·Wᵀ + x·ΔWᵀ)`` — the form PEFT uses when dropout sits on the adapter path.
    """
    norm = row_norm(weight + delta, detach=detach_norm)
    return magnitude / norm.reshape(-1)


class DoRAVariant(LoRAVariant):
    """DoRA: W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖_row, with a trainable magnitude m (out,).

    m starts at the row norms of W + s·B·A (of the weight after any PiSSA split), so the
    layer starts out computing what the base layer computed.
    """

    name = "dora"

    def add_parameters(self, layer: LoRALinear) -> None:
        start = layer.linear.weight.data.astype(np.float64) + layer.delta_weight()
        dtype = layer.linear.weight.dtype
        layer.magnitude = Parameter(np.linalg.norm(start, axis=1).astype(dtype))

    def parameters(
        self, options: LoRAOptions, in_features: int, out_features: int
    ) -> list[AdapterParameter]:
        """A and B as in LoRA, and the magnitude m (out,) (PEFT: ``lora_magnitude_vector``)."""
        magnitude = AdapterParameter("magnitude", "lora_magnitude_vector", (out_features,))
        return [*super().parameters(options, in_features, out_features), magnitude]

    def forward(self, layer: LoRALinear, x: Tensor) -> Tensor:
        """Without dropout: h = x·W'ᵀ + b with W' from :func:`dora_weight`.

        With dropout on the adapter path (PEFT's form), with g = m/‖W + s·B·A‖_row and
        x̃ = dropout(x)::

            h = W·x + b + (g − 1) ⊙ (W·x̃) + g ⊙ s·B·A·x̃

        which is g ⊙ (W + s·B·A)·x + b = W'·x + b whenever x̃ = x.
        """
        w = layer.linear.weight
        detach = layer.options.dora_detach_norm
        delta = (layer.lora_b.weight @ layer.lora_a.weight) * layer.scaling
        if not (layer.training and layer.dropout.p > 0.0):
            merged = dora_weight(w, delta, layer.magnitude, detach)
            out = x @ merged.T
            return out if layer.linear.bias is None else out + layer.linear.bias
        g = dora_scale(w, delta, layer.magnitude, detach)
        x_drop = layer.dropout(x)
        lora_out = layer.lora_b(layer.lora_a(x_drop)) * layer.scaling
        return layer.linear(x) + (g - 1.0) * (x_drop @ w.T) + g * lora_out

    def merged_weight(self, layer: LoRALinear) -> np.ndarray:
        """W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖_row."""
        delta = Tensor(layer.delta_weight())
        magnitude = Tensor(layer.magnitude.data)
        w = Tensor(layer.linear.weight.data)
        return dora_weight(w, delta, magnitude, detach_norm=True).data
