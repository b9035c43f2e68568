"""The 8×8 UCI handwritten digits, shipped inside the package, and their mirror images.

The 1,797 digits (Alpaydin & Kaynak, 1998; CC BY 4.0) live in
``lora_np/data/datasets/digits.npz``, so nothing is downloaded and scikit-learn is not
needed. :func:`load_digits` checks the file's SHA-256 before reading it, and reads it with
``allow_pickle=False`` (an ``.npz`` may otherwise carry pickled Python objects, which can
run code when loaded). :func:`digits_split` gives the split every experiment and notebook
uses; :func:`mirror_digits` flips each image left–right (the fine-tuning task of the rank
sweep and of notebook 03).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from lora_np.data.shipped import read_shipped
from lora_np.data.splits import Standardizer, train_test_split

#: SHA-256 of the shipped ``lora_np/data/datasets/digits.npz`` (written by
#: ``tools/make_digits_npz.py``, which produces byte-identical files on every run).
DIGITS_SHA256 = "cd0cddf88f320e80304e5478421d2660b6ca74312e7696b596224317e14864f6"

#: How many images of each digit 0..9 the dataset holds (1,797 in all).
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)

DIGITS_CITATION = (
    "Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits "
    "[Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49"
)


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
    raw, _ = read_shipped(
        "lora_np.data",
        "datasets/digits.npz",
        DIGITS_SHA256,
        path=path,
        who="load_digits",
        what="the shipped digits file",
        rebuilt_by="tools/make_digits_npz.py",
    )
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
    return X.astype(dtype), y.astype(np.int64)


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


def mirror_digits(X: np.ndarray) -> np.ndarray:
    """Each 8×8 digit (a row of 64 pixels) mirrored left–right; a new array.

    The flip is a fixed permutation P of the 64 features, its own inverse (P = Pᵀ = P⁻¹):
    ``mirror_digits(X) == X @ P.T`` with ``P = mirror_digits(np.eye(64))``.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"mirror_digits expects shape (n, 64) (8×8 images), got {X.shape}")
    return X.reshape(-1, 8, 8)[:, :, ::-1].reshape(len(X), 64).copy()
