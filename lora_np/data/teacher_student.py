"""The teacher–student task: fine-tuning with a known intrinsic rank.

A random teacher network labels Gaussian inputs; a second teacher differs from the first
by a planted rank-k update of one weight matrix. Fine-tuning a model of teacher A into
teacher B is then a task whose "intrinsic rank" is known, which is what the LoRA rank
experiments need (see :func:`make_teacher`, :func:`teacher_dataset`,
:func:`planted_shift`, :func:`teacher_student_task`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lora_np.checks import is_int, is_number, is_positive_int
from lora_np.nn import MLP, Module, Sequential, init, linear_layers
from lora_np.rng import get_rng, random_orthonormal
from lora_np.tensor import Tensor, no_grad

#: Default relative size ‖ΔW‖_F / ‖W‖_F of a planted shift. On the default teacher
#: (32-64-64-10, rank 4 in layer "2") it relabels about 36-46% of Gaussian inputs
#: (mean 39% over seeds 0-9).
DEFAULT_SHIFT_SIZE = 0.5


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
    if len(sizes) < 2 or not all(is_positive_int(s) for s in sizes):
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
    layers = linear_layers(teacher)
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
    if not is_positive_int(n):
        raise ValueError(f"teacher_dataset: n must be a positive int, got {n!r}")
    layers = linear_layers(teacher)
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


def _mean_layer_input(model: Module, layer: str, X: np.ndarray) -> np.ndarray:
    """The average input E[h] that the child ``layer`` of the Sequential ``model`` receives
    when the model runs on ``X``: the layers before it, applied in order, then a mean."""
    if not isinstance(model, Sequential) or layer not in model._modules:
        raise ValueError(
            f"planted_shift: preserve_mean needs the layer to be a direct child of a "
            f"Sequential model (an MLP), got layer {layer!r} of a {type(model).__name__}; "
            "use preserve_mean=False"
        )
    h = Tensor(X)
    with no_grad():
        for name, child in model.named_children():
            if name == layer:
                break
            h = child(h)
    data = np.asarray(h.data, dtype=np.float64)
    return data.reshape(-1, data.shape[-1]).mean(axis=0)


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
    linears = dict(linear_layers(teacher))
    if layer not in linears:
        raise ValueError(
            f"planted_shift: the teacher has no Linear layer named {layer!r}; "
            f"its Linear layers are {sorted(linears)}"
        )
    linear = linears[layer]
    W = linear.weight.data.astype(np.float64)
    out_features, in_features = W.shape
    max_rank = min(out_features, in_features - 1 if preserve_mean else in_features)
    if not is_int(rank):
        raise TypeError(f"planted_shift: rank must be an int, got {rank!r}")
    if not 1 <= rank <= max_rank:
        bound = "min(out, in - 1)" if preserve_mean else "min(out, in)"
        raise ValueError(
            f"planted_shift: rank must be between 1 and {bound} = {max_rank} for layer "
            f"{layer!r} of shape {W.shape}, got {rank}"
        )
    if not is_number(size):
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
        d = linear_layers(teacher)[0][1].in_features
        X = rng.standard_normal((4096, d)).astype(linear.weight.dtype)
        mean = _mean_layer_input(teacher, layer, X)
        if np.linalg.norm(mean) > 0:
            avoid = mean / np.linalg.norm(mean)
    U = random_orthonormal(out_features, rank, rng)
    V = random_orthonormal(in_features, rank, rng, avoid=avoid)
    s = profile * (size * w_norm / np.linalg.norm(profile))
    record = PlantedShift(layer=layer, rank=int(rank), size=float(size), U=U, s=s, V=V)
    shifted = copy.deepcopy(teacher)
    target = dict(linear_layers(shifted))[layer]
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
    """The whole teacher–student task in one call.

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
