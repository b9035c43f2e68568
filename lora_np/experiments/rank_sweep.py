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
sweep shows how far low ranks get.
"""

from __future__ import annotations

import copy
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
from lora_np.experiments.finetune import (
    accuracy,
    mse_to_logits,
    n_trainable,
    train_fixed_budget,
    with_lora,
)
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

SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "n_train": 8000,
        "n_test": 2000,
        "pretrain_steps": 2000,
        "finetune_steps": 800,
        "ranks": [1, 2, 4, 8, 16, 64],
        "lora_lrs": [1e-3, 3e-3, 1e-2, 3e-2],
        "full_lrs": [3e-4, 1e-3, 3e-3, 1e-2],
        "digits_pretrain_steps": 1500,
        "digits_finetune_steps": 800,
        "digits_ranks": [1, 2, 4, 8, 16, 32, 64],
    },
    True: {
        "n_train": 4000,
        "n_test": 1000,
        "pretrain_steps": 600,
        "finetune_steps": 300,
        "ranks": [1, 2, 4, 8, 16],
        "lora_lrs": [1e-2],
        "full_lrs": [1e-3],
        "digits_pretrain_steps": 500,
        "digits_finetune_steps": 300,
        "digits_ranks": [1, 4, 16, 64],
    },
}
LAST_LOSSES = 20  # the learning rate is chosen by the mean loss over the last steps


def _best_of_grid(
    make: Any,
    lrs: list[float],
    X: np.ndarray,
    targets: np.ndarray,
    loss: Any,
    steps: int,
    seed: int,
) -> tuple[Module, float, float]:
    """Fine-tune ``make()`` once per learning rate; keep the run with the lowest final
    training loss. Returns (model, lr, final training loss)."""
    best: tuple[Module, float, float] | None = None
    for lr in lrs:
        model = make()
        losses = train_fixed_budget(
            model, X, targets, steps=steps, lr=lr, loss=loss, rng=np.random.default_rng(seed)
        )
        if losses is None:
            continue
        final = float(np.mean(losses[-LAST_LOSSES:]))
        if best is None or final < best[2]:
            best = (model, lr, final)
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
) -> dict[str, Any]:
    """LoRA at each rank of ``ranks`` and full fine-tuning from ``pretrained``, on one task.

    Every run starts from a copy of ``pretrained`` (which is left unchanged) and takes
    ``steps`` Adam steps on ``(X_train, targets)`` with ``loss``, once per learning rate of
    its grid (``lora_lrs`` for LoRA, ``full_lrs`` for full fine-tuning); the run with the
    lowest final training loss (mean of the last :data:`LAST_LOSSES` steps, never the test
    set) is kept. LoRA goes on every Linear layer with α = r, the rank capped at
    min(in, out) (:func:`~lora_np.experiments.finetune.with_lora`); only adapters train.

    Seeding, so that any run can be repeated: adapters are drawn from
    ``np.random.default_rng(seed + 1)``, batches from ``np.random.default_rng(seed)``.

    Returns ``ranks``, ``lora_accuracy``, ``lora_trainable``, ``lora_lr``,
    ``lora_final_train_loss`` (one entry per rank), ``full_accuracy``, ``full_trainable``,
    ``full_lr``, ``full_final_train_loss`` and ``accuracy_before`` (``pretrained``).
    Accuracy is the fraction of ``X_test`` whose arg-max logit equals ``labels_test``.
    """
    targets_all = [name for name, _ in linear_layers(pretrained)]
    out: dict[str, Any] = {
        "ranks": list(ranks),
        "lora_accuracy": [],
        "lora_trainable": [],
        "lora_lr": [],
        "lora_final_train_loss": [],
    }
    for rank in progress_bar([*ranks, "full"], enabled=progress, desc=desc):
        if rank == "full":
            model, lr, final = _best_of_grid(
                lambda: copy.deepcopy(pretrained), full_lrs, X_train, targets, loss, steps, seed
            )
            out.update(
                full_accuracy=accuracy(model, X_test, labels_test),
                full_trainable=n_trainable(model),
                full_lr=lr,
                full_final_train_loss=final,
            )
            continue
        model, lr, final = _best_of_grid(
            lambda rank=rank: with_lora(
                pretrained, rank, targets=targets_all, rng=np.random.default_rng(seed + 1)
            ),
            lora_lrs,
            X_train,
            targets,
            loss,
            steps,
            seed,
        )
        out["lora_accuracy"].append(accuracy(model, X_test, labels_test))
        out["lora_trainable"].append(n_trainable(model))
        out["lora_lr"].append(lr)
        out["lora_final_train_loss"].append(final)
    out["accuracy_before"] = accuracy(pretrained, X_test, labels_test)
    return out


def _planted_task(cfg: dict[str, Any], seed: int, progress: bool) -> dict[str, Any]:
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
    pretrained_accuracy_a = accuracy(student, X_test, y_test_a)

    # task B: the pretrained student with a planted rank-k update of its layer "2"
    shifted = planted_shift(student, SHIFT_LAYER, PLANTED_RANK, SHIFT_SIZE, rng=rng)
    logits_b = teacher_logits(shifted, X_train).astype(np.float32)
    labels_b_test = np.argmax(teacher_logits(shifted, X_test), axis=1)
    common = {
        "loss": mse_to_logits,
        "ranks": cfg["ranks"],
        "lora_lrs": cfg["lora_lrs"],
        "full_lrs": cfg["full_lrs"],
        "steps": cfg["finetune_steps"],
        "seed": seed + 7,
        "progress": progress,
    }
    main = sweep_ranks(
        student, X_train, logits_b, X_test, labels_b_test, desc="rank_sweep: planted", **common
    )
    control = sweep_ranks(
        student,
        X_train,
        teacher_logits(teacher_b, X_train).astype(np.float32),
        X_test,
        np.argmax(teacher_logits(teacher_b, X_test), axis=1),
        desc="rank_sweep: teacher shift",
        **common,
    )
    main["pretrained_accuracy_on_a"] = pretrained_accuracy_a
    main["changed_fraction"] = float(
        np.mean(labels_b_test != np.argmax(teacher_logits(student, X_test), axis=1))
    )
    control["student_accuracy_on_teacher_a"] = pretrained_accuracy_a
    return {"main": main, "teacher_shift": control}


def _digits_task(cfg: dict[str, Any], seed: int, progress: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 100)
    X_train, y_train, X_test, y_test = digits_split(test_size=0.25, seed=seed)
    model = MLP([64, DIGITS_HIDDEN, DIGITS_HIDDEN, 10], rng=rng)
    train_fixed_budget(
        model, X_train, y_train, steps=cfg["digits_pretrain_steps"], lr=1e-3, batch_size=64, rng=rng
    )
    pretrained_accuracy = accuracy(model, X_test, y_test)
    sweep = sweep_ranks(
        model,
        mirror_digits(X_train),
        y_train,
        mirror_digits(X_test),
        y_test,
        loss=F.cross_entropy,
        ranks=cfg["digits_ranks"],
        lora_lrs=cfg["lora_lrs"],
        full_lrs=cfg["full_lrs"],
        steps=cfg["digits_finetune_steps"],
        seed=seed + 200,
        progress=progress,
        desc="rank_sweep: digits",
    )
    sweep["shift"] = "mirror images (left-right flip of the 8×8 digits)"
    sweep["pretrained_accuracy_original"] = pretrained_accuracy
    return sweep


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Accuracy and trainable parameters vs LoRA rank, with full fine-tuning as reference.

    Top-level fields describe the planted task (B = pretrained student + rank-k shift):
    ``planted_rank``, ``ranks``, ``lora_accuracy``, ``lora_trainable``, ``lora_lr``,
    ``full_accuracy``, ``full_trainable``, ``full_lr``, ``accuracy_before``. Sub-dicts:
    ``teacher_shift`` (the same sweep with B = teacher A + shift, the no-knee control)
    and ``digits`` (pretrain on digits, fine-tune to mirrored digits).
    """
    manual_seed(seed)
    cfg = SETTINGS[bool(quick)]
    planted = _planted_task(cfg, seed, progress)
    result: dict[str, Any] = {
        "quick": bool(quick),
        "seed": seed,
        "planted_rank": PLANTED_RANK,
        "shift_layer": SHIFT_LAYER,
        "shift_size": SHIFT_SIZE,
        "teacher_sizes": list(TEACHER_SIZES),
        "student_sizes": [TEACHER_SIZES[0], STUDENT_HIDDEN, STUDENT_HIDDEN, TEACHER_SIZES[-1]],
        "settings": cfg,
        **planted["main"],
        "teacher_shift": planted["teacher_shift"],
        "digits": _digits_task(cfg, seed, progress),
    }
    return result


def _panel(ax: Any, sweep: dict[str, Any], title: str, planted_rank: int | None) -> None:
    ranks = np.array(sweep["ranks"])
    ax.semilogx(ranks, sweep["lora_accuracy"], "o-", color=style.COLORS["lora"], label="LoRA")
    ax.axhline(
        sweep["full_accuracy"],
        color=style.COLORS["full"],
        ls="--",
        label=f"full fine-tuning ({sweep['full_trainable']:,} params)",
    )
    ax.axhline(
        sweep["accuracy_before"], color=style.COLORS["baseline"], ls=":", label="before fine-tuning"
    )
    if planted_rank is not None:
        ax.axvline(planted_rank, color=style.COLORS["highlight"], lw=1, alpha=0.7)
        ax.text(
            planted_rank,
            0.2,
            f" planted rank k={planted_rank}",
            transform=ax.get_xaxis_transform(),
            color=style.COLORS["highlight"],
            fontsize=8,
            va="top",
        )
    for r, acc, n in zip(ranks, sweep["lora_accuracy"], sweep["lora_trainable"], strict=True):
        ax.annotate(
            f"{n:,}", (r, acc), textcoords="offset points", xytext=(0, -13), ha="center", fontsize=7
        )
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("LoRA rank r (numbers under points: trainable parameters)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="center right")


@style.styled
def plot(result: dict[str, Any]):
    """Three panels: the planted task, the teacher-shift control, the digits domain shift."""
    fig, axes = style.figure(
        1, 3, title="LoRA rank sweep vs full fine-tuning", panel_size=(5.0, 4.0)
    )
    k = result["planted_rank"]
    _panel(
        axes[0, 0],
        result,
        f"B = pretrained student + rank-{k} shift of layer {result['shift_layer']}",
        k,
    )
    _panel(
        axes[0, 1],
        result["teacher_shift"],
        f"control: B = teacher A + rank-{k} shift (student ≠ teacher)",
        k,
    )
    style.note(
        axes[0, 1],
        "no knee: the update this student needs\nis not rank k in any of its layers",
        "lower right",
    )
    _panel(axes[0, 2], result["digits"], "digits → mirrored digits (domain shift)", None)
    style.note(
        axes[0, 2],
        "pretrained on digits, fine-tuned on mirrored\ndigits: rank 1 already recovers most of it",
        "lower right",
    )
    return fig


def summary(result: dict[str, Any]) -> str:
    """Accuracy just below, at and above the planted rank, and full fine-tuning."""
    ranks, acc = result["ranks"], result["lora_accuracy"]
    k = result["planted_rank"]
    parts = [f"r={r}: {a:.3f}" for r, a in zip(ranks, acc, strict=True) if r in (1, k // 2, k)]
    digits = result["digits"]
    return (
        f"planted k={k}: LoRA {', '.join(parts)}; full FT {result['full_accuracy']:.3f}; "
        f"digits→mirrored: r={digits['ranks'][0]} {digits['lora_accuracy'][0]:.3f}, "
        f"r={digits['ranks'][-1]} {digits['lora_accuracy'][-1]:.3f}, "
        f"full {digits['full_accuracy']:.3f}"
    )
