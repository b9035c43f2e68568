"""Intrinsic dimension (Li et al. 2018; Aghajanyan et al. 2020), reproduced on toy models.

Random-subspace training writes all D weights of a network as ``θ = θ0 + P·θ_d`` and
trains only the d numbers θ_d (see :mod:`lora_np.subspace`). The smallest d at which
the model reaches 90% of the accuracy of ordinary training is its intrinsic dimension
d_int90 (see :func:`lora_np.subspace.intrinsic_dimension.intrinsic_dimension`). Every
d_int90 below is measured over several seeds (five in the full run) and comes with a 95%
bootstrap interval over those seeds (``dint90_ci``). The measurements:

1. **From scratch, digits.** The 64-128-128-10 MLP (D = 26,122) on the 8×8 digits:
   accuracy against d, with the directly trained baseline, the 90% line and d_int90.
2. **Width and depth.** MLPs 64-h-h-10 for h = 16 … 128 (D grows ~18×), and 1, 2 or 4
   hidden layers of width 32: Li et al. found d_int90 nearly constant in both.
3. **Projections agree.** The width-32 MLP with a dense, a sparse and a Fastfood P.
4. **Convolutions need fewer directions.** A small conv net (:class:`~lora_np.experiments.
   digits_models.DigitsConvNet`, D = 3,818) against the fully connected width-32 MLP
   (D = 3,466): Li et al.'s LeNet vs FC comparison.
5. **Shuffled labels need far more.** On 200 training digits, d_int90 of *training*
   accuracy (memorisation) with the true labels and with the labels shuffled.
6. **Pretraining lowers d90 (Aghajanyan et al.), and keeps lowering it.** On the planted
   teacher–student task (:func:`lora_np.data.teacher_student_task`): a student pretrained
   on teacher A is fine-tuned to teacher B = A + a planted rank-4 change, in a random
   subspace; checkpoints along pretraining (step 0 is the random init, i.e. training from
   scratch) give d90 against pretraining steps. Each seed is a new task, student and P.
   Each curve's target is 90% of its own full-training accuracy, as in the papers; d at 90%
   of the *improvement* over the starting accuracy is reported too, because a pretrained
   model that starts at 0.6 of a 0.8 target has most of the d90 target done before any
   subspace training.
7. **Digits control.** Pretrain on digits 0–4, re-initialise the output layer (as
   Aghajanyan et al. fine-tune with a fresh classifier), fine-tune on 5–9; against a
   fresh MLP trained on 5–9.
8. **The toy sum problem** (Li et al. §2), whose intrinsic dimension is exactly 10
   (:func:`~lora_np.experiments.toy_sum.toy_sum_problem`).

The random subspaces use the Fastfood projection (O(D) memory, O(D log D) per step)
except where the projection is the question (3) and the toy problem (a dense P whose
columns give the exact minimum).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MultipleLocator, NullFormatter

from lora_np.data import digits_split, teacher_student_task
from lora_np.experiments import style
from lora_np.experiments.common import ACCURACY_BOUNDS, mean_interval, nan_array
from lora_np.experiments.digits_models import digits_convnet, digits_mlp
from lora_np.experiments.toy_sum import GroupSums, toy_sum_problem
from lora_np.nn import MLP, Linear, Module
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.subspace.intrinsic_dimension import (
    DIRECT_LR,
    SUBSPACE_LR,
    bootstrap_crossings,
    crossing_dimension,
    intrinsic_dimension,
    summarize_runs,
)
from lora_np.subspace.projections import PROJECTIONS
from lora_np.train import evaluate, fit

PROJECTION = "fastfood"
DIGITS_WIDTH = 128  # the scratch panel's MLP: 64-128-128-10, D = 26,122
SWEEP_WIDTH = 32  # depth, projections and conv-vs-FC use 64-32-32-10 (D = 3,466)
#: Batches of 128 (256 on the planted task) for half the steps of intrinsic_dimension's
#: defaults (64, 1,000): the same samples seen, the same d_int90 within the spread over seeds
#: (measured: 193–217 for the width-32 MLP, 195–199 for width 128, 158–160 for the conv
#: net), in a little over half the time, since a step of these small models costs
#: mostly the engine's fixed work per step.
BATCH_SIZE = 128
CI_DRAWS = 1000  # bootstrap resamples for every interval over seeds

#: The planted task: teacher (8, 32, 32, 4) with a rank-4 change of its middle layer.
#: Eight inputs and four classes keep it learnable from 10,000 samples (a student reaches
#: about 90% of the teacher's labels; with 32 inputs and 10 classes only about 60%).
TEACHER_SIZES = (8, 32, 32, 4)
PLANTED_LAYER, PLANTED_RANK = "2", 4
STUDENT_WIDTH = 64  # student 8-64-64-4, D = 4,996
PLANTED_N_TRAIN, PLANTED_N_TEST = 10_000, 2_000
PLANTED_BATCH = 256  # subspace fine-tuning; pretraining on teacher A uses PRETRAIN_BATCH
PRETRAIN_BATCH = 128
PRETRAIN_STEPS = 3_000  # the last checkpoint: "the pretrained student"
SHUFFLED_N = 200  # training digits memorised in the shuffled-labels measurement
SHUFFLED_BATCH = 100

#: settings per mode; quick shrinks grids, seeds and steps, never the claims
SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "seeds": 5,
        "steps": 500,
        "baseline_steps": 750,
        "digits_dims": [25, 50, 100, 200, 400, 800],
        "widths": [16, 32, 64, 128],
        "width_dims": [50, 100, 200, 400, 800],
        "depths": [1, 2, 4],
        "conv_dims": [100, 200, 400],
        "shuffled_dims": [100, 200, 400, 800],
        "shuffled_true_dims": [25, 50, 100, 200],
        "checkpoints": [0, 100, 300, PRETRAIN_STEPS],
        "planted_dims": [16, 32, 64, 128, 256, 512],
        "control_dims": [25, 50, 100, 200, 400],
        "toy_dims": list(range(1, 21)),
        "toy_steps": 3_000,
    },
    True: {
        "seeds": 2,
        "steps": 300,
        "baseline_steps": 450,
        "digits_dims": [50, 100, 200, 400, 800],
        "widths": [32, 128],
        "width_dims": [50, 100, 200, 400],
        "depths": [1, 2],
        "conv_dims": [100, 200, 400],
        "shuffled_dims": [100, 200, 400, 800],
        "shuffled_true_dims": [25, 50, 100, 200],
        "checkpoints": [0, PRETRAIN_STEPS],
        "planted_dims": [16, 32, 64, 128, 256, 512],
        "control_dims": [25, 50, 100, 200],
        "toy_dims": [1, 5, 8, 9, 10, 11, 12, 15],
        "toy_steps": 1_500,
    },
}

__all__ = ["GroupSums", "plot", "run", "summary", "toy_sum_problem"]


# =========================================================================== helpers


def _curve(result: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ``intrinsic_dimension`` / ``summarize_runs`` result the JSON keeps,
    plus a 95% interval of the mean accuracy at every d (the figure's band)."""
    keys = (
        "dims",
        "accuracy",
        "accuracy_mean",
        "accuracy_std",
        "baseline",
        "baseline_per_seed",
        "target",
        "target_per_seed",
        "dint90",
        "dint90_grid",
        "dint90_bracketed",
        "dint90_ci",
        "start_accuracy",
        "improvement_target",
        "improvement_target_per_seed",
        "dint90_improvement",
        "dint90_improvement_ci",
        "n_seeds",
        "D",
    )
    out = {k: result[k] for k in keys if k in result}
    out["accuracy_ci"] = [mean_interval(row, ACCURACY_BOUNDS)["ci"] for row in result["accuracy"]]
    return out


def _pooled(
    runs: Sequence[dict[str, Any]], rng: np.random.Generator, draws: int = CI_DRAWS
) -> dict[str, Any]:
    """One curve from single-seed ``intrinsic_dimension`` runs of one grid (a seed per run,
    each with its own task or pretrained model): accuracies side by side, then
    :func:`summarize_runs` (targets, d_int90, intervals over the runs)."""
    dims = runs[0]["dims"]
    accuracy = np.array([run["accuracy"] for run in runs])[:, :, 0].T  # (dims, runs)
    summary = summarize_runs(
        dims,
        accuracy,
        [run["baseline"] for run in runs],
        [run["start_accuracy"] for run in runs],
        draws=draws,
        rng=rng,
    )
    return {"dims": dims, "accuracy": accuracy.tolist(), **summary, "D": runs[0]["D"]}


def _ratio(
    low: dict[str, Any], high: dict[str, Any], key: str, rng: np.random.Generator
) -> dict[str, Any]:
    """high's d over low's d at the target ``key`` ("target" or "improvement_target"), with
    a bootstrap interval that resamples the same seeds for both curves (they are paired:
    seed i of both comes from the same task)."""
    n = len(low["baseline_per_seed"])
    picks = rng.integers(0, n, size=(CI_DRAWS, n))
    per_seed = f"{key}_per_seed"
    d_low = bootstrap_crossings(low["dims"], low["accuracy"], low[per_seed], picks)
    d_high = bootstrap_crossings(high["dims"], high["accuracy"], high[per_seed], picks)
    with np.errstate(invalid="ignore"):
        ratios = d_high / d_low
    ratios = np.where(np.isnan(ratios), np.inf, ratios)  # ∞/∞: neither reached
    lo = float(np.quantile(ratios, 0.025, method="lower"))
    hi = float(np.quantile(ratios, 0.975, method="higher"))
    field = "dint90" if key == "target" else "dint90_improvement"
    point = None
    if low[field] is not None and high[field] is not None:
        point = high[field] / low[field]
    finite = [v if np.isfinite(v) else None for v in (lo, hi)]
    return {"ratio": point, "ci": finite}


def _per_seed_dint(curve: dict[str, Any]) -> list[float | None]:
    """Each seed's own d_int90 (its curve against its own target)."""
    acc = np.asarray(curve["accuracy"], dtype=float)
    return [
        crossing_dimension(curve["dims"], acc[:, j], curve["target_per_seed"][j])[0]
        for j in range(acc.shape[1])
    ]


def _pretrain(
    model: Module, X: np.ndarray, y: np.ndarray, steps: int, batch_size: int, rng: Any
) -> Module:
    """Adam at the direct-training learning rate, in place; returns the model."""
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


# =========================================================================== measurements


def _architectures(cfg: dict[str, Any], seeds: list[int], train: dict[str, Any], progress: bool):
    """Parts 1–4: every curve of a model trained from scratch on the digits."""
    digits = digits_split()
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def curve(
        key: tuple[Any, ...],
        make: Callable[..., Module],
        dims: list[int],
        projection: str,
        baseline: list[float] | None = None,
    ) -> dict[str, Any]:
        if key not in cache:
            settings = dict(train, seeds=seeds, projection=projection, baseline=baseline)
            cache[key] = _curve(intrinsic_dimension(make, digits, dims=dims, **settings))
        return cache[key]

    def mlp(width: int, depth: int = 2, projection: str = PROJECTION) -> dict[str, Any]:
        dims = cfg["digits_dims"] if width == DIGITS_WIDTH else cfg["width_dims"]
        baseline = None  # another projection, same models and seeds: the same direct training
        if projection != PROJECTION:
            baseline = mlp(width, depth)["baseline_per_seed"]
        make = digits_mlp(width, depth)
        return curve(("mlp", width, depth, projection), make, dims, projection, baseline)

    jobs: list[tuple[str, Any]] = (
        [("mlp", (w, 2, PROJECTION)) for w in sorted({*cfg["widths"], DIGITS_WIDTH})]
        + [("mlp", (SWEEP_WIDTH, depth, PROJECTION)) for depth in cfg["depths"]]
        + [("mlp", (SWEEP_WIDTH, 2, name)) for name in PROJECTIONS]
        + [("conv", None)]
    )
    for kind, args in progress_bar(jobs, enabled=progress, desc="intrinsic_dimension: models"):
        if kind == "mlp":
            mlp(*args)
        else:
            curve(("conv",), digits_convnet, cfg["conv_dims"], PROJECTION)

    widths = sorted({*cfg["widths"], DIGITS_WIDTH})
    width_curves = [mlp(w) for w in widths]
    depth_curves = [mlp(SWEEP_WIDTH, depth) for depth in cfg["depths"]]
    projection_curves = {name: mlp(SWEEP_WIDTH, 2, name) for name in PROJECTIONS}
    conv, fc = cache[("conv",)], mlp(SWEEP_WIDTH)
    return {
        "scratch": {"model": f"MLP 64-{DIGITS_WIDTH}-{DIGITS_WIDTH}-10", **mlp(DIGITS_WIDTH)},
        "width_sweep": {
            "widths": widths,
            "D": [c["D"] for c in width_curves],
            "dint90": [c["dint90"] for c in width_curves],
            "dint90_ci": [c["dint90_ci"] for c in width_curves],
            "baseline": [c["baseline"] for c in width_curves],
            "curves": width_curves,
        },
        "depth_sweep": {
            "width": SWEEP_WIDTH,
            "depth": list(cfg["depths"]),
            "D": [c["D"] for c in depth_curves],
            "dint90": [c["dint90"] for c in depth_curves],
            "dint90_ci": [c["dint90_ci"] for c in depth_curves],
            "baseline": [c["baseline"] for c in depth_curves],
            "curves": depth_curves,
        },
        "projections": {
            "model": f"MLP 64-{SWEEP_WIDTH}-{SWEEP_WIDTH}-10",
            "D": fc["D"],
            **{name: c["dint90"] for name, c in projection_curves.items()},
            "dint90_ci": {name: c["dint90_ci"] for name, c in projection_curves.items()},
            "curves": projection_curves,
        },
        "conv_vs_fc": {
            "conv": conv["dint90"],
            "fc": fc["dint90"],
            "conv_D": conv["D"],
            "fc_D": fc["D"],
            "dint90_ci": {"conv": conv["dint90_ci"], "fc": fc["dint90_ci"]},
            "baseline": {"conv": conv["baseline"], "fc": fc["baseline"]},
            "models": {
                "conv": "conv 3×3 1→8, conv 3×3 8→16 stride 2, Linear 256→10",
                "fc": f"MLP 64-{SWEEP_WIDTH}-{SWEEP_WIDTH}-10",
            },
            "curves": {"conv": conv, "fc": fc},
        },
    }


def _shuffled_labels(
    cfg: dict[str, Any], seed: int, seeds: list[int], train: dict[str, Any]
) -> dict[str, Any]:
    """Part 5: memorising SHUFFLED_N digits with their labels shuffled vs the true ones.

    The measure is training accuracy (evaluated on the very examples trained on): with
    shuffled labels there is nothing to generalise, only to memorise. The baseline is
    direct training's training accuracy (both reach 100%).
    """
    X, y, _, _ = digits_split()
    rng = np.random.default_rng([seed, 8])
    pick = rng.permutation(len(X))[:SHUFFLED_N]
    X_sub, y_sub = X[pick], y[pick]
    y_shuffled = rng.permutation(y_sub)
    settings = dict(train, seeds=seeds, batch_size=SHUFFLED_BATCH)
    make = digits_mlp(SWEEP_WIDTH)
    curves = {
        name: _curve(
            intrinsic_dimension(make, (X_sub, labels, X_sub, labels), dims=dims, **settings)
        )
        for name, labels, dims in (
            ("shuffled", y_shuffled, cfg["shuffled_dims"]),
            ("true", y_sub, cfg["shuffled_true_dims"]),
        )
    }
    return {
        "dint90": curves["shuffled"]["dint90"],
        "dint90_true": curves["true"]["dint90"],
        "n_examples": SHUFFLED_N,
        "dint90_ci": curves["shuffled"]["dint90_ci"],
        "dint90_true_ci": curves["true"]["dint90_ci"],
        "measured_on": "training accuracy on the memorised examples",
        "model": f"MLP 64-{SWEEP_WIDTH}-{SWEEP_WIDTH}-10",
        "chance": float(np.max(np.bincount(y_sub)) / SHUFFLED_N),
        "curves": curves,
    }


def _planted(
    cfg: dict[str, Any], seeds: list[int], train: dict[str, Any], progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part 6: fine-tuning from checkpoints along pretraining on the planted task.

    Seed s builds its own task (``default_rng([s, 1])``), student (``[s, 2]``) and
    pretraining batches (``[s, 3]``); at each checkpoint the student is copied and
    fine-tuned to teacher B in random subspaces (P and batches from seed s). Curves pool
    all seeds (:func:`_pooled`). Checkpoint 0 is the random init: training from scratch.
    """
    student_sizes = [TEACHER_SIZES[0], STUDENT_WIDTH, STUDENT_WIDTH, TEACHER_SIZES[-1]]
    settings = dict(train, batch_size=PLANTED_BATCH, ci_draws=1)
    checkpoints = list(cfg["checkpoints"])
    runs: dict[int, list[dict[str, Any]]] = {step: [] for step in checkpoints}
    accuracy_on_a, changed = [], []
    jobs = [(s, step) for s in seeds for step in checkpoints]
    state: dict[str, Any] = {}
    for s, step in progress_bar(jobs, enabled=progress, desc="intrinsic_dimension: planted"):
        if step == checkpoints[0]:  # a new seed: a new task and student
            task = teacher_student_task(
                sizes=TEACHER_SIZES,
                layer=PLANTED_LAYER,
                rank=PLANTED_RANK,
                n_train=PLANTED_N_TRAIN,
                n_test=PLANTED_N_TEST,
                rng=np.random.default_rng([s, 1]),
            )
            state = {
                "task": task,
                "student": MLP(student_sizes, rng=np.random.default_rng([s, 2])),
                "optimizer": None,
                "rng": np.random.default_rng([s, 3]),
                "done": 0,
            }
            state["optimizer"] = Adam(state["student"].parameters(), lr=DIRECT_LR)
            changed.append(task.changed_fraction)
        task, student = state["task"], state["student"]
        if step > state["done"]:  # pretrain on teacher A up to this checkpoint
            fit(
                student,
                (task.X_train, task.y_train_a),
                optimizer=state["optimizer"],
                steps=step - state["done"],
                batch_size=PRETRAIN_BATCH,
                eval_every=step - state["done"],
                progress=False,
                rng=state["rng"],
            )
            state["done"] = step
        snapshot = copy.deepcopy(student)
        data = (task.X_train, task.y_train_b, task.X_test, task.y_test_b)
        runs[step].append(
            intrinsic_dimension(
                lambda rng, snapshot=snapshot: copy.deepcopy(snapshot),
                data,
                dims=cfg["planted_dims"],
                seeds=[s],
                **settings,
            )
        )
        if step == checkpoints[-1]:
            accuracy_on_a.append(float(evaluate(student, task.X_test, task.y_test_a)["accuracy"]))

    pooled = {
        step: _curve(_pooled(runs[step], np.random.default_rng([*seeds, step])))
        for step in checkpoints
    }
    fine, fresh = pooled[checkpoints[-1]], pooled[checkpoints[0]]
    ratio_rng = np.random.default_rng([*seeds, 11])
    common_target = 0.9 * max(fine["baseline"], fresh["baseline"])
    per_seed_ratio = [
        None if p is None or f is None else f / p
        for p, f in zip(_per_seed_dint(fine), _per_seed_dint(fresh), strict=True)
    ]
    finetune = {
        "task": (
            f"teacher {list(TEACHER_SIZES)}, B = A + rank-{PLANTED_RANK} shift of layer "
            f"{PLANTED_LAYER!r}; student {student_sizes}; {PLANTED_N_TRAIN} train, "
            f"{PLANTED_N_TEST} test inputs; a new task, student and P per seed"
        ),
        "pretrain_steps": checkpoints[-1],
        "pretrained": fine,
        "scratch": fresh,
        "dint90_pretrained": fine["dint90"],
        "dint90_scratch": fresh["dint90"],
        "dint90_pretrained_ci": fine["dint90_ci"],
        "dint90_scratch_ci": fresh["dint90_ci"],
        "ratio": _ratio(fine, fresh, "target", ratio_rng),
        "ratio_per_seed": per_seed_ratio,
        "dint90_improvement_pretrained": fine["dint90_improvement"],
        "dint90_improvement_scratch": fresh["dint90_improvement"],
        "dint90_improvement_pretrained_ci": fine["dint90_improvement_ci"],
        "dint90_improvement_scratch_ci": fresh["dint90_improvement_ci"],
        "common_target": common_target,
        "dint_common_pretrained": crossing_dimension(
            fine["dims"], fine["accuracy_mean"], common_target
        )[0],
        "dint_common_scratch": crossing_dimension(
            fresh["dims"], fresh["accuracy_mean"], common_target
        )[0],
        "pretrained_start_accuracy": fine["start_accuracy"],
        "pretrained_accuracy_on_a": mean_interval(accuracy_on_a, ACCURACY_BOUNDS),
        "changed_fraction": mean_interval(changed, ACCURACY_BOUNDS),  # a fraction, in [0, 1]
        "chance": 1.0 / TEACHER_SIZES[-1],
    }
    curve_list = [pooled[step] for step in checkpoints]
    trajectory = {
        "steps": checkpoints,
        "dint90": [c["dint90"] for c in curve_list],
        "dint90_ci": [c["dint90_ci"] for c in curve_list],
        "dint90_improvement": [c["dint90_improvement"] for c in curve_list],
        "dint90_improvement_ci": [c["dint90_improvement_ci"] for c in curve_list],
        "start_accuracy": [c["start_accuracy"] for c in curve_list],
        "baseline": [c["baseline"] for c in curve_list],
        "note": "step 0 is the random init (training from scratch); the last step is the "
        "pretrained student of finetune_vs_scratch",
        "curves": curve_list,
    }
    return finetune, trajectory


def _digits_control(
    cfg: dict[str, Any], seeds: list[int], train: dict[str, Any], progress: bool
) -> dict[str, Any]:
    """Part 7: pretrain on digits 0–4, re-initialise the head, fine-tune on 5–9.

    Seed s pretrains its own MLP (init ``default_rng([s, 4])``, batches ``[s, 5]``) and
    draws the fresh head from ``[s, 6]``; the scratch curve trains a fresh MLP
    (``default_rng(s)``) on 5–9. Pooled over seeds like the planted task.
    """
    X_train, y_train, X_test, y_test = digits_split()
    low, high = y_train < 5, y_train >= 5
    data = (X_train[high], y_train[high], X_test[y_test >= 5], y_test[y_test >= 5])
    make = digits_mlp(DIGITS_WIDTH)
    settings = dict(train, ci_draws=1)
    fine_runs, fresh_runs, on_low = [], [], []
    for s in progress_bar(seeds, enabled=progress, desc="intrinsic_dimension: digits control"):
        model = _pretrain(
            make(np.random.default_rng([s, 4])),
            X_train[low],
            y_train[low],
            train["baseline_steps"],
            BATCH_SIZE,
            np.random.default_rng([s, 5]),
        )
        on_low.append(float(evaluate(model, X_test[y_test < 5], y_test[y_test < 5])["accuracy"]))
        head = Linear(DIGITS_WIDTH, 10, rng=np.random.default_rng([s, 6]))
        model[4].weight.data, model[4].bias.data = head.weight.data, head.bias.data
        fine_runs.append(
            intrinsic_dimension(
                lambda rng, model=model: copy.deepcopy(model),
                data,
                dims=cfg["control_dims"],
                seeds=[s],
                **settings,
            )
        )
        fresh_runs.append(
            intrinsic_dimension(make, data, dims=cfg["control_dims"], seeds=[s], **settings)
        )
    fine = _curve(_pooled(fine_runs, np.random.default_rng([*seeds, 12])))
    fresh = _curve(_pooled(fresh_runs, np.random.default_rng([*seeds, 13])))
    ratio_rng = np.random.default_rng([*seeds, 14])
    return {
        "task": f"digits MLP 64-{DIGITS_WIDTH}-{DIGITS_WIDTH}-10 pretrained on digits 0-4, "
        "output layer re-initialised, fine-tuned on 5-9",
        "head": "re-initialised",
        "pretrained": fine,
        "scratch": fresh,
        "dint90_pretrained": fine["dint90"],
        "dint90_scratch": fresh["dint90"],
        "dint90_pretrained_ci": fine["dint90_ci"],
        "dint90_scratch_ci": fresh["dint90_ci"],
        "ratio": _ratio(fine, fresh, "target", ratio_rng),
        "dint90_improvement_pretrained": fine["dint90_improvement"],
        "dint90_improvement_scratch": fresh["dint90_improvement"],
        "dint90_improvement_pretrained_ci": fine["dint90_improvement_ci"],
        "dint90_improvement_scratch_ci": fresh["dint90_improvement_ci"],
        "improvement_ratio": _ratio(fine, fresh, "improvement_target", ratio_rng),
        "pretrained_start_accuracy": fine["start_accuracy"],
        "pretrained_accuracy_on_0_4": mean_interval(on_low, ACCURACY_BOUNDS),
        "chance": 1.0 / 5,
    }


# =========================================================================== run


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Every measurement of the module docstring; same seed, same dict."""
    cfg = SETTINGS[bool(quick)]
    seeds = [10 * seed + i for i in range(cfg["seeds"])]
    train = {
        "projection": PROJECTION,
        "lr": SUBSPACE_LR,
        "baseline_lr": DIRECT_LR,
        "steps": cfg["steps"],
        "baseline_steps": cfg["baseline_steps"],
        "batch_size": BATCH_SIZE,
        "ci_draws": CI_DRAWS,
        "progress": False,
    }
    architectures = _architectures(cfg, seeds, train, progress)
    shuffled = _shuffled_labels(cfg, seed, seeds, train)
    finetune, checkpoints = _planted(cfg, seeds, train, progress)
    control = _digits_control(cfg, seeds, train, progress)
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
        "interval": f"95% percentile bootstrap over the {len(seeds)} seeds ({CI_DRAWS} "
        "resamples); accuracy bands: 95% t-interval of the mean",
        **architectures,
        "shuffled_labels": shuffled,
        "finetune_vs_scratch": finetune,
        "pretrain_checkpoints": checkpoints,
        "digits_control": control,
        "toy_sum": toy,
    }


# =========================================================================== plot

ACCURACY_YLIM = (0.0, 1.02)  # every accuracy panel, so they read against each other


def _band(curve: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper edge of the 95% interval of the mean accuracy at every d."""
    ci = curve.get("accuracy_ci") or [[None, None]] * len(curve["dims"])
    lower = nan_array([lo for lo, _ in ci])
    upper = nan_array([hi for _, hi in ci])
    return lower, upper


def _dint_marker(ax: Any, d: float | None, ci: list[Any], y: float, color: str) -> None:
    """★ at (d, y) with the bootstrap interval of d as a horizontal error bar."""
    if d is None:
        return
    lo, hi = ci if ci else (None, None)
    xerr = None
    if lo is not None and hi is not None:
        xerr = [[d - lo], [hi - d]]
    ax.errorbar(
        [d], [y], xerr=xerr, fmt="*", color=color, ms=12, mec="black", mew=0.6, capsize=3, zorder=5
    )


def _draw_curve(
    ax: Any,
    curve: dict[str, Any],
    color: str,
    label: str,
    marker: str = "o",
    improvement: bool = False,
) -> None:
    """Mean accuracy against d with its 95% band, the baseline (dotted), the target
    (dashed) and ★ d_int90 with its interval (◆ at 90% of the improvement if asked)."""
    dims = np.array(curve["dims"], dtype=float)
    mean = nan_array(curve["accuracy_mean"])
    lower, upper = _band(curve)
    ax.plot(dims, mean, marker + "-", color=color, label=label, ms=4)
    if np.all(np.isfinite(lower)):
        ax.fill_between(dims, lower, upper, color=color, alpha=0.15, lw=0)
    ax.axhline(curve["baseline"], color=color, ls=":", lw=1)
    ax.axhline(curve["target"], color=color, ls="--", lw=1)
    _dint_marker(ax, curve["dint90"], curve["dint90_ci"], curve["target"], color)
    if improvement and curve.get("dint90_improvement") is not None:
        d = curve["dint90_improvement"]
        ax.plot([d], [curve["improvement_target"]], "D", color=color, mec="black", ms=6, zorder=5)


def _accuracy_axes(ax: Any, chance: float, chance_label: str) -> None:
    ax.axhline(chance, color=style.COLORS["baseline"], lw=1, ls="-.", alpha=0.8)
    ax.text(
        0.01,
        chance,
        f"chance {chance_label}",
        transform=ax.get_yaxis_transform(),
        ha="left",
        va="bottom",
        fontsize=7,
        color=style.COLORS["baseline"],
    )
    ax.set_ylim(*ACCURACY_YLIM)


def _log_d_axis(ax: Any, label: str = "subspace dimension d") -> None:
    """Log x axis labelled 10, 20, 50, 100, ... in plain numbers, minor ticks unlabelled."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)


def _fmt(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f}"


def _fmt_ci(value: float | None, ci: list[Any] | None) -> str:
    """``"225 [218, 235]"``; an open end is written ">512" style by the caller's grid."""
    if value is None:
        return "not reached"
    lo, hi = ci if ci else (None, None)
    if lo is None and hi is None:
        return f"{value:.0f}"
    return f"{value:.0f} [{_fmt(lo)}, {'∞' if hi is None else f'{hi:.0f}'}]"


def _points_with_ci(
    ax: Any, x: Sequence[float], values: Sequence[Any], cis: Sequence[Any], color: str, label: str
) -> None:
    """d_int90 values as points with their bootstrap intervals as vertical error bars."""
    y = nan_array(values)
    lo = nan_array(
        [c[0] if c and c[0] is not None else v for c, v in zip(cis, values, strict=True)]
    )
    hi = nan_array(
        [c[1] if c and c[1] is not None else v for c, v in zip(cis, values, strict=True)]
    )
    ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o-", color=color, capsize=4, label=label)


@style.styled
def plot(result: dict[str, Any]):
    """Twelve panels: digits accuracy vs d; width sweep; d_int90 vs D; depth; projections;
    conv vs FC; shuffled labels; planted task; d90 along pretraining; digits control;
    d90 vs d at 90% of the improvement; the toy sum problem."""
    fig, axes = style.figure(
        3,
        4,
        title="Intrinsic dimension: training in a random d-dimensional subspace "
        f"({len(result['seeds'])} seeds; bands and error bars: 95% intervals)",
        panel_size=(4.4, 3.5),
    )
    colors = [style.COLORS[k] for k in ("digits", "lora", "full", "rslora", "highlight")]

    # (a) digits from scratch
    ax = axes[0, 0]
    s = result["scratch"]
    _draw_curve(ax, s, style.COLORS["lora"], "subspace training")
    _log_d_axis(ax)
    _accuracy_axes(ax, 0.1, "1/10")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"(a) MLP 64-128-128-10, D = {s['D']:,}\nd_int90 = {_fmt_ci(s['dint90'], s['dint90_ci'])}",
        fontsize=9,
    )
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], color=style.COLORS["lora"], ls=":", lw=1, label="direct training"),
        Line2D([], [], color=style.COLORS["lora"], ls="--", lw=1, label="90% of it (target)"),
    ]
    ax.legend(handles=handles, loc="lower right")

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
    ax.set_ylim(*ACCURACY_YLIM)
    ax.set_ylabel("accuracy / direct-training accuracy")
    ax.set_title("(b) MLPs 64-h-h-10: one curve whatever the width", fontsize=9)
    ax.legend(loc="lower right")

    # (c), (d), (e): d_int90 on one linear scale
    tops = [
        hi
        for group in (
            sweep["dint90_ci"],
            result["depth_sweep"]["dint90_ci"],
            list(result["projections"]["dint90_ci"].values()),
        )
        for _, hi in group
        if hi is not None
    ] + [v for v in sweep["dint90"] + result["depth_sweep"]["dint90"] if v is not None]
    dint_ylim = (0.0, 1.25 * max(tops))

    ax = axes[0, 2]
    D = np.array(sweep["D"], dtype=float)
    _points_with_ci(ax, D, sweep["dint90"], sweep["dint90_ci"], style.COLORS["lora"], "d_int90")
    ax.plot(D, 0.01 * D, "--", color=style.COLORS["baseline"], lw=1, label="1% of D")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(*dint_ylim)
    ax.set_xlabel("number of weights D")
    ax.set_ylabel("d_int90")
    spread = max(v for v in sweep["dint90"] if v) / min(v for v in sweep["dint90"] if v)
    ax.set_title(
        f"(c) width: D grows {D.max() / D.min():.0f}×, d_int90 by {spread:.2f}× (max/min)",
        fontsize=9,
    )
    ax.legend(loc="upper left")

    ax = axes[0, 3]
    depth = result["depth_sweep"]
    _points_with_ci(
        ax, depth["depth"], depth["dint90"], depth["dint90_ci"], style.COLORS["lora"], "d_int90"
    )
    for x, n in zip(depth["depth"], depth["D"], strict=True):
        ax.annotate(
            f"D = {n:,}", (x, 0.04), xycoords=("data", "axes fraction"), ha="center", fontsize=7
        )
    ax.set_xticks(depth["depth"])
    ax.set_xlim(min(depth["depth"]) - 0.5, max(depth["depth"]) + 0.5)
    ax.set_ylim(*dint_ylim)
    ax.set_xlabel(f"hidden layers (width {depth['width']})")
    ax.set_ylabel("d_int90")
    depth_spread = max(v for v in depth["dint90"] if v) / min(v for v in depth["dint90"] if v)
    ax.set_title(
        f"(d) depth: D grows {max(depth['D']) / min(depth['D']):.1f}×, d_int90 by "
        f"{depth_spread:.2f}×",
        fontsize=9,
    )

    ax = axes[1, 0]
    projections = result["projections"]
    names = list(PROJECTIONS)
    _points_with_ci(
        ax,
        np.arange(len(names)),
        [projections[n] for n in names],
        [projections["dint90_ci"][n] for n in names],
        style.COLORS["lora"],
        "d_int90",
    )
    ax.lines[-1].set_linestyle("none")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(*dint_ylim)
    ax.set_ylabel("d_int90")
    found = [projections[n] for n in names if projections[n]]
    ax.set_title(
        f"(e) {projections['model']}: dense, sparse, Fastfood P\n"
        f"d_int90 within {max(found) / min(found):.2f}× of each other",
        fontsize=9,
    )

    # (f) conv vs FC
    ax = axes[1, 1]
    cvf = result["conv_vs_fc"]
    _draw_curve(ax, cvf["curves"]["fc"], style.COLORS["baseline"], f"FC, D = {cvf['fc_D']:,}", "s")
    _draw_curve(ax, cvf["curves"]["conv"], style.COLORS["rslora"], f"conv, D = {cvf['conv_D']:,}")
    _log_d_axis(ax)
    _accuracy_axes(ax, 0.1, "1/10")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"(f) conv d_int90 {_fmt_ci(cvf['conv'], cvf['dint90_ci']['conv'])}\n"
        f"vs FC {_fmt_ci(cvf['fc'], cvf['dint90_ci']['fc'])}",
        fontsize=9,
    )
    ax.legend(loc="lower right")

    # (g) shuffled labels
    ax = axes[1, 2]
    shuffled = result["shuffled_labels"]
    _draw_curve(ax, shuffled["curves"]["true"], style.COLORS["lora"], "true labels")
    _draw_curve(ax, shuffled["curves"]["shuffled"], style.COLORS["float32"], "shuffled labels", "s")
    _log_d_axis(ax)
    _accuracy_axes(ax, shuffled["chance"], "(largest class)")
    ax.set_ylabel(f"training accuracy ({shuffled['n_examples']} digits)")
    ax.set_title(
        f"(g) memorising: d_int90 {_fmt_ci(shuffled['dint90'], shuffled['dint90_ci'])}\n"
        f"vs {_fmt_ci(shuffled['dint90_true'], shuffled['dint90_true_ci'])} with true labels",
        fontsize=9,
    )
    ax.legend(loc="lower right")

    # (h), (j): pretrained vs scratch
    for ax, key, title in (
        (axes[1, 3], "finetune_vs_scratch", "(h) planted task: fine-tune A → B vs scratch"),
        (axes[2, 1], "digits_control", "(j) digits 0–4 → 5–9, head re-initialised"),
    ):
        part = result[key]
        _draw_curve(ax, part["scratch"], style.COLORS["baseline"], "from a random init", "s", True)
        _draw_curve(
            ax, part["pretrained"], style.COLORS["full"], "from the pretrained model", "o", True
        )
        _log_d_axis(ax)
        _accuracy_axes(ax, part["chance"], f"1/{round(1 / part['chance'])}")
        ax.set_ylabel("test accuracy on the new task")
        ratio = part["ratio"]
        ratio_text = (
            f"scratch/pretrained {ratio['ratio']:.2f} "
            f"[{_fmt_ratio(ratio['ci'][0])}, {_fmt_ratio(ratio['ci'][1])}]"
            if ratio["ratio"] is not None
            else ""
        )
        ax.set_title(f"{title}\nd90 {ratio_text}", fontsize=9)
        ax.legend(loc="lower right", title="★ d90, ◆ 90% of the improvement", fontsize=7)

    # (i) d90 along pretraining
    ax = axes[2, 0]
    trajectory = result["pretrain_checkpoints"]
    steps = np.array(trajectory["steps"], dtype=float)
    _points_with_ci(
        ax, steps, trajectory["dint90"], trajectory["dint90_ci"], style.COLORS["full"], "d90"
    )
    reached = [v for v in trajectory["dint90_improvement"] if v is not None]
    if reached:
        _points_with_ci(
            ax,
            steps,
            trajectory["dint90_improvement"],
            trajectory["dint90_improvement_ci"],
            style.COLORS["highlight"],
            "d at 90% of the improvement",
        )
    ax.set_xscale("symlog", linthresh=max(1.0, float(np.min(steps[steps > 0]))))
    ax.set_xticks(steps, [f"{int(v):,}" for v in steps])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("pretraining steps on teacher A (0 = random init)")
    ax.set_ylabel("d to fine-tune to teacher B")
    ax.set_title("(i) planted task: d90 along pretraining", fontsize=9)
    ax.legend(loc="upper right")

    # (k) head start: d90 against d at 90% of the improvement
    ax = axes[2, 2]
    cases = [
        ("planted\nscratch", result["finetune_vs_scratch"]["scratch"]),
        ("planted\npretrained", result["finetune_vs_scratch"]["pretrained"]),
        ("digits\nscratch", result["digits_control"]["scratch"]),
        ("digits\npretrained", result["digits_control"]["pretrained"]),
    ]
    x = np.arange(len(cases))
    top = max(c["dims"][-1] for _, c in cases)
    for offset, field, label, color in (
        (-0.12, "dint90", "d90 (90% of the baseline)", style.COLORS["full"]),
        (0.12, "dint90_improvement", "d at 90% of the improvement", style.COLORS["highlight"]),
    ):
        values = [c[field] for _, c in cases]
        cis = [c[f"{field}_ci"] for _, c in cases]
        shown = [top if v is None else v for v in values]
        lo = [v if ci[0] is None else ci[0] for v, ci in zip(shown, cis, strict=True)]
        hi = [top if ci[1] is None else ci[1] for ci in cis]
        ax.errorbar(
            x + offset,
            shown,
            yerr=[np.subtract(shown, lo), np.subtract(hi, shown)],
            fmt="o",
            color=color,
            capsize=3,
            label=label,
        )
        for xi, v in zip(x + offset, values, strict=True):
            if v is None:
                ax.annotate(
                    f"> {top}",
                    (xi, top),
                    textcoords="offset points",
                    xytext=(0, 6),
                    fontsize=7,
                    ha="center",
                    color=color,
                )
    ax.set_yscale("log")
    ax.set_ylim(top=top * 3)
    ax.set_xticks(x, [name for name, _ in cases], fontsize=8)
    ax.set_ylabel("d")
    ax.set_title("(k) a head start: d90 vs 90% of the improvement", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)

    # (l) toy sum problem
    _toy_panel(axes[2, 3], result["toy_sum"])
    return fig


def _fmt_ratio(value: float | None) -> str:
    return "∞" if value is None else f"{value:.2f}"


#: Relative losses below this are float64 round-off of a zero: drawn on the floor, not as
#: values (the squared residual of a solved least-squares problem is ~1e-30, not "1e-30").
ROUND_OFF_FLOOR = 1e-20


def _toy_panel(ax: Any, toy: dict[str, Any]) -> None:
    dims = np.array(toy["dims"], dtype=float)
    for key, fmt, color, label in (
        ("exact_min_loss", "o-", style.COLORS["lora"], "exact minimum over the subspace"),
        ("trained_loss", "s--", style.COLORS["rslora"], "trained θ_d (Adam)"),
    ):
        relative = nan_array(toy[key]) / toy["initial_loss"]
        ax.semilogy(
            dims, np.maximum(relative, ROUND_OFF_FLOOR), fmt, ms=4, color=color, label=label
        )
    ax.axhspan(ROUND_OFF_FLOOR / 10, ROUND_OFF_FLOOR, color=style.COLORS["baseline"], alpha=0.25)
    ax.text(
        0.02,
        ROUND_OFF_FLOOR,
        "0 to float64 round-off",
        transform=ax.get_yaxis_transform(),
        fontsize=7,
        va="bottom",
        color=style.COLORS["baseline"],
    )
    ax.axhline(toy["solved_tol"], color=style.COLORS["baseline"], ls=":", lw=1)
    ax.axvline(toy["groups"], color=style.COLORS["highlight"], lw=1)
    ax.set_ylim(ROUND_OFF_FLOOR / 10, 10)
    ax.xaxis.set_major_locator(MultipleLocator(5))
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("loss / loss at θ0")
    ax.set_title(
        f"(l) toy: {toy['groups']} group sums in D = {toy['D']:,}\nexact d_int = "
        f"{_fmt(toy['dint_exact'])}, Adam solves it from d = {_fmt(toy['dint_trained'])}",
        fontsize=9,
    )
    ax.legend(loc="center left", bbox_to_anchor=(0.5, 0.55), fontsize=7)


def summary(result: dict[str, Any]) -> str:
    """The headline numbers in one line, each d_int90 with its 95% interval."""
    s, sweep, depth = result["scratch"], result["width_sweep"], result["depth_sweep"]
    ft, control, toy = result["finetune_vs_scratch"], result["digits_control"], result["toy_sum"]
    cvf, shuffled, proj = result["conv_vs_fc"], result["shuffled_labels"], result["projections"]
    widths = ", ".join(
        _fmt_ci(v, ci) for v, ci in zip(sweep["dint90"], sweep["dint90_ci"], strict=True)
    )
    depths = ", ".join(
        _fmt_ci(v, ci) for v, ci in zip(depth["dint90"], depth["dint90_ci"], strict=True)
    )
    projections = ", ".join(f"{n} {_fmt_ci(proj[n], proj['dint90_ci'][n])}" for n in PROJECTIONS)
    return (
        f"digits d_int90 {_fmt_ci(s['dint90'], s['dint90_ci'])} of D = {s['D']:,}; "
        f"widths D = {sweep['D'][0]:,}…{sweep['D'][-1]:,}: {widths}; depths "
        f"{depth['depth']}: {depths}; {projections}; conv "
        f"{_fmt_ci(cvf['conv'], cvf['dint90_ci']['conv'])} vs FC "
        f"{_fmt_ci(cvf['fc'], cvf['dint90_ci']['fc'])}; shuffled labels "
        f"{_fmt_ci(shuffled['dint90'], shuffled['dint90_ci'])} vs true "
        f"{_fmt_ci(shuffled['dint90_true'], shuffled['dint90_true_ci'])}; planted d90 "
        f"pretrained {_fmt_ci(ft['dint90_pretrained'], ft['dint90_pretrained_ci'])} vs scratch "
        f"{_fmt_ci(ft['dint90_scratch'], ft['dint90_scratch_ci'])}; digits control "
        f"{_fmt_ci(control['dint90_pretrained'], control['dint90_pretrained_ci'])} vs "
        f"{_fmt_ci(control['dint90_scratch'], control['dint90_scratch_ci'])}; "
        f"toy sum d_int = {_fmt(toy['dint_exact'])}"
    )
