"""LoRA where it was made for: the attention of a language model (a tiny GPT on names).

The model: the GPT of :mod:`lora_np.models` (d_model 64, 2 blocks, 4 heads, 104,576
weights), pretrained on 79,919 US Census surnames — the checkpoint that ships with the
package (:func:`lora_np.models.pretrained.load_pretrained`). The fine-tuning task: first
names (4,647 for training, of which a tenth is held out as a *tuning* split for learning
rates and early stopping; 516 for validation) — a shift in spelling statistics with little
target data. Everything is reported as validation NLL in nats per character, on the first
names (``target``: what fine-tuning learned) and on 2,000 validation surnames (``source``:
what it forgot), each over several fine-tuning seeds.

1. **Which matrices** (LoRA Table 5): at one budget of trainable parameters — rank 8 on
   one of W_q, W_k, W_v, W_o, rank 4 on two (q+v, q+k), rank 2 on all four — which
   choice learns the first names best?
2. **Rank** (Table 6): LoRA on q+v at ranks 1, 2, 4, 8, 16, 64.
3. **Learning vs forgetting** (Biderman et al. 2024, "LoRA learns less and forgets
   less"): full fine-tuning with its own learning rate (from a grid, chosen on the tuning
   split) and a longer budget, with its curves, against LoRA.
4. **Subspace similarity** (Fig. 3): φ between the rank-8 and rank-64 adapters' A of W_q
   and W_v, from A's right-singular vectors (see :mod:`lora_np.lora.analysis`), against
   the chance level for random subspaces.
5. Samples: names drawn from the model before and after fine-tuning.

Protocol, the same for every run: Adam, batches of 64 names, the same batch order at a
given seed for every configuration (so configurations are compared on paired runs); LoRA
with α = r (scaling 1), A drawn from the run's seed; the tuning-split NLL is measured
every ``eval_every`` steps and the run keeps its best checkpoint; validation is touched
once, on that checkpoint. LoRA's learning rate is picked on the tuning split from a grid,
on the q+v configuration, and used for every LoRA run; full fine-tuning gets its own
grid and a longer budget. A grid is run at the first seed, and the other seeds run at the
learning rate it chose (:func:`tuned`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from lora_np.data.names import names_split, split_names
from lora_np.experiments import style
from lora_np.experiments.common import mean_interval
from lora_np.lora import LoRAConfig, apply_lora, count_parameters, lora_layers
from lora_np.lora.analysis import random_subspace_similarity, subspace_similarity_grid
from lora_np.models import GPT
from lora_np.models.char_lm import Sequences, nll, sample_names, train
from lora_np.models.pretrained import load_pretrained, read_checkpoint
from lora_np.progress import progress_counter

#: Table 5's budget: rank 8 on one matrix per block = rank 4 on two = rank 2 on four.
BUDGET_RANK = 8
ALL_FOUR = ("q_proj", "k_proj", "v_proj", "o_proj")
TARGET_CHOICES: tuple[tuple[str, ...], ...] = (
    ("q_proj",),
    ("k_proj",),
    ("v_proj",),
    ("o_proj",),
    ("q_proj", "v_proj"),
    ("q_proj", "k_proj"),
    ALL_FOUR,
)
#: The configuration LoRA's learning rate is tuned on (and the rank sweep's).
REFERENCE = ("q_proj", "v_proj")
PHI_RANKS = (8, 64)
SOURCE_NAMES = 2000  # validation surnames the forgetting is measured on
SAMPLES = 10

SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "seeds": 3,
        "lora_steps": 400,
        "full_steps": 800,
        "eval_every": 100,
        "lora_lrs": [3e-3, 1e-2, 3e-2],
        "full_lrs": [3e-4, 1e-3, 3e-3],
        "ranks": [1, 2, 4, 8, 16, 64],
        "phi_draws": 200,
    },
    True: {
        "seeds": 1,
        "lora_steps": 80,
        "full_steps": 120,
        "eval_every": 40,
        "lora_lrs": [1e-2],
        "full_lrs": [1e-3],
        "ranks": [1, 4, 64],
        "phi_draws": 20,
    },
}


@dataclass(frozen=True)
class Task:
    """The pretrained model and the name sets every run uses (see the module docstring)."""

    pretrained: GPT
    train: Sequences  # first names fine-tuned on
    tune: Sequences  # first names held out of training: learning rates, early stopping
    target: Sequences  # validation first names
    source: Sequences  # validation surnames (forgetting)


def task() -> Task:
    """The fine-tuning task: the shipped pretrained GPT, first names, validation surnames."""
    model = load_pretrained()
    context = model.context_length
    first_train, first_validation = names_split("first")
    fit_names, tune_names = split_names(first_train, 0.1, seed=1)
    _, surname_validation = names_split("surnames")
    _, source_names = split_names(
        surname_validation, SOURCE_NAMES / len(surname_validation), seed=2
    )
    return Task(
        pretrained=model,
        train=Sequences.from_names(fit_names, context),
        tune=Sequences.from_names(tune_names, context),
        target=Sequences.from_names(first_validation, context),
        source=Sequences.from_names(source_names, context),
    )


def seed_list(seed: int, count: int) -> list[int]:
    """The fine-tuning seeds of a run with ``seed``: 10·seed, 10·seed + 1, ..."""
    return [10 * seed + i for i in range(count)]


def finetune(
    t: Task,
    *,
    modules: tuple[str, ...] | None,
    rank: int,
    lr: float,
    steps: int,
    eval_every: int,
    seed: int,
    curves: bool = False,
) -> dict[str, Any]:
    """One fine-tuning run from the pretrained model; ``modules=None`` is full fine-tuning.

    LoRA goes on the named projections of every block (rank ``rank``, α = rank), its A
    drawn from ``default_rng([seed, 2])``; batches come from ``default_rng([seed, 1])``.
    The run keeps its checkpoint with the lowest tuning-split NLL. Returns ``model`` (the
    kept checkpoint), ``trainable``, ``best_step``, ``val_nll_target``, ``val_nll_source``
    and ``history`` (with the target and source curves too when ``curves``).
    """
    model = copy.deepcopy(t.pretrained)
    if modules is not None:
        config = LoRAConfig(rank=rank, alpha=rank, target_modules=list(modules))
        apply_lora(model, config, rng=np.random.default_rng([seed, 2]))
    eval_sets = {"tune": t.tune}
    if curves:
        eval_sets.update(target=t.target, source=t.source)
    history = train(
        model,
        t.train,
        steps=steps,
        lr=lr,
        rng=np.random.default_rng([seed, 1]),
        eval_sets=eval_sets,
        eval_every=eval_every,
        keep_best="tune",
    )
    return {
        "model": model,
        "trainable": int(count_parameters(model)[0]),
        "best_step": history["best_step"],
        "tune_nll": min(history["tune"]),
        "val_nll_target": nll(model, t.target),
        "val_nll_source": nll(model, t.source),
        "history": history,
    }


def _curves(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation curves of runs over seeds: steps, and per set a list per seed."""
    history = [run["history"] for run in runs]
    return {
        "steps": history[0]["eval_steps"],
        **{name: [h[name] for h in history] for name in ("tune", "target", "source")},
    }


def target_at_forgetting(source: list[float], target: list[float], level: float) -> float | None:
    """The target NLL of a training curve where its source NLL first reaches ``level``.

    ``source`` and ``target`` are one run's NLLs at its evaluation steps; between the two
    evaluations around the crossing, the curve is taken to be straight. None if the curve
    never forgets that much.
    """
    for k in range(1, len(source)):
        if source[k] >= level:
            if source[k] == source[k - 1]:
                return float(target[k])
            w = (level - source[k - 1]) / (source[k] - source[k - 1])
            return float(target[k - 1] + w * (target[k] - target[k - 1]))
    return None


def _phi(rank_runs: dict[int, list[dict[str, Any]]], draws: int, seed: int) -> dict[str, Any]:
    """φ(A_r8, A_r64, i, j = 8) for i = 1..8, per projection, averaged over seeds and blocks."""
    small, large = PHI_RANKS
    out: dict[str, Any] = {"i": list(range(1, small + 1)), "j": small, "ranks": list(PHI_RANKS)}
    for proj in REFERENCE:
        per_run = []
        for run_small, run_large in zip(rank_runs[small], rank_runs[large], strict=True):
            a_small = dict(lora_layers(run_small["model"]))
            a_large = dict(lora_layers(run_large["model"]))
            for name in a_small:
                if name.endswith(proj):
                    grid = subspace_similarity_grid(
                        a_small[name].lora_a.weight.data,
                        a_large[name].lora_a.weight.data,
                        max_i=small,
                        max_j=small,
                    )
                    per_run.append(grid[:, small - 1])
        out[proj] = np.mean(per_run, axis=0)
        out[f"{proj}_per_layer_and_seed"] = per_run
    in_features = rank_runs[small][0]["model"].d_model
    chance = random_subspace_similarity(
        (small, in_features), (large, in_features), draws=draws, rng=np.random.default_rng(seed)
    )
    out["chance"] = chance[:small, small - 1]
    return out


def tuned(
    make_run: Any, lrs: list[float], seeds: list[int]
) -> tuple[float, list[dict[str, Any]], dict[float, dict[str, Any]]]:
    """Pick a learning rate on the tuning split, then run every seed with it.

    ``make_run(lr, seed)`` is one run. Each learning rate of ``lrs`` is run at the first
    seed; the one whose run reached the lowest tuning-split NLL is chosen, and the other
    seeds run with it. Returns ``(lr, runs at lr for every seed, {lr: first seed's run})``.
    """
    grid = {lr: make_run(lr, seeds[0]) for lr in lrs}
    lr = min(lrs, key=lambda x: grid[x]["tune_nll"])
    return lr, [grid[lr]] + [make_run(lr, s) for s in seeds[1:]], grid


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Everything in the module docstring, as a JSON-able dict (see the tests for the
    fields: ``baseline``, ``targets``, ``ranks``, ``full_ft``, ``phi``, ``samples``, ...)."""
    cfg = SETTINGS[bool(quick)]
    t = task()
    seeds = seed_list(seed, cfg["seeds"])
    reference_rank = BUDGET_RANK // len(REFERENCE)
    stages = progress_counter(enabled=progress, total=5, desc="tiny_lm", unit="stage")

    def lora_run(modules: tuple[str, ...], rank: int, lr: float, s: int, curves: bool = False):
        return finetune(
            t,
            modules=modules,
            rank=rank,
            lr=lr,
            steps=cfg["lora_steps"],
            eval_every=cfg["eval_every"],
            seed=s,
            curves=curves,
        )

    # LoRA's learning rate, tuned on q+v; that configuration's runs are reused below
    lora_lr, reference_runs, lora_grid = tuned(
        lambda lr, s: lora_run(REFERENCE, reference_rank, lr, s, curves=True),
        cfg["lora_lrs"],
        seeds,
    )
    stages.update(1)

    def lora_runs(modules: tuple[str, ...], rank: int) -> list[dict[str, Any]]:
        if modules == REFERENCE and rank == reference_rank:
            return reference_runs
        return [lora_run(modules, rank, lora_lr, s) for s in seeds]

    targets = []
    for modules in TARGET_CHOICES:
        rank = BUDGET_RANK // len(modules)
        runs = lora_runs(modules, rank)
        targets.append(
            {
                "modules": list(modules),
                "rank": rank,
                "trainable": runs[0]["trainable"],
                "val_nll_target": [r["val_nll_target"] for r in runs],
                "val_nll_source": [r["val_nll_source"] for r in runs],
                "best_step": [r["best_step"] for r in runs],
            }
        )
    stages.update(1)

    rank_runs = {rank: lora_runs(REFERENCE, rank) for rank in sorted({*cfg["ranks"], *PHI_RANKS})}
    ranks = {
        "modules": list(REFERENCE),
        "ranks": list(cfg["ranks"]),
        "trainable": [rank_runs[r][0]["trainable"] for r in cfg["ranks"]],
        "val_nll_target": [[x["val_nll_target"] for x in rank_runs[r]] for r in cfg["ranks"]],
        "val_nll_source": [[x["val_nll_source"] for x in rank_runs[r]] for r in cfg["ranks"]],
        "best_step": [[x["best_step"] for x in rank_runs[r]] for r in cfg["ranks"]],
    }
    stages.update(1)

    full_lr, full_runs, full_grid = tuned(
        lambda lr, s: finetune(
            t,
            modules=None,
            rank=0,
            lr=lr,
            steps=cfg["full_steps"],
            eval_every=cfg["eval_every"],
            seed=s,
            curves=True,
        ),
        cfg["full_lrs"],
        seeds,
    )
    stages.update(1)

    # learning at equal forgetting: full fine-tuning's curve where it has forgotten as much
    # as LoRA on q,v did (seed by seed: the same batches)
    at_lora_forgetting = [
        target_at_forgetting(
            full_run["history"]["source"], full_run["history"]["target"], lora_run["val_nll_source"]
        )
        for full_run, lora_run in zip(full_runs, reference_runs, strict=True)
    ]

    sample_seed = 1000 + seed
    _, checkpoint = read_checkpoint()
    result = {
        "quick": bool(quick),
        "seed": seed,
        "seeds": seeds,
        "settings": cfg,
        "architecture": t.pretrained.config(),
        "pretrained_validation_nll_surnames": checkpoint["validation_nll"],
        "data": {
            "train_first_names": len(t.train),
            "tune_first_names": len(t.tune),
            "validation_first_names": len(t.target),
            "validation_surnames": len(t.source),
        },
        "baseline": {
            "val_nll_target": nll(t.pretrained, t.target),
            "val_nll_source": nll(t.pretrained, t.source),
        },
        "lora_lr": {
            "modules": list(REFERENCE),
            "rank": reference_rank,
            "lrs": list(cfg["lora_lrs"]),
            "tune_nll": [lora_grid[lr]["tune_nll"] for lr in cfg["lora_lrs"]],
            "chosen": lora_lr,
        },
        "lora_curves": _curves(reference_runs),
        "targets": targets,
        "ranks": ranks,
        "full_ft": {
            "trainable": full_runs[0]["trainable"],
            "lr": full_lr,
            "lrs": list(cfg["full_lrs"]),
            "tune_nll": [full_grid[lr]["tune_nll"] for lr in cfg["full_lrs"]],
            "steps": cfg["full_steps"],
            "best_step": [r["best_step"] for r in full_runs],
            "val_nll_target": [r["val_nll_target"] for r in full_runs],
            "val_nll_source": [r["val_nll_source"] for r in full_runs],
            "curves": _curves(full_runs),
            "val_nll_target_at_lora_forgetting": at_lora_forgetting,
            "grid_curves": {str(lr): _curves([full_grid[lr]]) for lr in cfg["full_lrs"]},
        },
        "phi": _phi(rank_runs, cfg["phi_draws"], seed),
        "samples": {
            name: sample_names(model, SAMPLES, np.random.default_rng(sample_seed))
            for name, model in (
                ("before", t.pretrained),
                ("lora", reference_runs[0]["model"]),
                ("full_ft", full_runs[0]["model"]),
            )
        },
    }
    stages.update(1)
    stages.close()
    return result


# =========================================================================== figure


def _short(modules: list[str]) -> str:
    return ",".join(m[0] for m in modules)  # ["q_proj", "v_proj"] -> "q,v"


def _mean_std(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation over the last axis, the seeds, as
    :func:`~lora_np.experiments.common.mean_interval` gives them (no spread for one seed)."""
    array = np.asarray(values, dtype=float)
    stats = [mean_interval(row) for row in array.reshape(-1, array.shape[-1])]
    mean = np.array([s["mean"] for s in stats]).reshape(array.shape[:-1])
    std = np.array([s["std"] or 0.0 for s in stats]).reshape(array.shape[:-1])
    return mean, std


def _references(ax: Any, result: dict[str, Any]) -> None:
    full = np.mean(result["full_ft"]["val_nll_target"])
    ax.axhline(
        result["baseline"]["val_nll_target"],
        color=style.COLORS["baseline"],
        ls=":",
        label="pretrained (no fine-tuning)",
    )
    ax.axhline(full, color=style.COLORS["full"], ls="--", label="full fine-tuning")


def _targets_panel(ax: Any, result: dict[str, Any]) -> None:
    rows = result["targets"]
    x = np.arange(len(rows))
    mean, std = _mean_std([row["val_nll_target"] for row in rows])
    ax.bar(x, mean, yerr=std, color=style.COLORS["lora"], alpha=0.75, capsize=3)
    for i, row in enumerate(rows):
        ax.plot([i] * len(row["val_nll_target"]), row["val_nll_target"], "k.", ms=3)
    _references(ax, result)
    ax.set_xticks(x, [f"{_short(r['modules'])}\nr={r['rank']}" for r in rows])
    low = min(mean.min(), np.mean(result["full_ft"]["val_nll_target"]))
    ax.set_ylim(low - 0.05, result["baseline"]["val_nll_target"] + 0.03)
    ax.set_ylabel("validation NLL, first names (nats/char)")
    ax.set_title(
        f"which matrices? {rows[0]['trainable']:,} trainable weights each (Table 5)", fontsize=9
    )
    ax.legend(loc="upper right")


def _ranks_panel(ax: Any, result: dict[str, Any]) -> None:
    sweep = result["ranks"]
    ranks = np.array(sweep["ranks"])
    mean, std = _mean_std(sweep["val_nll_target"])
    ax.errorbar(
        ranks,
        mean,
        yerr=std,
        fmt="o-",
        color=style.COLORS["lora"],
        capsize=3,
        label=f"LoRA on {_short(sweep['modules'])}",
    )
    for r, m, n in zip(ranks, mean, sweep["trainable"], strict=True):
        ax.annotate(
            f"{n:,}", (r, m), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7
        )
    _references(ax, result)
    ax.set_xscale("log")
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("rank r (numbers: trainable weights)")
    ax.set_ylabel("validation NLL, first names")
    ax.set_title("rank of the q,v update (Table 6)", fontsize=9)
    ax.legend(loc="center right")


def _forgetting_panel(ax: Any, result: dict[str, Any]) -> None:
    base = result["baseline"]
    ax.plot(
        base["val_nll_source"],
        base["val_nll_target"],
        "*",
        ms=12,
        color=style.COLORS["baseline"],
        label="pretrained",
    )
    for label, curves, color in (
        (
            f"full fine-tuning (mean over seeds, every {result['settings']['eval_every']} steps)",
            result["full_ft"]["curves"],
            style.COLORS["full"],
        ),
        ("LoRA q,v r=4 (same)", result["lora_curves"], style.COLORS["lora"]),
    ):
        ax.plot(
            np.mean(curves["source"], axis=0),
            np.mean(curves["target"], axis=0),
            ".-",
            color=color,
            alpha=0.5,
            lw=1,
            label=label,
        )
    for row in result["targets"]:
        ax.plot(
            np.mean(row["val_nll_source"]),
            np.mean(row["val_nll_target"]),
            "o",
            color=style.COLORS["lora"],
            ms=4,
        )
    sweep = result["ranks"]
    for r, target, source in zip(
        sweep["ranks"], sweep["val_nll_target"], sweep["val_nll_source"], strict=True
    ):
        ax.plot(np.mean(source), np.mean(target), "s", color=style.COLORS["highlight"], ms=4)
        ax.annotate(
            f"r={r}",
            (np.mean(source), np.mean(target)),
            textcoords="offset points",
            xytext=(4, 2),
            fontsize=7,
            color=style.COLORS["highlight"],
        )
    full = result["full_ft"]
    ax.errorbar(
        np.mean(full["val_nll_source"]),
        np.mean(full["val_nll_target"]),
        xerr=_mean_std(full["val_nll_source"])[1],
        yerr=_mean_std(full["val_nll_target"])[1],
        fmt="D",
        color=style.COLORS["full"],
        capsize=3,
        label="full FT, kept checkpoint",
    )
    ax.plot([], [], "o", color=style.COLORS["lora"], ms=4, label="LoRA, each Table 5 choice")
    ax.plot([], [], "s", color=style.COLORS["highlight"], ms=4, label="LoRA q,v, each rank")
    ax.set_xlabel("validation NLL, surnames (forgetting →)")
    ax.set_ylabel("validation NLL, first names (← learning)")
    ax.set_title("learning vs forgetting", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)


def _curves_panel(ax: Any, result: dict[str, Any]) -> None:
    full = result["full_ft"]
    colors = style.rank_colors(len(full["lrs"]))
    for color, lr in zip(colors, full["lrs"], strict=True):
        curves = full["grid_curves"][str(lr)]
        chosen = " (chosen)" if lr == full["lr"] else ""
        ax.plot(
            curves["steps"],
            curves["target"][0],
            "-",
            color=color,
            label=f"full FT, lr {lr:g}{chosen}",
        )
        ax.plot(curves["steps"], curves["tune"][0], ":", color=color, lw=1)
    lora = result["lora_curves"]
    ax.plot(
        lora["steps"],
        lora["target"][0],
        "-",
        color=style.COLORS["lora"],
        label=f"LoRA q,v r=4, lr {result['lora_lr']['chosen']:g}",
    )
    ax.axhline(result["baseline"]["val_nll_target"], color=style.COLORS["baseline"], ls=":")
    ax.set_xlabel("step (first seed)")
    ax.set_ylabel("NLL, first names: validation (—), tuning split (···)")
    ax.set_title("the curves of the first seed", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)


def _phi_panel(ax: Any, result: dict[str, Any]) -> None:
    phi = result["phi"]
    i = np.array(phi["i"])
    small, large = phi["ranks"]
    for proj, color in (("q_proj", style.COLORS["lora"]), ("v_proj", style.COLORS["rslora"])):
        ax.plot(i, phi[proj], "o-", color=color, label=f"W_{proj[0]}")
    ax.plot(i, phi["chance"], "--", color=style.COLORS["baseline"], label="random subspaces")
    ax.set_ylim(0, 1)
    ax.set_xticks(i)
    ax.set_xlabel(f"i (top-i directions of A at r={small}; j = {phi['j']} of r={large})")
    ax.set_ylabel("φ(A_8, A_64, i, j)")
    ax.set_title(f"subspace similarity, r={small} vs r={large} (Fig. 3)", fontsize=9)
    ax.legend(loc="upper right")


def _samples_panel(ax: Any, result: dict[str, Any]) -> None:
    ax.axis("off")
    samples = result["samples"]
    columns = (("pretrained", "before"), ("LoRA q,v", "lora"), ("full FT", "full_ft"))
    for k, (title, key) in enumerate(columns):
        x = 0.02 + 0.33 * k
        ax.text(x, 0.97, title, transform=ax.transAxes, fontweight="bold", va="top", fontsize=9)
        ax.text(
            x,
            0.88,
            "\n".join(samples[key]),
            transform=ax.transAxes,
            va="top",
            family="monospace",
            fontsize=9,
        )
    ax.set_title("ten samples from each (same random numbers)", fontsize=9)


@style.styled
def plot(result: dict[str, Any]):
    """Six panels: Table 5, Table 6, learning vs forgetting, the curves, φ, samples."""
    fig, axes = style.figure(
        2, 3, title="LoRA on a tiny GPT: surnames → first names", panel_size=(5.2, 4.0)
    )
    _targets_panel(axes[0, 0], result)
    _ranks_panel(axes[0, 1], result)
    _forgetting_panel(axes[0, 2], result)
    _curves_panel(axes[1, 0], result)
    _phi_panel(axes[1, 1], result)
    _samples_panel(axes[1, 2], result)
    return fig


def _mean_or_none(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{np.mean(known):.3f}" if len(known) == len(values) else "not reached"


def summary(result: dict[str, Any]) -> str:
    """The best Table 5 choice, q+v, the rank extremes, full FT and φ's top direction."""
    rows = result["targets"]
    best = min(rows, key=lambda row: np.mean(row["val_nll_target"]))
    qv = next(row for row in rows if row["modules"] == list(REFERENCE))
    sweep = result["ranks"]
    full = result["full_ft"]
    phi = result["phi"]
    return (
        f"first-name NLL {result['baseline']['val_nll_target']:.3f} before; "
        f"LoRA at {qv['trainable']:,} weights: best {_short(best['modules'])} "
        f"{np.mean(best['val_nll_target']):.3f}, q,v {np.mean(qv['val_nll_target']):.3f}; "
        f"q,v r={sweep['ranks'][0]} {np.mean(sweep['val_nll_target'][0]):.3f}, "
        f"r={sweep['ranks'][-1]} {np.mean(sweep['val_nll_target'][-1]):.3f}; "
        f"full FT {np.mean(full['val_nll_target']):.3f} (surnames "
        f"{np.mean(full['val_nll_source']):.3f} vs q,v {np.mean(qv['val_nll_source']):.3f}; "
        f"at q,v's forgetting {_mean_or_none(full['val_nll_target_at_lora_forgetting'])}); "
        f"φ top-1 q {phi['q_proj'][0]:.2f}, v {phi['v_proj'][0]:.2f} "
        f"(chance {phi['chance'][0]:.2f})"
    )
