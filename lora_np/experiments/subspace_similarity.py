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
   :mod:`lora_np.lora_analysis` for why), against the chance level measured on Gaussian
   matrices of the same shapes. The paper's claim: the top directions of the small and
   the large rank coincide, far above chance, and beyond them φ falls to noise level.
2. Table 7: ‖UᵀWV‖_F for U, V from the learned ΔW, from W itself and random, and the
   amplification factor ‖ΔW‖_F / ‖UᵀWV‖_F. Here ΔW* was drawn at random, independent of
   W (unlike a real fine-tuning update), so ΔW should look random against W: this run
   checks the measurement, not the paper's "ΔW amplifies features of W".
3. The singular values of the *full* fine-tuning update W_ft − W₀ of every layer: is it
   low-rank, and does it show the planted rank?
"""

from __future__ import annotations

import copy
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
from lora_np.experiments.common import nan_grid, progress_bar
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.lora_analysis import (
    energy_in_top,
    random_subspace_similarity,
    right_singular_vectors,
    singular_values,
    subspace_similarity_grid,
    update_vs_weight,
)
from lora_np.nn.functional import mse_loss
from lora_np.nn.modules import Linear
from lora_np.optim import Adam
from lora_np.rng import manual_seed
from lora_np.train import fit

SIZES = (32, 128, 128, 10)
LAYER = "2"  # the planted layer, and the one LoRA adapts
PLANTED_RANK = 4
PLANTED_PROFILE = (4.0, 3.0, 2.0, 1.0)  # distinct singular values: ordered directions
SHIFT_SIZE = 0.5
RANKS = (8, 64)  # the LoRA paper's pair
LORA_LR, FULL_LR = 3e-3, 1e-3
BATCH = 64


def budget(quick: bool) -> dict[str, int]:
    """Steps and sample counts of a run (smaller in quick mode); :func:`run` uses these."""
    return {"steps": 500 if quick else 1500, "n_train": 3000 if quick else 5000, "n_test": 2000}


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
    predicted = np.argmax(teacher_logits(model, task.X_test), axis=1)
    return float(np.mean(predicted == task.y_test_b))


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


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train LoRA at r = 8 and 64 for two seeds, and full fine-tuning; measure φ, Table 7
    and the full update's spectrum (see the module docstring). JSON-able dict."""
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
        "singular_vectors": "right (input space R^in), see lora_np.lora_analysis",
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
    }


@style.styled
def plot(result: dict[str, Any]):
    """Six panels: φ heatmaps (ranks, seeds), φ on the diagonal vs chance, overlap with the
    planted subspace, Table 7 as bars, and the full fine-tuning update's spectrum."""
    small, large = result["ranks"]
    k = result["task"]["planted_rank"]
    fig, axes = style.figure(
        2, 3, title="What LoRA learns: subspace similarity, ΔW vs W, the full update's spectrum"
    )

    ax = axes[0, 0]
    image = ax.imshow(
        nan_grid(result["phi_ranks"]),
        vmin=0,
        vmax=1,
        cmap="viridis",
        aspect="auto",
        extent=(0.5, large + 0.5, small + 0.5, 0.5),
        interpolation="nearest",
    )
    ax.set_xlabel(f"j (top-j right-singular vectors of A, r = {large})")
    ax.set_ylabel(f"i (top-i of A, r = {small})")
    ax.set_title(
        f"φ(A_r={small}, A_r={large}, i, j), layer {result['task']['layer']}, run 1", fontsize=9
    )
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="φ")

    ax = axes[0, 1]
    image = ax.imshow(
        nan_grid(result["phi_seeds"]),
        vmin=0,
        vmax=1,
        cmap="viridis",
        aspect="auto",
        extent=(0.5, large + 0.5, large + 0.5, 0.5),
        interpolation="nearest",
    )
    ax.set_xlabel(f"j (A, r = {large}, run 2)")
    ax.set_ylabel(f"i (A, r = {large}, run 1)")
    ax.set_title(f"φ between two runs (seeds) at r = {large}", fontsize=9)
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="φ")

    ax = axes[0, 2]
    diag = np.arange(1, small + 1)
    curves = [
        (result["phi_ranks"], f"r={small} vs r={large}, run 1", style.COLORS["lora"], "-"),
        (result["phi_ranks_seed1"], f"r={small} vs r={large}, run 2", style.COLORS["lora"], "--"),
        (result["phi_seeds"], f"r={large}: run 1 vs run 2", style.COLORS["rslora"], "-"),
        (
            result["phi_ranks_random"],
            f"random, {small} vs {large} rows",
            style.COLORS["baseline"],
            ":",
        ),
    ]
    for grid, label, color, ls in curves:
        values = nan_grid(grid)
        ax.plot(
            diag, [values[i - 1, i - 1] for i in diag], ls, marker="o", color=color, label=label
        )
    ax.axvline(k, color=style.COLORS["highlight"], ls="--", lw=1)
    ax.text(k, 0.15, f" planted rank {k}", color=style.COLORS["highlight"], fontsize=8)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("i = j")
    ax.set_ylabel("φ(i, i)")
    ax.set_title("φ on the diagonal vs chance", fontsize=9)
    ax.legend(loc="center left")

    ax = axes[1, 0]
    for (label, values), ls in zip(result["planted_overlap"].items(), ("-", "--"), strict=True):
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            ls,
            marker="o",
            color=style.COLORS["lora"],
            label=f"A, {label}",
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
    ax.set_title("overlap with the planted input subspace V*", fontsize=9)
    ax.legend(loc="center left")
    accuracy = result["accuracy"]
    style.note(
        ax,
        "agreement with teacher B (test)\n"
        + "\n".join(f"{name}: {value:.1%}" for name, value in accuracy.items()),
        "lower right",
    )

    ax = axes[1, 1]
    table = result["table7"][str(small)]
    columns = list(table)
    sources = [
        ("proj_delta", "U, V from ΔW", style.COLORS["lora"]),
        ("proj_weight", "from W", style.COLORS["full"]),
        ("proj_random", "random", style.COLORS["baseline"]),
    ]
    width = 0.25
    for offset, (key, label, color) in enumerate(sources):
        heights = [table[c][key] for c in columns]
        ax.bar(
            np.arange(len(columns)) + (offset - 1) * width, heights, width, color=color, label=label
        )
    ax.set_xticks(np.arange(len(columns)), [f"projection {c}" for c in columns])
    ax.set_ylim(0, 2.6 * max(table[c]["proj_weight"] for c in columns))  # room for the note
    ax.set_ylabel("‖Uᵀ W V‖_F")
    ax.set_title(f"Table 7: W projected on ΔW's directions (LoRA r = {small})", fontsize=9)
    ax.legend(loc="center left")
    first = table[columns[0]]
    style.note(
        ax,
        f"‖W‖_F = {first['weight_norm']:.1f}, ‖ΔW‖_F = {first['delta_norm']:.1f}\n"
        f"amplification ({columns[0]}): {first['amplification']:.1f}"
        f" (random U, V: {first['amplification_random']:.1f})\n"
        "ΔW* was planted at random, so chance level\nis expected here (not the paper's setting)",
        "upper right",
    )

    ax = axes[1, 2]
    colors = {
        "0": style.COLORS["digits"],
        result["task"]["layer"]: style.COLORS["full"],
        "4": style.COLORS["float32"],
    }
    energy = result["full_update_energy_top_planted"]
    for name, values in result["full_update_singular_values"].items():
        values = np.asarray(values, dtype=float)
        shown = values[: min(len(values), 32)]
        label = f"layer {name}" + (" (planted)" if name == result["task"]["layer"] else "")
        ax.semilogy(
            np.arange(1, len(shown) + 1),
            shown / values[0],
            "o-",
            ms=3,
            color=colors.get(name, style.COLORS["baseline"]),
            label=f"{label}: top-{k} energy {energy[name]:.0%}",
        )
    profile = np.asarray(result["task"]["planted_profile"], dtype=float)
    ax.semilogy(
        np.arange(1, k + 1),
        profile / profile[0],
        "*",
        ms=10,
        color=style.COLORS["highlight"],
        label=f"planted ΔW* (rank {k}; zero beyond)",
    )
    ax.axvline(k, color=style.COLORS["highlight"], ls="--", lw=1)
    ax.set_xlabel("index of singular value")
    ax.set_ylabel("σ_i / σ_1 of W_ft − W₀")
    ax.set_title("full fine-tuning update: singular values", fontsize=9)
    ax.legend(loc="lower left")
    return fig


def summary(result: dict[str, Any]) -> str:
    """The headline: φ at the top direction vs chance, and the full update's top-k energy."""
    layer = result["task"]["layer"]
    k = result["task"]["planted_rank"]
    return (
        f"φ(top-1, r={result['ranks'][0]} vs r={result['ranks'][1]}) = {result['phi_top1']:.2f} "
        f"(random {result['random_baseline_top1']:.3f}); top-{k}: {result['phi_top_planted']:.2f}; "
        f"seeds top-1 {result['phi_seeds_top1']:.2f}; full-FT update of layer {layer}: "
        f"{result['full_update_energy_top_planted'][layer]:.0%} of energy in top {k}"
    )
