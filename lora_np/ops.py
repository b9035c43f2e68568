"""The primitives: one :class:`Function` each, its forward next to its backward.

Notation in the docstrings: ``G`` is the upstream gradient dL/d(out), of the output's
shape; each backward returns the vector-Jacobian product ``dL/d(input) = G · d(out)/d(input)``.
When an input was broadcast in forward, its gradient may come back in the output's
shape: the engine (``tensor._sum_to_shape``) sums it back, in one place for all ops.

"Saves:" says what forward keeps for backward, and why. A primitive keeps only the
arrays its VJP reads, and only for the inputs that need a gradient
(``self.needs_input_grad``, set before forward runs): what it does not keep can be freed
as soon as the forward pass no longer uses it.

Everything not listed here (subtraction, mean, softmax, MSE, ...) is composed from
these, so it needs no backward of its own. :class:`SoftmaxCrossEntropy` is the one
fused loss: the same numbers as its composite (log_softmax, pick, mean) in one node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.tensor import Function, Tensor

# --------------------------------------------------------------------------- arithmetic


class Add(Function):
    """out = a + b (broadcasting).  VJP: dL/da = G, dL/db = G (summed to shape).

    Saves: nothing (the engine knows the input shapes to sum G back to).
    """

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grad, grad


class Neg(Function):
    """out = -a.  VJP: dL/da = -G.

    Saves: nothing.
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        return -a

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (-grad,)


class Mul(Function):
    """out = a * b (elementwise, broadcasting).  VJP: dL/da = G * b, dL/db = G * a.

    Saves: b if a needs a gradient (dL/da = G·b); a if b needs one (dL/db = G·a).
    """

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        needs_a, needs_b = self.needs_input_grad
        if needs_a:
            self.b = b
        if needs_b:
            self.a = a
        return a * b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        ga = grad * self.b if self.needs_input_grad[0] else None
        gb = grad * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """out = a / b.  VJP: dL/da = G / b, dL/db = -G * a / b² = -G * out / b.

    Saves: b if either input needs a gradient (both VJPs divide by b); out if b needs one.
    """

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a / b
        needs_a, needs_b = self.needs_input_grad
        if needs_a or needs_b:
            self.b = b
        if needs_b:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        ga = grad / self.b if self.needs_input_grad[0] else None
        gb = -grad * self.out / self.b if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """out = a ** p for a constant scalar p.  VJP: dL/da = G * p * a^(p-1).

    Saves: a (the VJP evaluates a^(p-1)).
    """

    def __init__(self, exponent: float) -> None:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError(
                f"Pow takes a constant scalar exponent, got {type(exponent).__name__}; "
                "write exp(b * log(a)) for a tensor exponent"
            )
        self.p = exponent

    def forward(self, a: np.ndarray) -> np.ndarray:
        if self.needs_input_grad[0]:
            self.a = a
        return a**self.p

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        if self.p == 0:  # a**0 = 1 is constant; p·a^(p-1) would give 0·∞ = nan at a = 0
            return (np.zeros_like(grad * self.a),)
        return (grad * self.p * self.a ** (self.p - 1),)


# --------------------------------------------------------------------------- elementwise


class Exp(Function):
    """out = exp(a).  VJP: dL/da = G * out.

    Saves: out (the VJP reads the output, not a).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        out = np.exp(a)
        if self.needs_input_grad[0]:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad * self.out,)


class Log(Function):
    """out = log(a) (natural).  VJP: dL/da = G / a.

    Saves: a (the VJP divides by it).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        if self.needs_input_grad[0]:
            self.a = a
        return np.log(a)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad / self.a,)


class Sqrt(Function):
    """out = √a.  VJP: dL/da = G / (2·out).

    Saves: out (the VJP reads the output, not a).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        out = np.sqrt(a)
        if self.needs_input_grad[0]:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad / (2 * self.out),)


class Tanh(Function):
    """out = tanh(a).  VJP: dL/da = G * (1 - out²).

    Saves: out (the VJP reads the output, not a).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        out = np.tanh(a)
        if self.needs_input_grad[0]:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad * (1 - self.out * self.out),)


def as_floating(a: np.ndarray) -> np.ndarray:
    """``a`` itself if it is floating point; else ``a`` cast to the floating-point dtype that
    NumPy's own ``np.tanh`` or ``np.exp`` would compute in (bool, int8, uint8: float16;
    int16: float32; wider integers: float64), for primitives whose steps would otherwise
    stay in, or be cast back to, an integer dtype."""
    if a.dtype.kind == "f":
        return a
    return a.astype(np.result_type(a.dtype, np.float16))


class Sigmoid(Function):
    """out = σ(a) = 1 / (1 + e^(-a)), computed stably.  VJP: dL/da = G * out * (1 - out).

    Saves: out (the VJP reads the output, not a).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        a = as_floating(a)
        # exp(-log(1 + e^-a)) never overflows, for either sign of a
        out = np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)
        if self.needs_input_grad[0]:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad * self.out * (1 - self.out),)


class ReLU(Function):
    """out = max(a, 0).  VJP: dL/da = G * [a > 0] (the subgradient 0 is taken at a = 0; at
    a NaN the gradient is 0 too, where PyTorch passes G through).

    Saves: the mask [a > 0] (booleans: a quarter of a float32 array, and a itself can go).
    """

    def forward(self, a: np.ndarray) -> np.ndarray:
        if self.needs_input_grad[0]:
            self.mask = a > 0
        return np.maximum(a, 0)  # NaN stays NaN (np.where(a > 0, a, 0) would hide it)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad * self.mask,)


# --------------------------------------------------------------------------- linear algebra


class MatMul(Function):
    """out = a @ b, with NumPy's rules: 2-D, batched (batch axes broadcast) and 1-D.

    VJP (2-D): dL/da = G · bᵀ,  dL/db = aᵀ · G.  Batched: the same on the last two axes;
    the engine sums over batch axes that were broadcast. A 1-D operand is treated as a
    row (a) or a column (b) vector and the added axis is removed again from its gradient.

    Saves: b if a needs a gradient (dL/da = G·bᵀ); a if b needs one (dL/db = aᵀ·G); and
    the operands' numbers of axes.
    """

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"matmul needs operands with at least one axis, got shapes {a.shape} and {b.shape}"
            )
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if k_a != k_b:
            raise ValueError(
                f"matmul shape mismatch: {a.shape} @ {b.shape} (the last axis of the left, "
                f"{k_a}, must equal the {'second-to-last' if b.ndim >= 2 else 'only'} axis "
                f"of the right, {k_b})"
            )
        try:
            out = a @ b
        except ValueError:  # the batch axes do not broadcast
            raise ValueError(
                f"matmul shape mismatch: {a.shape} @ {b.shape} (the batch axes "
                f"{a.shape[:-2]} and {b.shape[:-2]} do not broadcast)"
            ) from None
        needs_a, needs_b = self.needs_input_grad
        self.a_ndim, self.b_ndim = a.ndim, b.ndim
        if needs_a:
            self.b = b
        if needs_b:
            self.a = a
            # b is a transposed view (x @ W.T): see backward
            self.b_transposed = (
                a.ndim == 2 and b.ndim == 2 and b.flags.f_contiguous and not b.flags.c_contiguous
            )
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        needs_a, needs_b = self.needs_input_grad
        g = grad  # put back the axes that the 1-D operands removed from the output
        if self.b_ndim == 1:
            g = np.expand_dims(g, -1)  # (..., m) -> (..., m, 1)
        if self.a_ndim == 1:
            g = np.expand_dims(g, -2)  # (..., n) -> (..., 1, n); for 1-D @ 1-D: () -> (1, 1)
        ga = gb = None
        if needs_a:
            b = self.b
            b2 = b[:, None] if b.ndim == 1 else b  # column vector
            ga = g @ np.swapaxes(b2, -1, -2)
            if self.a_ndim == 1:
                ga = ga[..., 0, :]
        if needs_b:
            a = self.a
            if self.b_transposed:
                # (Gᵀ·a)ᵀ is the same aᵀ·G, laid out so that W's gradient comes back
                # C-ordered (no strided copy at the leaf)
                gb = (g.T @ a).T
            else:
                a2 = a[None, :] if a.ndim == 1 else a  # row vector
                gb = np.swapaxes(a2, -1, -2) @ g
            if self.b_ndim == 1:
                gb = gb[..., 0]
        return ga, gb


class Linear(Function):
    """out = x · Wᵀ + b (b optional): x (..., in), W (out, in), b (out,). A layer's affine map.

    VJP: dL/dx = G·W,  dL/dW = Gᵀ·x (over all rows: leading axes flattened),
    dL/db = G (the engine sums it over the rows, down to b's shape).

    The same numbers as ``x @ W.T + b`` through Transpose, MatMul and Add, in one node
    instead of three (a third of the engine's bookkeeping per layer), with dL/dW computed
    directly in W's (out, in) layout. ``nn.functional.linear`` uses it.

    Saves: x if W needs a gradient (dL/dW = Gᵀ·x); W if x needs one (dL/dx = G·W). So a
    frozen layer does not keep its input alive, and the first layer does not keep W.
    """

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if w.ndim != 2:
            raise ValueError(f"Linear needs a weight of shape (out, in), got shape {w.shape}")
        needs = self.needs_input_grad
        if needs[0]:
            self.w = w
        if needs[1]:
            self.x = x
        out = x @ w.T
        if b is None:
            return out
        if b.ndim == 1 and b.dtype == out.dtype:
            out += b  # the usual bias: added in place, no second (N, out) array
            return out
        return out + b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        needs = self.needs_input_grad
        gx = grad @ self.w if needs[0] else None
        gw = None
        if needs[1]:
            g, x = grad, self.x
            if x.ndim != 2:  # leading axes are rows: G (rows, out) and x (rows, in)
                g, x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
            gw = g.T @ x  # (out, in)
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (grad if needs[2] else None)


# --------------------------------------------------------------------------- reductions


def _normalise_axis(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:  # so a 0-d tensor has no axis at all, as in NumPy
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(int(ax) % ndim)
    return tuple(out)


class Sum(Function):
    """out = Σ over ``axis`` of a.  VJP: dL/da = G broadcast back over the summed axes.

    Saves: a's shape and the summed axes (no array).
    """

    def __init__(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.shape = a.shape
        self.axes = _normalise_axis(self.axis, a.ndim)
        return a.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        if not self.keepdims and np.ndim(grad) > 0:  # a 0-d total broadcasts as it is
            grad = np.expand_dims(grad, self.axes)
        return (np.full(self.shape, grad),)  # G copied into every position that was summed


class Max(Function):
    """out = max over ``axis`` of a.

    VJP: the gradient flows to the maximal elements; where several elements tie, it is
    shared equally among them (so the rule is the same whichever one NumPy would pick).

    Saves: the mask [a == max] (booleans) and the axes.
    """

    def __init__(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.axes = _normalise_axis(self.axis, a.ndim)
        out = np.max(a, axis=self.axes, keepdims=True)
        if self.needs_input_grad[0]:
            self.mask = a == out
        return out if self.keepdims else np.squeeze(out, axis=self.axes)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        if not self.keepdims:
            grad = np.expand_dims(grad, self.axes)
        count = self.mask.sum(axis=self.axes, keepdims=True)
        return (grad * self.mask / count,)


class LogSoftmax(Function):
    """out = a - logsumexp(a) along ``axis``, computed stably (max subtracted first).

    VJP: dL/da = G - softmax(a) · Σ_axis G   (softmax = exp(out)).

    Saves: out (the log-probabilities; the VJP's softmax is their exp).
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, a: np.ndarray) -> np.ndarray:
        shifted = a - a.max(axis=self.axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        if self.needs_input_grad[0]:
            self.out = out
        return out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad - np.exp(self.out) * grad.sum(axis=self.axis, keepdims=True),)


#: the reductions a loss accepts: the mean over rows, the sum, or one value per row
REDUCTIONS = ("mean", "sum", "none")


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of logits z (N, C) against class ids y (N,), fused and stable.

    lᵢ = −log softmax(zᵢ)[yᵢ] = logsumexp(zᵢ) − z[i, yᵢ] (the row maximum is subtracted
    before exp, so any logits are fine); out = Σᵢ lᵢ / N (``reduction="mean"``),
    Σᵢ lᵢ (``"sum"``) or the vector l (``"none"``). ``labels`` is a setting (a constant).

    VJP: dL/dz = (softmax(z) − onehot(y)) · G/N for the mean (· G for the sum; row i
    times Gᵢ for ``"none"``).

    Saves: the log-probabilities log softmax(z) (the VJP's softmax is their exp), if z
    needs a gradient; the labels are a setting.

    The same values as the composite ``log_softmax``, pick ``[i, yᵢ]``, mean (see
    ``nn.functional.composite_cross_entropy``): the same NumPy operations, in one node
    instead of four, and without the composite's scatter of G into an (N, C) array.
    """

    def __init__(self, labels: np.ndarray, reduction: str = "mean") -> None:
        check_reduction(reduction, "cross_entropy")
        self.labels, self.reduction = np.asarray(labels), reduction

    def forward(self, z: np.ndarray) -> np.ndarray:
        check_labels(z.shape, self.labels, "cross_entropy")
        shifted = z - z.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        if self.needs_input_grad[0]:
            self.log_probs = log_probs
        picked = log_probs[np.arange(z.shape[0]), self.labels]  # log p(yᵢ | zᵢ), one per row
        if self.reduction == "none":
            return -picked
        if self.reduction == "sum":
            return (-picked).sum()
        return -(picked.sum() * _one_over(z.shape[0], log_probs.dtype))  # −(1/N)·Σᵢ log p

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        rows = np.arange(self.log_probs.shape[0])
        if self.reduction == "none":  # row i scaled by its own Gᵢ
            gz = np.exp(self.log_probs) * grad[:, None]
            gz[rows, self.labels] -= grad
        else:  # one scale for every row: G/N for the mean, G for the sum
            n = self.log_probs.shape[0]
            k = grad * _one_over(n, self.log_probs.dtype) if self.reduction == "mean" else grad
            gz = np.exp(self.log_probs) * k
            gz[rows, self.labels] -= k
        return (gz,)


def check_reduction(reduction: str, name: str) -> None:
    """A loss's ``reduction`` is one of :data:`REDUCTIONS`; a ValueError naming ``name``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_labels(logits_shape: tuple[int, ...], labels: np.ndarray, name: str) -> None:
    """Logits (N, C) with N > 0, and N integer class ids in [0, C): else an error that
    names ``name`` and says what came."""
    if len(logits_shape) != 2:
        raise ValueError(f"{name}: logits must be (N, C), got shape {logits_shape}")
    if labels.dtype.kind not in "iu":  # signed or unsigned integers (not bool)
        raise TypeError(f"{name}: labels must be integers (class ids), got dtype {labels.dtype}")
    n, c = logits_shape
    if labels.shape != (n,):
        raise ValueError(
            f"{name}: expected {n} labels for logits {logits_shape}, got {labels.shape}"
        )
    if n == 0:
        raise ValueError(f"{name}: the batch is empty (logits of shape {logits_shape})")
    # the smallest and the largest label (argmin/argmax: a fraction of min()/max()'s overhead)
    low, high = labels[labels.argmin()], labels[labels.argmax()]
    if low < 0 or high >= c:
        raise ValueError(
            f"{name}: labels must be in [0, {c}) for {c} classes, got values in [{low}, {high}]"
        )


def _one_over(n: int, dtype: np.dtype) -> np.ndarray:
    """1/n rounded once to ``dtype``: the mean's factor, the same in forward and backward."""
    return np.asarray(1.0 / n, dtype=dtype)


# --------------------------------------------------------------------------- shape


class Reshape(Function):
    """out = a reshaped to ``shape``.  VJP: dL/da = G reshaped back to a's shape.

    Saves: a's shape (no array).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.in_shape = a.shape
        try:
            return a.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                f"into shape {self.shape}"
            ) from None

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad.reshape(self.in_shape),)


class Transpose(Function):
    """out = a with its axes permuted (reversed if ``axes`` is None).

    VJP: dL/da = G permuted by the inverse permutation (argsort of ``axes``). Note that
    this is *not* a reshape: a reshape has the right shape and the wrong elements, and
    only a random upstream gradient catches that (see gradcheck).

    Saves: the permutation (no array).
    """

    def __init__(self, axes: tuple[int, ...] | None = None) -> None:
        self.axes = None if axes is None else tuple(axes)

    def forward(self, a: np.ndarray) -> np.ndarray:
        axes = tuple(reversed(range(a.ndim))) if self.axes is None else self.axes
        in_range = all(-a.ndim <= ax < a.ndim for ax in axes)
        # negative axes are made positive here: argsort in backward needs 0..ndim-1
        perm = tuple(int(ax) % a.ndim for ax in axes) if in_range else ()
        if not in_range or sorted(perm) != list(range(a.ndim)):
            raise ValueError(f"transpose axes {axes} are not a permutation of {a.ndim} axes")
        self.perm = perm
        return np.transpose(a, perm)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (np.transpose(grad, np.argsort(self.perm)),)


class BroadcastTo(Function):
    """out = a broadcast to ``shape``.  VJP: G itself; the engine sums it back to a's shape.

    Saves: nothing.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, a: np.ndarray) -> np.ndarray:
        try:
            return np.broadcast_to(a, self.shape)
        except ValueError:
            raise ValueError(f"cannot broadcast shape {a.shape} to {self.shape}") from None

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad,)


class GetItem(Function):
    """out = a[index]: basic slices, integer arrays, boolean masks.

    VJP: dL/da = zeros of a's shape with G scattered into the selected places.

    How G is scattered depends on whether the index can select one element twice. Only an
    integer array can (``a[[0, 0]]``): each repeat must add its own gradient, so such an
    index scatters with ``np.add.at`` (a plain ``+=`` would keep only the last one). An
    index made only of ints, slices, ``None``, ``Ellipsis`` and boolean masks selects every
    element at most once, so ``out[index] = G`` is exact there and much faster. The choice
    is made once, in ``__init__``, by ``_selects_each_element_once``.

    Saves: a's shape and dtype (no array; the index is a setting).
    """

    def __init__(self, index: Any) -> None:
        self.index = _plain_index(index)
        self.no_repeats = _selects_each_element_once(self.index)

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.shape, self.dtype = a.shape, a.dtype
        return a[self.index]

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        out = np.zeros(self.shape, dtype=np.result_type(self.dtype, grad.dtype))
        if self.no_repeats:
            out[self.index] = grad  # each place is selected once: plain assignment is exact
        else:
            np.add.at(out, self.index, grad)  # repeated integer indices each add their G
        return (out,)


def _selects_each_element_once(index: Any) -> bool:
    """True if ``index`` is built only of basic parts and boolean masks.

    Ints, slices, ``None``, ``Ellipsis`` and boolean arrays can never pick one element twice;
    an integer array (of any shape, even 0-d) or anything else is treated as possibly
    repeating, which is always safe.
    """
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if part is None or part is Ellipsis or isinstance(part, (int, np.integer, slice, np.bool_)):
            continue
        if isinstance(part, np.ndarray) and part.dtype == np.bool_:
            continue
        return False
    return True


def _plain_index(index: Any) -> Any:
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, list):  # [] selects nothing (np.asarray([]) would be float)
        return np.asarray(index) if index else np.zeros(0, dtype=np.intp)
    return index
