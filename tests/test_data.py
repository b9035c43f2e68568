"""Tests for lora_np.data: the shipped digits, splitting, standardising, batching and the
teacher–student task."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from lora_np import data
from lora_np.data import (
    DEFAULT_SHIFT_SIZE,
    DIGITS_CLASS_COUNTS,
    DIGITS_SHA256,
    PlantedShift,
    Standardizer,
    batches,
    digits_split,
    load_digits,
    make_teacher,
    num_batches,
    paired_datasets,
    planted_shift,
    standardize,
    teacher_dataset,
    teacher_labels,
    teacher_student_task,
    train_test_split,
)
from lora_np.nn import MLP

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
    folder = resources.files("lora_np.data") / "datasets"
    raw = (folder / "digits.npz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == DIGITS_SHA256
    licence = (folder / "DIGITS_LICENSE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "10.24432/C50P49" in licence
    with np.load(folder / "digits.npz", allow_pickle=False) as archive:
        assert archive["X"].dtype == np.uint8 and archive["y"].dtype == np.uint8


def test_load_digits_from_a_path(tmp_path) -> None:
    raw = (resources.files("lora_np.data") / "datasets" / "digits.npz").read_bytes()
    copy = tmp_path / "digits.npz"
    copy.write_bytes(raw)
    X, y = load_digits(path=copy)
    X0, y0 = load_digits()
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    raw = bytearray((resources.files("lora_np.data") / "datasets" / "digits.npz").read_bytes())
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
    with pytest.raises(ValueError, match="same, non-zero number of samples"):
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
    with pytest.raises(ValueError, match="same, non-zero number of samples"):
        batches(X, y[:7], 4)
    with pytest.raises(ValueError, match=">= 1"):
        batches(X, y, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        batches(X, y, 2.5)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        batches(X, y, 2, rng=42)


def test_module_exposes_citation() -> None:
    assert "Alpaydin" in data.DIGITS_CITATION and "10.24432/C50P49" in data.DIGITS_CITATION


# --------------------------------------------------------------------------- teacher–student


@pytest.fixture(scope="module")
def teacher() -> MLP:
    return make_teacher((16, 32, 24, 5), rng=np.random.default_rng(0))


def test_make_teacher_is_balanced_and_seeded(teacher: MLP) -> None:
    assert isinstance(teacher, MLP) and teacher.sizes == (16, 32, 24, 5)
    X = np.random.default_rng(1).standard_normal((20_000, 16)).astype(np.float32)
    shares = np.bincount(teacher_labels(teacher, X), minlength=5) / len(X)
    # calibrated to 1% on its own 20,000 draws; the calibration sample and this fresh one
    # each add ~1.4% (relative) of sampling noise, so 5% is a ~2.5 sigma band
    assert np.all(np.abs(shares - 0.2) < 0.2 * 0.05), shares
    again = make_teacher((16, 32, 24, 5), rng=np.random.default_rng(0))
    for (name, a), (_, b) in zip(
        teacher.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert np.array_equal(a, b), name
    other = make_teacher((16, 32, 24, 5), rng=np.random.default_rng(1))
    assert not np.array_equal(other.state_dict()["0.weight"], teacher.state_dict()["0.weight"])


def test_teacher_dataset_balanced_exactly(teacher: MLP) -> None:
    X, y = teacher_dataset(teacher, 1003, rng=np.random.default_rng(2))
    assert X.shape == (1003, 16) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y, minlength=5).tolist() == [201, 201, 201, 200, 200]
    assert np.array_equal(teacher_labels(teacher, X), y)
    assert len(np.unique(y[:20])) > 1  # returned in random order, not grouped by class
    X2, y2 = teacher_dataset(teacher, 1003, rng=np.random.default_rng(2))
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    Xu, yu = teacher_dataset(teacher, 500, rng=np.random.default_rng(3), balance=False)
    assert Xu.shape == (500, 16) and np.array_equal(teacher_labels(teacher, Xu), yu)


def test_teacher_dataset_rejects_a_degenerate_teacher() -> None:
    lopsided = MLP((4, 8, 3), rng=np.random.default_rng(0))
    lopsided[2].bias.data = np.array([100.0, 0.0, 0.0], dtype=np.float32)  # always class 0
    with pytest.raises(ValueError, match=r"almost never predicts classes \[1, 2\]"):
        teacher_dataset(lopsided, 30, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive int"):
        teacher_dataset(lopsided, 0)


def test_make_teacher_bad_arguments() -> None:
    with pytest.raises(ValueError, match="sizes"):
        make_teacher((16,))
    with pytest.raises(ValueError, match="2 classes"):
        make_teacher((16, 8, 1))
    with pytest.raises(ValueError, match="activation"):
        make_teacher((16, 8, 3), activation="gelu")
    with pytest.raises(ValueError, match="calibration_samples"):
        make_teacher((16, 8, 3), calibration_samples=10)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_planted_shift_has_exact_rank_and_size(teacher: MLP, rank: int) -> None:
    before = teacher.state_dict()
    shifted = planted_shift(teacher, "2", rank, 0.4, rng=np.random.default_rng(rank))
    record = shifted.planted_shift
    assert isinstance(record, PlantedShift)
    assert (record.layer, record.rank, record.size) == ("2", rank, 0.4)
    delta = shifted.planted_delta
    W = before["2.weight"].astype(np.float64)
    assert delta.shape == W.shape == (24, 32)
    sv = np.linalg.svd(delta, compute_uv=False)
    assert np.all(sv[:rank] > 1e-3 * sv[0]) and np.all(sv[rank:] < 1e-12 * sv[0])
    assert np.linalg.matrix_rank(delta) == rank
    # equal singular values by default, and the requested relative Frobenius size
    np.testing.assert_allclose(sv[:rank], sv[0], rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(delta), 0.4 * np.linalg.norm(W), rtol=1e-12)
    np.testing.assert_allclose(record.U.T @ record.U, np.eye(rank), atol=1e-12)
    np.testing.assert_allclose(record.V.T @ record.V, np.eye(rank), atol=1e-12)
    # only the chosen weight moved, by ΔW (up to float32 rounding); the teacher is intact
    after = shifted.state_dict()
    for name, value in before.items():
        assert np.array_equal(teacher.state_dict()[name], value), name
        if name != "2.weight":
            assert np.array_equal(after[name], value), name
    np.testing.assert_allclose(after["2.weight"] - W, delta, atol=1e-6)


def test_planted_shift_preserves_the_mean_input(teacher: MLP) -> None:
    shifted = planted_shift(teacher, "2", 3, rng=np.random.default_rng(0))
    assert shifted.planted_shift.size == DEFAULT_SHIFT_SIZE
    # the average input of layer "2" (after layer "0" and a ReLU), computed independently
    X = np.random.default_rng(9).standard_normal((50_000, 16))
    sd = teacher.state_dict()
    h = np.maximum(X @ sd["0.weight"].T.astype(np.float64) + sd["0.bias"], 0)
    mean = h.mean(axis=0)
    delta = shifted.planted_delta
    # ΔW·m is ~0 (only sampling error of the 4,096-point estimate), unlike W·m
    ratio = np.linalg.norm(delta @ mean) / (np.linalg.norm(delta, 2) * np.linalg.norm(mean))
    assert ratio < 0.05, ratio
    free = planted_shift(teacher, "2", 3, rng=np.random.default_rng(0), preserve_mean=False)
    free_ratio = np.linalg.norm(free.planted_delta @ mean) / (
        np.linalg.norm(free.planted_delta, 2) * np.linalg.norm(mean)
    )
    assert free_ratio > ratio


def test_planted_shift_singular_value_profile(teacher: MLP) -> None:
    shifted = planted_shift(
        teacher, "4", 3, 0.3, rng=np.random.default_rng(0), singular_values=[4.0, 2.0, 1.0]
    )
    sv = np.linalg.svd(shifted.planted_delta, compute_uv=False)[:3]
    np.testing.assert_allclose(sv / sv[-1], [4.0, 2.0, 1.0], rtol=1e-10)
    W = teacher.state_dict()["4.weight"]
    np.testing.assert_allclose(
        np.linalg.norm(shifted.planted_delta), 0.3 * np.linalg.norm(W.astype(np.float64))
    )


def test_planted_shift_bad_arguments(teacher: MLP) -> None:
    with pytest.raises(ValueError, match=r"no Linear layer named '1'.*\['0', '2', '4'\]"):
        planted_shift(teacher, "1", 1)
    with pytest.raises(ValueError, match=r"no Linear layer named 'fc'"):
        planted_shift(teacher, "fc", 1)
    with pytest.raises(TypeError, match="dotted name"):
        planted_shift(teacher, 2, 1)
    with pytest.raises(ValueError, match=r"between 1 and min\(out, in - 1\) = 24 .*got 25"):
        planted_shift(teacher, "2", 25)  # layer "2" is (24, 32)
    # layer "0" is (32, 16): preserving the mean costs one of the 16 input directions
    with pytest.raises(ValueError, match=r"min\(out, in - 1\) = 15 .*got 16"):
        planted_shift(teacher, "0", 16)
    assert planted_shift(teacher, "0", 16, preserve_mean=False).planted_shift.rank == 16
    with pytest.raises(ValueError, match=r"min\(out, in\) = 16 .*got 17"):
        planted_shift(teacher, "0", 17, preserve_mean=False)
    with pytest.raises(ValueError, match="got 0"):
        planted_shift(teacher, "2", 0)
    with pytest.raises(TypeError, match="rank must be an int"):
        planted_shift(teacher, "2", 2.0)
    with pytest.raises(ValueError, match="size must be a finite number > 0"):
        planted_shift(teacher, "2", 2, 0.0)
    with pytest.raises(ValueError, match="size must be a finite number > 0"):
        planted_shift(teacher, "2", 2, float("nan"))
    with pytest.raises(ValueError, match="2 positive numbers"):
        planted_shift(teacher, "2", 2, singular_values=[1.0, 2.0, 3.0])


def test_teacher_student_task_shares_inputs_and_relabels_a_fraction() -> None:
    task = teacher_student_task(n_train=600, n_test=1000, rng=np.random.default_rng(0))
    assert task.X_train.shape == (600, 32) and task.X_test.shape == (1000, 32)
    assert np.bincount(task.y_train_a, minlength=10).tolist() == [60] * 10
    assert np.array_equal(teacher_labels(task.teacher_a, task.X_test), task.y_test_a)
    assert np.array_equal(teacher_labels(task.teacher_b, task.X_test), task.y_test_b)
    assert np.array_equal(teacher_labels(task.teacher_b, task.X_train), task.y_train_b)
    assert task.shift.rank == 4 and task.shift.layer == "2"
    # the default shift is a real task: a substantial share of labels changes
    assert 0.2 <= task.changed_fraction <= 0.6, task.changed_fraction
    same = teacher_student_task(n_train=600, n_test=1000, rng=np.random.default_rng(0))
    assert np.array_equal(same.X_train, task.X_train)
    assert np.array_equal(same.y_test_b, task.y_test_b)


def test_paired_datasets_label_the_same_inputs(teacher: MLP) -> None:
    shifted = planted_shift(teacher, "0", 2, rng=np.random.default_rng(4))
    task = paired_datasets(teacher, shifted, 250, 100, rng=np.random.default_rng(5))
    assert task.X_train.shape == (250, 16) and task.X_test.shape == (100, 16)
    assert np.array_equal(teacher_labels(teacher, task.X_train), task.y_train_a)
    assert np.array_equal(teacher_labels(shifted, task.X_train), task.y_train_b)
    assert np.array_equal(teacher_labels(shifted, task.X_test), task.y_test_b)
    assert np.bincount(task.y_test_a, minlength=5).tolist() == [20] * 5
    assert task.shift is shifted.planted_shift
    # logits for distillation agree with the labels
    for logits, labels in [
        (task.logits_train_a, task.y_train_a),
        (task.logits_train_b, task.y_train_b),
        (task.logits_test_a, task.y_test_a),
        (task.logits_test_b, task.y_test_b),
    ]:
        assert logits.dtype == np.float32 and logits.shape == (len(labels), 5)
        assert np.array_equal(np.argmax(logits, axis=1), labels)
