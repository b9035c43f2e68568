"""LoRA, rsLoRA, DoRA, PiSSA and LoRA+ on one task, one budget — and what DoRA changes.

The task: the pretrained model is teacher A (32-64-64-10), the target is teacher B = A
plus a planted update of layer "2" of rank 16 whose singular values fall as 1/i;
fine-tuning matches B's logits (mean squared error; distillation). Every variant gets
adapters of rank 4 on both hidden layers ("0", "2"), α = 8, Adam, the same number of
steps, the same batches and the same random A at the start. A rank-4 adapter cannot write
the whole update (its top 4 directions hold 90% of its energy), so no method reaches
100% agreement and the task can rank them; with a rank-8 adapter on a rank-4 update every
LoRA variant reaches 99.8–99.9%, where nothing can be told apart.

Each variant's learning rate is the best of one grid, chosen on the *training* loss
(mean of the last 10% of steps) on the first seed and kept for the others. Every number
is measured over several seeds (five in the full run; seed s draws its own teachers,
data, adapters and batches) and reported with its 95% interval; test loss and test
agreement with B's labels are the measures.

The variants (all options of :class:`lora_np.lora.LoRALinear`):

* LoRA: h = Wx + (α/r)·BAx, B = 0 at the start.
* rsLoRA: scaling α/√r instead of α/r.
* DoRA: W' = m ⊙ (W + sBA)/‖W + sBA‖_row with a trainable magnitude m.
* PiSSA: A, B start at the top-r singular part of W; the frozen weight is the residual.
* LoRA+: B's learning rate is 16× A's.

Learning-rate-matched controls, where a gain could just be a bigger step:

* rsLoRA at rank r is LoRA with α' = α·√r, exactly (same scaling s, same everything
  else): the control runs that LoRA at rsLoRA's learning rate. rsLoRA's argument is
  about how the best α changes *across* ranks (see alpha_sweep), not about one rank.
* LoRA+ gives B a 16× larger step; the control is plain LoRA with *both* A and B at
  LoRA+'s learning rate for B.

DoRA's analysis (Liu et al. 2024, §3, Fig. 2): for every hidden layer at checkpoints
during training, the mean magnitude change ΔM and direction change ΔD of the effective
weight's rows relative to the pretrained weight (:func:`lora_np.lora.analysis.
magnitude_direction_change`), for full fine-tuning, LoRA and DoRA. The paper reports a
positive ΔD–ΔM slope for LoRA, and a negative one for full fine-tuning and DoRA. Here the
correlation is computed **per layer** — over that layer's checkpoints, and over its rows
at the end of training (do rows that turn more also stretch more?) — for every seed, and
reported as a mean with its interval: a correlation pooled over two layers mixes two
clouds at different places and can show a sign that neither layer has.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from lora_np.data import (
    TeacherStudentTask,
    make_teacher,
    paired_datasets,
    planted_shift,
    teacher_logits,
)
from lora_np.experiments import style
from lora_np.experiments.common import ACCURACY_BOUNDS, format_interval, mean_interval, nan_array
from lora_np.lora import LoRAConfig, LoRALinear, apply_lora, lora_plus_param_groups
from lora_np.lora.analysis import correlation, magnitude_direction_change
from lora_np.nn import Module
from lora_np.nn import functional as F
from lora_np.nn.functional import mse_loss
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.rng import manual_seed
from lora_np.train import evaluate, fit

SIZES = (32, 64, 64, 10)
PLANTED_LAYER, PLANTED_RANK = "2", 16
#: the planted update's singular values fall as 1/i, so its top directions matter most
PLANTED_PROFILE = tuple(1.0 / (i + 1) for i in range(PLANTED_RANK))
SHIFT_SIZE = 0.5
LAYERS = ("0", "2")  # the hidden layers: every Linear but the output head
RANK, ALPHA = 4, 8.0
LORA_PLUS_RATIO = 16.0
BATCH = 64
LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
FULL_LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
CHECKPOINTS = 10
CURVE_EVERY = 10  # the stored loss curves: a 20-step mean every 10 steps

#: name -> LoRAConfig options (and the LoRA+ ratio, None for one learning rate)
VARIANTS: dict[str, dict[str, Any]] = {
    "LoRA": {"config": {}, "lora_plus": None},
    "rsLoRA": {"config": {"use_rslora": True}, "lora_plus": None},
    "DoRA": {"config": {"use_dora": True}, "lora_plus": None},
    "PiSSA": {"config": {"init": "pissa"}, "lora_plus": None},
    "LoRA+": {"config": {}, "lora_plus": LORA_PLUS_RATIO},
}
FULL = "full fine-tuning"
DORA_METHODS = (FULL, "LoRA", "DoRA")
LORA_PLUS_CONTROL = "LoRA, lr = LoRA+'s B lr"
RSLORA_CONTROL = "LoRA, α·√r (= rsLoRA's scaling)"

COLORS = {
    "LoRA": style.COLORS["lora"],
    "rsLoRA": style.COLORS["rslora"],
    "DoRA": "#9467bd",
    "PiSSA": "#ff7f0e",
    "LoRA+": "#17becf",
    FULL: style.COLORS["full"],
}


def _effective_weights(model: Module) -> dict[str, np.ndarray]:
    """The weight each hidden layer applies now: W (full), W + sBA, or DoRA's W'."""
    modules = dict(model.named_modules())
    weights = {}
    for name in LAYERS:
        layer = modules[name]
        if isinstance(layer, LoRALinear):
            weights[name] = layer.merged_weight().astype(np.float64)
        else:
            weights[name] = layer.weight.data.astype(np.float64)
    return weights


def budget(quick: bool = False) -> dict[str, int]:
    """Adam steps, training inputs and seeds: 300 steps on 3,000 inputs and 2 seeds
    (quick), 1,000 on 5,000 and 5 seeds (full)."""
    return {
        "steps": 300 if quick else 1000,
        "n_train": 3000 if quick else 5000,
        "n_test": 2000,
        "seeds": 2 if quick else 5,
    }


def make_task(quick: bool = False, seed: int = 0) -> TeacherStudentTask:
    """Seed ``seed``'s task: teacher A (SIZES) and B = A + the planted update of layer "2"
    (rank PLANTED_RANK, singular values ∝ PLANTED_PROFILE, ‖ΔW‖_F = SHIFT_SIZE·‖W‖_F)."""
    size = budget(quick)
    rng = manual_seed(seed)
    teacher_a = make_teacher(SIZES, rng=rng)
    teacher_b = planted_shift(
        teacher_a,
        PLANTED_LAYER,
        PLANTED_RANK,
        SHIFT_SIZE,
        rng=rng,
        singular_values=PLANTED_PROFILE,
    )
    return paired_datasets(teacher_a, teacher_b, size["n_train"], size["n_test"], rng=rng)


def train_variant(
    task: TeacherStudentTask,
    variant: str,
    lr: float,
    steps: int,
    seed: int,
    alpha: float = ALPHA,
    rank: int = RANK,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a copy of teacher A with ``variant`` (or full fine-tuning) at ``lr``.

    ``variant`` is a key of VARIANTS or FULL; ``rank`` and ``alpha`` set every adapter;
    ``options`` adds LoRAConfig options to the variant's own (e.g. ``{"dora_detach_norm":
    False}``). Records every step's mini-batch loss, and at CHECKPOINTS evenly spaced
    steps the (ΔM, ΔD) of each hidden layer against teacher A's weights; at the end the
    test loss, the test agreement with B's labels and the per-row ΔM, ΔD. Adapters and
    batches come from ``default_rng((seed, 1))``: the same for every variant of one seed.
    """
    if variant != FULL and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {[*VARIANTS, FULL]}, got {variant!r}")
    rng = np.random.default_rng((seed, 1))  # one seed for every run: same A, same batches
    model = copy.deepcopy(task.teacher_a)
    w0 = {
        name: task.teacher_a.get_submodule(name).weight.data.astype(np.float64) for name in LAYERS
    }
    if variant == FULL:
        optimizer = Adam(model.parameters(), lr=lr)
    else:
        spec = VARIANTS[variant]
        settings = {**spec["config"], **(options or {})}
        config = LoRAConfig(rank=rank, alpha=alpha, target_modules=list(LAYERS), **settings)
        apply_lora(model, config, rng=rng)
        if spec["lora_plus"] is None:
            optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        else:
            optimizer = Adam(lora_plus_param_groups(model, lr, ratio=spec["lora_plus"]), lr=lr)
    train = (task.X_train, task.logits_train_b)
    losses: list[float] = []
    checkpoints: dict[str, dict[str, list[float]]] = {n: {"dM": [], "dD": []} for n in LAYERS}
    chunk = steps // CHECKPOINTS
    diverged = False
    for index in range(CHECKPOINTS):
        todo = chunk if index < CHECKPOINTS - 1 else steps - chunk * (CHECKPOINTS - 1)
        try:
            history = fit(
                model,
                train,
                optimizer=optimizer,
                loss=mse_loss,
                steps=todo,
                batch_size=BATCH,
                progress=False,
                rng=rng,
                eval_every=todo,
            )
        except FloatingPointError:
            diverged = True
            break
        losses.extend(history.loss)
        for name, weight in _effective_weights(model).items():
            d_m, d_d = magnitude_direction_change(w0[name], weight)
            checkpoints[name]["dM"].append(d_m)
            checkpoints[name]["dD"].append(d_d)
    result: dict[str, Any] = {"lr": lr, "loss": losses, "diverged": diverged}
    tail = max(1, steps // 10)
    if diverged or not np.all(np.isfinite(losses[-tail:])):
        result.update(train_loss=math.inf, test_loss=math.inf, accuracy=0.0, diverged=True)
        return result
    test = evaluate(model, task.X_test, task.logits_test_b, loss=mse_loss)
    rows = {}
    for name, weight in _effective_weights(model).items():
        n0, nt = np.linalg.norm(w0[name], axis=1), np.linalg.norm(weight, axis=1)
        cosine = np.sum(w0[name] * weight, axis=1) / (n0 * nt)
        rows[name] = {"dM": np.abs(nt - n0), "dD": 1.0 - cosine}
    result.update(
        train_loss=float(np.mean(losses[-tail:])),
        test_loss=float(test["loss"]),
        accuracy=F.accuracy(teacher_logits(model, task.X_test), task.y_test_b),
        checkpoints=checkpoints,
        rows=rows,
        trainable=int(sum(p.size for p in model.parameters() if p.requires_grad)),
    )
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the lowest final training loss (diverged runs count as +inf)."""
    return min(runs, key=lambda run: run["train_loss"])


def dora_correlations(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Pearson r of (ΔD, ΔM) per hidden layer: over that layer's checkpoints, and over its
    rows at the end of training. ``{layer: {"checkpoints": r, "rows": r}}``."""
    return {
        name: {
            "checkpoints": correlation(
                run["checkpoints"][name]["dD"], run["checkpoints"][name]["dM"]
            ),
            "rows": correlation(run["rows"][name]["dD"], run["rows"][name]["dM"]),
        }
        for name in LAYERS
    }


def _curve_points(loss: list[float]) -> list[float]:
    """A run's loss curve as stored: the 20-step trailing mean, every CURVE_EVERY steps."""
    smoothed = style.smooth(nan_array(loss), window=20)
    return smoothed[CURVE_EVERY - 1 :: CURVE_EVERY].tolist()


def _summary(values: list[Any], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    stats = mean_interval(
        [None if v is None or not math.isfinite(v) else v for v in values], bounds
    )
    return {"per_seed": values, "mean": stats["mean"], "ci": stats["ci"]}


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Every variant on the lr grid (first seed), then at its chosen lr on the other seeds;
    the two controls and the DoRA analysis on every seed. See the module docstring."""
    size = budget(quick)
    steps = size["steps"]
    seeds = [10 * seed + i for i in range(size["seeds"])]
    names = [*VARIANTS, FULL]
    tasks = {s: make_task(quick, s) for s in seeds}

    first = tasks[seeds[0]]
    plan = [(v, lr) for v in VARIANTS for lr in LR_GRID] + [(FULL, lr) for lr in FULL_LR_GRID]
    grid: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for variant, lr in progress_bar(plan, enabled=progress, desc="variants: lr grid"):
        grid[variant].append(train_variant(first, variant, lr, steps, seeds[0]))
    best = {name: _best(runs) for name, runs in grid.items()}
    chosen = {name: best[name]["lr"] for name in names}

    per_seed: dict[str, list[dict[str, Any]]] = {name: [best[name]] for name in names}
    controls: dict[str, list[dict[str, Any]]] = {LORA_PLUS_CONTROL: [], RSLORA_CONTROL: []}
    jobs = [(s, name) for s in seeds[1:] for name in names] + [
        (s, control) for s in seeds for control in controls
    ]
    for s, name in progress_bar(jobs, enabled=progress, desc="variants: seeds"):
        task = tasks[s]
        if name == LORA_PLUS_CONTROL:
            controls[name].append(
                train_variant(task, "LoRA", chosen["LoRA+"] * LORA_PLUS_RATIO, steps, s)
            )
        elif name == RSLORA_CONTROL:
            controls[name].append(
                train_variant(
                    task, "LoRA", chosen["rsLoRA"], steps, s, alpha=ALPHA * math.sqrt(RANK)
                )
            )
        else:
            per_seed[name].append(train_variant(task, name, chosen[name], steps, s))

    def brief(run_: dict[str, Any], with_curve: bool = True) -> dict[str, Any]:
        keys = ["lr", "train_loss", "test_loss", "accuracy", "diverged"]
        out = {key: run_[key] for key in keys}
        if with_curve:
            out["loss"] = run_["loss"]
        return out

    def measures(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "accuracy": _summary([r["accuracy"] for r in runs], ACCURACY_BOUNDS),
            "test_loss": _summary([r["test_loss"] for r in runs]),
            "train_loss": _summary([r["train_loss"] for r in runs]),
            "curves": [_curve_points(r["loss"]) for r in runs],
        }

    dora: dict[str, Any] = {}
    for name in DORA_METHODS:
        correlations = [dora_correlations(r) for r in per_seed[name]]
        dora[name] = {
            layer: {
                kind: _summary([c[layer][kind] for c in correlations], (-1.0, 1.0))
                for kind in ("checkpoints", "rows")
            }
            for layer in LAYERS
        }
    scatter = {
        name: {
            "checkpoints": best[name]["checkpoints"],
            "rows": best[name]["rows"],
            "correlation": dora_correlations(best[name]),
        }
        for name in DORA_METHODS
    }
    return {
        "quick": quick,
        "seed": seed,
        "seeds": seeds,
        "task": {
            "sizes": list(SIZES),
            "planted_layer": PLANTED_LAYER,
            "planted_rank": PLANTED_RANK,
            "planted_profile": "1/i",
            "shift_size": SHIFT_SIZE,
            "adapted_layers": list(LAYERS),
            "rank": RANK,
            "alpha": ALPHA,
            "loss": "MSE to teacher B's logits (distillation)",
            "steps": steps,
            "batch_size": BATCH,
            "lr_grid": list(LR_GRID),
            "full_lr_grid": list(FULL_LR_GRID),
            "lora_plus_ratio": LORA_PLUS_RATIO,
            "selection": "lowest mean training loss over the last 10% of steps, on the "
            "first seed; kept for the other seeds",
            "curve_every": CURVE_EVERY,
        },
        "interval": "95% t-interval of the mean over seeds",
        "variants": names,
        "chosen_lr": chosen,
        "final_accuracy": {
            name: _summary([r["accuracy"] for r in per_seed[name]])["mean"] for name in names
        },
        "final_test_loss": {
            name: _summary([r["test_loss"] for r in per_seed[name]])["mean"] for name in names
        },
        "trainable": {name: best[name]["trainable"] for name in names},
        "per_seed": {name: measures(per_seed[name]) for name in names},
        "best": {name: brief(best[name]) for name in names},
        "grid": {name: [brief(r, with_curve=False) for r in grid[name]] for name in names},
        "controls": {name: brief(runs[0]) for name, runs in controls.items()},
        "controls_per_seed": {name: measures(runs) for name, runs in controls.items()},
        "dora_per_layer": dora,
        "dora_scatter": scatter,
    }


# =========================================================================== plot


def _format_loss(value: float | None) -> str:
    return "diverged" if value is None or not math.isfinite(value) else f"{value:.1e}"


def _log_summary(values: Any) -> dict[str, Any]:
    """Geometric mean with the 95% interval of log10(value): for losses, drawn on log axes
    (an arithmetic interval of a few seeds can reach below zero)."""
    kept = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    stats = mean_interval(np.log10(kept))
    if stats["mean"] is None:
        return {"mean": None, "ci": [None, None]}
    lo, hi = stats["ci"]
    return {
        "mean": 10 ** stats["mean"],
        "ci": [None if lo is None else 10**lo, None if hi is None else 10**hi],
    }


def _curve_band(ax: Any, curves: list[list[float]], every: int, color: str, ls: str, label: str):
    """Loss curve over seeds (geometric mean) with its 95% band, on a log y axis."""
    array = np.array([c for c in curves if c is not None and len(c) == len(curves[0])], float)
    steps = every * np.arange(1, array.shape[1] + 1)
    summaries = [_log_summary(column) for column in array.T]
    mean = np.array([s["mean"] for s in summaries])
    ax.semilogy(steps, mean, ls, color=color, label=label)
    if summaries[0]["ci"][0] is not None:
        lo = np.array([s["ci"][0] for s in summaries])
        hi = np.array([s["ci"][1] for s in summaries])
        ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)


def _dot_with_ci(
    ax: Any, x: float, summary: dict[str, Any], color: str, marker: str = "o", **kwargs: Any
) -> None:
    """One mean as a point with its 95% interval as a vertical error bar."""
    mean, (lo, hi) = summary["mean"], summary["ci"]
    yerr = None if lo is None else [[mean - lo], [hi - mean]]
    ax.errorbar(
        [x], [mean], yerr=yerr, fmt=marker, ls="none", color=color, capsize=4, ms=7, **kwargs
    )


@style.styled
def plot(result: dict[str, Any]):
    """Loss curves (mean over seeds), test agreement and test loss per method (with 95%
    intervals), learning-rate sensitivity (first seed), the two controls, and DoRA's ΔD–ΔM
    correlation per layer with one seed's scatter for full fine-tuning, LoRA and DoRA."""
    names = result["variants"]
    task = result["task"]
    n = len(result["seeds"])
    fig, axes = style.figure(
        2,
        4,
        title=f"LoRA variants: rank {task['rank']} adapters on a rank-{task['planted_rank']} "
        f"update, α = {task['alpha']:g}, {task['steps']} Adam steps, best lr of a grid each "
        f"({n} seeds; 95% intervals)",
    )
    every = task["curve_every"]

    ax = axes[0, 0]
    for name in names:
        ls = "--" if name == FULL else "-"
        label = f"{name} (lr {result['chosen_lr'][name]:g})"
        _curve_band(ax, result["per_seed"][name]["curves"], every, COLORS[name], ls, label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE to B's logits, 20-step mean)")
    ax.set_title("loss curves at each one's lr (mean over seeds)", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)

    ax = axes[0, 1]
    for i, name in enumerate(names):
        accuracy = result["per_seed"][name]["accuracy"]
        lo, hi = accuracy["ci"]
        error = {
            "mean": 1 - accuracy["mean"],
            "ci": [None, None] if lo is None else [1 - hi, 1 - lo],
        }
        _dot_with_ci(ax, i, error, COLORS[name])
        ax.annotate(
            f"{accuracy['mean']:.1%}",
            (i, error["mean"]),
            textcoords="offset points",
            xytext=(8, 0),
            fontsize=7,
            va="center",
        )
    ax.set_yscale("log")
    ax.set_ylim(1e-2, 1.0)
    ax.axhline(0.9, color=style.COLORS["baseline"], ls="-.", lw=1)
    ax.text(
        0.01,
        0.9,
        "chance (accuracy 10%)",
        transform=ax.get_yaxis_transform(),
        fontsize=7,
        va="bottom",
        color=style.COLORS["baseline"],
    )
    labels = [f"{n.replace(' fine-tuning', ' FT')}\n{result['trainable'][n]:,}" for n in names]
    ax.set_xticks(range(len(names)), labels, fontsize=7)
    ax.set_xlim(-0.5, len(names) - 0.2)
    ax.set_xlabel("variant / trainable parameters", fontsize=8)
    ax.set_ylabel("test error = 1 − agreement with B (log)")
    ax.set_title("test accuracy (held-out inputs), as error", fontsize=9)

    ax = axes[0, 2]
    for i, name in enumerate(names):
        losses = _log_summary(result["per_seed"][name]["test_loss"]["per_seed"])
        _dot_with_ci(ax, i, losses, COLORS[name])
    for label, control in result["controls_per_seed"].items():
        color = COLORS["LoRA+"] if "LoRA+" in label else COLORS["rsLoRA"]
        x = names.index("LoRA+" if "LoRA+" in label else "rsLoRA") + 0.3
        losses = _log_summary(control["test_loss"]["per_seed"])
        _dot_with_ci(ax, x, losses, color, mfc="white", label=f"control: {label}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [n.replace(" fine-tuning", " FT") for n in names], fontsize=7)
    ax.set_xlim(-0.5, len(names) - 0.3)
    ax.set_ylabel("test loss (MSE to B's logits; geometric mean)")
    ax.set_title("test loss; hollow: learning-rate-matched controls", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)

    ax = axes[0, 3]
    for name in names:
        runs = result["grid"][name]
        lrs = [r["lr"] for r in runs]
        losses = nan_array([r["train_loss"] for r in runs])
        ls = "--" if name == FULL else "-"
        ax.loglog(lrs, losses, ls, marker="o", color=COLORS[name], label=name)
    ax.set_xlabel("learning rate (A's for LoRA+)")
    ax.set_ylabel("final training loss (mean of last 10% of steps)")
    ax.set_title("first seed: every lr of the grid (missing: diverged)", fontsize=9)
    ax.legend(loc="lower left", fontsize=7, ncol=2)

    ax = axes[1, 0]
    pairs = [
        ("LoRA+", result["per_seed"]["LoRA+"], COLORS["LoRA+"], "-"),
        (
            "LoRA, lr = LoRA+'s B lr",
            result["controls_per_seed"][LORA_PLUS_CONTROL],
            COLORS["LoRA+"],
            ":",
        ),
        ("rsLoRA", result["per_seed"]["rsLoRA"], COLORS["rsLoRA"], "-"),
        ("LoRA, α·√r", result["controls_per_seed"][RSLORA_CONTROL], "black", ":"),
        ("LoRA (its lr)", result["per_seed"]["LoRA"], COLORS["LoRA"], "-"),
    ]
    for label, measured, color, ls in pairs:
        _curve_band(ax, measured["curves"], every, color, ls, label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (20-step mean)")
    ax.set_title("learning-rate-matched controls (mean over seeds)", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)

    markers = {"0": "o", "2": "s"}
    for column, name in enumerate(("LoRA", "DoRA"), start=1):
        ax = axes[1, column]
        data = result["dora_scatter"][name]
        for layer, marker in markers.items():
            rows = data["rows"][layer]
            ax.scatter(rows["dD"], rows["dM"], s=6, alpha=0.35, color=COLORS[name], marker=marker)
            points = data["checkpoints"][layer]
            ax.plot(points["dD"], points["dM"], "-", color="black", lw=0.8)
            ax.scatter(
                points["dD"],
                points["dM"],
                s=28,
                marker=marker,
                c=np.arange(len(points["dD"])),
                cmap="Greys",
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
                label=f"layer {layer}: checkpoints (light → dark)",
            )
        ax.set_xlabel("ΔD = 1 − cos(W_t row, W₀ row)")
        ax.set_ylabel("ΔM = |‖W_t row‖ − ‖W₀ row‖|")
        ax.set_title(f"{name}, first seed: small dots, one per output row", fontsize=9)
        ax.legend(loc="upper left", fontsize=6)

    ax = axes[1, 3]
    x = 0
    ticks = []
    for kind, hollow in (("checkpoints", False), ("rows", True)):
        for name in DORA_METHODS:
            for layer in LAYERS:
                summary = result["dora_per_layer"][name][layer][kind]
                if summary["mean"] is not None:
                    _dot_with_ci(
                        ax,
                        x,
                        summary,
                        COLORS[name],
                        mfc="white" if hollow else COLORS[name],
                        marker=markers[layer],
                    )
                ticks.append((x, f"{name.replace('full fine-tuning', 'FT')} {layer}"))
                x += 1
        x += 0.6
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks], rotation=90, fontsize=7)
    ax.set_ylabel("Pearson r of ΔD and ΔM, per layer")
    ax.set_title(
        "filled: over checkpoints; hollow: over rows (end)\npaper: LoRA > 0; full FT, DoRA < 0",
        fontsize=9,
    )
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline: each variant's test agreement (mean [95% interval]) and chosen lr;
    DoRA's per-layer ΔD–ΔM correlations over checkpoints."""
    parts = [
        f"{name} {format_interval(result['per_seed'][name]['accuracy'], 1, percent=True)} "
        f"(lr {result['chosen_lr'][name]:g})"
        for name in result["variants"]
    ]
    corr = "; ".join(
        f"{name.replace('full fine-tuning', 'FT')} "
        + ", ".join(
            f"layer {layer} {result['dora_per_layer'][name][layer]['checkpoints']['mean']:+.2f}"
            for layer in LAYERS
        )
        for name in DORA_METHODS
    )
    return "; ".join(parts) + f"; ΔD–ΔM corr over checkpoints: {corr}"
