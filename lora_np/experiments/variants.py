"""LoRA, rsLoRA, DoRA, PiSSA and LoRA+ on one task, one budget — and what DoRA changes.

The task (a teacher–student task, :mod:`lora_np.data.teacher_student`): the pretrained
model is teacher A (32-64-64-10), the target is teacher B = A plus a planted rank-4 update
of layer "2"; fine-tuning matches B's logits (mean squared error; distillation). Every
variant gets adapters of rank 8 on both hidden layers ("0", "2"), α = 16, Adam, the same
number of steps, the same batches and the same random A at the start (one generator seed
for all runs). Each variant's learning rate is the best of one small grid, chosen on the
*training* loss (mean of the last 10% of steps); test loss and test agreement with B's
labels are then reported.

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
positive ΔD–ΔM slope for LoRA, and a negative one for full fine-tuning and DoRA. At toy
scale both ΔM and ΔD grow during training, so across checkpoints every method trends
upwards; the per-row correlation at the end of training (one point per output unit:
do rows that turn more also stretch more?) is reported as well.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from lora_np.data import TeacherStudentTask, teacher_logits, teacher_student_task
from lora_np.experiments import style
from lora_np.experiments.common import nan_array
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
PLANTED_LAYER, PLANTED_RANK = "2", 4
LAYERS = ("0", "2")  # the hidden layers: every Linear but the output head
RANK, ALPHA = 8, 16.0
LORA_PLUS_RATIO = 16.0
BATCH = 64
LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
FULL_LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
CHECKPOINTS = 10

#: name -> LoRAConfig options (and the LoRA+ ratio, None for one learning rate)
VARIANTS: dict[str, dict[str, Any]] = {
    "LoRA": {"config": {}, "lora_plus": None},
    "rsLoRA": {"config": {"use_rslora": True}, "lora_plus": None},
    "DoRA": {"config": {"use_dora": True}, "lora_plus": None},
    "PiSSA": {"config": {"init": "pissa"}, "lora_plus": None},
    "LoRA+": {"config": {}, "lora_plus": LORA_PLUS_RATIO},
}
FULL = "full fine-tuning"

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
    """Adam steps and training inputs per run: 300 on 3,000 (quick), 1,000 on 5,000 (full)."""
    return {"steps": 300 if quick else 1000, "n_train": 3000 if quick else 5000, "n_test": 2000}


def make_task(quick: bool = False, seed: int = 0) -> TeacherStudentTask:
    """The experiment's task: teacher A (SIZES) and B = A + a rank-4 update of layer "2"."""
    size = budget(quick)
    return teacher_student_task(
        SIZES,
        PLANTED_LAYER,
        PLANTED_RANK,
        n_train=size["n_train"],
        n_test=size["n_test"],
        rng=manual_seed(seed),
    )


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
    test loss, the test agreement with B's labels and the per-row ΔM, ΔD.
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


def _dora_correlations(run: dict[str, Any]) -> dict[str, float]:
    """Pearson r of (ΔD, ΔM): over (layer, checkpoint) points, and over final rows."""
    d_d = [v for name in LAYERS for v in run["checkpoints"][name]["dD"]]
    d_m = [v for name in LAYERS for v in run["checkpoints"][name]["dM"]]
    rows_d = np.concatenate([run["rows"][name]["dD"] for name in LAYERS])
    rows_m = np.concatenate([run["rows"][name]["dM"] for name in LAYERS])
    return {"checkpoints": correlation(d_d, d_m), "rows": correlation(rows_d, rows_m)}


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Every variant on the lr grid, the controls, full fine-tuning; see the module doc."""
    steps = budget(quick)["steps"]
    task = make_task(quick, seed)
    plan = [(v, lr) for v in VARIANTS for lr in LR_GRID] + [(FULL, lr) for lr in FULL_LR_GRID]
    grid: dict[str, list[dict[str, Any]]] = {name: [] for name in [*VARIANTS, FULL]}
    bar = progress_bar(plan, enabled=progress, desc="variants")
    for variant, lr in bar:
        grid[variant].append(train_variant(task, variant, lr, steps, seed))
    best = {name: _best(runs) for name, runs in grid.items()}

    controls = {
        "LoRA, lr = LoRA+'s B lr": train_variant(
            task, "LoRA", best["LoRA+"]["lr"] * LORA_PLUS_RATIO, steps, seed
        ),
        "LoRA, α·√r (= rsLoRA's scaling)": train_variant(
            task, "LoRA", best["rsLoRA"]["lr"], steps, seed, alpha=ALPHA * math.sqrt(RANK)
        ),
    }

    def brief(run_: dict[str, Any], with_curve: bool = True) -> dict[str, Any]:
        keys = ["lr", "train_loss", "test_loss", "accuracy", "diverged"]
        out = {key: run_[key] for key in keys}
        if with_curve:
            out["loss"] = run_["loss"]
        return out

    names = [*VARIANTS, FULL]
    scatter = {}
    for name in ("full fine-tuning", "LoRA", "DoRA"):
        chosen = best[name]
        scatter[name] = {
            "checkpoints": chosen["checkpoints"],
            "rows": chosen["rows"],
            "correlation": _dora_correlations(chosen),
        }
    return {
        "quick": quick,
        "seed": seed,
        "task": {
            "sizes": list(SIZES),
            "planted_layer": PLANTED_LAYER,
            "planted_rank": PLANTED_RANK,
            "adapted_layers": list(LAYERS),
            "rank": RANK,
            "alpha": ALPHA,
            "loss": "MSE to teacher B's logits (distillation)",
            "steps": steps,
            "batch_size": BATCH,
            "lr_grid": list(LR_GRID),
            "full_lr_grid": list(FULL_LR_GRID),
            "lora_plus_ratio": LORA_PLUS_RATIO,
            "selection": "lowest mean training loss over the last 10% of steps",
        },
        "variants": names,
        "chosen_lr": {name: best[name]["lr"] for name in names},
        "final_accuracy": {name: best[name]["accuracy"] for name in names},
        "final_test_loss": {name: best[name]["test_loss"] for name in names},
        "trainable": {name: best[name]["trainable"] for name in names},
        "best": {name: brief(best[name]) for name in names},
        "grid": {name: [brief(r, with_curve=False) for r in grid[name]] for name in names},
        "controls": {name: brief(r) for name, r in controls.items()},
        "dora_scatter": scatter,
    }


def _curve(ax: Any, loss: Any, **kwargs: Any) -> None:
    smoothed = style.smooth(nan_array(loss), window=20)
    ax.semilogy(np.arange(1, len(smoothed) + 1), smoothed, **kwargs)


def _format_loss(value: float | None) -> str:
    return "diverged" if value is None or not math.isfinite(value) else f"{value:.1e}"


@style.styled
def plot(result: dict[str, Any]):
    """Loss curves, final metrics, learning-rate sensitivity, the two controls, and DoRA's
    (ΔD, ΔM) scatter for full fine-tuning, LoRA and DoRA."""
    names = result["variants"]
    task = result["task"]
    fig, axes = style.figure(
        2,
        4,
        title=f"LoRA variants: one task, one budget (rank {task['rank']}, α = {task['alpha']:g}, "
        f"{task['steps']} Adam steps, best lr of a grid each)",
    )

    ax = axes[0, 0]
    for name in names:
        best = result["best"][name]
        ls = "--" if name == FULL else "-"
        _curve(ax, best["loss"], color=COLORS[name], ls=ls, label=f"{name} (lr {best['lr']:g})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE to B's logits, 20-step mean)")
    ax.set_title("loss curves at each one's best lr", fontsize=9)
    ax.legend(loc="lower left")

    ax = axes[0, 1]
    positions = np.arange(len(names))
    accuracy = [result["final_accuracy"][n] or 0.0 for n in names]
    ax.bar(positions, accuracy, color=[COLORS[n] for n in names])
    for x, value in zip(positions, accuracy, strict=True):
        ax.text(x, value + 0.003, f"{value:.1%}", ha="center", va="bottom", fontsize=7)
    low = max(0.0, min(accuracy) - 0.1)
    ax.set_ylim(low, 1.02)
    labels = [f"{n.replace(' fine-tuning', ' FT')}\n{result['trainable'][n]:,}" for n in names]
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set_xlabel("variant / trainable parameters", fontsize=8)
    ax.set_ylabel("test agreement with teacher B")
    ax.set_title("final accuracy (held-out inputs)", fontsize=9)

    ax = axes[0, 2]
    for name in names:
        runs = result["grid"][name]
        lrs = [r["lr"] for r in runs]
        losses = nan_array([r["train_loss"] for r in runs])
        ls = "--" if name == FULL else "-"
        ax.loglog(lrs, losses, ls, marker="o", color=COLORS[name], label=name)
    handles = []
    for label, control in result["controls"].items():
        marker = "X" if "LoRA+" in label else "P"
        color = COLORS["LoRA+"] if "LoRA+" in label else COLORS["rsLoRA"]
        handles += ax.loglog(
            [control["lr"]],
            [control["train_loss"]],
            marker,
            ms=10,
            color=color,
            markeredgecolor="black",
            label=f"control: {label}",
        )
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * 300)  # headroom for the legend
    ax.set_xlabel("learning rate (A's for LoRA+)")
    ax.set_ylabel("final training loss (mean of last 10% of steps)")
    ax.legend(handles=handles, loc="upper left", fontsize=7)

    ax = axes[0, 3]
    pairs = [
        ("LoRA+", result["best"]["LoRA+"], COLORS["LoRA+"], "-"),
        (
            "LoRA, lr = LoRA+'s B lr",
            result["controls"]["LoRA, lr = LoRA+'s B lr"],
            COLORS["LoRA+"],
            ":",
        ),
        ("rsLoRA", result["best"]["rsLoRA"], COLORS["rsLoRA"], "-"),
        (
            "LoRA, α·√r (= rsLoRA's scaling)",
            result["controls"]["LoRA, α·√r (= rsLoRA's scaling)"],
            "black",
            ":",
        ),
        ("LoRA (best lr)", result["best"]["LoRA"], COLORS["LoRA"], "-"),
    ]
    for label, run_, color, ls in pairs:
        _curve(ax, run_["loss"], color=color, ls=ls, label=f"{label}, lr {run_['lr']:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (20-step mean)")
    ax.set_title("learning-rate-matched controls", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    short = ["LoRA+", "LoRA at B's lr", "rsLoRA", "LoRA, α·√r", "LoRA"]
    lines = [
        f"{name}: {_format_loss(run_['train_loss'])}"
        for name, (_, run_, *_) in zip(short, pairs, strict=True)
    ]
    style.note(ax, "final training loss\n" + "\n".join(lines), "upper right")

    layer_markers = {"0": "o", "2": "s"}
    for column, name in enumerate(("full fine-tuning", "LoRA", "DoRA")):
        ax = axes[1, column]
        data = result["dora_scatter"][name]
        for layer, marker in layer_markers.items():
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
                label=f"layer {layer}: mean at checkpoints (light → dark)",
            )
        corr = data["correlation"]
        ax.set_xlabel("ΔD = 1 − cos(W_t row, W₀ row)")
        ax.set_ylabel("ΔM = |‖W_t row‖ − ‖W₀ row‖|")
        ax.set_title(f"{name}: magnitude vs direction change", fontsize=9)
        ax.legend(loc="upper left", fontsize=6)
        style.note(
            ax,
            f"corr over checkpoints {corr['checkpoints']:+.2f}\n"
            f"corr over rows (end) {corr['rows']:+.2f}\nsmall dots: one per output row",
            "lower right",
        )

    ax = axes[1, 3]
    methods = ["full fine-tuning", "LoRA", "DoRA"]
    width = 0.38
    for offset, (key, label) in enumerate(
        (("checkpoints", "over (layer, checkpoint)"), ("rows", "over rows, end of training"))
    ):
        values = [result["dora_scatter"][m]["correlation"][key] for m in methods]
        values = [np.nan if v is None else v for v in values]
        ax.bar(
            np.arange(3) + (offset - 0.5) * width,
            values,
            width,
            color=[COLORS[m] for m in methods],
            alpha=1.0 if offset == 0 else 0.5,
            edgecolor="black",
            label=label,
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks(np.arange(3), ["full FT", "LoRA", "DoRA"])
    ax.set_ylabel("Pearson correlation of ΔD and ΔM")
    ax.set_title("paper: LoRA > 0; full FT and DoRA < 0", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline: each variant's test agreement and chosen lr; DoRA's correlations."""
    parts = [
        f"{name} {result['final_accuracy'][name]:.1%} (lr {result['chosen_lr'][name]:g})"
        for name in result["variants"]
    ]
    corr = {
        n: result["dora_scatter"][n]["correlation"]["rows"]
        for n in ("full fine-tuning", "LoRA", "DoRA")
    }
    return (
        "; ".join(parts)
        + f"; ΔD–ΔM corr over rows: FT {corr['full fine-tuning']:+.2f}, LoRA {corr['LoRA']:+.2f}, "
        f"DoRA {corr['DoRA']:+.2f}"
    )
