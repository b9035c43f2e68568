"""Functions of tensors, built from the primitives in :mod:`lora_np.ops`.

Most have no backward of their own: the engine differentiates them through the
primitives they are made of. :func:`cross_entropy` is the exception worth knowing: it
is one fused primitive (:class:`~lora_np.ops.SoftmaxCrossEntropy`), and
:func:`composite_cross_entropy` computes the same numbers from LogSoftmax, GetItem and
Sum — there the familiar gradient ``softmax(z) − onehot(y)`` falls out of LogSoftmax's
VJP and GetItem's scatter.
"""

from __future__ import annotations

import numpy as np

from lora_np import ops
from lora_np.rng import get_rng
from lora_np.tensor import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x · Wᵀ + b with W of shape (out, in)."""
    x_shape, w_shape = x.data.shape, weight.data.shape  # read off the arrays
    if not x_shape or not w_shape:
        raise ValueError(
            f"linear needs an input and a weight of at least one dimension, got shapes "
            f"{x_shape} and {w_shape}"
        )
    if x_shape[-1] != w_shape[-1]:
        raise ValueError(
            f"linear: input has {x_shape[-1]} features (shape {x_shape}), but the weight "
            f"expects {w_shape[-1]} (weight shape {w_shape}, i.e. (out, in))"
        )
    if len(w_shape) != 2:  # not an (out, in) matrix: the general composite
        y = x @ weight.T
        return y if bias is None else y + bias
    # one primitive for x @ weight.T + bias (same numbers, a third of the graph)
    return ops.Linear.apply(x, weight) if bias is None else ops.Linear.apply(x, weight, bias)


def relu(x: Tensor) -> Tensor:
    return ops.ReLU.apply(x)


def tanh(x: Tensor) -> Tensor:
    return ops.Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    return ops.Sigmoid.apply(x)


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None
) -> Tensor:
    """Inverted dropout: x · m / (1 − p) with m ~ Bernoulli(1 − p); identity if not training."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    keep = get_rng(rng).random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log softmax along ``axis`` (a fused, stable primitive)."""
    return ops.LogSoftmax.apply(x, axis=axis)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """softmax = exp(log_softmax): stable for any logits."""
    return log_softmax(x, axis=axis).exp()


def cross_entropy(logits: Tensor, labels: np.ndarray | Tensor, reduction: str = "mean") -> Tensor:
    """−log softmax(logits)[i, yᵢ], averaged (``"mean"``), summed (``"sum"``) or per row.

    ``logits``: (N, C) with N > 0; ``labels``: N integers in [0, C). One fused primitive,
    :class:`~lora_np.ops.SoftmaxCrossEntropy`; :func:`composite_cross_entropy` gives the
    same numbers through the general primitives.
    """
    y = labels.data if isinstance(labels, Tensor) else labels
    return ops.SoftmaxCrossEntropy.apply(logits, labels=y, reduction=reduction)  # checks y


def composite_cross_entropy(
    logits: Tensor, labels: np.ndarray | Tensor, reduction: str = "mean"
) -> Tensor:
    """:func:`cross_entropy` composed of primitives: log_softmax, pick ``[i, yᵢ]``, mean."""
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    ops.check_labels(logits.shape, y, "composite_cross_entropy")
    ops.check_reduction(reduction, "composite_cross_entropy")
    n = logits.shape[0]
    log_p = log_softmax(logits, axis=1)[np.arange(n), y]  # log p(yᵢ | xᵢ), one per row
    if reduction == "mean":  # −(1/N)·Σᵢ log p: the sign and the 1/N in one constant
        return log_p.sum() * (-1.0 / n)
    return _reduce(-log_p, reduction, "composite_cross_entropy")


def mse_loss(prediction: Tensor, target: Tensor | np.ndarray, reduction: str = "mean") -> Tensor:
    """(prediction − target)², averaged, summed or elementwise."""
    target_t = (
        target if isinstance(target, Tensor) else Tensor(np.asarray(target, prediction.dtype))
    )
    if prediction.shape != target_t.shape:
        raise ValueError(
            f"mse_loss: prediction shape {prediction.shape} != target shape {target_t.shape}"
        )
    diff = prediction - target_t
    return _reduce(diff * diff, reduction, "mse_loss")


def _reduce(values: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    ops.check_reduction(reduction, name)
    return values


def accuracy(logits: Tensor | np.ndarray, labels: np.ndarray | Tensor) -> float:
    """Fraction of rows whose arg-max equals the label (a number in [0, 1])."""
    z = np.asarray(logits.data if isinstance(logits, Tensor) else logits)
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: {z.shape[0]} predictions but {y.shape[0]} labels")
    return float(np.mean(np.argmax(z, axis=-1) == y))
