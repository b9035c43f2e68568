"""Why gradcheck runs in float64 with ε ≈ 1e-6: the finite-difference U-curve.

The central difference ``(f(x + ε) − f(x − ε)) / 2ε`` has two errors that pull ε in
opposite directions:

* truncation: the Taylor remainder, ``f'''(x)·ε²/6`` — shrinks as ε shrinks;
* round-off: ``f`` is only known to about ``δ·|f|`` (δ = machine epsilon: 2.2e-16 in
  float64, 1.2e-7 in float32), and dividing by 2ε magnifies it to ``≈ δ·|f|/ε`` —
  grows as ε shrinks.

Their sum, ``C₁ε² + C₂δ/ε``, is smallest near ``ε* ∝ δ^(1/3)``: about 6e-6 in float64
(error ≈ δ^(2/3) ≈ 1e-10 relative) but about 5e-3 in float32, where the best error is
only ≈ δ^(2/3) ≈ 2e-5 and the default ε = 1e-6 is pure round-off noise.

The function checked is a LoRA layer followed by tanh,
``y = tanh(x·Wᵀ + s·(x·Aᵀ)·Bᵀ)`` (s = α/r), differentiated with respect to the adapter
weights A and B. The tanh matters: the bare layer is *linear* in A and in B separately,
and a central difference of a linear function has no truncation error at all (only the
round-off half of the U would show). The reference is the engine's analytic gradient in
float64, at the very same point (the float32 weights, widened exactly to float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.experiments import style
from lora_np.experiments.common import mean_interval, nan_array
from lora_np.gradcheck import numerical_grad
from lora_np.lora import LoRALinear
from lora_np.nn import functional_call
from lora_np.progress import progress_bar
from lora_np.rng import manual_seed
from lora_np.tensor import Tensor

IN_FEATURES, OUT_FEATURES, RANK, ALPHA, BATCH = 16, 12, 4, 8.0, 8
DEFAULT_GRADCHECK_EPS = 1e-6


def _lora_tanh(layer: LoRALinear, x: np.ndarray, a: Tensor, b: Tensor) -> Tensor:
    """tanh(layer(x)) with the adapter weights A, B replaced by the given tensors.

    The frozen weight and the input are cast to A's dtype, so the whole forward runs in
    one precision (float32 or float64).
    """
    dtype = a.data.dtype
    params = {
        "linear.weight": Tensor(layer.linear.weight.data.astype(dtype)),
        "lora_a.weight": a,
        "lora_b.weight": b,
    }
    return functional_call(layer, params, Tensor(x.astype(dtype))).tanh()


def _relative_error(numeric: np.ndarray, exact: np.ndarray) -> float:
    """‖numeric − exact‖₂ / ‖exact‖₂ over all checked entries."""
    return float(np.linalg.norm(numeric - exact) / np.linalg.norm(exact))


SEEDS = {True: 2, False: 5}  # random layers, points and upstream gradients per mode


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Finite-difference error vs ε in float32 and float64 for a LoRA layer (+ tanh), on
    ``SEEDS[quick]`` random draws (seeds 10·seed, 10·seed + 1, ...).

    Returns ``eps`` (descending, 1e-1 … 1e-13), ``error_float32`` and ``error_float64``
    (relative L2 error of the central-difference gradient of ⟨u, y⟩ with respect to
    (A, B), u a random upstream gradient; geometric mean over the draws, with
    ``error_*_ci``: 95% t-interval of log10 error, and ``error_*_per_seed``),
    ``best_eps_*`` and ``best_error_*`` (the minimum of each mean curve, and
    ``best_eps_*_per_seed``), and the errors at gradcheck's default ε = 1e-6.
    """
    seeds = [10 * seed + i for i in range(SEEDS[bool(quick)])]
    draws = [
        _one_draw(quick, s)
        for s in progress_bar(seeds, enabled=progress, desc="gradcheck_eps: draws")
    ]
    result = dict(draws[0])
    result.update(seed=seed, seeds=seeds)
    eps_values = result["eps"]
    for name in ("float32", "float64"):
        logs = np.log10([d[f"error_{name}"] for d in draws])  # (draws, ε)
        stats = [mean_interval(column) for column in logs.T]
        mean = [float(10 ** s["mean"]) for s in stats]
        result[f"error_{name}"] = mean
        result[f"error_{name}_ci"] = [
            [None, None] if s["ci"][0] is None else [10 ** s["ci"][0], 10 ** s["ci"][1]]
            for s in stats
        ]
        result[f"error_{name}_per_seed"] = [d[f"error_{name}"] for d in draws]
        best = int(np.argmin(mean))
        result[f"best_eps_{name}"] = eps_values[best]
        result[f"best_error_{name}"] = mean[best]
        result[f"best_eps_{name}_per_seed"] = [d[f"best_eps_{name}"] for d in draws]
        result[f"best_error_{name}_per_seed"] = [d[f"best_error_{name}"] for d in draws]
        index = eps_values.index(result["default_eps"])
        result[f"error_at_default_eps_{name}"] = mean[index]
    result["average"] = "geometric mean over the draws"
    return result


def _one_draw(quick: bool, seed: int) -> dict[str, Any]:
    """One random layer, point and upstream gradient (``manual_seed(seed)``): the U-curves."""
    rng = manual_seed(seed)
    # quick mode: every other ε on the same 1e-1 … 1e-13 range
    exponents = np.arange(-1.0, -13.01, -0.5 if quick else -0.25)
    eps_values = [float(10.0**e) for e in exponents]

    layer = LoRALinear(IN_FEATURES, OUT_FEATURES, rank=RANK, alpha=ALPHA)
    # a "trained" point: B ≠ 0 (at B = 0 the gradient with respect to A is exactly zero)
    weight = rng.standard_normal((OUT_FEATURES, IN_FEATURES)) / np.sqrt(IN_FEATURES)
    a32 = (rng.standard_normal((RANK, IN_FEATURES)) / np.sqrt(IN_FEATURES)).astype(np.float32)
    b32 = (rng.standard_normal((OUT_FEATURES, RANK)) / np.sqrt(RANK)).astype(np.float32)
    layer.linear.weight.data = weight.astype(np.float32)
    x = rng.standard_normal((BATCH, IN_FEATURES)).astype(np.float32)
    upstream = rng.standard_normal((BATCH, OUT_FEATURES))

    # the reference: the analytic gradient in float64 at the same (float32-valued) point
    a64 = Tensor(a32.astype(np.float64), requires_grad=True)
    b64 = Tensor(b32.astype(np.float64), requires_grad=True)
    _lora_tanh(layer, x, a64, b64).backward(upstream)
    exact = np.concatenate([a64.grad.ravel(), b64.grad.ravel()])

    errors: dict[str, list[float]] = {"float32": [], "float64": []}
    for eps in eps_values:
        for name, dtype in (("float32", np.float32), ("float64", np.float64)):
            a, b = a32.astype(dtype), b32.astype(dtype)
            grad_a = numerical_grad(
                lambda t, b=b: _lora_tanh(layer, x, t, Tensor(b)), a, eps=eps, upstream=upstream
            )
            grad_b = numerical_grad(
                lambda t, a=a: _lora_tanh(layer, x, Tensor(a), t), b, eps=eps, upstream=upstream
            )
            numeric = np.concatenate([grad_a.ravel(), grad_b.ravel()])
            errors[name].append(_relative_error(numeric, exact))

    result: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "function": "tanh(x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ), gradient w.r.t. A and B",
        "shapes": {"in": IN_FEATURES, "out": OUT_FEATURES, "rank": RANK, "batch": BATCH},
        "alpha": ALPHA,
        "eps": eps_values,
        "error_float32": errors["float32"],
        "error_float64": errors["float64"],
    }
    default_index = int(np.argmin(np.abs(np.log10(eps_values) - np.log10(DEFAULT_GRADCHECK_EPS))))
    for name in ("float32", "float64"):
        best = int(np.argmin(errors[name]))
        result[f"best_eps_{name}"] = eps_values[best]
        result[f"best_error_{name}"] = errors[name][best]
        result[f"error_at_default_eps_{name}"] = errors[name][default_index]
    result["default_eps"] = eps_values[default_index]
    result["machine_epsilon"] = {
        "float32": float(np.finfo(np.float32).eps),
        "float64": float(np.finfo(np.float64).eps),
    }
    return result


@style.styled
def plot(result: dict[str, Any]):
    """Log–log error vs ε for both precisions, with each minimum and the default ε marked."""
    fig, axes = style.figure(
        title="Finite differences: truncation vs round-off", panel_size=(6.4, 4.4)
    )
    ax = axes[0, 0]
    eps = np.array(result["eps"])
    for name in ("float32", "float64"):
        errors = nan_array(result[f"error_{name}"])
        n = len(result.get("seeds", [0]))
        label = (
            f"{name} ({n} draws): min {result[f'best_error_{name}']:.1e} "
            f"at ε = {result[f'best_eps_{name}']:.0e}"
        )
        ax.loglog(eps, errors, "o-", ms=3, color=style.COLORS[name], label=label)
        band = result.get(f"error_{name}_ci")
        if band and band[0][0] is not None:
            ax.fill_between(
                eps,
                nan_array([lo for lo, _ in band]),
                nan_array([hi for _, hi in band]),
                color=style.COLORS[name],
                alpha=0.2,
                lw=0,
            )
        ax.plot(
            result[f"best_eps_{name}"],
            result[f"best_error_{name}"],
            "*",
            ms=14,
            color=style.COLORS[name],
            markeredgecolor="black",
        )
    ax.axvline(result["default_eps"], color=style.COLORS["baseline"], ls="--", lw=1)
    ax.text(
        result["default_eps"],
        0.55,
        "gradcheck's default ε ",
        transform=ax.get_xaxis_transform(),
        rotation=90,
        va="center",
        ha="right",
        fontsize=8,
        color=style.COLORS["baseline"],
    )
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * 1e3)  # headroom for the note
    ax.invert_xaxis()  # read left to right as ε shrinks
    ax.set_xlabel("ε (shrinking →)")
    ax.set_ylabel("relative error of the numeric gradient")
    ax.set_title("LoRA layer + tanh, gradient w.r.t. A and B", fontsize=9)
    ax.legend(loc="lower right")
    style.note(
        ax,
        "left of each minimum: truncation ∝ ε²\nright of it: round-off ∝ δ/ε\n"
        "the two coincide where truncation dominates;\nfloat32 below ε ≈ 1e-9: x + ε == x",
        "upper left",
    )
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline: the best ε and error in each precision."""
    return (
        f"float64 best error {result['best_error_float64']:.1e} "
        f"at ε={result['best_eps_float64']:.0e}; "
        f"float32 best {result['best_error_float32']:.1e} at ε={result['best_eps_float32']:.0e} "
        f"(at ε=1e-6: {result['error_at_default_eps_float32']:.1e})"
    )
