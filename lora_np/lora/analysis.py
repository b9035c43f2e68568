"""What LoRA learns: subspace similarity, update-vs-weight projections, spectra, DoRA's ΔM/ΔD.

Plain NumPy measurements on weight matrices (no autograd), used by the experiments
``subspace_similarity`` and ``variants``. Weights are in PyTorch's layout: a Linear
weight W is (out, in), LoRA's A is (r, in) and B is (out, r), ΔW = s·B·A is (out, in).

Subspace similarity (Hu et al. 2021, LoRA §7.2, Eq. 4)
------------------------------------------------------
For two learned A matrices (from runs with ranks r₁ and r₂), take the top-i and top-j
*right*-singular vectors of each, U_i (in, i) and U_j (in, j), and measure::

    φ(A₁, A₂, i, j) = ‖U_iᵀ U_j‖²_F / min(i, j)    ∈ [0, 1]

φ = 1 when one subspace contains the other, 0 when they are orthogonal. The squared
entries of U_iᵀU_j are squared cosines of angles between directions, so φ is the mean
squared cosine of the principal angles between the two subspaces.

Which singular vectors, and why: the paper says "right-singular unitary matrices" of A
but names them U, the letter usually kept for *left*-singular vectors, so the text can be
read either way. For A of shape (r, in) (the paper's A ∈ R^{r×k}, PyTorch's
``lora_A.weight``) the left-singular vectors live in R^r, the rank's own coordinates —
R^8 for one run, R^64 for the other — so they cannot be compared between ranks at all.
The right-singular vectors live in the input space R^in, which every run shares: they
are the input directions the adapter reads. We use those; there are min(r, in) of them,
so i runs up to r₁ and j up to r₂, as in the paper's figures.

Random baseline: for uniformly random subspaces of dimensions i and j in R^n,
E‖U_iᵀU_j‖²_F = i·j/n, so E φ = max(i, j)/n. :func:`random_subspace_similarity`
measures it on Gaussian matrices of the same shapes as the A's instead of trusting the
formula.

ΔW vs W (LoRA §7.3, Table 7)
----------------------------
Project W onto the r-dimensional subspaces that a matrix M picks: with U (out, r) and
V (in, r) the top-r left and right singular vectors of M, ‖Uᵀ W V‖_F (the paper writes
‖UᵀWVᵀ‖ with V as rows). M = ΔW asks "how much of W lies in the directions the update
uses"; M = W gives the largest value any U, V can give, (Σ_{i≤r} σᵢ(W)²)^½; random
orthonormal U, V give the chance level. The amplification factor
‖ΔW‖_F / ‖Uᵀ W V‖_F (U, V from ΔW) says how much the update magnifies directions that
were already in W.

DoRA's magnitude and direction (Liu et al. 2024, §3, Fig. 2)
------------------------------------------------------------
Write each output row of a weight as magnitude × unit direction. Between the weight at
the start, W₀, and at a checkpoint, W_t::

    ΔM = mean over rows of |‖W_t,row‖ − ‖W₀,row‖|
    ΔD = mean over rows of (1 − cos(W_t,row, W₀,row))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.rng import get_rng, random_orthonormal


def _matrix(value: Any, name: str) -> np.ndarray:
    """``value`` as a finite 2-D float64 array, or a clear error."""
    if hasattr(value, "data") and not isinstance(value, np.ndarray):
        value = value.data  # a Tensor or Parameter
    array = np.asarray(value)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has NaN or infinite entries")
    return array


def _count(value: Any, name: str, low: int, high: int) -> int:
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


# =========================================================================== subspace similarity


def right_singular_vectors(a: Any, k: int | None = None) -> np.ndarray:
    """The top-``k`` right-singular vectors of ``a`` (r, in) as columns: shape (in, k).

    Ordered by decreasing singular value; ``k`` defaults to min(r, in), the most there are.
    """
    a = _matrix(a, "a")
    most = min(a.shape)
    k = most if k is None else _count(k, "k", 1, most)
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    return vt[:k].T


def subspace_similarity(a1: Any, a2: Any, i: int, j: int) -> float:
    """φ(A₁, A₂, i, j) = ‖U_iᵀ U_j‖²_F / min(i, j), U from the right-singular vectors.

    ``a1`` (r₁, in) and ``a2`` (r₂, in) must share the input size; 1 ≤ i ≤ min(r₁, in),
    1 ≤ j ≤ min(r₂, in). See the module docstring for why the right-singular vectors.
    """
    a1, a2 = _matrix(a1, "a1"), _matrix(a2, "a2")
    _same_input(a1, a2)
    u_i = right_singular_vectors(a1, _count(i, "i", 1, min(a1.shape)))
    u_j = right_singular_vectors(a2, _count(j, "j", 1, min(a2.shape)))
    return float(np.sum((u_i.T @ u_j) ** 2) / min(i, j))


def subspace_similarity_grid(
    a1: Any, a2: Any, max_i: int | None = None, max_j: int | None = None
) -> np.ndarray:
    """φ(A₁, A₂, i, j) for every i = 1..max_i and j = 1..max_j: a (max_i, max_j) array.

    Entry ``[i − 1, j − 1]`` is φ at (i, j). One SVD per matrix: with C = U₁ᵀU₂ (all
    singular vectors), ‖U_iᵀU_j‖²_F is the sum of C² over the top-left i × j block, i.e. a
    2-D cumulative sum of C².
    """
    a1, a2 = _matrix(a1, "a1"), _matrix(a2, "a2")
    _same_input(a1, a2)
    max_i = min(a1.shape) if max_i is None else _count(max_i, "max_i", 1, min(a1.shape))
    max_j = min(a2.shape) if max_j is None else _count(max_j, "max_j", 1, min(a2.shape))
    overlap = right_singular_vectors(a1, max_i).T @ right_singular_vectors(a2, max_j)
    block_sums = np.cumsum(np.cumsum(overlap**2, axis=0), axis=1)
    i = np.arange(1, max_i + 1)[:, None]
    j = np.arange(1, max_j + 1)[None, :]
    return block_sums / np.minimum(i, j)


def random_subspace_similarity(
    shape1: tuple[int, int],
    shape2: tuple[int, int],
    draws: int = 100,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The chance level of :func:`subspace_similarity_grid`, measured.

    The mean grid over ``draws`` pairs of standard Gaussian matrices of shapes ``shape1``
    and ``shape2`` (their right-singular subspaces are uniformly random). Expect about
    max(i, j)/in at (i, j).
    """
    for name, shape in (("shape1", shape1), ("shape2", shape2)):
        if len(tuple(shape)) != 2:
            raise ValueError(f"{name} must be (rows, in), got {shape!r}")
        for n in shape:
            _count(n, f"{name} entries", 1, 10**9)
    if shape1[1] != shape2[1]:
        raise ValueError(f"the shapes must share the input size, got {shape1} and {shape2}")
    draws = _count(draws, "draws", 1, 10**9)
    rng = get_rng(rng)
    total = np.zeros((min(shape1), min(shape2)))
    for _ in range(draws):
        total += subspace_similarity_grid(
            rng.standard_normal(tuple(shape1)), rng.standard_normal(tuple(shape2))
        )
    return total / draws


def _same_input(a1: np.ndarray, a2: np.ndarray) -> None:
    if a1.shape[1] != a2.shape[1]:
        raise ValueError(
            f"a1 {a1.shape} and a2 {a2.shape} must share the input size (their second axis)"
        )


# =========================================================================== ΔW vs W


def top_singular_subspaces(m: Any, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(U, V): the top-``r`` left (out, r) and right (in, r) singular vectors of ``m``."""
    m = _matrix(m, "m")
    r = _count(r, "r", 1, min(m.shape))
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u[:, :r], vt[:r].T


def projected_norm(w: Any, u: Any, v: Any) -> float:
    """‖Uᵀ W V‖_F: the part of W (out, in) between the columns of U (out, r) and V (in, r)."""
    w, u, v = _matrix(w, "w"), _matrix(u, "u"), _matrix(v, "v")
    if u.shape[0] != w.shape[0] or v.shape[0] != w.shape[1]:
        raise ValueError(
            f"U must be (out, r) and V (in, r) for W of shape {w.shape}; "
            f"got U {u.shape} and V {v.shape}"
        )
    return float(np.linalg.norm(u.T @ w @ v))


def update_vs_weight(
    weight: Any,
    delta: Any,
    r: int,
    draws: int = 100,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """LoRA's Table 7 for one weight W (out, in) and its update ΔW (out, in), at rank r.

    Returns ``weight_norm`` ‖W‖_F, ``delta_norm`` ‖ΔW‖_F, and ‖UᵀWV‖_F with U, V the
    top-r singular vectors of ΔW (``proj_delta``), of W itself (``proj_weight``, the
    largest possible) and random orthonormal (``proj_random``, mean of ``draws``), plus
    ``amplification`` = ‖ΔW‖_F / proj_delta and the same ratio with the random projection
    (``amplification_random``).
    """
    weight, delta = _matrix(weight, "weight"), _matrix(delta, "delta")
    if weight.shape != delta.shape:
        raise ValueError(f"weight {weight.shape} and delta {delta.shape} must have one shape")
    r = _count(r, "r", 1, min(weight.shape))
    draws = _count(draws, "draws", 1, 10**9)
    if not np.any(delta):
        raise ValueError("update_vs_weight: ΔW is zero, so it has no top singular directions")
    rng = get_rng(rng)
    proj_delta = projected_norm(weight, *top_singular_subspaces(delta, r))
    proj_weight = projected_norm(weight, *top_singular_subspaces(weight, r))
    out, inp = weight.shape
    proj_random = float(
        np.mean(
            [
                projected_norm(
                    weight, random_orthonormal(out, r, rng), random_orthonormal(inp, r, rng)
                )
                for _ in range(draws)
            ]
        )
    )
    delta_norm = float(np.linalg.norm(delta))
    return {
        "r": r,
        "weight_norm": float(np.linalg.norm(weight)),
        "delta_norm": delta_norm,
        "proj_delta": proj_delta,
        "proj_weight": proj_weight,
        "proj_random": proj_random,
        "amplification": delta_norm / proj_delta if proj_delta > 0 else float("inf"),
        "amplification_random": delta_norm / proj_random,
    }


# =========================================================================== spectra


def singular_values(m: Any) -> np.ndarray:
    """The singular values of ``m``, largest first (float64)."""
    return np.linalg.svd(_matrix(m, "m"), compute_uv=False)


def energy_in_top(m: Any, k: int) -> float:
    """Share of ‖M‖²_F in the top-k singular values: Σ_{i≤k} σᵢ² / Σ σᵢ² ∈ [0, 1]."""
    sv = singular_values(m)
    k = _count(k, "k", 1, len(sv))
    total = float(np.sum(sv**2))
    if total == 0.0:
        raise ValueError("energy_in_top: the matrix is zero, so the share is undefined")
    return float(np.sum(sv[:k] ** 2) / total)


# =========================================================================== DoRA's ΔM / ΔD


def magnitude_direction_change(w0: Any, wt: Any) -> tuple[float, float]:
    """(ΔM, ΔD) between W₀ and W_t, both (out, in), row by row (one row per output unit).

    ΔM = mean |‖W_t,row‖ − ‖W₀,row‖| and ΔD = mean (1 − cos(W_t,row, W₀,row)), as in the
    DoRA paper's Eq. 2-3 (there per column of a (in, out) weight: the same thing).
    """
    w0, wt = _matrix(w0, "w0"), _matrix(wt, "wt")
    if w0.shape != wt.shape:
        raise ValueError(f"w0 {w0.shape} and wt {wt.shape} must have one shape")
    n0, nt = np.linalg.norm(w0, axis=1), np.linalg.norm(wt, axis=1)
    if np.any(n0 == 0) or np.any(nt == 0):
        raise ValueError("magnitude_direction_change: a zero row has no direction")
    cosine = np.sum(w0 * wt, axis=1) / (n0 * nt)
    return float(np.mean(np.abs(nt - n0))), float(np.mean(1.0 - cosine))


def correlation(x: Any, y: Any) -> float:
    """Pearson correlation of two equally long sequences (NaN if either is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(
            f"correlation needs two 1-D sequences of one length >= 2, got {x.shape}, {y.shape}"
        )
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(xc**2) * np.sum(yc**2))
    return float(np.sum(xc * yc) / denominator) if denominator > 0 else float("nan")
