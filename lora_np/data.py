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

import hashlib
import io
import math
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lora_np.rng import get_rng

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
