"""What LoRA learns (LoRA paper §7, Fig. 3/4, Table 7) on a task with a planted rank-k update.

The task: a random teacher MLP A (32-128-128-10) and teacher B = A with a planted rank-4
update ΔW* of its middle layer ("2", 128×128; singular values in the ratio 4:3:2:1 so
that the top directions are ordered, ‖ΔW*‖_F = 0.5·‖W‖_F). The "pretrained model" is
teacher A itself, and fine-tuning means matching teacher B's logits (mean squared error;
with the hard labels alone, training stalls near 70% agreement at this size). So the
update fine-tuning needs is known: rank 4, in layer "2". Accuracy = agreement with B's
labels on held-out inputs.

Measured:

1. φ between the learned A's of LoRA with r = 8 and r = 64 (same seed), and between two
   r = 64 runs (two seeds), from A's right-singular vectors (input space R^128; see
   :mod:`lora_np.lora.analysis` for why), against the chance level measured on Gaussian
   matrices of the same shapes. The paper's claim: the top directions of the small and
   the large rank coincide, far above chance, and beyond them φ falls to noise level.
2. Table 7: ‖UᵀWV‖_F for U, V from the learned ΔW, from W itself and random, and the
   amplification factor ‖ΔW‖_F / ‖UᵀWV‖_F. Here ΔW* was drawn at random, independent of
   W (unlike a real fine-tuning update), so ΔW should look random against W: this run
   checks the measurement, not the paper's "ΔW amplifies features of W".
3. The singular values of the *full* fine-tuning update W_ft − W₀ of every layer: is it
   low-rank, and does it show the planted rank?
4. Table 7 on a real fine-tuning (:func:`table7_digits`, notebook 07 §7b): an MLP
   64-128-128-10 pretrained on the 8×8 digits, then LoRA (r = 4, the paper's Table 7 rank,
   and r = 64) on its layer "2" learns the mirrored digits. This update was learned, not
   planted, so it can relate to W: the paper's reading is that ΔW's top directions hold
   more of W than random ones, less than W's own, and that the amplification factor is
   larger at small r (≈ 20 at r = 4 vs ≈ 2 at r = 64, Appendix H.4).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lora_np.data import (
    TeacherStudentTask,
    digits_split,
    make_teacher,
    mirror_digits,
    paired_datasets,
    planted_shift,
    teacher_logits,
)
from lora_np.experiments import style
from lora_np.experiments.common import format_interval, mean_interval, nan_array, nan_grid
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.lora.analysis import (
    energy_in_top,
    random_subspace_similarity,
    right_singular_vectors,
    singular_values,
    subspace_similarity_grid,
    update_vs_weight,
)
from lora_np.nn import MLP, Linear
from lora_np.nn import functional as F
from lora_np.nn.functional import mse_loss
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.rng import manual_seed
from lora_np.train import evaluate, fit

SIZES = (32, 128, 128, 10)
LAYER = "2"  # the planted layer, and the one LoRA adapts
PLANTED_RANK = 4
PLANTED_PROFILE = (4.0, 3.0, 2.0, 1.0)  # distinct singular values: ordered directions
SHIFT_SIZE = 0.5
RANKS = (8, 64)  # the LoRA paper's pair
LORA_LR, FULL_LR = 3e-3, 1e-3
BATCH = 64
DIGITS_SIZES = (64, 128, 128, 10)  # the digits MLP of notebooks 03 and 07
DIGITS_RANKS = (4, 64)  # the paper's Table 7 rank, and the large rank of its Appendix H.4
DIGITS_PRETRAIN_LR = 2e-3


def budget(quick: bool) -> dict[str, int]:
    """Steps and sample counts of a run (smaller in quick mode); :func:`run` uses these."""
    return {"steps": 500 if quick else 1500, "n_train": 3000 if quick else 5000, "n_test": 2000}


def digits_budget(quick: bool) -> dict[str, int]:
    """Epochs of digits pretraining and of LoRA fine-tuning on mirrored digits (for
    :func:`table7_digits`; smaller in quick mode)."""
    return {"pretrain_epochs": 4 if quick else 10, "finetune_epochs": 8 if quick else 20}


def make_task(seed: int, n_train: int, n_test: int) -> TeacherStudentTask:
    """Teacher A, teacher B (A plus the planted shift of LAYER) and inputs labelled by both.

    Public so that notebook 07 builds the very task :func:`run` uses.
    """
    rng = manual_seed(seed)
    teacher_a = make_teacher(SIZES, rng=rng)
    teacher_b = planted_shift(
        teacher_a, LAYER, PLANTED_RANK, SHIFT_SIZE, rng=rng, singular_values=PLANTED_PROFILE
    )
    return paired_datasets(teacher_a, teacher_b, n_train, n_test, rng=rng)


def _agreement(model: Any, task: TeacherStudentTask) -> float:
    """Fraction of test inputs on which the model's label is teacher B's."""
    return F.accuracy(teacher_logits(model, task.X_test), task.y_test_b)


def fine_tune(
    task: TeacherStudentTask, rank: int | None, seed: tuple[int, ...], steps: int
) -> dict[str, Any]:
    """Fine-tune a copy of teacher A towards B: LoRA of ``rank`` on LAYER, or full (None).

    Returns ``{"model", "loss" (last step), "accuracy" (agreement with B on the test set)}``.
    Same ``seed`` tuple, same model: :func:`run` seeds run ``s`` at rank r with
    ``(seed, s, r or 0)``.
    """
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(task.teacher_a)
    if rank is None:
        params, lr = list(model.parameters()), FULL_LR
    else:
        apply_lora(model, LoRAConfig(rank=rank, alpha=2.0 * rank, target_modules=[LAYER]), rng=rng)
        params, lr = [p for p in model.parameters() if p.requires_grad], LORA_LR
    history = fit(
        model,
        (task.X_train, task.logits_train_b),
        optimizer=Adam(params, lr=lr),
        loss=mse_loss,
        steps=steps,
        batch_size=BATCH,
        progress=False,
        rng=rng,
    )
    return {"model": model, "loss": history.loss[-1], "accuracy": _agreement(model, task)}


def table7_digits(
    seed: int = 0,
    quick: bool = False,
    ranks: tuple[int, ...] = DIGITS_RANKS,
    top_k: int = PLANTED_RANK,
    progress: bool = False,
) -> dict[str, Any]:
    """LoRA's Table 7 on a learned update: digits → mirrored digits (notebook 07 §7b).

    1. Pretrain an MLP 64-128-128-10 (initialised from ``default_rng(seed)``) on the digits
       with Adam (lr 2e-3) for ``digits_budget(quick)["pretrain_epochs"]`` epochs.
    2. For each rank r: a copy gets LoRA (α = 2r, A drawn from ``default_rng((seed, r))``)
       on layer "2" (W, 128×128) and learns the mirrored digits (left–right flip) with Adam
       (lr 3e-3, only A and B train) for ``finetune_epochs`` epochs.
    3. With ΔW = s·B·A: :func:`~lora_np.lora.analysis.update_vs_weight` at k = ``top_k``
       and at k = r, i.e. ‖UᵀWV‖_F for U, V the top-k singular vectors of ΔW, of W and
       random (generator ``default_rng((seed, k))``), and the amplification factor
       ‖ΔW‖_F / ‖UᵀWV‖_F.

    Returns ``ranks``, ``top_k``, the accuracies (pretrained on digits and on mirrored
    digits, LoRA on mirrored digits, test split) and ``table``: ``{str(r): {"r=k": row}}``
    with the rows of ``update_vs_weight`` (the layout of :func:`run`'s ``table7``). Same
    seed, same numbers; the package generator is not touched (notebook 07 §7b builds the
    same MLP after ``manual_seed(seed)``, which draws the same numbers, so its table is
    this one).
    """
    epochs = digits_budget(quick)
    X_train, y_train, X_test, y_test = digits_split(seed=seed)
    base = MLP(list(DIGITS_SIZES), rng=np.random.default_rng(seed))
    fit(
        base,
        (X_train, y_train),
        optimizer=Adam(base.parameters(), lr=DIGITS_PRETRAIN_LR),
        epochs=epochs["pretrain_epochs"],
        batch_size=BATCH,
        rng=np.random.default_rng(seed),
        progress=False,
    )
    weight = base.get_submodule(LAYER).weight.data.astype(np.float64)
    mirrored_train, mirrored_test = mirror_digits(X_train), mirror_digits(X_test)
    lora_accuracy, table = {}, {}
    for rank in progress_bar(ranks, enabled=progress, desc="subspace_similarity: digits"):
        model = copy.deepcopy(base)
        apply_lora(
            model,
            LoRAConfig(rank=rank, alpha=2.0 * rank, target_modules=[LAYER]),
            rng=np.random.default_rng((seed, rank)),
        )
        fit(
            model,
            (mirrored_train, y_train),
            optimizer=Adam([p for p in model.parameters() if p.requires_grad], lr=LORA_LR),
            epochs=epochs["finetune_epochs"],
            batch_size=BATCH,
            rng=np.random.default_rng(seed),
            progress=False,
        )
        lora_accuracy[f"r={rank}"] = evaluate(model, mirrored_test, y_test)["accuracy"]
        delta = dict(lora_layers(model))[LAYER].delta_weight().astype(np.float64)
        table[str(rank)] = {
            f"r={k}": update_vs_weight(weight, delta, k, rng=np.random.default_rng((seed, k)))
            for k in sorted({top_k, rank})
        }
    return {
        "task": "digits → mirrored digits (left-right flip), LoRA on layer "
        f"{LAYER!r} of an MLP {'-'.join(map(str, DIGITS_SIZES))} pretrained on digits",
        "pretrain_epochs": epochs["pretrain_epochs"],
        "finetune_epochs": epochs["finetune_epochs"],
        "pretrain_lr": DIGITS_PRETRAIN_LR,
        "lora_lr": LORA_LR,
        "alpha": "2r",
        "ranks": list(ranks),
        "top_k": top_k,
        "pretrained_accuracy": {
            "digits": evaluate(base, X_test, y_test)["accuracy"],
            "mirrored": evaluate(base, mirrored_test, y_test)["accuracy"],
        },
        "lora_accuracy": lora_accuracy,
        "table": table,
    }


def one_seed(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Everything :func:`run` measures, on seed ``seed``'s task alone: LoRA at r = 8 and 64
    for two runs, and full fine-tuning; φ, Table 7 and the full update's spectrum; then
    Table 7 on digits → mirrored digits (:func:`table7_digits`, field ``table7_digits``).
    See the module docstring. JSON-able dict."""
    settings = budget(quick)
    steps = settings["steps"]
    task = make_task(seed, n_train=settings["n_train"], n_test=settings["n_test"])
    w0 = {
        name: module.weight.data.astype(np.float64)
        for name, module in task.teacher_a.named_modules()
        if isinstance(module, Linear)
    }
    planted_v = task.shift.V
    w_layer = w0[LAYER]

    plan = [(r, s) for s in (0, 1) for r in RANKS] + [(None, 0)]
    runs: dict[tuple[int | None, int], dict[str, Any]] = {}
    for rank, run_seed in progress_bar(plan, enabled=progress, desc="subspace_similarity"):
        runs[(rank, run_seed)] = fine_tune(task, rank, (seed, run_seed, rank or 0), steps)

    def learned(rank: int, run_seed: int) -> tuple[np.ndarray, np.ndarray]:
        layer = dict(lora_layers(runs[(rank, run_seed)]["model"]))[LAYER]
        return layer.lora_a.weight.data.astype(np.float64), layer.delta_weight().astype(np.float64)

    small, large = RANKS
    a_small = {s: learned(small, s)[0] for s in (0, 1)}
    a_large = {s: learned(large, s)[0] for s in (0, 1)}
    in_features = w_layer.shape[1]
    baseline_rng = np.random.default_rng((seed, 99))
    random_ranks = random_subspace_similarity(
        (small, in_features), (large, in_features), draws=50 if quick else 200, rng=baseline_rng
    )
    random_seeds = random_subspace_similarity(
        (large, in_features), (large, in_features), draws=20 if quick else 50, rng=baseline_rng
    )
    phi_ranks = {s: subspace_similarity_grid(a_small[s], a_large[s]) for s in (0, 1)}
    phi_seeds = subspace_similarity_grid(a_large[0], a_large[1])

    # how much of the planted input subspace span(V*) the top-k right vectors of A cover
    def planted_overlap(a: np.ndarray) -> list[float]:
        return [
            float(np.sum((right_singular_vectors(a, k).T @ planted_v) ** 2) / min(k, PLANTED_RANK))
            for k in range(1, small + 1)
        ]

    table7 = {}
    for rank in RANKS:
        delta = learned(rank, 0)[1]
        table7[str(rank)] = {
            f"r={r}": update_vs_weight(w_layer, delta, r, rng=np.random.default_rng((seed, r)))
            for r in (PLANTED_RANK, rank)
        }
    planted = task.shift.delta_weight
    table7["planted"] = {
        f"r={PLANTED_RANK}": update_vs_weight(
            w_layer, planted, PLANTED_RANK, rng=np.random.default_rng((seed, 7))
        )
    }

    full_model = runs[(None, 0)]["model"]
    full_spectra, full_energy = {}, {}
    for name, module in full_model.named_modules():
        if name in w0:
            update = module.weight.data.astype(np.float64) - w0[name]
            full_spectra[name] = singular_values(update)
            full_energy[name] = energy_in_top(update, PLANTED_RANK)

    # last, so that the planted-task numbers above do not depend on it
    digits = table7_digits(seed=seed, quick=quick, progress=progress)

    return {
        "quick": quick,
        "seed": seed,
        "task": {
            "sizes": list(SIZES),
            "layer": LAYER,
            "planted_rank": PLANTED_RANK,
            "planted_profile": list(PLANTED_PROFILE),
            "shift_size": SHIFT_SIZE,
            "loss": "MSE to teacher B's logits (distillation)",
            "steps": steps,
            "lora_lr": LORA_LR,
            "full_lr": FULL_LR,
            "alpha": "2r",
        },
        "ranks": list(RANKS),
        "singular_vectors": "right (input space R^in), see lora_np.lora.analysis",
        "accuracy": {
            f"r={rank}, run {s + 1}" if rank else "full": runs[(rank, s)]["accuracy"]
            for rank, s in plan
        },
        "final_loss": {
            f"r={rank}, run {s + 1}" if rank else "full": runs[(rank, s)]["loss"]
            for rank, s in plan
        },
        "phi_top1": float(phi_ranks[0][0, 0]),
        "phi_top1_seed1": float(phi_ranks[1][0, 0]),
        "random_baseline_top1": float(random_ranks[0, 0]),
        "phi_top_planted": float(phi_ranks[0][PLANTED_RANK - 1, PLANTED_RANK - 1]),
        "random_baseline_top_planted": float(random_ranks[PLANTED_RANK - 1, PLANTED_RANK - 1]),
        "phi_seeds_top1": float(phi_seeds[0, 0]),
        "random_baseline_seeds_top1": float(random_seeds[0, 0]),
        "phi_ranks": phi_ranks[0],
        "phi_ranks_seed1": phi_ranks[1],
        "phi_ranks_random": random_ranks,
        "phi_seeds": phi_seeds,
        "phi_seeds_random": random_seeds,
        "planted_overlap": {
            f"r={small}": planted_overlap(a_small[0]),
            f"r={large}": planted_overlap(a_large[0]),
        },
        "table7": table7,
        "full_update_singular_values": full_spectra,
        "full_update_energy_top_planted": full_energy,
        "table7_digits": digits,
    }


UNIT = (0.0, 1.0)  # φ, overlaps, energy shares and accuracies lie in [0, 1]
SEEDS = {True: 2, False: 5}  # tasks (seeds 10·seed, 10·seed + 1, ...) per mode


def _diagonal(grid: Any, n: int) -> list[float]:
    values = nan_grid(grid)
    return [float(values[i, i]) for i in range(n)]


def _over_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers the figure and the headline quote, seed by seed, each with its mean and
    95% t-interval (:func:`~lora_np.experiments.common.mean_interval`)."""

    def summary(values: list[float], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
        stats = mean_interval(values, bounds)
        return {"per_seed": values, "mean": stats["mean"], "ci": stats["ci"]}

    def curves(
        values: list[list[float]], bounds: tuple[float, float] | None = UNIT
    ) -> dict[str, Any]:
        columns = [mean_interval(column, bounds) for column in zip(*values, strict=True)]
        return {
            "per_seed": values,
            "mean": [c["mean"] for c in columns],
            "ci": [c["ci"] for c in columns],
        }

    small, large = results[0]["ranks"]
    k = results[0]["task"]["planted_rank"]
    out: dict[str, Any] = {"n_seeds": len(results), "seeds": [r["seed"] for r in results]}
    for key in (
        "phi_top1",
        "phi_top1_seed1",
        "phi_top_planted",
        "phi_seeds_top1",
        "random_baseline_top1",
    ):
        out[key] = summary([r[key] for r in results], UNIT)
    out["phi_diagonal"] = {
        "ranks_run1": curves([_diagonal(r["phi_ranks"], small) for r in results]),
        "ranks_run2": curves([_diagonal(r["phi_ranks_seed1"], small) for r in results]),
        "seeds": curves([_diagonal(r["phi_seeds"], small) for r in results]),
        "random": curves([_diagonal(r["phi_ranks_random"], small) for r in results]),
    }
    out["planted_overlap"] = {
        key: curves([r["planted_overlap"][key] for r in results])
        for key in results[0]["planted_overlap"]
    }
    table_keys = (
        "proj_delta",
        "proj_weight",
        "proj_random",
        "amplification",
        "amplification_random",
    )
    out["table7"] = {
        f"r={rank}, top-{c[2:]}": {
            key: summary([r["table7"][str(rank)][c][key] for r in results]) for key in table_keys
        }
        for rank in (small, large)
        for c in results[0]["table7"][str(rank)]
    }
    digits = results[0]["table7_digits"]
    out["table7_digits"] = {
        f"r={rank}, top-{c[2:]}": {
            key: summary([r["table7_digits"]["table"][str(rank)][c][key] for r in results])
            for key in table_keys
        }
        for rank in digits["ranks"]
        for c in digits["table"][str(rank)]
    }
    out["digits_lora_accuracy"] = {
        name: summary([r["table7_digits"]["lora_accuracy"][name] for r in results], UNIT)
        for name in digits["lora_accuracy"]
    }
    out["full_update_energy_top_planted"] = {
        name: summary([r["full_update_energy_top_planted"][name] for r in results], UNIT)
        for name in results[0]["full_update_energy_top_planted"]
    }
    spectra = {name: [] for name in results[0]["full_update_singular_values"]}
    for r in results:
        for name, values in r["full_update_singular_values"].items():
            values = np.asarray(values[:32], dtype=float)
            spectra[name].append(np.log10(values / values[0]).tolist())
    out["full_update_spectrum"] = {}
    for name, logs in spectra.items():  # intervals of log10(σ_i/σ_1): it spans decades
        curve = curves(logs, None)
        out["full_update_spectrum"][name] = {
            "per_seed": [[10**v for v in row] for row in logs],
            "mean": [10**v for v in curve["mean"]],
            "ci": [[None, None] if lo is None else [10**lo, 10**hi] for lo, hi in curve["ci"]],
            "average": "geometric mean over seeds",
        }
    out["accuracy"] = {
        name: summary([r["accuracy"][name] for r in results], UNIT)
        for name in results[0]["accuracy"]
    }
    out["planted_rank"] = k
    return out


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """:func:`one_seed` on ``SEEDS[quick]`` tasks (seeds 10·seed, 10·seed + 1, ...).

    The top-level fields are the first seed's (:func:`one_seed`, so that a notebook can
    redo them step by step); ``over_seeds`` holds what the figure and the headline quote,
    for every seed with its mean and 95% interval.
    """
    seeds = [10 * seed + i for i in range(SEEDS[bool(quick)])]
    results = [
        one_seed(quick, s, False)
        for s in progress_bar(seeds, enabled=progress, desc="subspace_similarity: seeds")
    ]
    return {**results[0], "seed": seed, "seeds": seeds, "over_seeds": _over_seeds(results)}


def _band_curve(ax: Any, x: Any, curve: dict[str, Any], fmt: str, color: str, label: str):
    """A mean curve over seeds with its 95% band."""
    mean = nan_array(curve["mean"])
    ax.plot(x, mean, fmt, marker="o", ms=4, color=color, label=label)
    lo = [c[0] for c in curve["ci"]]
    if lo[0] is not None:
        hi = [c[1] for c in curve["ci"]]
        ax.fill_between(x, nan_array(lo), nan_array(hi), color=color, alpha=0.15, lw=0)


def _dots(ax: Any, x: float, summary: dict[str, Any], color: str, label: str | None = None):
    """A mean as a point with its 95% interval (on a log axis: floored at a tenth of it)."""
    mean, (lo, hi) = summary["mean"], summary["ci"]
    yerr = None
    if lo is not None:
        yerr = [[mean - max(lo, mean / 10)], [hi - mean]]
    ax.errorbar([x], [mean], yerr=yerr, fmt="o", color=color, capsize=3, ms=6, label=label)


def _table7_dots(ax: Any, rows: dict[str, dict[str, Any]], ylim: tuple[float, float]) -> None:
    """‖UᵀWV‖_F for U, V from ΔW, from W and random, one group of three per row: points
    with 95% intervals over seeds (a log axis, so no bars)."""
    sources = [
        ("proj_delta", "U, V from ΔW", style.COLORS["lora"]),
        ("proj_weight", "from W", style.COLORS["full"]),
        ("proj_random", "random", style.COLORS["baseline"]),
    ]
    for offset, (key, label, color) in enumerate(sources):
        for i, row in enumerate(rows.values()):
            _dots(ax, i + (offset - 1) * 0.22, row[key], color, label if i == 0 else None)
    ax.set_yscale("log")
    ax.set_ylim(*ylim)
    ax.set_xticks(np.arange(len(rows)), list(rows))
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("‖Uᵀ W V‖_F (top-k directions)")
    ax.legend(loc="upper left", ncol=3, fontsize=7)


@style.styled
def plot(result: dict[str, Any]):
    """Eight panels. Top: φ heatmaps (ranks, seeds; first seed), φ on the diagonal vs
    chance, overlap with the planted subspace (both over seeds). Bottom: Table 7 on the
    planted task and on digits → mirrored digits (one log scale), the amplification factor
    against its random counterpart, and the full fine-tuning update's spectrum."""
    small, large = result["ranks"]
    k = result["task"]["planted_rank"]
    seeds = result["over_seeds"]
    n = seeds["n_seeds"]
    fig, axes = style.figure(
        2,
        4,
        title="What LoRA learns: subspace similarity, ΔW vs W, the full update's spectrum "
        f"({n} seeds; 95% intervals)",
    )

    for ax, grid, xlabel, ylabel, title, rows in (
        (
            axes[0, 0],
            result["phi_ranks"],
            f"j (top-j right-singular vectors of A, r = {large})",
            f"i (top-i of A, r = {small})",
            f"φ(A_r={small}, A_r={large}, i, j), layer {result['task']['layer']}, first seed",
            small,
        ),
        (
            axes[0, 1],
            result["phi_seeds"],
            f"j (A, r = {large}, run 2)",
            f"i (A, r = {large}, run 1)",
            f"φ between two runs at r = {large}, first seed",
            large,
        ),
    ):
        image = ax.imshow(
            nan_grid(grid),
            vmin=0,
            vmax=1,
            cmap="viridis",
            aspect="auto",
            extent=(0.5, large + 0.5, rows + 0.5, 0.5),
            interpolation="nearest",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(False)
    fig.colorbar(image, ax=[axes[0, 0], axes[0, 1]], shrink=0.85, label="φ (both maps, 0 to 1)")

    ax = axes[0, 2]
    diag = np.arange(1, small + 1)
    diagonal = seeds["phi_diagonal"]
    for key, label, color, ls in (
        ("ranks_run1", f"r={small} vs r={large}, run 1", style.COLORS["lora"], "-"),
        ("ranks_run2", f"r={small} vs r={large}, run 2", style.COLORS["lora"], "--"),
        ("seeds", f"r={large}: run 1 vs run 2", style.COLORS["rslora"], "-"),
        ("random", f"random, {small} vs {large} rows", style.COLORS["baseline"], ":"),
    ):
        _band_curve(ax, diag, diagonal[key], ls, color, label)
    ax.axvline(k, color=style.COLORS["highlight"], ls="--", lw=1)
    ax.text(k, 0.5, f" planted rank {k}", color=style.COLORS["highlight"], fontsize=8)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("i = j")
    ax.set_ylabel("φ(i, i)")
    ax.set_title("φ on the diagonal vs chance", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)

    ax = axes[0, 3]
    for (label, curve), ls in zip(seeds["planted_overlap"].items(), ("-", "--"), strict=True):
        _band_curve(
            ax, np.arange(1, len(curve["mean"]) + 1), curve, ls, style.COLORS["lora"], f"A, {label}"
        )
    n_in = result["task"]["sizes"][2]
    steps_i = np.arange(1, small + 1)
    ax.plot(
        steps_i,
        np.maximum(steps_i, k) / n_in,
        ":",
        color=style.COLORS["baseline"],
        label="random subspace: max(i, k)/in",
    )
    ax.axvline(k, color=style.COLORS["highlight"], ls="--", lw=1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("i (top-i right-singular vectors of A)")
    ax.set_ylabel("‖U_iᵀ V*‖²_F / min(i, k)")
    accuracy = seeds["accuracy"]
    lora_acc = accuracy[f"r={small}, run 1"]
    ax.set_title(
        "overlap with the planted input subspace V*\n"
        f"(agreement with B: LoRA r={small} {format_interval(lora_acc, 1, percent=True)})",
        fontsize=9,
    )
    ax.legend(loc="center right", fontsize=7)

    planted_rows = {
        f"r={small}, {key.split(', ')[1]}": row
        for key, row in seeds["table7"].items()
        if key.startswith(f"r={small},")
    }
    digits_rows = seeds["table7_digits"]
    values = [
        row[key]["mean"]
        for group in (planted_rows, digits_rows)
        for row in group.values()
        for key in ("proj_delta", "proj_weight", "proj_random")
    ]
    ylim = (0.3 * min(values), 30 * max(values))  # one scale for both panels; room for legend

    ax = axes[1, 0]
    _table7_dots(ax, planted_rows, ylim)
    ax.set_title(
        f"Table 7, planted task (LoRA r = {small}): ΔW* random,\nso ΔW ≈ random is expected",
        fontsize=9,
    )

    ax = axes[1, 1]
    _table7_dots(ax, digits_rows, ylim)
    first = next(iter(digits_rows.values()))
    ratio = first["proj_delta"]["mean"] / first["proj_random"]["mean"]
    ax.set_title(
        f"Table 7, digits → mirrored (learned ΔW, layer 2):\ntop-{k} of ΔW hold {ratio:.1f}× "
        "more of W than random",
        fontsize=9,
    )

    ax = axes[1, 2]
    cases = [
        (f"planted\nr={rank}", seeds["table7"][f"r={rank}, top-{rank}"]) for rank in (small, large)
    ] + [
        (f"digits\nr={rank}", digits_rows[f"r={rank}, top-{rank}"])
        for rank in result["table7_digits"]["ranks"]
    ]
    for offset, (key, label, color) in enumerate(
        [
            ("amplification", "U, V from ΔW", style.COLORS["lora"]),
            ("amplification_random", "random U, V", style.COLORS["baseline"]),
        ]
    ):
        for i, (_, row) in enumerate(cases):
            _dots(ax, i + (offset - 0.5) * 0.3, row[key], color, label if i == 0 else None)
    ax.set_yscale("log")
    top = max(row["amplification_random"]["mean"] for _, row in cases)
    ax.set_ylim(0.5, 50 * top)
    ax.set_xticks(np.arange(len(cases)), [name for name, _ in cases])
    ax.set_xlim(-0.6, len(cases) - 0.4)
    ax.set_ylabel("‖ΔW‖_F / ‖Uᵀ W V‖_F, top-r directions")
    ax.set_title(
        "amplification factor at k = r (paper: ≈ 20 at r = 4,\n≈ 2 at r = 64); "
        "read it against random",
        fontsize=9,
    )
    ax.legend(loc="upper left", ncol=2, fontsize=7)

    ax = axes[1, 3]
    colors = {
        "0": style.COLORS["digits"],
        result["task"]["layer"]: style.COLORS["full"],
        "4": style.COLORS["float32"],
    }
    energy = seeds["full_update_energy_top_planted"]
    for name, curve in seeds["full_update_spectrum"].items():
        x = np.arange(1, len(curve["mean"]) + 1)
        label = f"layer {name}" + (" (planted)" if name == result["task"]["layer"] else "")
        share = format_interval(energy[name], 0, percent=True)
        _band_curve(
            ax,
            x,
            curve,
            "-",
            colors.get(name, style.COLORS["baseline"]),
            f"{label}: top-{k} energy {share}",
        )
    profile = np.asarray(result["task"]["planted_profile"], dtype=float)
    ax.plot(
        np.arange(1, k + 1),
        profile / profile[0],
        "*",
        ms=10,
        color=style.COLORS["highlight"],
        label=f"planted ΔW* (rank {k}; zero beyond)",
    )
    ax.axvline(k, color=style.COLORS["highlight"], ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("index of singular value")
    ax.set_ylabel("σ_i / σ_1 of W_ft − W₀")
    ax.set_title("full fine-tuning update: singular values", fontsize=9)
    ax.set_ylim(1e-3, 3)
    ax.legend(loc="lower left", fontsize=7)
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline, over seeds (mean [95% interval]): φ at the top direction vs chance,
    the full update's top-k energy, and Table 7 on digits → mirrored digits."""
    seeds = result["over_seeds"]
    layer = result["task"]["layer"]
    k = result["task"]["planted_rank"]
    small, large = result["ranks"]
    digits = seeds["table7_digits"]
    row = digits[f"r={result['table7_digits']['ranks'][0]}, top-{k}"]
    ratio = mean_interval(
        [
            d / r
            for d, r in zip(
                row["proj_delta"]["per_seed"], row["proj_random"]["per_seed"], strict=True
            )
        ]
    )
    amplification = ", ".join(
        f"r={rank} {format_interval(digits[f'r={rank}, top-{rank}']['amplification'], 1)}"
        for rank in result["table7_digits"]["ranks"]
    )
    return (
        f"φ(top-1, r={small} vs r={large}) = {format_interval(seeds['phi_top1'], 2)} (random "
        f"{seeds['random_baseline_top1']['mean']:.3f}); top-{k}: "
        f"{format_interval(seeds['phi_top_planted'], 2)}; seeds top-1 "
        f"{format_interval(seeds['phi_seeds_top1'], 2)}; full-FT update of layer {layer}: "
        f"{format_interval(seeds['full_update_energy_top_planted'][layer], 2)} of energy in top "
        f"{k}; digits Table 7 (top-{k}): ΔW/random {format_interval(ratio, 1)}; amplification "
        f"{amplification}"
    )
