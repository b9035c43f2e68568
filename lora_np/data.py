"""Data for the toy experiments: the 8×8 digits, splitting, standardising and batching.

Two tasks live here (DESIGN.md §5):

(a) **Digits.** The 1,797 8×8 UCI handwritten digits (Alpaydin & Kaynak, 1998; CC BY 4.0)
    ship inside the package as ``lora_np/datasets/digits.npz``, so nothing is downloaded
    and scikit-learn is not needed. :func:`load_digits` checks the file's SHA-256 before
    reading it, and reads it with ``allow_pickle=False`` (an ``.npz`` may otherwise carry
    pickled Python objects, which can run code when loaded).

(b) **Teacher–student.** A random teacher network labels Gaussian inputs; a second teacher
    differs from the first by a planted rank-k update of one weight matrix. Fine-tuning a
    model of teacher A into teacher B is then a task whose "intrinsic rank" is known,
    which is what the LoRA rank experiments need (see :func:`make_teacher`,
    :func:`teacher_dataset`, :func:`planted_shift`, :func:`teacher_student_task`).

Arrays here are plain NumPy (features float32, labels int64); wrap them in
:class:`lora_np.Tensor` when feeding a model.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lora_np.nn import init
from lora_np.nn.modules import MLP, Linear, Module
from lora_np.rng import get_rng
from lora_np.tensor import Tensor, no_grad

# --------------------------------------------------------------------------- digits

#: SHA-256 of the shipped ``lora_np/datasets/digits.npz`` (written by
#: ``tools/make_digits_npz.py``, which produces byte-identical files on every run).
DIGITS_SHA256 = "cd0cddf88f320e80304e5478421d2660b6ca74312e7696b596224317e14864f6"

#: How many images of each digit 0..9 the dataset holds (1,797 in all).
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)

DIGITS_CITATION = (
    "Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits "
    "[Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49"
)


def _read_digits_bytes(path: str | Path | None) -> tuple[bytes, str]:
    """The raw bytes of the digits archive and a name for it to use in errors."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"load_digits: no file at {str(path)!r}")
        return path.read_bytes(), str(path)
    resource = resources.files("lora_np") / "datasets" / "digits.npz"
    if not resource.is_file():
        raise FileNotFoundError(
            "load_digits: the packaged file lora_np/datasets/digits.npz is missing; "
            "reinstall lora_np (it ships as package data)"
        )
    return resource.read_bytes(), "lora_np/datasets/digits.npz"


def load_digits(
    dtype: Any = np.float32, *, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The UCI 8×8 digits: ``X`` of shape (1797, 64) and labels ``y`` of shape (1797,).

    Each row of ``X`` is one 8×8 image, row by row; each pixel counts the "on" pixels of a
    4×4 block of the original 32×32 bitmap, so values are integers 0..16 (returned as
    ``dtype``, float32 by default, unscaled). ``y`` holds the digit 0..9 as int64.

    The file's SHA-256 must equal :data:`DIGITS_SHA256`: a truncated or altered file is an
    error, not silently wrong data. ``path`` reads another copy of the file instead of
    the packaged one (the same checksum applies).

    Licence CC BY 4.0; cite :data:`DIGITS_CITATION`.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"load_digits: dtype must be a floating dtype, got {dtype}")
    raw, name = _read_digits_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(
            f"load_digits: {name} is corrupt or not the shipped digits file: its SHA-256 "
            f"is {digest}, expected {DIGITS_SHA256}. Reinstall lora_np, or rebuild the file "
            "with tools/make_digits_npz.py"
        )
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
    return X.astype(dtype), y.astype(np.int64)


# --------------------------------------------------------------------------- splitting


def _check_pair(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 1 or y.ndim < 1:
        raise ValueError(
            f"{where}: X and y must be arrays of samples, got shapes {X.shape}, {y.shape}"
        )
    if len(X) != len(y):
        raise ValueError(
            f"{where}: X and y must have the same number of samples, got X {X.shape} "
            f"({len(X)} samples) and y {y.shape} ({len(y)} samples)"
        )
    return X, y


def _test_count(test_size: float | int, n: int) -> int:
    """How many of ``n`` samples go to the test set (a fraction, or a count)."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.number)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    else:
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
        n_test = round(test_size * n)
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} puts {n_test} of {n} samples in the test set; "
            "both sets need at least one sample"
        )
    return n_test


def _stratified_counts(class_sizes: np.ndarray, n_test: int) -> np.ndarray:
    """Per-class test counts proportional to class sizes, summing exactly to ``n_test``.

    Each class gets ``floor(n_test · n_c / n)``; the samples left over go, one each, to
    the classes with the largest remainders (Hamilton's "largest remainder" method).
    """
    n = class_sizes.sum()
    quota = n_test * class_sizes / n
    counts = np.floor(quota).astype(np.int64)
    leftover = n_test - counts.sum()
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:leftover]] += 1
    return counts


def train_test_split(
    X: np.ndarray,
    y: np.ndarray,
    test_size: float | int = 0.25,
    stratify: bool = True,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(X_train, y_train, X_test, y_test)`` (note: pairs, unlike scikit-learn).

    ``test_size`` is a fraction of the samples (rounded) or a number of samples.

    With ``stratify=True`` each class keeps its share: class c, with n_c of the n samples,
    sends about ``n_test · n_c / n`` samples to the test set (rounded so the total is
    exact, see :func:`_stratified_counts`), chosen at random within the class. Otherwise
    the test set is a uniformly random subset. Both sets keep the original order of the
    samples. Same ``rng`` seed, same split.
    """
    X, y = _check_pair(X, y, "train_test_split")
    rng = get_rng(rng)
    n = len(y)
    n_test = _test_count(test_size, n)
    if stratify:
        if y.ndim != 1:
            raise ValueError(f"train_test_split: stratify needs 1-d labels, got shape {y.shape}")
        classes, inverse, class_sizes = np.unique(y, return_inverse=True, return_counts=True)
        counts = _stratified_counts(class_sizes, n_test)
        test_parts = []
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            test_parts.append(rng.permutation(members)[: counts[c]])
        test_index = np.sort(np.concatenate(test_parts))
    else:
        test_index = np.sort(rng.permutation(n)[:n_test])
    is_test = np.zeros(n, dtype=bool)
    is_test[test_index] = True
    return X[~is_test], y[~is_test], X[is_test], y[is_test]


# --------------------------------------------------------------------------- standardising


class Standardizer:
    """Per-feature standardisation ``z = (x − μ) / σ``, with μ and σ from the training set.

    Fit on the training set only: using test statistics would leak information about the
    test set into the model. μ and σ (the population standard deviation, ddof = 0) are
    computed in float64. A constant feature (σ = 0 up to rounding, e.g. a digits pixel that
    is always blank) gets σ := 1, so it maps to ``x − μ`` (0 on the training set) instead
    of dividing by zero. ``transform`` keeps a floating input's dtype (integers become
    float32).
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Standardizer:
        X = np.asarray(X)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"Standardizer.fit expects a non-empty 2-d array, got shape {X.shape}")
        X64 = X.astype(np.float64)
        mean = X64.mean(axis=0)
        std = X64.std(axis=0)
        # "zero" up to the rounding error of the mean (a column of 0.1s has std ~1e-17)
        constant = std <= 16 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, std)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("Standardizer.transform called before fit")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"Standardizer.transform expects shape (n, {self.mean_.shape[0]}), got {X.shape}"
            )
        out_dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float32)
        return ((X.astype(np.float64) - self.mean_) / self.scale_).astype(out_dtype)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def __repr__(self) -> str:
        state = "unfitted" if self.mean_ is None else f"{self.mean_.shape[0]} features"
        return f"Standardizer({state})"


def standardize(train_X: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardise ``train_X`` and every array in ``others`` with train_X's statistics.

    ``X_train, X_test = standardize(X_train, X_test)``; see :class:`Standardizer`.
    """
    scaler = Standardizer().fit(train_X)
    return (scaler.transform(train_X), *(scaler.transform(X) for X in others))


def digits_split(
    test_size: float | int = 0.25, seed: int = 0, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits, split and ready to train on: ``(X_train, y_train, X_test, y_test)``.

    A stratified split drawn from ``np.random.default_rng(seed)`` (its own generator, not
    the package one, so every experiment and notebook sees the same split for the same
    seed), then, if ``standardize``, features standardised with training statistics.
    Features float32, labels int64. With the default 0.25: 1,348 train, 449 test.
    """
    X, y = load_digits()
    X_train, y_train, X_test, y_test = train_test_split(
        X, y, test_size=test_size, stratify=True, rng=np.random.default_rng(seed)
    )
    if standardize:
        scaler = Standardizer().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    return X_train, y_train, X_test, y_test


# --------------------------------------------------------------------------- batching


def batches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of mini-batches ``(X_batch, y_batch)``.

    With ``shuffle`` the order is a fresh random permutation (drawn from ``rng`` when
    iteration starts), so every sample appears exactly once per epoch; otherwise batches
    follow the array order. The last batch is smaller when ``batch_size`` does not divide
    the number of samples, unless ``drop_last`` drops it. Arguments are checked when
    ``batches`` is called, not when the first batch is requested.
    """
    X, y = _check_pair(X, y, "batches")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batches: batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    generator = get_rng(rng) if shuffle else None
    return _iterate_batches(X, y, int(batch_size), generator, drop_last)


def _iterate_batches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None,
    drop_last: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n = len(y)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        yield X[index], y[index]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields for ``n`` samples (for progress bars)."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


# --------------------------------------------------------------------------- teacher–student

#: Default relative size ‖ΔW‖_F / ‖W‖_F of a planted shift. On the default teacher
#: (32-64-64-10, rank 4 in layer "2") it relabels about 36-46% of Gaussian inputs
#: (mean 39% over seeds 0-9).
DEFAULT_SHIFT_SIZE = 0.5


def _linear_layers(model: Module) -> list[tuple[str, Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]


def teacher_logits(teacher: Module, X: np.ndarray) -> np.ndarray:
    """The teacher's logits for inputs ``X``, as a float64 array (no graph is recorded)."""
    with no_grad():
        return np.asarray(teacher(Tensor(np.asarray(X))).data, dtype=np.float64)


def teacher_labels(teacher: Module, X: np.ndarray) -> np.ndarray:
    """The teacher's labels ``argmax_c logits_c(x)`` for each row of ``X`` (int64)."""
    return np.argmax(teacher_logits(teacher, X), axis=1).astype(np.int64)


def _balance_offsets(logits: np.ndarray, max_iter: int = 2000, tol: float = 0.01) -> np.ndarray:
    """Per-class offsets b such that ``argmax(logits + b)`` picks every class equally often.

    Iterates ``b_c ← b_c + η · (log(N/C) − log(count_c))``: a class predicted too often
    gets a lower offset, a rare one a higher offset, until every count is within
    ``tol`` (relative) of N/C. This is the discrete version of fitting the class priors
    of a softmax; η = 0.1 is small enough not to oscillate on O(1) logits. If counts are
    still off after ``max_iter`` steps (they move in whole samples), the most balanced
    offsets seen are returned.
    """
    n, classes = logits.shape
    target = n / classes
    offsets = np.zeros(classes)
    best, best_gap = offsets.copy(), np.inf
    for _ in range(max_iter):
        counts = np.bincount(np.argmax(logits + offsets, axis=1), minlength=classes)
        gap = np.max(np.abs(counts - target))
        if gap < best_gap:
            best, best_gap = offsets.copy(), gap
        if gap <= tol * target:
            break
        offsets += 0.1 * (np.log(target) - np.log(np.maximum(counts, 1)))
    return best


def make_teacher(
    sizes: Sequence[int] = (32, 64, 64, 10),
    rng: np.random.Generator | None = None,
    *,
    activation: str = "relu",
    calibration_samples: int = 20_000,
    dtype: Any = np.float32,
) -> MLP:
    """A random teacher MLP ``sizes = (inputs, hidden..., classes)`` with balanced classes.

    Weights are Kaiming-normal, W ~ N(0, gain²/fan_in) (gain √2 for ReLU, 5/3 for tanh,
    1 for the output layer), so for standard normal inputs every layer's pre-activations
    stay of order 1 and the logits are O(1). Hidden biases are 0.

    Balance: the output bias is set to per-class offsets, calibrated on
    ``calibration_samples`` Gaussian inputs so that ``argmax`` picks each class equally
    often (within 1%, see :func:`_balance_offsets`). Without it a random network can
    give one class most of the inputs. :func:`teacher_dataset` then makes counts exact.
    """
    sizes = tuple(sizes)
    if len(sizes) < 2 or any(
        isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes
    ):
        raise ValueError(f"make_teacher: sizes must be >= 2 positive ints, got {sizes}")
    if sizes[-1] < 2:
        raise ValueError(f"make_teacher: a classifier needs >= 2 classes, got sizes {sizes}")
    if activation not in ("relu", "tanh"):
        raise ValueError(f"make_teacher: activation must be 'relu' or 'tanh', got {activation!r}")
    if calibration_samples < 100 * sizes[-1]:
        raise ValueError(
            f"make_teacher: calibration_samples must be >= 100 per class "
            f"({100 * sizes[-1]}), got {calibration_samples}"
        )
    rng = get_rng(rng)
    teacher = MLP(sizes, activation=activation, dtype=dtype, rng=rng)
    layers = _linear_layers(teacher)
    for i, (_, linear) in enumerate(layers):
        if i < len(layers) - 1:
            init.kaiming_normal_(linear.weight, nonlinearity=activation, rng=rng)
        else:
            init.normal_(linear.weight, 0.0, 1.0 / math.sqrt(linear.in_features), rng=rng)
        init.zeros_(linear.bias)
    X = rng.standard_normal((calibration_samples, sizes[0])).astype(dtype)
    offsets = _balance_offsets(teacher_logits(teacher, X))
    layers[-1][1].bias.data = offsets.astype(dtype)
    return teacher


def teacher_dataset(
    teacher: Module, n: int, rng: np.random.Generator | None = None, balance: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs x ~ N(0, I) and their labels ``argmax teacher(x)``: ``(X, y)``.

    With ``balance=True`` the classes are balanced exactly, by rejection sampling: inputs
    are drawn in chunks and a sample is kept only while its class still has room (each
    class gets ⌊n/C⌋, the first n mod C classes one more). For a teacher from
    :func:`make_teacher`, already balanced to 1%, this discards few samples and barely
    changes the input distribution. The kept samples are returned in random order.
    With ``balance=False`` the inputs are plain Gaussian draws.

    X has the dtype of the teacher's first weight; y is int64.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"teacher_dataset: n must be a positive int, got {n!r}")
    layers = _linear_layers(teacher)
    if not layers:
        raise TypeError(
            f"teacher_dataset: the teacher has no Linear layer: {type(teacher).__name__}"
        )
    first, last = layers[0][1], layers[-1][1]
    d, classes, dtype = first.in_features, last.out_features, first.weight.dtype
    rng = get_rng(rng)
    if not balance:
        X = rng.standard_normal((n, d)).astype(dtype)
        return X, teacher_labels(teacher, X)
    room = np.full(classes, n // classes)
    room[: n % classes] += 1
    kept_X, kept_y = [], []
    for _ in range(100):
        X = rng.standard_normal((max(n, 1024), d)).astype(dtype)
        y = teacher_labels(teacher, X)
        keep = np.zeros(len(y), dtype=bool)
        for c in np.flatnonzero(room):
            members = np.flatnonzero(y == c)[: room[c]]
            keep[members] = True
            room[c] -= len(members)
        kept_X.append(X[keep])
        kept_y.append(y[keep])
        if not room.any():
            break
    else:
        raise ValueError(
            f"teacher_dataset: the teacher almost never predicts classes "
            f"{np.flatnonzero(room).tolist()}, so a balanced set of {n} cannot be drawn; "
            "use make_teacher (which balances the classes) or balance=False"
        )
    X, y = np.concatenate(kept_X), np.concatenate(kept_y)
    order = rng.permutation(n)
    return X[order], y[order]


@dataclass(frozen=True)
class PlantedShift:
    """The record of a planted update ΔW = U · diag(s) · Vᵀ of the Linear ``layer``.

    U (out, k) and V (in, k) have orthonormal columns, s (k,) is positive, so ΔW has rank
    exactly k and ‖ΔW‖_F = ‖s‖₂ = size · ‖W‖_F (W the teacher's weight before the shift).
    """

    layer: str
    rank: int
    size: float
    U: np.ndarray
    s: np.ndarray
    V: np.ndarray

    @property
    def delta_weight(self) -> np.ndarray:
        """ΔW = U · diag(s) · Vᵀ, shape (out, in), float64."""
        return (self.U * self.s) @ self.V.T


def _random_orthonormal(
    rows: int, k: int, rng: np.random.Generator, avoid: np.ndarray | None = None
) -> np.ndarray:
    """k orthonormal columns spanning a uniformly random k-dim subspace of R^rows.

    QR of a Gaussian matrix; multiplying each column by the sign of R's diagonal makes the
    result Haar-distributed rather than dependent on the QR convention. With a unit vector
    ``avoid``, the Gaussian columns are first projected onto its orthogonal complement,
    so the subspace is uniformly random among those orthogonal to ``avoid``.
    """
    G = rng.standard_normal((rows, k))
    if avoid is not None:
        G -= np.outer(avoid, avoid @ G)
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))


def _mean_layer_input(model: Module, linear: Linear, X: np.ndarray) -> np.ndarray:
    """The average input E[h] that ``linear`` receives when ``model`` runs on ``X``.

    Records the input by shadowing the layer's ``forward`` with an instance attribute for
    one forward pass (the class's method is untouched and restored afterwards).
    """
    seen: list[np.ndarray] = []

    def recording_forward(h: Tensor) -> Tensor:
        seen.append(np.asarray(h.data, dtype=np.float64))
        return type(linear).forward(linear, h)

    linear.forward = recording_forward
    try:
        teacher_logits(model, X)
    finally:
        del linear.forward
    if len(seen) != 1:
        raise ValueError(
            f"planted_shift: the layer was called {len(seen)} times in one forward pass; "
            "use preserve_mean=False for a model that reuses or skips it"
        )
    return seen[0].reshape(-1, linear.in_features).mean(axis=0)


def planted_shift(
    teacher: Module,
    layer: str,
    rank: int,
    size: float = DEFAULT_SHIFT_SIZE,
    rng: np.random.Generator | None = None,
    *,
    singular_values: Sequence[float] | None = None,
    preserve_mean: bool = True,
) -> Module:
    """A copy of ``teacher`` whose Linear ``layer`` has weight W + ΔW, ΔW of rank ``rank``.

    ΔW = U · diag(s) · Vᵀ with U (out, k) and V (in, k) random orthonormal columns. The
    **size** is relative, in Frobenius norm::

        ‖ΔW‖_F = size · ‖W‖_F      (so size = 0.5 is an update half as large as W)

    By default the singular values are equal, s_i = size · ‖W‖_F / √k, so every one of
    the k directions matters as much as the others and the rank of the task is sharply k.
    ``singular_values`` gives another profile (k positive numbers, rescaled to the size).
    Biases and other layers are unchanged; the teacher is not modified.

    ``preserve_mean`` (default): V is drawn orthogonal to the layer's average input
    m = E[h] (estimated on 4,096 inputs x ~ N(0, I) to the teacher), so ΔW·m = 0 and the
    update leaves the layer's average output unchanged. After a ReLU, h has a large
    positive mean; without this, ΔW·m shifts every input the same way and teacher B
    favours a few classes (on the default task at size 0.5, B's largest class share is
    ~32% without and ~16% with it; A's is 10%). It costs one direction: rank ≤ in − 1.
    With ``preserve_mean=False``, U and V span uniformly random subspaces.

    The returned model carries the update: ``.planted_shift`` (a :class:`PlantedShift`
    with layer, rank, size, U, s, V) and ``.planted_delta`` (ΔW as float64). Its stored
    weight is W + ΔW rounded to the layer's dtype.

    ``layer`` is the dotted name of a Linear as in ``named_modules()`` (for an MLP, "0",
    "2", "4", ...).
    """
    if not isinstance(layer, str):
        raise TypeError(f"planted_shift: layer must be a dotted name (str), got {layer!r}")
    linears = dict(_linear_layers(teacher))
    if layer not in linears:
        raise ValueError(
            f"planted_shift: the teacher has no Linear layer named {layer!r}; "
            f"its Linear layers are {sorted(linears)}"
        )
    linear = linears[layer]
    W = linear.weight.data.astype(np.float64)
    out_features, in_features = W.shape
    max_rank = min(out_features, in_features - 1 if preserve_mean else in_features)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise TypeError(f"planted_shift: rank must be an int, got {rank!r}")
    if not 1 <= rank <= max_rank:
        bound = "min(out, in - 1)" if preserve_mean else "min(out, in)"
        raise ValueError(
            f"planted_shift: rank must be between 1 and {bound} = {max_rank} for layer "
            f"{layer!r} of shape {W.shape}, got {rank}"
        )
    if isinstance(size, bool) or not isinstance(size, (int, float, np.floating)):
        raise TypeError(f"planted_shift: size must be a number, got {size!r}")
    if not (math.isfinite(size) and size > 0):
        raise ValueError(f"planted_shift: size must be a finite number > 0, got {size}")
    w_norm = float(np.linalg.norm(W))
    if w_norm == 0.0:
        raise ValueError(
            f"planted_shift: layer {layer!r} has W = 0, so a relative size is undefined"
        )
    if singular_values is None:
        profile = np.ones(rank)
    else:
        profile = np.asarray(singular_values, dtype=np.float64)
        if profile.shape != (rank,) or not np.all(profile > 0):
            raise ValueError(
                f"planted_shift: singular_values must be {rank} positive numbers, "
                f"got {profile.tolist()}"
            )
    rng = get_rng(rng)
    avoid = None
    if preserve_mean:
        d = _linear_layers(teacher)[0][1].in_features
        X = rng.standard_normal((4096, d)).astype(linear.weight.dtype)
        mean = _mean_layer_input(teacher, linear, X)
        if np.linalg.norm(mean) > 0:
            avoid = mean / np.linalg.norm(mean)
    U = _random_orthonormal(out_features, rank, rng)
    V = _random_orthonormal(in_features, rank, rng, avoid=avoid)
    s = profile * (size * w_norm / np.linalg.norm(profile))
    record = PlantedShift(layer=layer, rank=int(rank), size=float(size), U=U, s=s, V=V)
    shifted = copy.deepcopy(teacher)
    target = dict(_linear_layers(shifted))[layer]
    target.weight.data = (W + record.delta_weight).astype(target.weight.dtype)
    shifted.planted_shift = record
    shifted.planted_delta = record.delta_weight
    return shifted


@dataclass
class TeacherStudentTask:
    """Teacher A, teacher B = A + planted shift, and the same inputs labelled by both.

    Pretrain on ``(X_train, y_train_a)``, fine-tune on ``(X_train, y_train_b)``, evaluate
    on ``(X_test, y_test_b)``. The inputs are balanced for teacher A; B's labels are
    only roughly balanced (the shift moves class boundaries; see :func:`planted_shift`).

    The teachers' logits (``logits_train_b`` etc., float32, computed on access) are the
    targets for distillation: regressing B's logits (MSE) from teacher A's weights makes
    the planted rank show sharply, because the logits determine the update, whereas hard
    labels near the class boundaries (which are many, with 10 classes) are much harder
    to fit from a few thousand samples and blur the rank.
    """

    teacher_a: Module
    teacher_b: Module
    X_train: np.ndarray
    y_train_a: np.ndarray
    y_train_b: np.ndarray
    X_test: np.ndarray
    y_test_a: np.ndarray
    y_test_b: np.ndarray

    @property
    def shift(self) -> PlantedShift:
        """The planted update (teacher B's ``planted_shift`` record)."""
        return self.teacher_b.planted_shift

    @property
    def changed_fraction(self) -> float:
        """Fraction of test inputs whose label B differs from label A."""
        return float(np.mean(self.y_test_a != self.y_test_b))

    @property
    def logits_train_a(self) -> np.ndarray:
        return teacher_logits(self.teacher_a, self.X_train).astype(np.float32)

    @property
    def logits_train_b(self) -> np.ndarray:
        return teacher_logits(self.teacher_b, self.X_train).astype(np.float32)

    @property
    def logits_test_a(self) -> np.ndarray:
        return teacher_logits(self.teacher_a, self.X_test).astype(np.float32)

    @property
    def logits_test_b(self) -> np.ndarray:
        return teacher_logits(self.teacher_b, self.X_test).astype(np.float32)


def paired_datasets(
    teacher_a: Module,
    teacher_b: Module,
    n_train: int,
    n_test: int,
    rng: np.random.Generator | None = None,
    balance: bool = True,
) -> TeacherStudentTask:
    """The same inputs labelled by two teachers, as a :class:`TeacherStudentTask`.

    The inputs come from :func:`teacher_dataset` on teacher A (balanced for A if
    ``balance``), and B labels the very same inputs, so any difference in labels is due
    to the difference between the teachers alone.
    """
    rng = get_rng(rng)
    X_train, y_train_a = teacher_dataset(teacher_a, n_train, rng=rng, balance=balance)
    X_test, y_test_a = teacher_dataset(teacher_a, n_test, rng=rng, balance=balance)
    y_train_b = teacher_labels(teacher_b, X_train)
    y_test_b = teacher_labels(teacher_b, X_test)
    return TeacherStudentTask(
        teacher_a, teacher_b, X_train, y_train_a, y_train_b, X_test, y_test_a, y_test_b
    )


def teacher_student_task(
    sizes: Sequence[int] = (32, 64, 64, 10),
    layer: str = "2",
    rank: int = 4,
    size: float = DEFAULT_SHIFT_SIZE,
    n_train: int = 5000,
    n_test: int = 2000,
    rng: np.random.Generator | None = None,
) -> TeacherStudentTask:
    """The whole teacher–student task in one call (DESIGN.md §5, task b).

    Teacher A is :func:`make_teacher` ``(sizes)``; teacher B is
    :func:`planted_shift` ``(A, layer, rank, size)``; the data is :func:`paired_datasets`.
    Fine-tuning a model of A into B needs an update of rank ``rank`` in ``layer`` and
    nothing else: that is the known "intrinsic rank" of the task. Same rng seed, same
    task, bit for bit.
    """
    rng = get_rng(rng)
    teacher_a = make_teacher(sizes, rng=rng)
    teacher_b = planted_shift(teacher_a, layer, rank, size, rng=rng)
    return paired_datasets(teacher_a, teacher_b, n_train, n_test, rng=rng)
