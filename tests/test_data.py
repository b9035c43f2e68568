"""Tests for lora_np.data: the shipped digits, splitting, standardising, batching and the
teacher–student task."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from lora_np import data
from lora_np.data import (
    DIGITS_CLASS_COUNTS,
    DIGITS_SHA256,
    Standardizer,
    batches,
    digits_split,
    load_digits,
    num_batches,
    standardize,
    train_test_split,
)

# --------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_counts() -> None:
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(X, np.round(X))  # pixel counts are integers
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert tuple(counts) == DIGITS_CLASS_COUNTS


def test_digits_dtype_argument() -> None:
    X, _ = load_digits(np.float64)
    assert X.dtype == np.float64
    with pytest.raises(TypeError, match="floating dtype"):
        load_digits(np.int32)


def test_packaged_file_matches_checksum_and_licence_ships() -> None:
    folder = resources.files("lora_np") / "datasets"
    raw = (folder / "digits.npz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == DIGITS_SHA256
    licence = (folder / "DIGITS_LICENSE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "10.24432/C50P49" in licence
    with np.load(folder / "digits.npz", allow_pickle=False) as archive:
        assert archive["X"].dtype == np.uint8 and archive["y"].dtype == np.uint8


def test_load_digits_from_a_path(tmp_path) -> None:
    raw = (resources.files("lora_np") / "datasets" / "digits.npz").read_bytes()
    copy = tmp_path / "digits.npz"
    copy.write_bytes(raw)
    X, y = load_digits(path=copy)
    X0, y0 = load_digits()
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    raw = bytearray((resources.files("lora_np") / "datasets" / "digits.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip one byte
    bad = tmp_path / "digits.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt") as info:
        load_digits(path=bad)
    assert DIGITS_SHA256 in str(info.value)
    truncated = tmp_path / "short.npz"
    truncated.write_bytes(bytes(raw[:1000]))
    with pytest.raises(ValueError, match="SHA-256"):
        load_digits(path=truncated)
    with pytest.raises(FileNotFoundError, match="no file"):
        load_digits(path=tmp_path / "missing.npz")


# --------------------------------------------------------------------------- splitting


def test_stratified_split_keeps_class_proportions() -> None:
    X, y = load_digits()
    X_tr, y_tr, X_te, y_te = train_test_split(X, y, test_size=0.25, rng=np.random.default_rng(1))
    assert len(y_te) == round(0.25 * 1797) and len(y_tr) + len(y_te) == 1797
    assert X_tr.shape == (len(y_tr), 64) and X_te.shape == (len(y_te), 64)
    full = np.bincount(y, minlength=10)
    test = np.bincount(y_te, minlength=10)
    # each class's test count is within one sample of its exact share
    assert np.all(np.abs(test - 0.25 * full) < 1.0)
    # train and test are disjoint and together are the whole set: match rows as multisets
    rows = np.concatenate([X_tr, X_te])
    labels = np.concatenate([y_tr, y_te])
    order_a = np.lexsort(np.column_stack([X, y]).T)
    order_b = np.lexsort(np.column_stack([rows, labels]).T)
    assert np.array_equal(X[order_a], rows[order_b]) and np.array_equal(y[order_a], labels[order_b])


def test_split_by_index_is_a_partition_and_seeded() -> None:
    n = 103
    X = np.arange(n, dtype=np.float64)[:, None]
    y = np.arange(n) % 3
    a = train_test_split(X, y, test_size=20, rng=np.random.default_rng(5))
    b = train_test_split(X, y, test_size=20, rng=np.random.default_rng(5))
    c = train_test_split(X, y, test_size=20, rng=np.random.default_rng(6))
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    train_ids, test_ids = a[0][:, 0].astype(int), a[2][:, 0].astype(int)
    assert len(test_ids) == 20
    assert sorted(np.concatenate([train_ids, test_ids]).tolist()) == list(range(n))
    assert np.array_equal(y[train_ids], a[1]) and np.array_equal(y[test_ids], a[3])
    # unstratified is still a seeded partition
    d = train_test_split(X, y, test_size=0.5, stratify=False, rng=np.random.default_rng(5))
    assert len(d[2]) == round(0.5 * n) and len(d[0]) + len(d[2]) == n


def test_split_bad_arguments() -> None:
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match="same number of samples"):
        train_test_split(X, y[:9])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="at least one sample"):
        train_test_split(X, y, test_size=10)
    with pytest.raises(TypeError, match="test_size"):
        train_test_split(X, y, test_size="half")


def test_digits_split_defaults() -> None:
    X_tr, y_tr, X_te, y_te = digits_split()
    assert X_tr.shape == (1348, 64) and X_te.shape == (449, 64)
    assert X_tr.dtype == np.float32 and y_tr.dtype == np.int64
    # standardised with train statistics: train columns have mean 0, std 1 (or 0 if constant)
    np.testing.assert_allclose(X_tr.mean(axis=0), 0.0, atol=1e-5)
    stds = X_tr.std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-4) | (stds == 0))
    assert np.any(stds == 0)  # digits has always-blank pixels: handled, not divided by 0
    assert np.all(np.isfinite(X_te))
    again = digits_split()
    assert all(np.array_equal(u, v) for u, v in zip(again, (X_tr, y_tr, X_te, y_te), strict=True))
    raw = digits_split(standardize=False)
    assert raw[0].max() == 16


# --------------------------------------------------------------------------- standardising


def test_standardizer_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(200, 4)).astype(np.float32)
    train[:, 2] = 7.0  # constant feature
    test = rng.normal(-5.0, 9.0, size=(50, 4)).astype(np.float32)
    scaler = Standardizer().fit(train)
    np.testing.assert_allclose(scaler.mean_, train.astype(np.float64).mean(axis=0))
    z_test = scaler.transform(test)
    expected = (test - train.mean(axis=0)) / np.where(train.std(axis=0) > 0, train.std(axis=0), 1)
    np.testing.assert_allclose(z_test, expected, rtol=1e-5, atol=1e-5)
    assert z_test.dtype == np.float32
    # the test set's own statistics play no part: it is not standardised to mean 0
    assert np.all(np.abs(z_test.mean(axis=0)[[0, 1, 3]]) > 1.0)
    z_train, z_test2 = standardize(train, test)
    np.testing.assert_array_equal(z_test2, z_test)
    assert np.all(z_train[:, 2] == 0) and np.isfinite(z_train).all()


def test_standardizer_near_constant_float_column() -> None:
    X = np.full((1000, 1), 0.1)  # mean is 0.1 up to rounding; std ~1e-17, not 0
    z = Standardizer().fit_transform(X)
    assert np.all(np.abs(z) < 1e-12)


def test_standardizer_errors() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        Standardizer().transform(np.zeros((2, 2)))
    scaler = Standardizer().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        scaler.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2-d"):
        Standardizer().fit(np.zeros(3))


# --------------------------------------------------------------------------- batching


def test_batches_cover_each_sample_once() -> None:
    X = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    seen = []
    sizes = []
    for xb, yb in batches(X, y, 5, rng=np.random.default_rng(0)):
        assert np.array_equal(xb[:, 0] // 2, yb)  # rows stay paired with their labels
        seen.extend(yb.tolist())
        sizes.append(len(yb))
    assert sorted(seen) == list(range(23)) and seen != list(range(23))
    assert sizes == [5, 5, 5, 5, 3] and len(sizes) == num_batches(23, 5)
    dropped = list(batches(X, y, 5, rng=np.random.default_rng(0), drop_last=True))
    assert [len(b[1]) for b in dropped] == [5, 5, 5, 5] == [5] * num_batches(23, 5, True)
    ordered = [yb.tolist() for _, yb in batches(X, y, 10, shuffle=False)]
    assert ordered == [list(range(10)), list(range(10, 20)), [20, 21, 22]]


def test_batches_deterministic_with_seed() -> None:
    X, y = np.random.default_rng(1).normal(size=(40, 3)), np.arange(40)
    first = [yb for _, yb in batches(X, y, 8, rng=np.random.default_rng(3))]
    second = [yb for _, yb in batches(X, y, 8, rng=np.random.default_rng(3))]
    other = [yb for _, yb in batches(X, y, 8, rng=np.random.default_rng(4))]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    # a shared generator gives a new order each epoch
    rng = np.random.default_rng(3)
    epoch1 = np.concatenate([yb for _, yb in batches(X, y, 8, rng=rng)])
    epoch2 = np.concatenate([yb for _, yb in batches(X, y, 8, rng=rng)])
    assert not np.array_equal(epoch1, epoch2)


def test_batches_bad_arguments_raise_on_call() -> None:
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="same number of samples"):
        batches(X, y[:7], 4)
    with pytest.raises(ValueError, match=">= 1"):
        batches(X, y, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        batches(X, y, 2.5)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        batches(X, y, 2, rng=42)


def test_module_exposes_citation() -> None:
    assert "Alpaydin" in data.DIGITS_CITATION and "10.24432/C50P49" in data.DIGITS_CITATION
