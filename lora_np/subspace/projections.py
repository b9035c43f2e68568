"""Random projections P (D × d) for random-subspace training: dense, sparse, Fastfood.

Random-subspace training (Li et al. 2018, "Measuring the Intrinsic Dimension of Objective
Landscapes") writes all D weights of a network as ``θ = θ0 + P·θ_d`` and trains only the
d numbers ``θ_d``. This module holds the three ways of drawing P that the paper uses.
Each keeps Li et al.'s *global* normalisation: every column of P has (about) unit norm
over all D weights, so a step of length ε in θ_d moves the weights by about ε.

==========  ============================  ==============  ==========================
projection  what P is                     memory          cost of P·θ_d (and Pᵀ·g)
==========  ============================  ==============  ==========================
dense       Gaussian, columns normalised  d·D numbers     d·D
sparse      about √D nonzeros ±1/√k per   d·√D numbers    d·√D
            column (density ≈ 1/√D)
fastfood    H G Π H B, truncated to D     O(D)            O(D log D)
==========  ============================  ==============  ==========================

Each projection is an autograd primitive (a :class:`~lora_np.tensor.Function`): forward
computes ``P·θ_d`` and backward the vector-Jacobian product, which for a linear map is the
transpose, ``dL/dθ_d = Pᵀ·G``. P itself is a constant: it is passed to the primitive as a
setting, never as an input that could receive a gradient.

The classes :class:`DenseProjection`, :class:`SparseProjection` and
:class:`FastfoodProjection` draw and hold the random numbers; calling one on a Tensor
``θ_d`` (shape ``(d,)``) returns the Tensor ``P·θ_d`` (shape ``(D,)``). Use
:func:`make_projection` to pick one by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.rng import get_rng
from lora_np.tensor import Function, Tensor

#: The dense projection refuses to allocate more than this many bytes for P (d·D·itemsize).
#: Override per call with ``max_bytes=`` (or ``dense_budget_bytes=`` on SubspaceModel).
DENSE_MEMORY_BUDGET_BYTES: int = 512 * 2**20

PROJECTIONS: tuple[str, ...] = ("dense", "sparse", "fastfood")


# =========================================================================== Walsh–Hadamard


def hadamard(n: int, dtype: Any = np.float64) -> np.ndarray:
    """The unnormalised Sylvester–Hadamard matrix H_n (entries ±1), n a power of two.

    H_1 = [1],  H_2n = [[H_n, H_n], [H_n, −H_n]].  H_n is symmetric and H_n·H_n = n·I,
    so H_n/√n is orthogonal. Used for small blocks inside :func:`fwht` and in tests.
    """
    _check_power_of_two(n, "hadamard")
    h = np.ones((1, 1), dtype=dtype)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def fwht(x: np.ndarray) -> np.ndarray:
    """The fast Walsh–Hadamard transform H_L·x of a vector of length L = 2^k (unnormalised).

    The same result as ``hadamard(L) @ x`` in O(L log L) operations instead of O(L²), and
    without ever building H_L. Returns a new array; ``x`` is not modified.

    The idea is Sylvester's recursion, H_2n = H_2 ⊗ H_n. Write an index of x in binary:
    H_L = H_2 ⊗ H_2 ⊗ ... ⊗ H_2 acts on each of its k bits separately, and the
    textbook algorithm does one *stage* per bit, a butterfly that pairs the elements
    h = 2^bit apart and replaces (a, b) by (a + b, a − b).

    Here several bits are done at once, because H_r ⊗ ... is the same thing grouped
    (H_8 = H_2 ⊗ H_2 ⊗ H_2): view x as an array of shape (L/(r·h), r, h) — the middle axis
    is log2(r) consecutive bits, starting at bit log2(h) — and multiply that axis by the
    small matrix H_r. In NumPy this is one matrix product per group of bits instead of a
    pass over memory per bit, which is several times faster. The groups, lowest bits
    first:

    * the lowest 5 bits: x as an (L/32, 32) matrix, times H_32 on the right;
    * then 3 bits at a time: ``np.matmul(H_8, x.reshape(-1, 8, h))``;
    * the highest 4 bits: H_16 times x as a (16, L/16) matrix.

    (The group sizes are tuning knobs — measured on the 2M-long vectors of the
    784-1024-1024-10 MLP — not part of the math.)
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"fwht expects a 1-D array, got shape {x.shape}")
    length = x.shape[0]
    _check_power_of_two(length, "fwht")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    low = min(length, _FWHT_LOW)
    a = x.reshape(-1, low) @ _hadamard_cached(low, x.dtype)  # bits 0 .. log2(low) - 1
    top = min(length // low, _FWHT_TOP)
    h = low
    while h < length // top:  # the middle bits, a few at a time
        r = min(_FWHT_MIDDLE, length // top // h)
        a = np.matmul(_hadamard_cached(r, x.dtype), a.reshape(-1, r, h))
        h *= r
    if top > 1:  # the highest log2(top) bits
        a = _hadamard_cached(top, x.dtype) @ a.reshape(top, -1)
    return a.reshape(-1)


#: how many bits each matrix-product group of :func:`fwht` handles (as 2^bits)
_FWHT_LOW, _FWHT_MIDDLE, _FWHT_TOP = 32, 8, 16
_HADAMARD_CACHE: dict[tuple[int, str], np.ndarray] = {}


def _hadamard_cached(n: int, dtype: np.dtype) -> np.ndarray:
    key = (n, np.dtype(dtype).str)
    if key not in _HADAMARD_CACHE:
        _HADAMARD_CACHE[key] = hadamard(n, dtype=dtype)
    return _HADAMARD_CACHE[key]


def _check_power_of_two(n: int, where: str) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1 or (n & (n - 1)) != 0:
        raise ValueError(f"{where}: the length must be a power of two, got {n!r}")


# =========================================================================== primitives


class DenseProject(Function):
    """out = P·θ with a constant dense matrix P of shape (D, d).

    VJP: dL/dθ = Pᵀ·G.
    """

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    def forward(self, theta: np.ndarray) -> np.ndarray:
        _check_theta(theta, self.matrix.shape[1], "DenseProject")
        return self.matrix @ theta

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (self.matrix.T @ grad,)


class SparseProject(Function):
    """out = P·θ with a constant sparse P stored column by column.

    Column j of P has k nonzeros: at rows ``rows[j, :]`` with values ``values[j, :]``
    (``rows`` and ``values`` have shape (d, k); the rows of one column are distinct). This
    is a hand-written compressed-column format: k is the same for every column, so the
    nonzeros fit in two rectangular arrays.

    * forward: out[i] = Σ over (j, t) with rows[j, t] = i of values[j, t]·θ[j] — a
      scatter-add, computed with ``np.bincount`` (weights summed per row index).
    * VJP: dL/dθ[j] = Σ_t values[j, t]·G[rows[j, t]] — a gather and a row sum, i.e. Pᵀ·G.
    """

    def __init__(self, rows: np.ndarray, values: np.ndarray, num_rows: int) -> None:
        self.rows, self.values, self.num_rows = rows, values, int(num_rows)

    def forward(self, theta: np.ndarray) -> np.ndarray:
        _check_theta(theta, self.rows.shape[0], "SparseProject")
        weights = (self.values * theta[:, None]).reshape(-1)
        out = np.bincount(self.rows.reshape(-1), weights=weights, minlength=self.num_rows)
        return out.astype(np.result_type(theta.dtype, self.values.dtype), copy=False)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return ((self.values * grad[self.rows]).sum(axis=1),)


class FastfoodProject(Function):
    """out = s · (H G Π H B · pad(θ))[:D], the Fastfood transform (Le et al. 2013) as used by
    Li et al. 2018 for random-subspace training.

    With L = 2^⌈log2 D⌉: pad(θ) puts θ (length d ≤ D ≤ L) into the first d of L slots and
    zeros elsewhere; B = diag(signs) (random ±1); H = the unnormalised L×L Walsh–Hadamard
    matrix (:func:`fwht`); Π = a random permutation, (Π x)[i] = x[perm[i]];
    G = diag(gauss) (standard normal); [:D] keeps the first D entries; s = ``scale``.

    Everything is diagonal, a permutation or symmetric (Hᵀ = H), so the transpose runs
    the same chain backwards:

    VJP: dL/dθ = (B H Πᵀ G H · pad_L(s·G_up))[:d], where (Πᵀ y)[perm[i]] = y[i] and
    pad_L puts the upstream gradient G_up (length D) into L slots.

    The H next to the short θ is cheap. Let n = 2^⌈log2 d⌉ and split an index of L
    into (block, offset) = (i // n, i % n). Then H_L = H_{L/n} ⊗ H_n, and since the first
    column of H_{L/n} is all ones:

    * forward, a vector x supported on the first n entries: (H_L x)[i] = (H_n x[:n])[i % n]
      — the short transform repeated L/n times, so Π of it is a gather from n numbers;
    * backward, only the first d entries of H_L z are needed: (H_L z)[:n] = H_n·(Σ over
      blocks b of z[b·n : (b+1)·n]).

    So one step costs two full transforms of length L (not four) plus O(L) passes.
    """

    def __init__(
        self, signs: np.ndarray, perm: np.ndarray, gauss: np.ndarray, scale: float, num_rows: int
    ) -> None:
        self.signs, self.perm, self.gauss = signs, perm, gauss
        self.scale, self.num_rows = scale, int(num_rows)

    def forward(self, theta: np.ndarray) -> np.ndarray:
        length = self.signs.shape[0]
        _check_theta(theta, None, "FastfoodProject")
        d = theta.shape[0]
        if d > length:
            raise ValueError(f"FastfoodProject: θ has {d} entries, more than L = {length}")
        dtype = np.result_type(theta.dtype, self.gauss.dtype)
        n = 1 << (d - 1).bit_length()  # the short block: d <= n <= L, n a power of two
        short = np.zeros(n, dtype=dtype)
        # B·pad(θ), first n entries (the rest are 0); the scale s is linear, so it can be
        # applied here, on d numbers, instead of on D outputs
        short[:d] = theta * (self.signs[:d] * dtype.type(self.scale))
        short = fwht(short)  # H, on the short block: (H_L x)[i] = (H_n x[:n])[i % n]
        x = short[self.perm & (n - 1)]  # Π applied to the repeated block (i & (n-1) = i % n)
        x *= self.gauss  # G
        x = fwht(x)  # H, full length
        self.d, self.n = d, n
        return x[: self.num_rows]  # [:D]

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        length, n = self.signs.shape[0], self.n
        y = np.zeros(length, dtype=np.result_type(grad.dtype, self.gauss.dtype))
        y[: self.num_rows] = grad  # [:D]ᵀ: pad with zeros
        y = fwht(y)  # Hᵀ = H, full length
        y *= self.gauss  # Gᵀ = G
        z = np.empty_like(y)
        z[self.perm] = y  # Πᵀ
        z = fwht(z.reshape(-1, n).sum(axis=0))  # Hᵀ = H, first n entries only
        # Bᵀ = B and s, then drop the padding
        return (z[: self.d] * (self.signs[: self.d] * z.dtype.type(self.scale)),)


def _check_theta(theta: np.ndarray, d: int | None, where: str) -> None:
    if theta.ndim != 1 or (d is not None and theta.shape[0] != d):
        expected = "(d,)" if d is None else f"({d},)"
        raise ValueError(f"{where}: θ must have shape {expected}, got {theta.shape}")


# =========================================================================== drawing P


def _check_sizes(num_rows: Any, d: Any, where: str) -> None:
    for name, value in (("D", num_rows), ("d", d)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")


def draw_dense(
    num_rows: int, d: int, dtype: Any = np.float32, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A (D, d) matrix with i.i.d. N(0, 1) entries, each column then scaled to unit norm."""
    _check_sizes(num_rows, d, "draw_dense")
    rng = get_rng(rng)
    matrix = rng.standard_normal((num_rows, d), dtype=_float_dtype(dtype))
    matrix /= np.linalg.norm(matrix, axis=0, keepdims=True)
    return matrix


def sparse_nonzeros_per_column(num_rows: int) -> int:
    """k = round(√D) (at least 1): Li's "very sparse" density 1/√D, per column."""
    return max(1, round(float(np.sqrt(num_rows))))


def draw_sparse(
    num_rows: int, d: int, dtype: Any = np.float32, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The nonzeros of a very sparse random projection (Li, Hastie & Church 2006).

    Each column gets k = round(√D) distinct rows, chosen uniformly, each holding ±1/√k
    with a random sign: density k/D ≈ 1/√D and every column has norm exactly 1.
    Returns ``rows`` (int64, shape (d, k)) and ``values`` (shape (d, k)).
    """
    _check_sizes(num_rows, d, "draw_sparse")
    rng = get_rng(rng)
    k = sparse_nonzeros_per_column(num_rows)
    rows = np.empty((d, k), dtype=np.int64)
    for j in range(d):  # distinct rows within a column: sample without replacement
        rows[j] = rng.choice(num_rows, size=k, replace=False)
    signs = rng.integers(0, 2, size=(d, k)) * 2 - 1
    values = (signs / np.sqrt(k)).astype(_float_dtype(dtype))
    return rows, values


def draw_fastfood(
    num_rows: int, dtype: Any = np.float32, rng: np.random.Generator | None = None
) -> dict[str, Any]:
    """The random parts of a Fastfood transform for D = ``num_rows`` outputs.

    Returns the settings of :class:`FastfoodProject`: ``signs`` (B), ``perm`` (Π),
    ``gauss`` (G), all of length L = 2^⌈log2 D⌉, the ``scale`` s and ``num_rows`` D.

    Why s = 1/(‖G‖·√D) gives columns of norm about 1. Take column j, v = H G Π H B e_j.
    B e_j = ±e_j; H e_j is a ±1 vector; Π only reorders it; so G Π H B e_j has entries
    ±G_i and norm ‖G‖. H/√L is orthogonal, so ‖v‖² = L·‖G‖² over all L rows, and each row
    carries on average ‖G‖² of it (E[v_r²] = Σ_i G_i² over the random signs). Keeping the
    first D rows leaves E‖v[:D]‖² = D·‖G‖², hence s = 1/(‖G‖·√D). When D = L the columns
    have norm exactly 1; otherwise their squared norms scatter around 1 (see the tests).
    """
    rng = get_rng(rng)
    if not isinstance(num_rows, (int, np.integer)) or num_rows < 1:
        raise ValueError(f"draw_fastfood: D must be a positive int, got {num_rows!r}")
    length = 1 << (int(num_rows) - 1).bit_length()  # L = 2^⌈log2 D⌉
    dtype = _float_dtype(dtype)
    signs = (rng.integers(0, 2, size=length) * 2 - 1).astype(dtype)
    perm = rng.permutation(length)
    gauss = rng.standard_normal(length, dtype=dtype)
    scale = 1.0 / (float(np.linalg.norm(gauss.astype(np.float64))) * np.sqrt(num_rows))
    return {"signs": signs, "perm": perm, "gauss": gauss, "scale": scale, "num_rows": num_rows}


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"projections are drawn in float32 or float64, got dtype {dtype}")
    return dtype


# =========================================================================== projections


class Projection:
    """A drawn random projection P (D × d): call it on θ_d (a Tensor of shape (d,)).

    Attributes: ``name`` ("dense", "sparse" or "fastfood"), ``D``, ``d``, ``dtype``,
    ``nbytes`` (memory held for P).
    """

    name = ""

    def __init__(self, D: int, d: int, dtype: Any) -> None:
        for label, value in (("D", D), ("d", d)):
            if not is_int(value):
                raise TypeError(f"{type(self).__name__}: {label} must be an int, got {value!r}")
        if d < 1 or d > D:
            raise ValueError(
                f"{type(self).__name__}: need 1 <= d <= D, got d = {d} for D = {D} weights"
            )
        self.D, self.d, self.dtype = int(D), int(d), _float_dtype(dtype)

    def __call__(self, theta_d: Tensor) -> Tensor:
        if not isinstance(theta_d, Tensor):
            raise TypeError(f"{self.name} projection: expected a Tensor θ_d, got {type(theta_d)}")
        if theta_d.shape != (self.d,):
            raise ValueError(
                f"{self.name} projection: θ_d must have shape ({self.d},), got {theta_d.shape}"
            )
        return self._apply(theta_d)

    def _apply(self, theta_d: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(D={self.D}, d={self.d}, dtype={self.dtype}, "
            f"nbytes={self.nbytes})"
        )


class DenseProjection(Projection):
    """P with i.i.d. Gaussian entries and unit-norm columns, stored as a (D, d) array.

    Refuses (ValueError) when d·D·itemsize exceeds ``max_bytes`` (default
    :data:`DENSE_MEMORY_BUDGET_BYTES`): use the Fastfood projection for large D·d.
    """

    name = "dense"

    def __init__(
        self,
        D: int,
        d: int,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(D, d, dtype)
        budget = DENSE_MEMORY_BUDGET_BYTES if max_bytes is None else int(max_bytes)
        needed = self.D * self.d * self.dtype.itemsize
        if needed > budget:
            raise ValueError(
                f"dense projection: P would need D·d·itemsize = {self.D}·{self.d}·"
                f"{self.dtype.itemsize} bytes = {needed / 2**20:.1f} MiB, above the budget of "
                f"{budget / 2**20:.1f} MiB. Use projection='fastfood' (O(D) memory, "
                f"O(D log D) per step) or 'sparse', or raise the budget (max_bytes / "
                f"dense_budget_bytes)."
            )
        self.matrix = draw_dense(self.D, self.d, self.dtype, rng)

    def _apply(self, theta_d: Tensor) -> Tensor:
        return DenseProject.apply(theta_d, matrix=self.matrix)

    @property
    def nbytes(self) -> int:
        return self.matrix.nbytes


class SparseProjection(Projection):
    """P with about √D nonzeros ±1/√k per column (density ≈ 1/√D), unit-norm columns."""

    name = "sparse"

    def __init__(
        self, D: int, d: int, dtype: Any = np.float32, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__(D, d, dtype)
        self.rows, self.values = draw_sparse(self.D, self.d, self.dtype, rng)

    def _apply(self, theta_d: Tensor) -> Tensor:
        return SparseProject.apply(theta_d, rows=self.rows, values=self.values, num_rows=self.D)

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.values.nbytes


class FastfoodProjection(Projection):
    """P = s·(H G Π H B)[:D, :d]: never stored, applied in O(L log L) with L = 2^⌈log2 D⌉.

    d ≤ D ≤ L always holds, so one Fastfood block (L columns) is enough: θ_d is padded
    with zeros to length L, which selects the first d columns.
    """

    name = "fastfood"

    def __init__(
        self, D: int, d: int, dtype: Any = np.float32, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__(D, d, dtype)
        self.settings = draw_fastfood(self.D, self.dtype, rng)
        self.L = int(self.settings["signs"].shape[0])

    def _apply(self, theta_d: Tensor) -> Tensor:
        return FastfoodProject.apply(theta_d, **self.settings)

    @property
    def nbytes(self) -> int:
        s = self.settings
        return s["signs"].nbytes + s["perm"].nbytes + s["gauss"].nbytes


def make_projection(
    kind: str,
    D: int,
    d: int,
    *,
    dtype: Any = np.float32,
    rng: np.random.Generator | None = None,
    dense_budget_bytes: int | None = None,
) -> Projection:
    """Draw a projection by name: "dense", "sparse" or "fastfood"."""
    if kind == "dense":
        return DenseProjection(D, d, dtype, rng, max_bytes=dense_budget_bytes)
    if kind == "sparse":
        return SparseProjection(D, d, dtype, rng)
    if kind == "fastfood":
        return FastfoodProjection(D, d, dtype, rng)
    raise ValueError(f"unknown projection {kind!r}; expected one of {list(PROJECTIONS)}")
