"""Intrinsic dimension (Li et al. 2018; Aghajanyan et al. 2020), reproduced on toy models.

Random-subspace training writes all D weights of a network as ``θ = θ0 + P·θ_d`` and
trains only the d numbers θ_d (see :mod:`lora_np.subspace`). The smallest d at which
the model reaches 90% of the accuracy of ordinary training is its intrinsic dimension
d_int90 (see :func:`lora_np.subspace.intrinsic_dimension.intrinsic_dimension`). Five measurements:

1. **From scratch, digits.** The 64-128-128-10 MLP (D = 26,122) on the 8×8 digits:
   accuracy against d, with the directly trained baseline, the 90% line and d_int90.
2. **Width sweep.** The same for hidden widths 32 … 256, so D grows about 24×. Li et al.
   found d_int90 nearly constant as D grows: extra width adds weights, not difficulty.
3. **Pretraining lowers d90 (Aghajanyan et al.), on the planted teacher–student task.**
   A student pretrained on teacher A is fine-tuned to teacher B = A + a planted rank-4
   change of one weight matrix (:func:`lora_np.data.planted_shift`), in a random
   subspace; a freshly initialised student is trained on B the same way. Each curve's
   target is 90% of its own full-training accuracy (full fine-tuning for the pretrained
   student, direct training for the fresh one), as in the papers; the d at a common
   target (90% of the better baseline) is reported too.
4. **Negative control on digits.** Pretraining on digits 0–4 and fine-tuning on 5–9 does
   not lower d90: random features of a 64-pixel image already solve digits, so the
   pretrained features bring little. Reported, not asserted.
5. **The toy sum problem** (Li et al. §2): D = 1,000 numbers in 10 groups of 100, each
   group must sum to its target. 990 directions are free and 10 are constrained, so the
   objective's intrinsic dimension is exactly 10 (:func:`toy_sum_problem`).

All random subspaces here use the Fastfood projection (O(D) memory, O(D log D) per
step, so D = 85,000 costs no more memory than D = 3,500), except the toy problem, which
is small enough for a dense P whose columns we can read off for the exact minimum.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MultipleLocator, NullFormatter

from lora_np.checks import is_int
from lora_np.data import digits_split, teacher_student_task
from lora_np.experiments import style
from lora_np.experiments.common import nan_array
from lora_np.nn import MLP, Module, Parameter
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.rng import get_rng
from lora_np.subspace import SubspaceModel
from lora_np.subspace.intrinsic_dimension import (
    DIRECT_LR,
    SUBSPACE_LR,
    crossing_dimension,
    intrinsic_dimension,
)
from lora_np.tensor import Tensor
from lora_np.train import evaluate, fit

PROJECTION = "fastfood"
DIGITS_WIDTH = 128  # the scratch panel's MLP: 64-128-128-10, D = 26,122
BATCH_SIZE = 64

#: The planted task: teacher (8, 32, 32, 4) with a rank-4 change of its middle layer.
#: Eight inputs and four classes keep it learnable from 10,000 samples (a student reaches
#: about 90% of the teacher's labels; with 32 inputs and 10 classes only about 60%).
TEACHER_SIZES = (8, 32, 32, 4)
PLANTED_LAYER, PLANTED_RANK = "2", 4
STUDENT_WIDTH = 64  # student 8-64-64-4, D = 4,996
PLANTED_N_TRAIN, PLANTED_N_TEST = 10_000, 2_000
PLANTED_BATCH = 128
PRETRAIN_STEPS = 3_000

#: settings per mode; quick shrinks grids, seeds and steps, never the claims
SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "seeds": 3,
        "steps": 1_000,
        "baseline_steps": 1_500,
        "digits_dims": [10, 25, 50, 100, 200, 400, 800, 1600],
        "widths": [32, 64, 128, 256],
        "width_dims": [25, 50, 100, 200, 400, 800, 1600],
        "planted_dims": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
        "control_dims": [10, 25, 50, 100, 200, 400, 800, 1600],
        "toy_dims": list(range(1, 21)),
        "toy_steps": 3_000,
    },
    True: {
        "seeds": 1,
        "steps": 400,
        "baseline_steps": 600,
        "digits_dims": [25, 50, 100, 200, 400, 800],
        "widths": [32, 64, 128],
        "width_dims": [50, 100, 200, 400, 800],
        "planted_dims": [8, 32, 64, 128, 256, 512, 1024],
        "control_dims": [25, 50, 100, 200, 400, 800],
        "toy_dims": [1, 5, 8, 9, 10, 11, 12, 15],
        "toy_steps": 1_500,
    },
}


# =========================================================================== the toy problem


class GroupSums(Module):
    """θ ∈ R^D (one Parameter) whose forward returns the sums of its ``groups`` blocks.

    With D = 1,000 and 10 groups: output g = Σ_{i=100g}^{100g+99} θ_i.
    """

    def __init__(self, D: int, groups: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if D % groups != 0:
            raise ValueError(f"GroupSums: D = {D} must split into {groups} equal groups")
        self.groups = int(groups)
        self.theta = Parameter(get_rng(rng).standard_normal(D) / math.sqrt(D))

    def forward(self) -> Tensor:
        return self.theta.reshape(self.groups, -1).sum(axis=1)


def toy_sum_problem(
    dims: Sequence[int] = tuple(range(1, 21)),
    D: int = 1000,
    groups: int = 10,
    *,
    steps: int = 3000,
    lr: float = 0.3,
    solved_tol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Li et al.'s toy objective in random subspaces of size d: its d_int is ``groups``.

    θ ∈ R^D is cut into ``groups`` blocks of D/groups numbers; the loss asks block g to sum
    to t_g = g + 1:

        L(θ) = Σ_g (Σ_{i ∈ block g} θ_i − t_g)² = ‖Aθ − t‖²,

    A the (groups × D) 0/1 matrix of the blocks. In the subspace θ = θ0 + P·θ_d the loss is
    ‖(AP)·θ_d − (t − Aθ0)‖², a least-squares problem with a (groups × d) matrix AP. A
    random AP has full rank, so:

    * d < groups: AP·θ_d covers only a d-dimensional part of R^groups, and the best θ_d
      leaves a residual > 0 — no point of the subspace solves the problem;
    * d ≥ groups: AP is onto, some θ_d gives loss 0. So d_int = groups, exactly, whatever
      D is: the 990 other directions of R^1000 do not matter to the objective.

    For each d this computes the **exact** minimum over the subspace (``np.linalg.lstsq``
    on AP, with the dense P drawn by :class:`~lora_np.subspace.SubspaceModel`) and the
    loss that **training** θ_d reaches (Adam, ``steps`` steps from θ_d = 0, learning rate
    ``lr`` on a cosine schedule, all in float64 through the autograd engine).
    ``dint_exact`` and ``dint_trained`` are the smallest d whose loss is below
    ``solved_tol`` × the loss at θ0. At d = groups the solution is unique and AP can be
    badly conditioned, so Adam may need far more steps there than with a few spare
    directions: ``dint_trained`` can exceed ``dint_exact`` by one or two, never fall below it.
    Seed ``seed`` draws θ0 from ``default_rng([seed])`` and P for size d from
    ``default_rng([seed, d])``.
    """
    if isinstance(D, bool) or not isinstance(D, int) or D < 1:
        raise ValueError(f"toy_sum_problem: D must be a positive int, got {D!r}")
    if not is_int(groups) or not 1 <= groups <= D:
        raise ValueError(f"toy_sum_problem: groups must be an int in [1, D], got {groups!r}")
    if not is_int(steps) or steps < 0:
        raise ValueError(f"toy_sum_problem: steps must be an int >= 0, got {steps!r}")
    dims = [int(d) for d in dims]
    if not dims or any(not 1 <= d <= D for d in dims) or sorted(set(dims)) != dims:
        raise ValueError(
            f"toy_sum_problem: dims must be increasing ints in [1, D = {D}], got {dims}"
        )
    target = np.arange(1, groups + 1, dtype=np.float64)
    blocks = np.kron(np.eye(groups), np.ones((1, D // groups)))  # A: (groups, D)
    theta0_model = GroupSums(D, groups, rng=np.random.default_rng([seed]))
    initial = float(np.sum((blocks @ theta0_model.theta.data - target) ** 2))

    exact, trained = [], []
    for d in progress_bar(dims, enabled=progress, desc="toy sum problem: d"):
        sub = SubspaceModel(theta0_model, d, "dense", rng=np.random.default_rng([seed, d]))
        # exact: min over θ_d of ‖AP·θ_d − (t − Aθ0)‖²
        ap = blocks @ sub.projection.matrix
        residual = target - blocks @ sub.theta0
        best, *_ = np.linalg.lstsq(ap, residual, rcond=None)
        exact.append(float(np.sum((ap @ best - residual) ** 2)))
        # trained: Adam on θ_d through the engine
        opt = Adam(sub.parameters(), lr=lr)
        goal = Tensor(target)
        for step in range(steps):
            for group in opt.param_groups:  # cosine decay from lr to 0
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            opt.zero_grad()
            loss = ((sub() - goal) ** 2).sum()
            loss.backward()
            opt.step()
        final = float(((sub() - goal) ** 2).sum().item())
        trained.append(final)

    def first_solved(losses: list[float]) -> int | None:
        return next(
            (d for d, v in zip(dims, losses, strict=True) if v < solved_tol * initial), None
        )

    return {
        "D": D,
        "groups": groups,
        "targets": target.tolist(),
        "dims": dims,
        "initial_loss": initial,
        "exact_min_loss": exact,
        "trained_loss": trained,
        "solved_tol": solved_tol,
        "dint_exact": first_solved(exact),
        "dint_trained": first_solved(trained),
        "optimizer": f"adam, lr {lr} (cosine to 0), {steps} steps, float64",
        "projection": "dense",
    }


# =========================================================================== helpers


def _digits_mlp(width: int):
    def make(rng: np.random.Generator) -> MLP:
        return MLP([64, width, width, 10], rng=rng)

    return make


def _curve(result: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ``intrinsic_dimension`` result that the figure and JSON keep."""
    keys = (
        "dims",
        "accuracy_mean",
        "accuracy_std",
        "baseline",
        "baseline_std",
        "target",
        "dint90",
        "dint90_grid",
        "dint90_bracketed",
        "D",
    )
    return {k: result[k] for k in keys}


def _pretrain(
    model: Module,
    X: np.ndarray,
    y: np.ndarray,
    steps: int,
    batch_size: int,
    rng: np.random.Generator,
) -> Module:
    fit(
        model,
        (X, y),
        optimizer=Adam(model.parameters(), lr=DIRECT_LR),
        steps=steps,
        batch_size=batch_size,
        eval_every=steps,
        progress=False,
        rng=rng,
    )
    return model


def _pretrained_vs_scratch(
    pretrained: Module,
    make_fresh: Any,
    data: tuple[np.ndarray, ...],
    dims: list[int],
    seeds: list[int],
    cfg: dict[str, Any],
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """d90 of subspace fine-tuning from ``pretrained`` vs subspace training from scratch."""
    common = {
        "dims": dims,
        "seeds": seeds,
        "projection": PROJECTION,
        "lr": SUBSPACE_LR,
        "steps": cfg["steps"],
        "baseline_steps": cfg["baseline_steps"],
        "batch_size": batch_size,
        "progress": progress,
    }
    fine = intrinsic_dimension(lambda rng: copy.deepcopy(pretrained), data, **common)
    fresh = intrinsic_dimension(make_fresh, data, **common)
    # one target for both: 90% of the better of the two full-training accuracies
    common_target = 0.9 * max(fine["baseline"], fresh["baseline"])
    start = float(evaluate(pretrained, data[2], data[3])["accuracy"])
    return {
        "pretrained": _curve(fine),
        "scratch": _curve(fresh),
        "dint90_pretrained": fine["dint90"],
        "dint90_scratch": fresh["dint90"],
        "common_target": common_target,
        "dint_common_pretrained": crossing_dimension(dims, fine["accuracy_mean"], common_target)[0],
        "dint_common_scratch": crossing_dimension(dims, fresh["accuracy_mean"], common_target)[0],
        "pretrained_start_accuracy": start,
    }


# =========================================================================== run


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """All five measurements; see the module docstring. Same seed, same dict."""
    cfg = SETTINGS[bool(quick)]
    seeds = [10 * seed + i for i in range(cfg["seeds"])]
    train_kwargs = {
        "seeds": seeds,
        "projection": PROJECTION,
        "lr": SUBSPACE_LR,
        "baseline_lr": DIRECT_LR,
        "steps": cfg["steps"],
        "baseline_steps": cfg["baseline_steps"],
        "batch_size": BATCH_SIZE,
        "progress": progress,
    }
    digits = digits_split()

    # 1 + 2: from scratch on digits, for several widths (the 128 one is panel 1)
    per_width: dict[int, dict[str, Any]] = {}
    widths = sorted(set(cfg["widths"]) | {DIGITS_WIDTH})
    for width in progress_bar(widths, enabled=progress, desc="intrinsic_dimension: widths"):
        dims = cfg["digits_dims"] if width == DIGITS_WIDTH else cfg["width_dims"]
        per_width[width] = _curve(
            intrinsic_dimension(_digits_mlp(width), digits, dims=dims, **train_kwargs)
        )
    scratch = per_width[DIGITS_WIDTH]

    # 3: the planted teacher–student task
    task = teacher_student_task(
        sizes=TEACHER_SIZES,
        layer=PLANTED_LAYER,
        rank=PLANTED_RANK,
        n_train=PLANTED_N_TRAIN,
        n_test=PLANTED_N_TEST,
        rng=np.random.default_rng([seed, 1]),
    )
    student_sizes = [TEACHER_SIZES[0], STUDENT_WIDTH, STUDENT_WIDTH, TEACHER_SIZES[-1]]
    student = MLP(student_sizes, rng=np.random.default_rng([seed, 2]))
    _pretrain(
        student,
        task.X_train,
        task.y_train_a,
        PRETRAIN_STEPS,
        PLANTED_BATCH,
        np.random.default_rng([seed, 3]),
    )
    planted = _pretrained_vs_scratch(
        student,
        lambda rng: MLP(student_sizes, rng=rng),
        (task.X_train, task.y_train_b, task.X_test, task.y_test_b),
        cfg["planted_dims"],
        seeds,
        cfg,
        PLANTED_BATCH,
        progress,
    )
    planted.update(
        {
            "task": (
                f"teacher {list(TEACHER_SIZES)}, B = A + rank-{PLANTED_RANK} shift of layer "
                f"{PLANTED_LAYER!r}; student {student_sizes}; {PLANTED_N_TRAIN} train, "
                f"{PLANTED_N_TEST} test inputs"
            ),
            "changed_fraction": task.changed_fraction,
            "pretrained_accuracy_on_a": float(
                evaluate(student, task.X_test, task.y_test_a)["accuracy"]
            ),
            "pretrain_steps": PRETRAIN_STEPS,
        }
    )

    # 4: the digits negative control: pretrain on 0-4, fine-tune on 5-9
    X_train, y_train, X_test, y_test = digits
    low, high = y_train < 5, y_train >= 5
    digits_model = _pretrain(
        _digits_mlp(DIGITS_WIDTH)(np.random.default_rng([seed, 4])),
        X_train[low],
        y_train[low],
        cfg["baseline_steps"],
        BATCH_SIZE,
        np.random.default_rng([seed, 5]),
    )
    control = _pretrained_vs_scratch(
        digits_model,
        _digits_mlp(DIGITS_WIDTH),
        (X_train[high], y_train[high], X_test[y_test >= 5], y_test[y_test >= 5]),
        cfg["control_dims"],
        seeds,
        cfg,
        BATCH_SIZE,
        progress,
    )
    control["task"] = "digits MLP 64-128-128-10 pretrained on digits 0-4, fine-tuned on 5-9"

    # 5: the toy sum problem
    toy = toy_sum_problem(cfg["toy_dims"], steps=cfg["toy_steps"], seed=seed, progress=progress)

    return {
        "quick": bool(quick),
        "seed": seed,
        "seeds": seeds,
        "projection": PROJECTION,
        "lr": SUBSPACE_LR,
        "baseline_lr": DIRECT_LR,
        "optimizer": "adam",
        "steps": cfg["steps"],
        "baseline_steps": cfg["baseline_steps"],
        "scratch": {
            "model": f"MLP 64-{DIGITS_WIDTH}-{DIGITS_WIDTH}-10 on the 8×8 digits",
            "dims": scratch["dims"],
            "accuracy": scratch["accuracy_mean"],
            "accuracy_std": scratch["accuracy_std"],
            "baseline": scratch["baseline"],
            "baseline_std": scratch["baseline_std"],
            "target": scratch["target"],
            "dint90": scratch["dint90"],
            "dint90_bracketed": scratch["dint90_bracketed"],
            "D": scratch["D"],
        },
        "width_sweep": {
            "widths": widths,
            "D": [per_width[w]["D"] for w in widths],
            "dint90": [per_width[w]["dint90"] for w in widths],
            "baseline": [per_width[w]["baseline"] for w in widths],
            "curves": [per_width[w] for w in widths],
        },
        "finetune_vs_scratch": planted,
        "digits_control": control,
        "toy_sum": toy,
    }


# =========================================================================== plot


def _draw_curve(ax: Any, curve: dict[str, Any], color: str, label: str, marker: str = "o") -> None:
    dims = np.array(curve["dims"], dtype=float)
    mean = nan_array(curve["accuracy_mean"] if "accuracy_mean" in curve else curve["accuracy"])
    std = nan_array(curve["accuracy_std"])
    ax.plot(dims, mean, marker + "-", color=color, label=label, ms=4)
    if np.any(std > 0):
        ax.fill_between(dims, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    ax.axhline(curve["baseline"], color=color, ls=":", lw=1)
    ax.axhline(curve["target"], color=color, ls="--", lw=1)
    if curve["dint90"] is not None:
        ax.axvline(curve["dint90"], color=color, lw=1, alpha=0.6)
        ax.plot(curve["dint90"], curve["target"], "*", color=color, ms=13, mec="black", mew=0.6)


def _log_d_axis(ax: Any, label: str = "subspace dimension d") -> None:
    """Log x axis labelled 10, 20, 50, 100, ... in plain numbers, minor ticks unlabelled."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)


def _fmt(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f}"


@style.styled
def plot(result: dict[str, Any]):
    """Six panels: (a) digits accuracy vs d, (b) every width's curve, (c) d_int90 vs D,
    (d) planted task pretrained vs scratch, (e) digits negative control, (f) toy sum."""
    fig, axes = style.figure(
        2, 3, title="Intrinsic dimension: training in a random d-dimensional subspace"
    )
    colors = [style.COLORS[k] for k in ("lora", "rslora", "full", "highlight", "digits")]

    # (a) digits from scratch
    ax = axes[0, 0]
    s = result["scratch"]
    _draw_curve(ax, s, style.COLORS["lora"], "subspace training")
    _log_d_axis(ax)
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(f"(a) digits MLP, D = {s['D']:,}: accuracy vs d")
    style.note(
        ax,
        f"dotted: direct training {s['baseline']:.3f}\ndashed: 90% of it\n"
        f"★ d_int90 ≈ {_fmt(s['dint90'])} ({100 * s['dint90'] / s['D']:.1f}% of D)"
        if s["dint90"] is not None
        else "d_int90 not reached on this grid",
    )

    # (b) accuracy / baseline for every width
    ax = axes[0, 1]
    sweep = result["width_sweep"]
    for i, (width, curve) in enumerate(zip(sweep["widths"], sweep["curves"], strict=True)):
        ax.plot(
            np.array(curve["dims"], dtype=float),
            nan_array(curve["accuracy_mean"]) / curve["baseline"],
            "o-",
            ms=3,
            color=colors[i % len(colors)],
            label=f"h = {width} (D = {curve['D']:,})",
        )
    ax.axhline(0.9, color=style.COLORS["baseline"], ls="--", lw=1)
    _log_d_axis(ax)
    ax.set_ylabel("accuracy / direct-training accuracy")
    ax.set_title("(b) MLPs 64-h-h-10: one curve whatever the width")
    ax.legend(loc="lower right")

    # (c) d_int90 vs D
    ax = axes[0, 2]
    D = np.array(sweep["D"], dtype=float)
    dint = nan_array(sweep["dint90"])
    ax.plot(D, dint, "o-", color=style.COLORS["lora"], label="d_int90")
    ax.plot(D, 0.05 * D, ":", color=style.COLORS["baseline"], label="5% of D")
    ax.plot(D, 0.01 * D, "--", color=style.COLORS["baseline"], lw=1, label="1% of D")
    for x, y in zip(D, dint, strict=True):
        if np.isfinite(y):
            ax.annotate(
                f"{y:.0f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("number of weights D")
    ax.set_ylabel("d_int90")
    ax.set_title(f"(c) D grows {D.max() / D.min():.0f}×, d_int90 stays put")
    ax.legend(loc="upper left")

    # (d), (e): pretrained vs scratch
    for ax, key, title in (
        (axes[1, 0], "finetune_vs_scratch", "(d) planted task: fine-tune A → B vs scratch on B"),
        (axes[1, 1], "digits_control", "(e) digits 0–4 → 5–9: negative control"),
    ):
        part = result[key]
        _draw_curve(ax, part["pretrained"], style.COLORS["full"], "from the pretrained model")
        _draw_curve(ax, part["scratch"], style.COLORS["baseline"], "from a random init", "s")
        _log_d_axis(ax)
        ax.set_ylabel("test accuracy on the new task")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="center right")
        pre, fresh = part["dint90_pretrained"], part["dint90_scratch"]
        ratio = f"  (scratch/pretrained {fresh / pre:.1f}×)" if pre and fresh else ""
        style.note(
            ax,
            f"d90 pretrained ≈ {_fmt(pre)}\nd90 scratch ≈ {_fmt(fresh)}{ratio}\n"
            "dotted: full training, dashed: 90% of it",
        )

    # (f) toy sum problem
    ax = axes[1, 2]
    toy = result["toy_sum"]
    dims = np.array(toy["dims"], dtype=float)
    floor = 1e-30  # exact zeros, drawn at the bottom of the log axis
    for key, fmt, color, label in (
        ("exact_min_loss", "o-", style.COLORS["lora"], "exact minimum"),
        ("trained_loss", "s--", style.COLORS["rslora"], "trained θ_d (Adam)"),
    ):
        ax.semilogy(
            dims,
            np.maximum(nan_array(toy[key]), floor) / toy["initial_loss"],
            fmt,
            ms=4,
            color=color,
            label=label,
        )
    ax.axhline(toy["solved_tol"], color=style.COLORS["baseline"], ls=":", lw=1)
    ax.axvline(toy["groups"], color=style.COLORS["highlight"], lw=1)
    ax.xaxis.set_major_locator(MultipleLocator(5))
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("loss / loss at θ0")
    ax.set_title(
        f"(f) toy: {toy['groups']} group sums in D = {toy['D']:,}: d_int = {toy['groups']}",
        fontsize=10,
    )
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.72))  # in the empty middle right
    ax.text(  # in the empty middle-left of the panel (style.note only does corners)
        0.03,
        0.5,
        f"the subspace holds a solution\nfrom d = {_fmt(toy['dint_exact'])} on (exact minimum);\n"
        f"Adam finds one from d = {_fmt(toy['dint_trained'])}\n(dotted: 'solved' threshold)",
        transform=ax.transAxes,
        ha="left",
        va="center",
        fontsize=8,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "alpha": 0.85, "lw": 0.5},
    )
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline numbers in one line."""
    s, sweep = result["scratch"], result["width_sweep"]
    ft, control, toy = result["finetune_vs_scratch"], result["digits_control"], result["toy_sum"]
    dints = ", ".join(_fmt(v) for v in sweep["dint90"])
    return (
        f"digits d_int90 ≈ {_fmt(s['dint90'])} of D = {s['D']:,}; "
        f"widths D = {sweep['D'][0]:,}…{sweep['D'][-1]:,}: d_int90 {dints}; "
        f"planted d90 pretrained {_fmt(ft['dint90_pretrained'])} vs scratch "
        f"{_fmt(ft['dint90_scratch'])}; digits 0-4→5-9 control "
        f"{_fmt(control['dint90_pretrained'])} vs {_fmt(control['dint90_scratch'])}; "
        f"toy sum d_int = {_fmt(toy['dint_exact'])}"
    )
