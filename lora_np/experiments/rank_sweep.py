"""LoRA's rank vs full fine-tuning (LoRA paper, Tables 6 and 18), with a known answer.

The question: how large must the rank r of ΔW = B·A be? The LoRA paper finds that tiny
ranks often suffice. Here the fine-tuning task has a *planted* rank, so we know where
accuracy should stop improving:

1. Pretraining: a student MLP (wider than the teacher) learns teacher A's logits by
   distillation (MSE) on Gaussian inputs — that is the "pretrained model".
2. Task B is the pretrained student with a planted rank-k update of one hidden layer,
   W₂ → W₂ + U·diag(s)·Vᵀ (:func:`lora_np.data.planted_shift`, ‖ΔW‖_F = size·‖W₂‖_F).
   Fine-tuning must learn B's logits; an update of rank k in that one layer suffices, and
   nothing of lower rank in that layer does.
3. LoRA at ranks on both sides of k (applied to every Linear layer, rank capped at
   min(in, out) where a layer is smaller) and full fine-tuning get the same budget of
   Adam steps, each with its learning rate picked from a small grid by the final
   *training* loss (never the test set). Reported: agreement with B's labels on held-out
   inputs (accuracy) and trainable parameters.

Why B is built from the pretrained student and not from the teacher: with
B = teacher A + shift, the student (which only approximates A) needs an update that is
not rank k in any of *its* layers, and accuracy creeps up with r without a knee. That
run is kept as a control (``teacher_shift``), so the figure shows both.

A real-data task: digits pretraining, then fine-tuning to mirror-imaged digits (a
horizontal flip of the 8×8 images, a domain shift). In pixel space the flip is the
permutation P, and W₀·P − W₀ = W₀(P − I) has rank ≤ 32 (P − I vanishes on the 32
mirror-symmetric directions), so the first layer alone would need a large rank; the
sweep shows how far low ranks get. On this task LoRA is also compared with other
parameter-efficient methods (:mod:`lora_np.experiments.peft_baselines`): the output layer
alone, BitFit (biases only) and Houlsby bottleneck adapters, the adapters at about LoRA
r = 4's number of trainable parameters.

Seeds and fairness. Every number is measured over several seeds (five in the full run):
seed s builds its own task (teacher, student, planted shift; or digits split and
pretrained MLP) and its own adapters and batches. Each method — every rank, full
fine-tuning, every baseline — picks its learning rate from the *same* grid by its final
training loss on the first seed, then keeps it for the others. The budget of steps is the
same for all, and the test accuracy is recorded along the way, so the figure shows
whether a method is faster or better (or both) rather than one number at one budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from lora_np.data import (
    digits_split,
    make_teacher,
    mirror_digits,
    planted_shift,
    teacher_dataset,
    teacher_logits,
)
from lora_np.experiments import style
from lora_np.experiments.common import ACCURACY_BOUNDS, format_interval, mean_interval, nan_array
from lora_np.experiments.finetune import (
    accuracy,
    mse_to_logits,
    n_trainable,
    train_fixed_budget,
    train_with_curve,
    with_lora,
)
from lora_np.experiments.peft_baselines import with_adapters, with_bitfit, with_head_only
from lora_np.nn import MLP, Module, linear_layers
from lora_np.nn import functional as F
from lora_np.progress import progress_bar
from lora_np.rng import manual_seed

TEACHER_SIZES = (32, 64, 64, 10)
STUDENT_HIDDEN = 128
SHIFT_LAYER = "2"  # the student's middle Linear, 128 × 128
PLANTED_RANK = 4
SHIFT_SIZE = 0.5
DIGITS_HIDDEN = 128
DIGITS_HEAD = "4"  # the digits MLP's output layer

SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "seeds": 5,
        "n_train": 8000,
        "n_test": 2000,
        "pretrain_steps": 2000,
        "finetune_steps": 2000,
        "eval_every": 200,
        "ranks": [1, 2, 4, 16],
        "control_ranks": [1, 4, 16],
        "lrs": [1e-3, 3e-3, 1e-2],
        "digits_pretrain_steps": 1500,
        "digits_finetune_steps": 800,
        "digits_eval_every": 100,
        "digits_ranks": [1, 4, 16, 64],
        "digits_lrs": [3e-3, 1e-2, 3e-2],
        "adapter_bottleneck": 4,
    },
    True: {
        "seeds": 2,
        "n_train": 4000,
        "n_test": 1000,
        "pretrain_steps": 600,
        "finetune_steps": 600,
        "eval_every": 100,
        "ranks": [1, 2, 4, 8],
        "control_ranks": [1, 4],
        "lrs": [3e-3],
        "digits_pretrain_steps": 500,
        "digits_finetune_steps": 300,
        "digits_eval_every": 100,
        "digits_ranks": [1, 4, 64],
        "digits_lrs": [1e-2],
        "adapter_bottleneck": 4,
    },
}
LAST_LOSSES = 20  # the learning rate is chosen by the mean loss over the last steps
BATCH = 128
DIGITS_BATCH = 64


def _one_run(
    make: Callable[[], Module],
    lr: float,
    X: np.ndarray,
    targets: np.ndarray,
    X_test: np.ndarray,
    labels_test: np.ndarray,
    loss: Any,
    steps: int,
    seed: int,
    eval_every: int | None,
    batch_size: int,
) -> tuple[Module, float, list[float] | None] | None:
    """Fine-tune ``make()`` at ``lr``; (model, final training loss, test-accuracy curve or
    None), or None if it diverged. Batches from ``default_rng(seed)``."""
    model = make()
    rng = np.random.default_rng(seed)
    if eval_every is None:
        losses = train_fixed_budget(
            model, X, targets, steps=steps, lr=lr, loss=loss, batch_size=batch_size, rng=rng
        )
        curve = None
    else:
        out = train_with_curve(
            model,
            X,
            targets,
            X_test,
            labels_test,
            steps=steps,
            eval_every=eval_every,
            lr=lr,
            loss=loss,
            batch_size=batch_size,
            rng=rng,
        )
        losses, curve = (None, None) if out is None else out
    if losses is None:
        return None
    return model, float(np.mean(losses[-LAST_LOSSES:])), curve


def _best_of_grid(
    make: Callable[[], Module], lrs: list[float], *args: Any
) -> tuple[Module, float, float, list[float] | None]:
    """Run ``make()`` once per learning rate; keep the lowest final training loss.
    Returns (model, lr, final training loss, curve)."""
    best: tuple[Module, float, float, list[float] | None] | None = None
    for lr in lrs:
        out = _one_run(make, lr, *args)
        if out is not None and (best is None or out[1] < best[2]):
            best = (out[0], lr, out[1], out[2])
    if best is None:
        raise FloatingPointError(f"every learning rate in {lrs} diverged")
    return best


def sweep_ranks(
    pretrained: Module,
    X_train: np.ndarray,
    targets: np.ndarray,
    X_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    loss: Any,
    ranks: list[int],
    lora_lrs: list[float],
    full_lrs: list[float],
    steps: int,
    seed: int,
    progress: bool = False,
    desc: str = "rank_sweep",
    eval_every: int | None = None,
    batch_size: int = BATCH,
    chosen_lrs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """LoRA at each rank of ``ranks`` and full fine-tuning from ``pretrained``, on one task.

    Every run starts from a copy of ``pretrained`` (which is left unchanged) and takes
    ``steps`` Adam steps on ``(X_train, targets)`` with ``loss``, once per learning rate of
    its grid (``lora_lrs`` for LoRA, ``full_lrs`` for full fine-tuning); the run with the
    lowest final training loss (mean of the last :data:`LAST_LOSSES` steps, never the test
    set) is kept. ``chosen_lrs = {"lora": [lr per rank], "full": lr}`` skips the grids and
    runs those learning rates (the experiment's later seeds). LoRA goes on every Linear
    layer with α = r, the rank capped at min(in, out)
    (:func:`~lora_np.experiments.finetune.with_lora`); only adapters train.

    Seeding, so that any run can be repeated: adapters are drawn from
    ``np.random.default_rng(seed + 1)``, batches from ``np.random.default_rng(seed)``.
    With ``eval_every``, training runs in chunks of that many steps
    (:func:`~lora_np.experiments.finetune.train_with_curve`) and the test accuracy after
    each chunk is kept: ``lora_curves`` (per rank) and ``full_curve``, at ``curve_steps``.

    Returns ``ranks``, ``lora_accuracy``, ``lora_trainable``, ``lora_lr``,
    ``lora_final_train_loss`` (one entry per rank), ``full_accuracy``, ``full_trainable``,
    ``full_lr``, ``full_final_train_loss`` and ``accuracy_before`` (``pretrained``).
    Accuracy is the fraction of ``X_test`` whose arg-max logit equals ``labels_test``.
    """
    targets_all = [name for name, _ in linear_layers(pretrained)]
    data = (X_train, targets, X_test, labels_test, loss, steps, seed, eval_every, batch_size)
    out: dict[str, Any] = {
        "ranks": list(ranks),
        "lora_accuracy": [],
        "lora_trainable": [],
        "lora_lr": [],
        "lora_final_train_loss": [],
    }
    curves: list[list[float] | None] = []
    for index, rank in enumerate(progress_bar([*ranks, "full"], enabled=progress, desc=desc)):
        if rank == "full":
            grid = full_lrs if chosen_lrs is None else [chosen_lrs["full"]]
            model, lr, final, curve = _best_of_grid(lambda: copy.deepcopy(pretrained), grid, *data)
            out.update(
                full_accuracy=accuracy(model, X_test, labels_test),
                full_trainable=n_trainable(model),
                full_lr=lr,
                full_final_train_loss=final,
            )
            if eval_every is not None:
                out["full_curve"] = curve
            continue
        grid = lora_lrs if chosen_lrs is None else [chosen_lrs["lora"][index]]
        model, lr, final, curve = _best_of_grid(
            lambda rank=rank: with_lora(
                pretrained, rank, targets=targets_all, rng=np.random.default_rng(seed + 1)
            ),
            grid,
            *data,
        )
        out["lora_accuracy"].append(accuracy(model, X_test, labels_test))
        out["lora_trainable"].append(n_trainable(model))
        out["lora_lr"].append(lr)
        out["lora_final_train_loss"].append(final)
        curves.append(curve)
    out["accuracy_before"] = accuracy(pretrained, X_test, labels_test)
    if eval_every is not None:
        out["lora_curves"] = curves
        out["curve_steps"] = [min(steps, eval_every * (k + 1)) for k in range(len(curves[0]))]
    return out


def peft_baselines(
    pretrained: Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    lrs: list[float],
    steps: int,
    seed: int,
    bottleneck: int,
    chosen_lrs: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Head only, BitFit and bottleneck adapters (size ``bottleneck``, after the hidden
    layers "0" and "2") from ``pretrained``, each with its learning rate from ``lrs`` (or
    ``chosen_lrs[method]``), cross-entropy, ``steps`` Adam steps; batches from
    ``default_rng(seed)``, adapters from ``default_rng(seed + 1)``. One dict per method:
    ``method``, ``trainable``, ``lr``, ``accuracy``, ``final_train_loss``."""
    makers = {
        "head only": lambda: with_head_only(pretrained, DIGITS_HEAD),
        "BitFit": lambda: with_bitfit(pretrained),
        f"adapters (Houlsby, m = {bottleneck})": lambda: with_adapters(
            pretrained, ["0", "2"], bottleneck, rng=np.random.default_rng(seed + 1)
        ),
    }
    data = (X_train, y_train, X_test, y_test, F.cross_entropy, steps, seed, None, DIGITS_BATCH)
    rows = []
    for method, make in makers.items():
        grid = lrs if chosen_lrs is None else [chosen_lrs[method]]
        model, lr, final, _ = _best_of_grid(make, grid, *data)
        rows.append(
            {
                "method": method,
                "trainable": n_trainable(model),
                "lr": lr,
                "accuracy": accuracy(model, X_test, y_test),
                "final_train_loss": final,
            }
        )
    return rows


# --------------------------------------------------------------------------- pooling seeds


def pool_sweeps(sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweeps of several seeds (each from :func:`sweep_ranks`) as one dict.

    Ranks, trainable counts and learning rates come from the first seed (they are the
    same for all). Each measured number becomes its mean over seeds under its own key
    (``lora_accuracy``, ``full_accuracy``, ...), with ``<key>_per_seed`` (the values, seed
    by seed) and ``<key>_ci`` (95% t-interval of the mean, :func:`~lora_np.experiments.
    common.mean_interval`). Curves keep every seed: ``lora_curves_per_seed`` (rank, seed,
    checkpoint) and ``full_curve_per_seed`` (seed, checkpoint).
    """
    first = sweeps[0]
    out = {key: first[key] for key in ("ranks", "lora_trainable", "lora_lr", "full_lr")}
    out["full_trainable"] = first["full_trainable"]
    out["n_seeds"] = len(sweeps)
    for key in ("lora_accuracy", "lora_final_train_loss"):
        per_rank = [[sweep[key][i] for sweep in sweeps] for i in range(len(first["ranks"]))]
        bounds = ACCURACY_BOUNDS if key == "lora_accuracy" else None
        summaries = [mean_interval(values, bounds) for values in per_rank]
        out[key] = [s["mean"] for s in summaries]
        out[f"{key}_ci"] = [s["ci"] for s in summaries]
        out[f"{key}_per_seed"] = per_rank
    for key in ("full_accuracy", "full_final_train_loss", "accuracy_before"):
        values = [sweep[key] for sweep in sweeps]
        summary = mean_interval(values, None if "loss" in key else ACCURACY_BOUNDS)
        out[key], out[f"{key}_ci"], out[f"{key}_per_seed"] = summary["mean"], summary["ci"], values
    if "lora_curves" in first:
        out["curve_steps"] = first["curve_steps"]
        out["lora_curves_per_seed"] = [
            [sweep["lora_curves"][i] for sweep in sweeps] for i in range(len(first["ranks"]))
        ]
        out["full_curve_per_seed"] = [sweep["full_curve"] for sweep in sweeps]
    return out


def _pool_baselines(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Baseline rows of several seeds: one row per method with ``accuracy`` per seed."""
    return [
        _row(row["method"], row["trainable"], row["lr"], [rows[i]["accuracy"] for rows in per_seed])
        for i, row in enumerate(per_seed[0])
    ]


def _row(method: str, trainable: int, lr: float, values: list[float]) -> dict[str, Any]:
    stats = mean_interval(values, ACCURACY_BOUNDS)
    return {
        "method": method,
        "trainable": trainable,
        "lr": lr,
        "accuracy": values,
        "accuracy_mean": stats["mean"],
        "accuracy_ci": stats["ci"],
    }


def pool_digits(
    sweeps: list[dict[str, Any]], baselines: list[list[dict[str, Any]]], bottleneck: int
) -> dict[str, Any]:
    """The digits sweeps of several seeds (:func:`pool_sweeps`) with ``baselines``: one row
    per method — each :func:`peft_baselines` method, then LoRA at r = ``bottleneck`` (about
    the adapters' number of trainable parameters, if that rank was swept) and full
    fine-tuning, taken from the sweeps — each ``{"method", "trainable", "lr", "accuracy"
    (per seed), "accuracy_mean", "accuracy_ci"}``."""
    pooled = pool_sweeps(sweeps)
    rows = _pool_baselines(baselines)
    if bottleneck in pooled["ranks"]:
        i = pooled["ranks"].index(bottleneck)
        rows.append(
            _row(
                f"LoRA r = {bottleneck} (every layer)",
                pooled["lora_trainable"][i],
                pooled["lora_lr"][i],
                pooled["lora_accuracy_per_seed"][i],
            )
        )
    rows.append(
        _row(
            "full fine-tuning",
            pooled["full_trainable"],
            pooled["full_lr"],
            pooled["full_accuracy_per_seed"],
        )
    )
    pooled["baselines"] = rows
    return pooled


def _chosen(sweep: dict[str, Any]) -> dict[str, Any]:
    return {"lora": sweep["lora_lr"], "full": sweep["full_lr"]}


# --------------------------------------------------------------------------- tasks


def _planted_task(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Seed ``seed``'s planted task: the pretrained student and the data of B (= the student
    with a planted rank-k shift) and of the teacher-shift control B' (= teacher A + shift)."""
    rng = np.random.default_rng(seed)
    teacher_a = make_teacher(TEACHER_SIZES, rng=rng)
    X_train, _ = teacher_dataset(teacher_a, cfg["n_train"], rng=rng)
    X_test, y_test_a = teacher_dataset(teacher_a, cfg["n_test"], rng=rng)
    # the teacher-shift control: B' = teacher A + a rank-k shift of the teacher's layer "2"
    teacher_b = planted_shift(teacher_a, SHIFT_LAYER, PLANTED_RANK, SHIFT_SIZE, rng=rng)

    student = MLP([TEACHER_SIZES[0], STUDENT_HIDDEN, STUDENT_HIDDEN, TEACHER_SIZES[-1]], rng=rng)
    train_fixed_budget(
        student,
        X_train,
        teacher_logits(teacher_a, X_train).astype(np.float32),
        steps=cfg["pretrain_steps"],
        lr=3e-3,
        loss=mse_to_logits,
        rng=rng,
    )
    # task B: the pretrained student with a planted rank-k update of its layer "2"
    shifted = planted_shift(student, SHIFT_LAYER, PLANTED_RANK, SHIFT_SIZE, rng=rng)
    labels_b_test = np.argmax(teacher_logits(shifted, X_test), axis=1)
    return {
        "student": student,
        "X_train": X_train,
        "X_test": X_test,
        "main": (teacher_logits(shifted, X_train).astype(np.float32), labels_b_test),
        "control": (
            teacher_logits(teacher_b, X_train).astype(np.float32),
            np.argmax(teacher_logits(teacher_b, X_test), axis=1),
        ),
        "pretrained_accuracy_on_a": accuracy(student, X_test, y_test_a),
        "changed_fraction": float(
            np.mean(labels_b_test != np.argmax(teacher_logits(student, X_test), axis=1))
        ),
    }


def _digits_task(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Seed ``seed``'s digits task: a split, an MLP pretrained on it, the mirrored data."""
    rng = np.random.default_rng(seed + 100)
    X_train, y_train, X_test, y_test = digits_split(test_size=0.25, seed=seed)
    model = MLP([64, DIGITS_HIDDEN, DIGITS_HIDDEN, 10], rng=rng)
    train_fixed_budget(
        model,
        X_train,
        y_train,
        steps=cfg["digits_pretrain_steps"],
        lr=1e-3,
        batch_size=DIGITS_BATCH,
        rng=rng,
    )
    return {
        "model": model,
        "data": (mirror_digits(X_train), y_train, mirror_digits(X_test), y_test),
        "pretrained_accuracy_original": accuracy(model, X_test, y_test),
    }


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Accuracy and trainable parameters vs LoRA rank, with full fine-tuning as reference,
    over ``SETTINGS[quick]["seeds"]`` seeds (10·seed, 10·seed + 1, ...).

    Top-level fields describe the planted task (B = pretrained student + rank-k shift),
    pooled over seeds (:func:`pool_sweeps`): ``planted_rank``, ``ranks``,
    ``lora_accuracy`` (mean per rank), ``lora_accuracy_ci``, ``lora_accuracy_per_seed``,
    ``lora_trainable``, ``lora_lr``, ``full_accuracy`` (+ ``_ci``, ``_per_seed``),
    ``full_trainable``, ``full_lr``, ``accuracy_before``, and the accuracy-vs-steps curves
    (``curve_steps``, ``lora_curves_per_seed``, ``full_curve_per_seed``). Sub-dicts:
    ``teacher_shift`` (the same sweep with B = teacher A + shift, the no-knee control)
    and ``digits`` (pretrain on digits, fine-tune to mirrored digits; with ``baselines``:
    one row per method, ``{"method", "trainable", "accuracy": [per seed], ...}``).
    """
    manual_seed(seed)
    cfg = SETTINGS[bool(quick)]
    seeds = [10 * seed + i for i in range(cfg["seeds"])]
    common = {
        "loss": mse_to_logits,
        "lora_lrs": cfg["lrs"],
        "full_lrs": cfg["lrs"],
        "steps": cfg["finetune_steps"],
        "eval_every": cfg["eval_every"],
    }
    digits_common = {
        "loss": F.cross_entropy,
        "ranks": cfg["digits_ranks"],
        "lora_lrs": cfg["digits_lrs"],
        "full_lrs": cfg["digits_lrs"],
        "steps": cfg["digits_finetune_steps"],
        "eval_every": cfg["digits_eval_every"],
        "batch_size": DIGITS_BATCH,
    }
    main, control, digits, baselines, on_a, changed, original = [], [], [], [], [], [], []
    for s in progress_bar(seeds, enabled=progress, desc="rank_sweep: seeds"):
        task = _planted_task(cfg, s)
        X_train, X_test = task["X_train"], task["X_test"]
        for sweeps, key, ranks in (
            (main, "main", cfg["ranks"]),
            (control, "control", cfg["control_ranks"]),
        ):
            targets, labels = task[key]
            sweeps.append(
                sweep_ranks(
                    task["student"],
                    X_train,
                    targets,
                    X_test,
                    labels,
                    ranks=ranks,
                    seed=s + 7,
                    chosen_lrs=_chosen(sweeps[0]) if sweeps else None,
                    **common,
                )
            )
        on_a.append(task["pretrained_accuracy_on_a"])
        changed.append(task["changed_fraction"])

        dtask = _digits_task(cfg, s)
        digits.append(
            sweep_ranks(
                dtask["model"],
                *dtask["data"],
                seed=s + 200,
                chosen_lrs=_chosen(digits[0]) if digits else None,
                **digits_common,
            )
        )
        baselines.append(
            peft_baselines(
                dtask["model"],
                *dtask["data"],
                lrs=cfg["digits_lrs"],
                steps=cfg["digits_finetune_steps"],
                seed=s + 200,
                bottleneck=cfg["adapter_bottleneck"],
                chosen_lrs={r["method"]: r["lr"] for r in baselines[0]} if baselines else None,
            )
        )
        original.append(dtask["pretrained_accuracy_original"])

    pooled_digits = pool_digits(digits, baselines, cfg["adapter_bottleneck"])
    pooled_digits.update(
        shift="mirror images (left-right flip of the 8×8 digits)",
        pretrained_accuracy_original=mean_interval(original, ACCURACY_BOUNDS),
        steps=cfg["digits_finetune_steps"],
        lr_grid=cfg["digits_lrs"],
    )
    pooled_control = pool_sweeps(control)
    pooled_control["student_accuracy_on_teacher_a"] = mean_interval(on_a, ACCURACY_BOUNDS)
    return {
        "quick": bool(quick),
        "seed": seed,
        "seeds": seeds,
        "planted_rank": PLANTED_RANK,
        "shift_layer": SHIFT_LAYER,
        "shift_size": SHIFT_SIZE,
        "teacher_sizes": list(TEACHER_SIZES),
        "student_sizes": [TEACHER_SIZES[0], STUDENT_HIDDEN, STUDENT_HIDDEN, TEACHER_SIZES[-1]],
        "settings": cfg,
        "selection": "learning rate per method from the same grid, by the final training "
        "loss on the first seed; kept for the other seeds",
        "interval": "95% t-interval of the mean over seeds",
        **pool_sweeps(main),
        "steps": cfg["finetune_steps"],
        "lr_grid": cfg["lrs"],
        "pretrained_accuracy_on_a": mean_interval(on_a, ACCURACY_BOUNDS),
        "changed_fraction": mean_interval(changed),
        "teacher_shift": pooled_control,
        "digits": pooled_digits,
    }


# --------------------------------------------------------------------------- plot

ERROR_YLIM = (3e-4, 1.0)  # every panel: test error on one log scale, chance inside it


def _error(values: Any) -> np.ndarray:
    """1 − accuracy, floored at the axis bottom (an error of 0 has no place on a log axis;
    it is drawn on the floor)."""
    return np.maximum(1.0 - nan_array(values), ERROR_YLIM[0])


def _error_bars(means: Any, cis: Any) -> tuple[np.ndarray, np.ndarray]:
    """Error-bar lengths (below, above) in test error for accuracies ``means`` ± ``cis``."""
    err = _error(means)
    lo = nan_array([c[1] if c[1] is not None else m for c, m in zip(cis, means, strict=True)])
    hi = nan_array([c[0] if c[0] is not None else m for c, m in zip(cis, means, strict=True)])
    lo_err, hi_err = 1.0 - lo, 1.0 - hi  # a higher accuracy is a lower error
    return np.clip(err - np.maximum(lo_err, ERROR_YLIM[0]), 0, None), np.clip(hi_err - err, 0, None)


def _error_axes(ax: Any, chance: float) -> None:
    ax.set_yscale("log")
    ax.set_ylim(*ERROR_YLIM)
    ax.axhline(1 - chance, color=style.COLORS["baseline"], ls="-.", lw=1)
    ax.text(
        0.01,
        1 - chance,
        f"chance (accuracy {chance:.0%})",
        transform=ax.get_yaxis_transform(),
        fontsize=7,
        va="bottom",
        color=style.COLORS["baseline"],
    )
    ax.set_ylabel("test error = 1 − accuracy (log)")


def _band(ax: Any, mean: float, ci: list[Any], color: str, label: str, ls: str) -> None:
    """A horizontal reference (full fine-tuning, before fine-tuning) with its interval."""
    ax.axhline(1 - mean, color=color, ls=ls, lw=1.2, label=label)
    if ci[0] is not None:
        ax.axhspan(1 - ci[1], 1 - ci[0], color=color, alpha=0.12, lw=0)


def _rank_panel(ax: Any, sweep: dict[str, Any], title: str, planted_rank: int | None) -> None:
    ranks = np.array(sweep["ranks"])
    below, above = _error_bars(sweep["lora_accuracy"], sweep["lora_accuracy_ci"])
    ax.errorbar(
        ranks,
        _error(sweep["lora_accuracy"]),
        yerr=[below, above],
        fmt="o-",
        color=style.COLORS["lora"],
        capsize=3,
        label="LoRA",
    )
    _band(
        ax,
        sweep["full_accuracy"],
        sweep["full_accuracy_ci"],
        style.COLORS["full"],
        f"full fine-tuning ({sweep['full_trainable']:,} params)",
        "--",
    )
    _band(
        ax,
        sweep["accuracy_before"],
        sweep["accuracy_before_ci"],
        style.COLORS["baseline"],
        "before fine-tuning",
        ":",
    )
    if planted_rank is not None:
        ax.axvline(planted_rank, color=style.COLORS["highlight"], lw=1, alpha=0.7)
        ax.text(
            planted_rank,
            0.97,
            f" planted k = {planted_rank}",
            transform=ax.get_xaxis_transform(),
            color=style.COLORS["highlight"],
            fontsize=8,
            va="top",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(
        ranks, [f"{r}\n{n:,}" for r, n in zip(ranks, sweep["lora_trainable"], strict=True)]
    )
    ax.minorticks_off()
    ax.set_xlabel("LoRA rank r (and trainable parameters)")
    _error_axes(ax, 0.1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left", fontsize=7)


def _curves_panel(ax: Any, sweep: dict[str, Any], ranks: list[int], title: str) -> None:
    """Test error against steps, mean over seeds with a 95% band."""
    steps = np.array(sweep["curve_steps"], dtype=float)
    colors = style.rank_colors(len(ranks) + 1)
    runs = [
        (f"LoRA r = {r}", sweep["lora_curves_per_seed"][sweep["ranks"].index(r)], colors[i], "-")
        for i, r in enumerate(ranks)
    ] + [("full fine-tuning", sweep["full_curve_per_seed"], style.COLORS["full"], "--")]
    for label, per_seed, color, ls in runs:
        curves = np.array([c for c in per_seed if c is not None], dtype=float)
        summaries = [mean_interval(column, ACCURACY_BOUNDS) for column in curves.T]
        mean = np.array([s["mean"] for s in summaries])
        ax.plot(steps, 1 - mean, ls, marker="o", ms=3, color=color, label=label)
        if summaries[0]["ci"][0] is not None:
            lo = np.array([s["ci"][0] for s in summaries])
            hi = np.array([s["ci"][1] for s in summaries])
            ax.fill_between(
                steps, np.maximum(1 - hi, ERROR_YLIM[0]), 1 - lo, color=color, alpha=0.15, lw=0
            )
    ax.set_xlabel("Adam steps")
    _error_axes(ax, 0.1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left", fontsize=7)


def _baselines_panel(ax: Any, digits: dict[str, Any]) -> None:
    """Each method's test error against its trainable parameters (log x), with intervals."""
    rows = digits["baselines"]
    looks = {
        "head only": ("v", style.COLORS["digits"]),
        "BitFit": ("^", style.COLORS["float32"]),
        "full fine-tuning": ("D", style.COLORS["full"]),
    }
    for row in rows:
        mean, ci = row["accuracy_mean"], row["accuracy_ci"]
        below, above = _error_bars([mean], [ci])
        marker, color = looks.get(row["method"], ("s", style.COLORS["highlight"]))
        if row["method"].startswith("LoRA"):
            marker, color = "o", style.COLORS["lora"]
        ax.errorbar(
            [row["trainable"]],
            [1 - mean],
            yerr=[below, above],
            fmt=marker,
            ms=7,
            capsize=3,
            color=color,
            label=f"{row['method']}: {100 * mean:.1f}%",
        )
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log)")
    _error_axes(ax, 0.1)
    ax.set_title("digits → mirrored: LoRA vs other PEFT methods", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)


@style.styled
def plot(result: dict[str, Any]):
    """Six panels on one test-error scale: the planted task (error vs rank, and vs steps),
    the teacher-shift control, digits → mirrored (vs rank, vs steps), and the PEFT
    baselines. Error bars and bands: 95% intervals over seeds."""
    fig, axes = style.figure(
        2,
        3,
        title=f"LoRA rank sweep vs full fine-tuning ({result['n_seeds']} seeds; 95% intervals)",
        panel_size=(5.0, 4.0),
        sharey=True,
    )
    k = result["planted_rank"]
    _rank_panel(
        axes[0, 0],
        result,
        f"B = pretrained student + rank-{k} shift of layer {result['shift_layer']}\n"
        f"({result['steps']} steps each, lr from {result['lr_grid']})",
        k,
    )
    shown = [r for r in (k // 2, k) if r in result["ranks"]]
    _curves_panel(axes[0, 1], result, shown, "planted task: test error along training")
    _rank_panel(
        axes[0, 2],
        result["teacher_shift"],
        f"control: B = teacher A + rank-{k} shift\n(student ≠ teacher: no knee)",
        k,
    )
    digits = result["digits"]
    _rank_panel(axes[1, 0], digits, "digits → mirrored digits (domain shift)", None)
    _curves_panel(
        axes[1, 1],
        digits,
        [r for r in (1, 4) if r in digits["ranks"]],
        "digits → mirrored: test error along training",
    )
    _baselines_panel(axes[1, 2], digits)
    for ax in axes[0, 1], axes[0, 2], axes[1, 1], axes[1, 2]:
        ax.set_ylabel("")
    return fig


def _row_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"mean": row["accuracy_mean"], "ci": row["accuracy_ci"]}


def summary(result: dict[str, Any]) -> str:
    """Accuracy (mean [95% interval]) just below and at the planted rank, full fine-tuning,
    and the digits task with its baselines."""
    ranks, k = result["ranks"], result["planted_rank"]

    def at(sweep: dict[str, Any], r: int) -> str:
        i = sweep["ranks"].index(r)
        return format_interval(
            {"mean": sweep["lora_accuracy"][i], "ci": sweep["lora_accuracy_ci"][i]}
        )

    def full(sweep: dict[str, Any]) -> str:
        return format_interval({"mean": sweep["full_accuracy"], "ci": sweep["full_accuracy_ci"]})

    parts = [f"r={r}: {at(result, r)}" for r in ranks if r in (1, k // 2, k)]
    digits = result["digits"]
    rows = "; ".join(
        f"{row['method']} {format_interval(_row_summary(row))}"
        for row in digits["baselines"]
        if row["method"] != "full fine-tuning"
    )
    return (
        f"planted k={k}: LoRA {', '.join(parts)}; full FT {full(result)}; digits→mirrored: "
        f"r={digits['ranks'][0]} {at(digits, digits['ranks'][0])}, full {full(digits)}; {rows}"
    )
