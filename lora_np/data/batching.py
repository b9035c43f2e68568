"""Mini-batches of ``(X, y)`` arrays, and the check that X and y belong together.

Arrays here are plain NumPy (features float32, labels int64 by convention); wrap them in
:class:`lora_np.Tensor` when feeding a model. :func:`lora_np.train.fit` draws its batches
from :func:`batches`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from lora_np.checks import is_int
from lora_np.rng import get_rng


def check_samples(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` as arrays that hold the same, non-zero number of samples (rows).

    Raises a ValueError naming ``where`` and both shapes otherwise.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 1 or y.ndim < 1:
        raise ValueError(
            f"{where}: X and y must be arrays of samples, got shapes {X.shape}, {y.shape}"
        )
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(
            f"{where}: X and y must hold the same, non-zero number of samples; got X "
            f"{X.shape} ({len(X)} samples) and y {y.shape} ({len(y)} samples)"
        )
    return X, y


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
    X, y = check_samples(X, y, "batches")
    if not is_int(batch_size):
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
