"""Exercises of notebook 08 (variants): DoRA's weight, PiSSA's initialisation and LoRA+'s
parameter groups, each checked by the invariants that define it."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    ExerciseError,
    Student,
    as_array,
    as_number,
    as_tuple,
    case_text,
    exercise,
    run_student,
    shape_text,
)
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.nn import MLP
from lora_np.optim import Adam
from lora_np.tensor import Tensor

NOTEBOOK = "08_variants"


@exercise(
    "dora_weight",
    NOTEBOOK,
    "dora_weight(W, delta, m) -> W_prime",
    "DoRA's weight W' = m ⊙ (W + ΔW) / ‖W + ΔW‖_row: each output row of W + ΔW rescaled "
    "to length m[row] (W, ΔW (out, in), m (out,)).",
)
def _dora_weight(student: Student, rng: np.random.Generator) -> str:
    cases = [(5, 8), (7, 3), (6, 6), (1, 4)]
    for index, (out_f, in_f) in enumerate(cases):
        W = rng.standard_normal((out_f, in_f))
        delta = 0.3 * rng.standard_normal((out_f, in_f))
        m = np.linalg.norm(W, axis=1) * rng.uniform(0.5, 2.0, size=out_f)
        where = shape_text(W=W, delta=delta, m=m) + case_text(index, cases)
        got = as_array(
            student(W, delta, m, where=where),
            "your W'",
            shape=W.shape,
            where=where,
            shape_note="W's shape (out, in)",
        )
        _expect_rows(got, W + delta, m, where)
    # at DoRA's start (ΔW = 0, m = ‖W‖_row) the weight must be W itself
    W = rng.standard_normal((4, 5))
    start = student(W, np.zeros_like(W), np.linalg.norm(W, axis=1), where=" at DoRA's start")
    start = as_array(start, "your W'", shape=W.shape, where=" at DoRA's start")
    if not np.allclose(start, W, rtol=1e-10, atol=1e-12):
        raise ExerciseError(
            "at DoRA's start (ΔW = 0, m = the row norms of W) your W' differs from W by "
            f"max |Δ| = {float(np.max(np.abs(start - W))):.3g}"
        )
    return f"{len(cases)} random weights: every row has length m and the direction of W + ΔW"


def _expect_rows(got: np.ndarray, direction: np.ndarray, m: np.ndarray, where: str) -> None:
    norms = np.linalg.norm(got, axis=1)
    row = int(np.argmax(np.abs(norms - m)))
    if not np.allclose(norms, m, rtol=1e-9, atol=1e-12):
        raise ExerciseError(
            f"row {row} of your W' has length {norms[row]:.6g}{where}, expected m[{row}] = "
            f"{m[row]:.6g}: every output row must have the magnitude m of that row"
        )
    cosine = np.sum(got * direction, axis=1) / (norms * np.linalg.norm(direction, axis=1))
    row = int(np.argmin(cosine))
    if cosine[row] < 1 - 1e-9:
        raise ExerciseError(
            f"row {row} of your W' does not point along row {row} of W + ΔW{where}: their "
            f"cosine is {cosine[row]:.6g}, expected 1 (DoRA changes a row's length, not its "
            "direction)"
        )


@exercise(
    "pissa_init",
    NOTEBOOK,
    "pissa_init(W, rank, alpha) -> (A, B, W_res)",
    "PiSSA's start: A (rank, in) and B (out, rank) such that s·B·A (s = alpha/rank) is W's "
    "best rank-r part, with W's singular values split evenly between A and B, and the "
    "frozen residual W_res = W − s·B·A.",
)
def _pissa_init(student: Student, rng: np.random.Generator) -> str:
    cases = [(6, 8, 2, 4.0), (9, 5, 3, 3.0), (7, 7, 1, 16.0), (5, 6, 5, 0.5)]
    for index, (out_f, in_f, rank, alpha) in enumerate(cases):
        W = rng.standard_normal((out_f, in_f))
        s = alpha / rank
        where = shape_text(W=W)[:-1] + f", rank {rank}, alpha {alpha:g})" + case_text(index, cases)
        A, B, W_res = as_tuple(
            student(W, rank, alpha, where=where), "your result", ("A", "B", "W_res"), where
        )
        A = as_array(A, "your A", shape=(rank, in_f), where=where, shape_note="(rank, in)")
        B = as_array(B, "your B", shape=(out_f, rank), where=where, shape_note="(out, rank)")
        W_res = as_array(W_res, "your W_res", shape=W.shape, where=where, shape_note="W's shape")
        adapter = s * (B @ A)
        gap = float(np.max(np.abs(W_res + adapter - W)))
        if gap > 1e-9:
            raise ExerciseError(
                f"W_res + s·B·A differs from W by max |Δ| = {gap:.3g}{where}: the layer's output "
                "must not change at the start"
            )
        sigma = np.linalg.svd(W, compute_uv=False)
        best = float(np.sqrt(np.sum(sigma[rank:] ** 2)))
        miss = float(np.linalg.norm(W - adapter))
        if np.linalg.matrix_rank(adapter) > rank or miss > best * (1 + 1e-9) + 1e-12:
            raise ExerciseError(
                f"s·B·A is not W's best rank-{rank} part{where}: ‖W − s·B·A‖_F = {miss:.6g}, "
                f"but the top-{rank} singular directions leave only {best:.6g}"
            )
        gram_a, gram_b = A @ A.T, B.T @ B
        if not np.allclose(gram_a, gram_b, rtol=1e-8, atol=1e-10):
            raise ExerciseError(
                f"A·Aᵀ differs from Bᵀ·B{where} (max |Δ| = "
                f"{float(np.max(np.abs(gram_a - gram_b))):.3g}): split each singular value "
                "evenly, its square root in A and its square root in B"
            )
    return f"{len(cases)} random weights: W unchanged, s·B·A the best rank-r part, A and B balanced"


@exercise(
    "lora_plus_param_groups",
    NOTEBOOK,
    "lora_plus_param_groups(model, lr, ratio) -> list of dicts",
    "LoRA+'s optimizer groups: every trainable parameter once, the B matrices (lora_b.weight) "
    "with learning rate ratio·lr, all others with lr, frozen weights left out.",
)
def _lora_plus_param_groups(student: Student, rng: np.random.Generator) -> str:
    configs = [
        LoRAConfig(rank=2, alpha=4, target_modules="all-linear"),
        LoRAConfig(rank=3, alpha=6, target_modules=["0"], modules_to_save=["4"]),
        LoRAConfig(rank=2, alpha=2, target_modules=["2", "4"], use_dora=True),
    ]
    for index, config in enumerate(configs):
        model = apply_lora(
            MLP([6, 8, 8, 3], rng=np.random.default_rng(index)),
            config,
            rng=np.random.default_rng(index),
        )
        lr, ratio = float(10 ** rng.uniform(-4, -2)), float(rng.choice([4.0, 16.0, 32.0]))
        where = f" for an MLP with LoRA on {config.target_modules!r}" + case_text(index, configs)
        trains = _trainable(model)
        groups = student(model, lr, ratio, where=where)
        now = _trainable(model)
        if now != trains:
            made, froze = sorted(now - trains), sorted(trains - now)
            raise ExerciseError(
                f"your {student.label} changed which parameters train (made trainable: "
                f"{made}, froze: {froze}){where}; it should only sort the trainable ones into "
                "groups"
            )
        groups = _plain_groups(groups, where)
        _check_groups(groups, model, lr, ratio, where)
        run_student(
            lambda g=groups, lr=lr: Adam(g, lr=lr), "groups, given to lora_np.optim.Adam,", where
        )
    return f"{len(configs)} LoRA models (all-linear, a trained head, DoRA magnitudes)"


def _trainable(model: MLP) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _plain_groups(groups: object, where: str) -> list[dict]:
    """The groups with each ``"params"`` a list, as the optimizer reads them: a single
    tensor, or a generator (read once, here), is what PyTorch's groups accept too."""
    if groups is None:
        raise ExerciseError(f"your groups are None{where}: is a `return` missing?")
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise ExerciseError(
            f"your groups are {type(groups).__name__}{where}; expected a list of dicts, "
            'each {"params": [...], "lr": ...}'
        )
    plain = []
    for number, group in enumerate(groups):
        if "params" not in group:
            raise ExerciseError(
                f'group {number} has keys {sorted(group)}{where}; it needs "params"'
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        plain.append({**group, "params": params})
    return plain


def _check_groups(groups: list[dict], model: MLP, lr: float, ratio: float, where: str) -> None:
    """Every trainable parameter in one group, at ``ratio · lr`` for a B matrix and ``lr``
    otherwise (a group without "lr" takes the optimizer's, as in PyTorch)."""
    names = {id(p): name for name, p in model.named_parameters()}
    b_ids = {id(layer.lora_b.weight) for _, layer in lora_layers(model)}
    seen: dict[int, float] = {}
    for number, group in enumerate(groups):
        rate = as_number(group["lr"], f'group {number}\'s "lr"', where) if "lr" in group else lr
        for param in group["params"]:
            name = names.get(id(param), "a tensor that is not one of the model's parameters")
            if id(param) not in names:
                raise ExerciseError(f"group {number} holds {name}{where}")
            if not param.requires_grad:
                raise ExerciseError(
                    f"group {number} holds the frozen parameter {name}{where}; leave out what "
                    "does not train"
                )
            if id(param) in seen:
                raise ExerciseError(f"{name} is in more than one group (or twice){where}")
            seen[id(param)] = rate
            wanted = ratio * lr if id(param) in b_ids else lr
            if not np.isclose(rate, wanted, rtol=1e-12):
                kind = "a B matrix" if id(param) in b_ids else "not a B matrix"
                raise ExerciseError(
                    f"{name} ({kind}) has learning rate {rate:.4g}{where}, expected "
                    f"{wanted:.4g} (lr = {lr:.4g}, ratio = {ratio:g})"
                )
    missing = [
        name for name, p in model.named_parameters() if p.requires_grad and id(p) not in seen
    ]
    if missing:
        raise ExerciseError(f"these trainable parameters are in no group{where}: {missing}")
