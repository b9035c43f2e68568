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
differentiates them.
"""

from __future__ import annotations

import numpy as np

from lora_np.tensor import Tensor


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
