"""Splitting a data set into train and test, and standardising features with training
statistics only."""

from __future__ import annotations

import numpy as np

from lora_np.checks import is_int, is_number
from lora_np.data.batching import check_samples
from lora_np.rng import get_rng


def _test_count(test_size: float | int, n: int) -> int:
    """How many of ``n`` samples go to the test set (a fraction, or a count)."""
    if not is_number(test_size):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if is_int(test_size):
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
    X, y = check_samples(X, y, "train_test_split")
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
