"""The LoRA layer's forward as one primitive: ``x·Wᵀ + b + s·(x̃·Aᵀ)·Bᵀ``.

Written with the engine's general primitives, a LoRA layer is five nodes — the frozen
Linear, ``lora_a``, ``lora_b``, the product with s and the sum (see
:meth:`~lora_np.lora.variants.LoRAVariant.forward_composite`). :class:`LoRALinearFunction`
is the same arithmetic, in the same order, as one node: the same output and parameter
gradients, bit for bit, for a fifth of the bookkeeping, and it keeps only what the
gradients that are needed read. :meth:`~lora_np.lora.variants.LoRAVariant.forward` uses it.
"""

from __future__ import annotations

import numpy as np

from lora_np.tensor import Function, Tensor


class LoRALinearFunction(Function):
    """out = x·Wᵀ + b + s·u·Bᵀ with u = x̃·Aᵀ (LoRA, Hu et al. 2021, Eq. 3, rows as inputs).

    Inputs: x (..., in), x̃ (..., in) — the adapter path's input, ``dropout(x)``, or x
    itself —, W (out, in), A (r, in), B (out, r) and optionally b (out,). The scaling s
    is a setting (a constant). Leading axes of x are rows.

    VJP, with G = dL/d(out) and G_s = s·G::

        dL/dB = G_sᵀ·u            dL/du = G_s·B
        dL/dA = (dL/du)ᵀ·x̃        dL/dx̃ = (dL/du)·A
        dL/dW = Gᵀ·x              dL/dx = G·W          dL/db = G (summed over rows)

    Without dropout x̃ *is* x (the same tensor, passed twice: both gradients go to the
    same place, ``next_nodes[0] is next_nodes[1]``), and backward returns them summed, as
    x's: dL/dx = G·W + (dL/du)·A, computed in place in G·W (the engine would make a third
    array of x's shape to add two), and None for x̃.

    Saves: x̃ if A needs a gradient (dL/dA reads it); u if B needs one; B if A or x̃
    needs one (both go through dL/du); A if x̃ needs one; W if x needs one; x if W needs
    one. So a frozen A (LoRA-FA) does not keep the layer's input, and a frozen W keeps
    no input for itself.

    Arithmetic as the composite's, step for step: x·Wᵀ, then + b, then (x̃·Aᵀ)·Bᵀ times s,
    then the sum; in backward G·s, then the products above. (x's gradient is bit for bit
    the composite's too when these two terms are all it gets; if x feeds other layers as
    well, its gradients may be added up in another order.)
    """

    def __init__(self, scaling: float) -> None:
        self.scaling = scaling

    def forward(
        self,
        x: np.ndarray,
        x_drop: np.ndarray,
        w: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        bias: np.ndarray | None = None,
    ) -> np.ndarray:
        fits = w.ndim == a.ndim == b.ndim == 2 and a.shape[1] == w.shape[1]
        if not fits or b.shape != (w.shape[0], a.shape[0]):
            raise ValueError(
                "LoRALinearFunction needs W (out, in), A (r, in) and B (out, r); got shapes "
                f"W {w.shape}, A {a.shape}, B {b.shape}"
            )
        needs_x, needs_x_drop, needs_w, needs_a, needs_b = self.needs_input_grad[:5]
        if needs_x:
            self.w = w
        if needs_w:
            self.x = x
        if needs_a:
            self.x_drop = x_drop
        if needs_x_drop:
            self.a = a
        if needs_a or needs_x_drop:
            self.b = b
        # the frozen layer's output, as ops.Linear computes it
        out = x @ w.T
        if bias is not None:
            if bias.ndim == 1 and bias.dtype == out.dtype:
                out += bias
            else:
                out = out + bias
        u = x_drop @ a.T  # (..., r): the input projected down to rank r
        if needs_b:
            self.u = u
        lora_out = u @ b.T  # back up to (..., out)
        lora_out *= lora_out.dtype.type(self.scaling)  # s in the output's dtype
        out += lora_out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        needs = self.needs_input_grad
        needs_x, needs_x_drop, needs_w, needs_a, needs_b = needs[:5]
        grad_x = grad_x_drop = grad_w = grad_a = grad_b = None
        if needs_a or needs_b or needs_x_drop:
            scaled = grad * grad.dtype.type(self.scaling)  # G_s = s·G
            if needs_b:
                grad_b = _rows(scaled).T @ _rows(self.u)  # (out, r)
            grad_u = scaled @ self.b if needs_a or needs_x_drop else None  # (..., r)
            del scaled  # (..., out): freed before the (..., in) gradients are made
            if needs_a:
                grad_a = _rows(grad_u).T @ _rows(self.x_drop)  # (r, in)
            if needs_x_drop:
                grad_x_drop = grad_u @ self.a  # (..., in)
        if needs_w:
            grad_w = _rows(grad).T @ _rows(self.x)  # (out, in)
        if needs_x:
            grad_x = grad @ self.w
            if grad_x_drop is not None and self._x_drop_is_x():
                grad_x += grad_x_drop  # x̃ is x: its two gradients summed here, in place
                grad_x_drop = None
        grads = (grad_x, grad_x_drop, grad_w, grad_a, grad_b)
        if len(needs) == 5:
            return grads
        return (*grads, grad if needs[5] else None)

    def _x_drop_is_x(self) -> bool:
        """True if x and x̃ send their gradients to the same place (no dropout)."""
        nodes = self.next_nodes  # set when the call was recorded (empty if run by hand)
        return len(nodes) > 1 and nodes[0] is not None and nodes[0] is nodes[1]


def _rows(array: np.ndarray) -> np.ndarray:
    """``array`` with its leading axes as rows, (rows, last axis): a 2-D array as it is."""
    return array if array.ndim == 2 else array.reshape(-1, array.shape[-1])


def lora_linear(
    x: Tensor,
    x_drop: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
) -> Tensor:
    """x·Wᵀ + b + s·(x̃·Aᵀ)·Bᵀ in one node (:class:`LoRALinearFunction`); x̃ = ``x_drop``."""
    x_shape, x_drop_shape, w_shape = x.data.shape, x_drop.data.shape, weight.data.shape
    if x_shape[-1] != w_shape[-1] or x_drop_shape != x_shape:
        raise ValueError(
            f"lora_linear: the input has shape {x_shape} and the adapter's input "
            f"{x_drop_shape}; both must have the layer's {w_shape[-1]} features last"
        )
    inputs = (x, x_drop, weight, lora_a, lora_b)
    if bias is None:
        return LoRALinearFunction.apply(*inputs, scaling=scaling)
    return LoRALinearFunction.apply(*inputs, bias, scaling=scaling)
