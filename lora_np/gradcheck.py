"""Finite-difference gradient checking: the tool that lets anyone verify any gradient.

For a function ``out = f(x₁, …, xₙ)`` we draw a random upstream gradient ``u`` of the
output's shape and compare, for every input, two ways of computing the gradient of the
scalar ``L(x) = ⟨u, f(x)⟩``:

* analytic: ``L.backward()`` through the engine (the VJP chain);
* numeric: central differences, ``∂L/∂xᵢ ≈ (L(x + ε eᵢ) − L(x − ε eᵢ)) / 2ε``,
  whose truncation error is O(ε²) and round-off error O(δ/ε) (δ = machine epsilon), so
  ε ≈ 1e-6 in float64 balances the two; in float32 no ε is good enough.

Why ``u`` is random and not all ones: with ``u = 1`` the check only sees column sums of
the Jacobian, and a backward rule that returns the right numbers in the wrong places (a
transpose written as a reshape) passes. A random ``u`` sees every entry.

A fast mode for large inputs compares one random directional derivative per input,
``(L(x + εv) − L(x − εv)) / 2ε``, with ``⟨∇L, v⟩`` — two evaluations instead of 2·size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lora_np.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when analytic and numeric gradients disagree."""


def _to_float64_leaf(value: Any) -> Tensor:
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    wants = value.requires_grad if isinstance(value, Tensor) else True
    if np.issubdtype(data.dtype, np.floating):
        return Tensor(np.array(data, dtype=np.float64), requires_grad=wants)
    return Tensor(np.array(data), requires_grad=False)


def _scalar_objective(
    fn: Callable[..., Tensor], tensors: list[Tensor], upstream: np.ndarray
) -> float:
    with no_grad():
        out = fn(*tensors)
    return float(np.sum(np.asarray(out.data, dtype=np.float64) * upstream))


def numerical_grad(
    fn: Callable[[Tensor], Tensor],
    x: Any,
    eps: float = 1e-6,
    upstream: np.ndarray | None = None,
    method: str = "central",
) -> np.ndarray:
    """Finite-difference gradient of ``⟨upstream, fn(x)⟩`` with respect to ``x``.

    ``upstream`` defaults to ones (so for a scalar ``fn`` this is plainly ``dfn/dx``).
    ``method``: ``"central"`` (error O(ε²)) or ``"forward"`` (error O(ε)). The dtype of
    ``x`` is kept, so you can watch float32 fail.
    """
    if method not in ("central", "forward"):
        raise ValueError(f"method must be 'central' or 'forward', got {method!r}")
    base = np.array(x.data if isinstance(x, Tensor) else x)
    if not np.issubdtype(base.dtype, np.floating):
        raise TypeError(f"numerical_grad needs a floating-point x, got dtype {base.dtype}")
    with no_grad():
        out0 = fn(Tensor(base))
    u = np.ones(out0.shape) if upstream is None else np.asarray(upstream, dtype=np.float64)
    if u.shape != out0.shape:
        raise ValueError(f"upstream has shape {u.shape}, expected the output shape {out0.shape}")

    def objective(arr: np.ndarray) -> float:
        with no_grad():
            return float(np.sum(np.asarray(fn(Tensor(arr)).data, dtype=np.float64) * u))

    f0 = objective(base) if method == "forward" else 0.0
    grad = np.zeros(base.shape, dtype=np.float64)
    flat = base.reshape(-1)  # a view: we perturb one element at a time, then restore it
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        f_plus = objective(base)
        if method == "central":
            flat[i] = old - eps
            f_minus = objective(base)
            grad.flat[i] = (f_plus - f_minus) / (2 * eps)
        else:
            grad.flat[i] = (f_plus - f0) / eps
        flat[i] = old
    return grad


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    *,
    fast: bool = False,
    seed: int = 0,
    name: str | None = None,
) -> bool:
    """Check the engine's gradients of ``fn(*inputs)`` against finite differences.

    Every floating input is copied to a float64 leaf; a Tensor input with
    ``requires_grad=False`` is held constant (not checked), as are integer inputs.
    Returns True, or raises :class:`GradcheckError` naming the input, its shape, the worst
    element, the analytic and numeric values and the error. An element passes when
    ``|analytic − numeric| <= atol + rtol·|numeric|``.
    """
    rng = np.random.default_rng(seed)
    tensors = [_to_float64_leaf(x) for x in inputs]
    checked = [i for i, t in enumerate(tensors) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one floating-point input that requires grad")
    label = name or getattr(fn, "__name__", type(fn).__name__)

    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: {label} must return a Tensor, got {type(out).__name__}")
    if not out.requires_grad:
        raise GradcheckError(f"gradcheck: the output of {label} does not depend on any input")
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    analytic = {
        i: np.zeros(tensors[i].shape) if tensors[i].grad is None else tensors[i].grad.copy()
        for i in checked
    }

    for i in checked:
        x = tensors[i]
        data = x.data
        if fast:
            v = rng.standard_normal(data.shape)
            original = data.copy()
            x.data = original + eps * v
            f_plus = _scalar_objective(fn, tensors, upstream)
            x.data = original - eps * v
            f_minus = _scalar_objective(fn, tensors, upstream)
            x.data = original
            numeric = np.array((f_plus - f_minus) / (2 * eps))
            exact = np.array(np.sum(analytic[i] * v))
            _compare(label, i, data.shape, exact, numeric, atol, rtol, directional=True)
            continue
        numeric = np.zeros(data.shape)
        flat = data.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            f_plus = _scalar_objective(fn, tensors, upstream)
            flat[j] = old - eps
            f_minus = _scalar_objective(fn, tensors, upstream)
            flat[j] = old
            numeric.flat[j] = (f_plus - f_minus) / (2 * eps)
        _compare(label, i, data.shape, analytic[i], numeric, atol, rtol, directional=False)
    return True


def _compare(
    label: str,
    index: int,
    shape: tuple[int, ...],
    analytic: np.ndarray,
    numeric: np.ndarray,
    atol: float,
    rtol: float,
    directional: bool,
) -> None:
    error = np.abs(analytic - numeric)
    allowed = atol + rtol * np.abs(numeric)
    if np.all(error <= allowed) and np.all(np.isfinite(analytic)):
        return
    excess = np.where(np.isfinite(error), error - allowed, np.inf)
    # plain ints, so the message reads "element (1, 2)", not "(np.int64(1), np.int64(2))"
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
    what = "directional derivative along a random v" if directional else f"element {worst}"
    raise GradcheckError(
        f"gradcheck failed for {label}, input {index} of shape {shape}: worst {what}: "
        f"analytic {float(analytic[worst]):.8g} vs numeric {float(numeric[worst]):.8g} "
        f"(abs error {float(error[worst]):.3g}, allowed {float(allowed[worst]):.3g} = "
        f"atol {atol:g} + rtol {rtol:g}·|numeric|); "
        f"{int(np.sum(error > allowed))} of {error.size} entries out of tolerance"
    )
