"""The same training steps written by hand in NumPy: the floor for any NumPy engine.

``python -m lora_np bench`` times a training step through the autograd engine against
these functions. They do exactly the arithmetic of the step — no graph, no Tensor
objects, no generic broadcasting rules — so the ratio engine / hand-written is what the
engine's bookkeeping costs. Everything stays float32, as the engine's layers are.

For an MLP with layers ``z_i = h_{i-1}·W_iᵀ + b_i`` and ``h_i = relu(z_i)`` (no relu
after the last), cross-entropy averaged over the N rows of the batch, the backward
pass is

* ``G = (softmax(z_L) − onehot(y)) / N``   (the gradient of the loss at the logits)
* ``dL/dW_i = Gᵀ·h_{i-1}``, ``dL/db_i = Σ_rows G``
* ``G ← (G·W_i) ⊙ [h_{i-1} > 0]``   (back through layer i, then the relu before it)

and SGD updates ``W ← W − η·dL/dW``. The LoRA step (:class:`ReferenceLoRAMLP`) freezes
W and b and trains, on the adapted layers, ``z = h·Wᵀ + b + s·(h·Aᵀ)·Bᵀ``:

* ``dL/dB = s·Gᵀ·u`` with ``u = h·Aᵀ``;  ``dL/du = s·G·B``;  ``dL/dA = (dL/du)ᵀ·h``
* ``dL/dh = G·W + (dL/du)·A``   (not computed for the first layer: x needs no gradient)

The LoRA-FA step (:class:`ReferenceLoRAFAMLP`) freezes A as well, so dL/dA is not
computed and nothing of a layer's input h is needed but relu's mask ``[h > 0]``: it keeps
that (booleans) and u, and drops h itself as soon as the next layer has used it.

They are the benchmark's reference, not part of the library: only the bench imports them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean cross-entropy and its gradient ``(softmax(z) − onehot(y)) / N`` at z."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(sums[:, 0]) - shifted[rows, labels]))
    grad = exp / sums
    grad[rows, labels] -= 1
    grad /= n
    return loss, grad


class ReferenceMLP:
    """A ReLU MLP held as plain arrays: ``weights[i]`` (out, in), ``biases[i]`` (out,)."""

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        if len(weights) != len(biases) or not weights:
            raise ValueError(
                f"ReferenceMLP needs one bias per weight, got {len(weights)} weights and "
                f"{len(biases)} biases"
            )
        self.weights = [np.array(w) for w in weights]
        self.biases = [np.array(b) for b in biases]

    def step(self, x: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One SGD step on the batch (x, labels); returns the loss before the step."""
        last = len(self.weights) - 1
        inputs = []  # h_{i-1} for each layer i
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            inputs.append(h)
            h = h @ w.T + b
            if i < last:
                h = np.maximum(h, 0)
        loss, g = _softmax_cross_entropy(h, labels)
        for i in range(last, -1, -1):
            h_prev, w = inputs[i], self.weights[i]
            grad_w = g.T @ h_prev
            grad_b = g.sum(axis=0)
            if i > 0:
                g = (g @ w) * (h_prev > 0)
            w -= lr * grad_w
            self.biases[i] -= lr * grad_b
        return loss


class ReferenceLoRAMLP:
    """A ReLU MLP with frozen weights and LoRA adapters (A (r, in), B (out, r)) on the
    layers listed in ``adapters`` (index -> (A, B)); ``scaling`` = α/r."""

    def __init__(
        self,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        adapters: dict[int, tuple[np.ndarray, np.ndarray]],
        scaling: float,
    ) -> None:
        if len(weights) != len(biases) or not weights:
            raise ValueError(
                f"ReferenceLoRAMLP needs one bias per weight, got {len(weights)} weights "
                f"and {len(biases)} biases"
            )
        unknown = sorted(set(adapters) - set(range(len(weights))))
        if unknown:
            raise ValueError(
                f"ReferenceLoRAMLP: adapters for layers {unknown}, but the model has "
                f"layers 0..{len(weights) - 1}"
            )
        self.weights = [np.array(w) for w in weights]
        self.biases = [np.array(b) for b in biases]
        self.adapters = {i: (np.array(a), np.array(b)) for i, (a, b) in adapters.items()}
        self.scaling = np.float32(scaling)

    def step(self, x: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One SGD step of the adapters on (x, labels); returns the loss before the step."""
        s = self.scaling
        last = len(self.weights) - 1
        inputs, downs = [], {}
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            inputs.append(h)
            z = h @ w.T + b
            if i in self.adapters:
                a, b_up = self.adapters[i]
                downs[i] = h @ a.T  # u = h·Aᵀ, shape (N, r)
                z += s * (downs[i] @ b_up.T)
            h = np.maximum(z, 0) if i < last else z
        loss, g = _softmax_cross_entropy(h, labels)
        for i in range(last, -1, -1):
            h_prev, w = inputs[i], self.weights[i]
            grad_down = None
            if i in self.adapters:
                a, b_up = self.adapters[i]
                grad_b_up = s * (g.T @ downs[i])
                grad_down = s * (g @ b_up)
                grad_a = grad_down.T @ h_prev
            if i > 0:
                g_prev = g @ w
                if grad_down is not None:
                    g_prev += grad_down @ a
                g = g_prev * (h_prev > 0)
            if i in self.adapters:
                a -= lr * grad_a
                b_up -= lr * grad_b_up
        return loss


class ReferenceLoRAFAMLP(ReferenceLoRAMLP):
    """The LoRA MLP with A frozen too (LoRA-FA, Zhang et al. 2023): only the B's train.

    Its step keeps only what that backward reads: for each adapted layer u = h·Aᵀ (for
    dL/dB), and for each layer after the first the mask ``[h > 0]`` of its input (to go
    back through the relu before it) — never h itself.
    """

    def step(self, x: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One SGD step of the B matrices on (x, labels); returns the loss before the step."""
        s = self.scaling
        last = len(self.weights) - 1
        masks, downs = {}, {}
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i > 0:
                masks[i] = h > 0  # h = relu(z): all that backward needs of it
            z = h @ w.T + b
            if i in self.adapters:
                a, b_up = self.adapters[i]
                downs[i] = h @ a.T  # u = h·Aᵀ, shape (N, r)
                z += s * (downs[i] @ b_up.T)
            h = np.maximum(z, 0) if i < last else z
        loss, g = _softmax_cross_entropy(h, labels)
        for i in range(last, -1, -1):
            w = self.weights[i]
            grad_b_up = grad_down = None
            if i in self.adapters:
                a, b_up = self.adapters[i]
                grad_b_up = s * (g.T @ downs[i])
                if i > 0:
                    grad_down = s * (g @ b_up)
            if i > 0:
                g_prev = g @ w
                if grad_down is not None:
                    g_prev += grad_down @ a
                g = g_prev * masks[i]
            if grad_b_up is not None:
                b_up -= lr * grad_b_up
        return loss
