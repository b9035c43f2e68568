"""α, the learning rate, and the scaling s = α/r vs α/√r (LoRA §4.1; rsLoRA).

LoRA scales its update: h = W·x + s·B·A·x with s = α/r. Two questions:

1. **Is α just a learning rate?** Write the update in weight space, ΔW = s·B·A, and let
   B' = s·B. With plain SGD, ∂L/∂B = s·∂L/∂B', so a step moves B' by −η·s²·∂L/∂B',
   while A's step (∂L/∂A = B'ᵀ·…) does not depend on s. If only B moved (A stays near
   its init), α would trade with η as η·α² (iso-loss slope −2 in log η vs log α); once
   both factors have moved far from their init, rescaling B' → B'/√s, A → √s·A balances
   the two step sizes at η·s each, and the trade is η·α (slope −1). Adam divides each
   gradient by its own running size, so B's step is ≈ η whatever s is: B' moves by
   ≈ η·s, A by ≈ η; the same rescaling gives η·√s, i.e. slope −1/2 (and −1 if only B
   moved). The grid measures it: the η at which the loss reaches a fixed target, per α
   (an iso-loss contour), and its fitted slope — near −1/2 for Adam and −1 for SGD here,
   the "both factors moved" regime. So α acts as a learning rate, but not one-for-one,
   and with Adam the best η barely depends on α at all.
2. **α/r or α/√r?** B starts at zero, so at the first step ∂L/∂B = s·G·(A·x)ᵀ (G the
   gradient at the layer's output). A is drawn with a variance that does not depend on r
   (Kaiming, Var = 1/(3·in)), so ‖A·x‖ grows like √r, and ‖∂L/∂B‖ ∝ s·√r: with s = α/r
   it *collapses* like 1/√r, with s = α/√r (rsLoRA) it stays flat. That is rsLoRA's
   argument made visible at initialisation, where it is exact; we also report the mean
   ‖∂L/∂B‖ over the first training steps, where B ≠ 0 and A has moved, to show that the
   ordering survives training. The loss curves show the practical effect when η is
   tuned once, at r = 8, and kept as r grows (what rsLoRA criticises): under α/r the
   larger ranks improve much less than under α/√r. The control re-tunes η for every
   rank and scaling: then α/r catches up, i.e. with Adam the difference is a step-size
   effect — α/√r makes a good η *transfer* across ranks, it does not unlock anything a
   re-tuned α/r cannot reach on this task.

The task: the "pretrained model" is a teacher MLP A (32-64-64-10); fine-tuning
distils the logits of teacher B = A + a planted rank-``SHIFT_RANK`` update of layer "2"
(so ranks up to 64 have something to learn), with LoRA on that layer only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.data import make_teacher, planted_shift, teacher_dataset, teacher_logits
from lora_np.experiments import style
from lora_np.experiments.common import format_interval, mean_interval, nan_array, nan_grid
from lora_np.experiments.finetune import mse_to_logits, train_fixed_budget, with_lora
from lora_np.lora import lora_layers
from lora_np.nn import Module
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.rng import manual_seed
from lora_np.tensor import Tensor
from lora_np.train import fit

TEACHER_SIZES = (32, 64, 64, 10)
LAYER = "2"
SHIFT_RANK = 32
SHIFT_SIZE = 0.5
GRID_RANK = 8
SCALING_ALPHA = 8.0
REFERENCE_RANK = 8  # η is tuned at this rank, then kept fixed as the rank changes
LAST_LOSSES = 10
GRAD_WINDOW = 20  # steps over which the "during training" gradient norm is averaged

SETTINGS: dict[bool, dict[str, Any]] = {
    False: {
        "n_train": 4000,
        "grid_steps": 200,
        "seeds": 5,
        "alphas": [1.0, 4.0, 16.0, 64.0],
        "lrs": {
            "adam": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
            "sgd": [1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0],
        },
        "ranks": [1, 2, 4, 8, 16, 32, 64],
        "scaling_steps": 400,
        "init_draws": 8,
        "tuned_lrs": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    },
    True: {
        "n_train": 2000,
        "grid_steps": 80,
        "seeds": 2,
        "alphas": [1.0, 8.0, 64.0],
        "lrs": {
            "adam": [1e-4, 1e-3, 1e-2, 1e-1],
            "sgd": [1e-2, 1e-1, 1.0, 10.0],
        },
        "ranks": [1, 8, 16, 64],
        "scaling_steps": 100,
        "init_draws": 4,
        "tuned_lrs": [1e-3, 3e-3, 1e-2],
    },
}


class _RecordingAdam(Adam):
    """Adam that also records ‖∂L/∂B‖_F of one LoRA layer at every step (before updating)."""

    def __init__(self, params: Any, lr: float, lora_b: Tensor) -> None:
        super().__init__(params, lr=lr)
        self.lora_b = lora_b
        self.grad_norms: list[float] = []

    def step(self) -> None:
        grad = self.lora_b.grad
        self.grad_norms.append(0.0 if grad is None else float(np.linalg.norm(grad)))
        super().step()


def _task(cfg: dict[str, Any], seed: int) -> tuple[Module, np.ndarray, np.ndarray]:
    """Teacher A, the inputs X and teacher B's logits on them, all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    teacher_a = make_teacher(TEACHER_SIZES, rng=rng)
    teacher_b = planted_shift(teacher_a, LAYER, SHIFT_RANK, SHIFT_SIZE, rng=rng)
    X, _ = teacher_dataset(teacher_a, cfg["n_train"], rng=rng)
    return teacher_a, X, teacher_logits(teacher_b, X).astype(np.float32)


def task(quick: bool = False, seed: int = 0) -> tuple[Module, np.ndarray, np.ndarray]:
    """The fine-tuning task of seed ``seed``: ``(pretrained, X, Y)``. ``run(quick, seed)``
    trains on the tasks of seeds 10·seed, 10·seed + 1, ... (so ``task(quick, 0)`` is the
    first task of ``run(quick, 0)``).

    ``pretrained`` is teacher A, a random MLP of sizes ``TEACHER_SIZES``; teacher B is A
    with a rank-``SHIFT_RANK`` update of size ``SHIFT_SIZE`` planted in layer ``LAYER``;
    ``X`` holds ``SETTINGS[quick]["n_train"]`` Gaussian inputs and ``Y`` = B(X), teacher
    B's logits (float32). Fine-tuning fits Y from A with MSE: the loss before any update
    is mean((A(X) − Y)²). Every draw comes from ``np.random.default_rng(seed)``, so the
    same arguments give the same arrays and the same (fresh) model.
    """
    return _task(SETTINGS[bool(quick)], seed)


def _final_loss(losses: list[float] | None) -> float | None:
    if losses is None:
        return None
    value = float(np.mean(losses[-LAST_LOSSES:]))
    return value if np.isfinite(value) else None


def _lr_reaching(row: list[float | None], lrs: list[float], target: float) -> float | None:
    """The smallest η at which the final loss falls to ``target``, interpolating log η
    linearly in log loss between grid points; None if no η in the grid gets there or the
    very first one already does (the crossing is outside the grid)."""
    for j, value in enumerate(row):
        if value is not None and value <= target:
            previous = row[j - 1] if j > 0 else None
            if previous is None or previous <= target:
                return None
            t = (np.log(previous) - np.log(target)) / (np.log(previous) - np.log(value))
            return float(np.exp(np.log(lrs[j - 1]) + t * (np.log(lrs[j]) - np.log(lrs[j - 1]))))
    return None


def _slope(alphas: list[float], lrs: list[float | None]) -> float | None:
    """Least-squares slope of log η against log α over the α that have an η (≥ 2 needed)."""
    pairs = [(a, lr) for a, lr in zip(alphas, lrs, strict=True) if lr is not None]
    if len(pairs) < 2:
        return None
    return float(np.polyfit(np.log10([a for a, _ in pairs]), np.log10([b for _, b in pairs]), 1)[0])


def _grid(
    pretrained: Module, X: np.ndarray, Y: np.ndarray, cfg: dict[str, Any], seed: int, progress: bool
) -> dict[str, Any]:
    """Final training loss over (α, η) at rank GRID_RANK, for Adam and SGD.

    Two summaries of how α trades with η, each a slope of log η against log α: the best
    η per α (coarse: it moves in grid steps), and the η at which the loss first reaches a
    fixed target (an iso-loss contour, interpolated; the target is the geometric mean of
    the loss before fine-tuning and the best loss in that optimizer's grid).
    """
    initial = float(np.mean((teacher_logits(pretrained, X) - Y) ** 2))
    grids: dict[str, Any] = {
        "rank": GRID_RANK,
        "alphas": cfg["alphas"],
        "steps": cfg["grid_steps"],
        "initial_loss": initial,
    }
    for optimizer in ("adam", "sgd"):
        lrs = cfg["lrs"][optimizer]
        cells = [(a, lr) for a in cfg["alphas"] for lr in lrs]
        losses: dict[tuple[float, float], float | None] = {}
        for alpha, lr in progress_bar(cells, enabled=progress, desc=f"alpha_sweep: {optimizer}"):
            model = with_lora(
                pretrained, GRID_RANK, alpha, targets=[LAYER], rng=np.random.default_rng(seed + 1)
            )
            curve = train_fixed_budget(
                model,
                X,
                Y,
                steps=cfg["grid_steps"],
                lr=lr,
                optimizer=optimizer,
                loss=mse_to_logits,
                rng=np.random.default_rng(seed + 2),
            )
            losses[(alpha, lr)] = _final_loss(curve)
        table = [[losses[(a, lr)] for lr in lrs] for a in cfg["alphas"]]
        best_lr = []
        for row in table:
            finite = [(v, lr) for v, lr in zip(row, lrs, strict=True) if v is not None]
            best_lr.append(min(finite)[1] if finite else None)
        lowest = min(v for row in table for v in row if v is not None)
        target = float(np.sqrt(initial * lowest))
        contour = [_lr_reaching(row, lrs, target) for row in table]
        grids[optimizer] = {
            "lrs": lrs,
            "final_loss": table,
            "best_lr": best_lr,
            "best_lr_slope": _slope(cfg["alphas"], best_lr),
            "target_loss": target,
            "lr_at_target": contour,
            "contour_slope": _slope(cfg["alphas"], contour),
        }
    return grids


def _grad_norm_at_init(
    pretrained: Module, X: np.ndarray, Y: np.ndarray, rank: int, rslora: bool, rng_seed: int
) -> float:
    """‖∂L/∂B‖_F of the adapted layer at B = 0, on one fixed batch of 256 inputs."""
    model = with_lora(
        pretrained,
        rank,
        SCALING_ALPHA,
        targets=[LAYER],
        use_rslora=rslora,
        rng=np.random.default_rng(rng_seed),
    )
    loss = mse_to_logits(model(Tensor(X[:256])), Y[:256])
    loss.backward()
    ((_, layer),) = lora_layers(model)
    return float(np.linalg.norm(layer.lora_b.weight.grad))


def _scaling(
    pretrained: Module,
    X: np.ndarray,
    Y: np.ndarray,
    cfg: dict[str, Any],
    lrs: dict[str, float],
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Loss curves and ‖∂L/∂B‖ across ranks, each scaling at its own η (``lrs``)."""
    out: dict[str, Any] = {
        "ranks": cfg["ranks"],
        "alpha": SCALING_ALPHA,
        "lr": lrs,
        "steps": cfg["scaling_steps"],
        "init_draws": cfg["init_draws"],
    }
    jobs = [(r, name) for r in cfg["ranks"] for name in ("standard", "rslora")]
    curves: dict[str, list[list[float] | None]] = {"standard": [], "rslora": []}
    init_norms: dict[str, list[float]] = {"standard": [], "rslora": []}
    trained_norms: dict[str, list[float]] = {"standard": [], "rslora": []}
    for rank, name in progress_bar(jobs, enabled=progress, desc="alpha_sweep: α/r vs α/√r"):
        rslora = name == "rslora"
        draws = [
            _grad_norm_at_init(pretrained, X, Y, rank, rslora, seed + 10 + d)
            for d in range(cfg["init_draws"])
        ]
        init_norms[name].append(float(np.mean(draws)))
        model = with_lora(
            pretrained,
            rank,
            SCALING_ALPHA,
            targets=[LAYER],
            use_rslora=rslora,
            rng=np.random.default_rng(seed + 1),
        )
        ((_, layer),) = lora_layers(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _RecordingAdam(params, lrs[name], layer.lora_b.weight)
        history = fit(
            model,
            (X, Y),
            optimizer=optimizer,
            loss=mse_to_logits,
            steps=cfg["scaling_steps"],
            batch_size=128,
            eval_every=cfg["scaling_steps"],
            progress=False,
            rng=np.random.default_rng(seed + 2),
        )
        curves[name].append(history.loss)
        window = optimizer.grad_norms[1 : GRAD_WINDOW + 1]
        trained_norms[name].append(float(np.mean(window)))
    out["loss_curves_standard"] = curves["standard"]
    out["loss_curves_rslora"] = curves["rslora"]
    out["final_loss_standard"] = [_final_loss(c) for c in curves["standard"]]
    out["final_loss_rslora"] = [_final_loss(c) for c in curves["rslora"]]
    out["grad_norm_B_standard"] = init_norms["standard"]
    out["grad_norm_B_rslora"] = init_norms["rslora"]
    out["grad_norm_B_training_standard"] = trained_norms["standard"]
    out["grad_norm_B_training_rslora"] = trained_norms["rslora"]
    return out


def _tuned(
    pretrained: Module,
    X: np.ndarray,
    Y: np.ndarray,
    cfg: dict[str, Any],
    seed: int,
    progress: bool,
    chosen: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The step-size control: each (rank, scaling) gets its best η from ``tuned_lrs``
    (or, with ``chosen = {scaling: [η per rank]}``, runs those η only: later seeds).

    Under Adam a larger s is partly a larger step, so α/√r's advantage at a fixed η could
    be a step-size effect. With η re-tuned per rank, what remains is not.
    """
    out: dict[str, Any] = {"lrs": cfg["tuned_lrs"]}
    jobs = [
        (r, n, lr)
        for i, r in enumerate(cfg["ranks"])
        for n in ("standard", "rslora")
        for lr in (cfg["tuned_lrs"] if chosen is None else [chosen[n][i]])
    ]
    final: dict[tuple[int, str, float], float | None] = {}
    for rank, name, lr in progress_bar(jobs, enabled=progress, desc="alpha_sweep: tuned η"):
        model = with_lora(
            pretrained,
            rank,
            SCALING_ALPHA,
            targets=[LAYER],
            use_rslora=name == "rslora",
            rng=np.random.default_rng(seed + 1),
        )
        curve = train_fixed_budget(
            model,
            X,
            Y,
            steps=cfg["scaling_steps"],
            lr=lr,
            loss=mse_to_logits,
            rng=np.random.default_rng(seed + 2),
        )
        final[(rank, name, lr)] = _final_loss(curve)
    for name in ("standard", "rslora"):
        best_loss, best_lr = [], []
        for i, rank in enumerate(cfg["ranks"]):
            lrs = cfg["tuned_lrs"] if chosen is None else [chosen[name][i]]
            runs = [(final[(rank, name, lr)], lr) for lr in lrs]
            runs = [(v, lr) for v, lr in runs if v is not None]
            value, lr = min(runs) if runs else (None, None)
            best_loss.append(value)
            best_lr.append(lr)
        out[f"final_loss_{name}"] = best_loss
        out[f"best_lr_{name}"] = best_lr
    return out


def _log_slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log10(x), np.log10(y), 1)[0])


def _one_seed(
    cfg: dict[str, Any], seed: int, progress: bool, reference: dict[str, Any] | None
) -> dict[str, Any]:
    """Grids, tuned η and the α/r-vs-α/√r runs on seed ``seed``'s task. ``reference`` is
    the first seed's result: its η per rank (re-tuned) and its η at REFERENCE_RANK (kept)
    are used instead of new grids, so every seed runs the same learning rates."""
    pretrained, X, Y = _task(cfg, seed)
    grids = _grid(pretrained, X, Y, cfg, seed, progress)
    chosen = None
    if reference is not None:
        tuned_ref = reference["tuned_lr"]
        chosen = {name: tuned_ref[f"best_lr_{name}"] for name in ("standard", "rslora")}
    tuned = _tuned(pretrained, X, Y, cfg, seed, progress, chosen)
    if reference is None:
        index = cfg["ranks"].index(REFERENCE_RANK)
        lrs = {name: tuned[f"best_lr_{name}"][index] for name in ("standard", "rslora")}
    else:
        lrs = reference["lr"]
    scaling = _scaling(pretrained, X, Y, cfg, lrs, seed, progress)
    scaling["tuned_lr"] = tuned
    scaling["grad_norm_slope_standard"] = _log_slope(
        scaling["ranks"], scaling["grad_norm_B_standard"]
    )
    scaling["grad_norm_slope_rslora"] = _log_slope(scaling["ranks"], scaling["grad_norm_B_rslora"])
    scaling["grids"] = grids
    return scaling


def _log_interval(values: Any) -> dict[str, Any]:
    """Geometric mean and the 95% t-interval of log10 over positive values (None dropped)."""
    kept = [v for v in values if v is not None and v > 0]
    stats = mean_interval(np.log10(kept)) if kept else {"mean": None, "ci": [None, None]}
    if stats["mean"] is None:
        return {"mean": None, "ci": [None, None]}
    lo, hi = stats["ci"]
    return {
        "mean": float(10 ** stats["mean"]),
        "ci": [None, None] if lo is None else [float(10**lo), float(10**hi)],
    }


def _geometric(rows: list[list[float | None]]) -> list[float | None]:
    """Column-wise geometric mean of positive numbers (None if any entry is None)."""
    out: list[float | None] = []
    for column in zip(*rows, strict=True):
        if any(v is None or not v > 0 for v in column):
            out.append(None)
        else:
            out.append(float(10 ** np.mean(np.log10(column))))
    return out


def _pooled_grid(per_seed: list[dict[str, Any]], alphas: list[float]) -> dict[str, Any]:
    """One optimizer's grid over seeds: the geometric mean of each cell's final loss (None
    if any seed diverged there), its best η and iso-loss contour, and the contour slope of
    every seed with its mean and 95% interval."""
    lrs = per_seed[0]["lrs"]
    table = [_geometric([grid["final_loss"][i] for grid in per_seed]) for i in range(len(alphas))]
    best_lr = []
    for row in table:
        finite = [(v, lr) for v, lr in zip(row, lrs, strict=True) if v is not None]
        best_lr.append(min(finite)[1] if finite else None)
    target = float(10 ** np.mean([np.log10(grid["target_loss"]) for grid in per_seed]))
    contour = [_lr_reaching(row, lrs, target) for row in table]
    slopes = [grid["contour_slope"] for grid in per_seed]
    stats = mean_interval(slopes)
    return {
        "lrs": lrs,
        "final_loss": table,
        "best_lr": best_lr,
        "best_lr_slope": _slope(alphas, best_lr),
        "target_loss": target,
        "lr_at_target": contour,
        "contour_slope": stats["mean"],
        "contour_slope_ci": stats["ci"],
        "contour_slope_per_seed": slopes,
        "contour_slope_of_mean_grid": _slope(alphas, contour),
    }


def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The (α, η) grids for Adam and SGD, and α/r vs α/√r across ranks, over
    ``SETTINGS[quick]["seeds"]`` seeds (10·seed, 10·seed + 1, ...; each its own task).

    Fields (each a mean over seeds, with ``*_ci`` its 95% t-interval and ``*_per_seed``
    where it is a number per seed): ``ranks``; ``grad_norm_B_standard`` /
    ``grad_norm_B_rslora`` (‖∂L/∂B‖_F at the first step, B = 0, mean over ``init_draws``
    draws of A), their log–log slopes against r (theory: −1/2 and 0);
    ``grad_norm_B_training_*`` (mean over steps 2…21); ``loss_curves_*`` (geometric mean
    over seeds), ``final_loss_*`` (Adam, each scaling at the η that was best for it at
    r = ``reference_rank`` on the first seed, kept fixed: ``lr``); ``tuned_lr`` (final loss
    per rank with η re-tuned per rank and scaling on the first seed: the step-size
    control); ``grids`` with ``adam`` and ``sgd`` each holding ``lrs``, ``final_loss``
    (geometric mean over seeds; rows: α, columns: η; None = diverged on some seed),
    ``best_lr`` per α and the fitted ``best_lr_slope``, the iso-loss ``target_loss``,
    ``lr_at_target`` per α, and ``contour_slope`` (mean over seeds of each seed's slope
    of log η vs log α; see the module docstring for −1/2 and −1). ``first_seed`` holds
    the first seed's own numbers.
    """
    manual_seed(seed)
    cfg = SETTINGS[bool(quick)]
    seeds = [10 * seed + i for i in range(cfg["seeds"])]
    results: list[dict[str, Any]] = []
    for s in progress_bar(seeds, enabled=progress, desc="alpha_sweep: seeds"):
        results.append(_one_seed(cfg, s, False, results[0] if results else None))
    first = results[0]

    def pooled(key: str, log: bool = False) -> dict[str, Any]:
        columns = list(zip(*[r[key] for r in results], strict=True))
        if log:
            stats = [_log_interval(column) for column in columns]
            return {
                key: [s["mean"] for s in stats],
                f"{key}_ci": [s["ci"] for s in stats],
                f"{key}_per_seed": [list(column) for column in columns],
            }
        stats = [mean_interval(column) for column in columns]
        return {
            key: [s["mean"] for s in stats],
            f"{key}_ci": [s["ci"] for s in stats],
            f"{key}_per_seed": [list(column) for column in columns],
        }

    out: dict[str, Any] = {
        "quick": bool(quick),
        "seed": seed,
        "seeds": seeds,
        "task": {
            "teacher_sizes": list(TEACHER_SIZES),
            "layer": LAYER,
            "shift_rank": SHIFT_RANK,
            "shift_size": SHIFT_SIZE,
            "n_train": cfg["n_train"],
            "loss": "MSE to teacher B's logits",
        },
        "interval": "95% t-interval over seeds (of log10 for losses)",
        "ranks": first["ranks"],
        "alpha": first["alpha"],
        "lr": first["lr"],
        "steps": first["steps"],
        "init_draws": first["init_draws"],
        "reference_rank": REFERENCE_RANK,
    }
    for key in ("grad_norm_B_standard", "grad_norm_B_rslora"):
        out.update(pooled(key, log=True))
    for key in ("grad_norm_B_training_standard", "grad_norm_B_training_rslora"):
        out.update(pooled(key, log=True))
    for key in ("final_loss_standard", "final_loss_rslora"):
        out.update(pooled(key, log=True))
    for name in ("standard", "rslora"):
        curves = [r[f"loss_curves_{name}"] for r in results]
        out[f"loss_curves_{name}"] = [
            _geometric([seed_curves[i] for seed_curves in curves]) for i in range(len(out["ranks"]))
        ]
        bands = []
        for i in range(len(out["ranks"])):
            steps = zip(*[seed_curves[i] for seed_curves in curves], strict=True)
            stats = [_log_interval(values)["ci"] for values in steps]
            bands.append([[lo for lo, _ in stats], [hi for _, hi in stats]])
        out[f"loss_curves_{name}_ci"] = bands
        slopes = [r[f"grad_norm_slope_{name}"] for r in results]
        stats = mean_interval(slopes)
        out[f"grad_norm_slope_{name}"] = stats["mean"]
        out[f"grad_norm_slope_{name}_ci"] = stats["ci"]
        out[f"grad_norm_slope_{name}_per_seed"] = slopes
    tuned = {"lrs": first["tuned_lr"]["lrs"]}
    for name in ("standard", "rslora"):
        key = f"final_loss_{name}"
        columns = list(zip(*[r["tuned_lr"][key] for r in results], strict=True))
        stats = [_log_interval(column) for column in columns]
        tuned[key] = [s["mean"] for s in stats]
        tuned[f"{key}_ci"] = [s["ci"] for s in stats]
        tuned[f"best_lr_{name}"] = first["tuned_lr"][f"best_lr_{name}"]
    out["tuned_lr"] = tuned
    grids = {
        "rank": GRID_RANK,
        "alphas": cfg["alphas"],
        "steps": cfg["grid_steps"],
        "initial_loss": float(np.mean([r["grids"]["initial_loss"] for r in results])),
    }
    for optimizer in ("adam", "sgd"):
        grids[optimizer] = _pooled_grid([r["grids"][optimizer] for r in results], cfg["alphas"])
    out["grids"] = grids
    out["first_seed"] = first
    return out


def _fmt(slope: float | None) -> str:
    return "n/a" if slope is None else f"{slope:+.2f}"


def _heatmap(
    ax: Any,
    grid: dict[str, Any],
    alphas: list[float],
    title: str,
    steps: int,
    grid_rank: int,
    limits: tuple[float, float],
) -> Any:
    values = np.log10(nan_grid(grid["final_loss"]))
    lrs = grid["lrs"]
    image = ax.imshow(
        values, origin="lower", aspect="auto", cmap="viridis_r", vmin=limits[0], vmax=limits[1]
    )
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], rotation=45)
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    for i, row in enumerate(grid["final_loss"]):
        for j, value in enumerate(row):
            if value is None:
                ax.text(j, i, "×", ha="center", va="center", color="red", fontsize=9)
    best = [lrs.index(b) if b is not None else np.nan for b in grid["best_lr"]]
    ax.plot(best, range(len(alphas)), "w*", ms=9)
    # the iso-loss contour, in grid coordinates (log η interpolated between columns)
    log_lrs = np.log10(lrs)
    contour = [
        np.interp(np.log10(v), log_lrs, np.arange(len(lrs))) if v is not None else np.nan
        for v in grid["lr_at_target"]
    ]
    ax.plot(contour, range(len(alphas)), "o-", color="white", ms=4, lw=1.5)
    lo, hi = grid["contour_slope_ci"]
    interval = "" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]"
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(f"α (rank r = {grid_rank})")
    ax.set_title(
        f"{title}: log10 final loss after {steps} steps (geometric mean over seeds)\n"
        f"★ best η per α;  ○ loss = {grid['target_loss']:.3g}: slope "
        f"{_fmt(grid['contour_slope'])}{interval} (mean over seeds)",
        fontsize=9,
    )
    ax.grid(False)
    return image


def _with_ci(ax: Any, x: Any, values: Any, cis: Any, fmt: str, color: str, label: str, **kw: Any):
    """Points (log axes) with their 95% intervals as error bars."""
    y = nan_array(values)
    lo = nan_array([c[0] if c[0] is not None else v for c, v in zip(cis, values, strict=True)])
    hi = nan_array([c[1] if c[1] is not None else v for c, v in zip(cis, values, strict=True)])
    ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt=fmt, color=color, capsize=3, label=label, **kw)


@style.styled
def plot(result: dict[str, Any]):
    """Grids (Adam, SGD, one colour scale); gradient norm of B, loss curves and final loss
    vs rank, each over seeds with 95% intervals."""
    n = len(result["seeds"])
    fig, axes = style.mosaic(
        [["adam"] * 3 + ["sgd"] * 3, ["grad"] * 2 + ["curves"] * 2 + ["final"] * 2],
        title=f"α as a learning rate, and α/r vs α/√r (rsLoRA) — {n} seeds, 95% intervals",
        size=(16.0, 9.0),
    )
    grids = result["grids"]
    finite = [
        np.log10(v)
        for name in ("adam", "sgd")
        for row in grids[name]["final_loss"]
        for v in row
        if v is not None
    ]
    limits = (float(min(finite)), float(max(finite)))
    for name, label in (("adam", "Adam"), ("sgd", "SGD")):
        image = _heatmap(
            axes[name], grids[name], grids["alphas"], label, grids["steps"], grids["rank"], limits
        )
    fig.colorbar(
        image, ax=[axes["adam"], axes["sgd"]], shrink=0.85, label="log10 final training loss"
    )
    axes["sgd"].text(
        1.0,
        -0.28,
        "× diverged (on some seed)",
        transform=axes["sgd"].transAxes,
        ha="right",
        fontsize=8,
        color="red",
    )
    ranks = result["ranks"]
    scalings = (("standard", "α/r"), ("rslora", "α/√r (rsLoRA)"))

    ax = axes["grad"]
    for name, label in scalings:
        color = style.COLORS["lora" if name == "standard" else "rslora"]
        _with_ci(
            ax,
            ranks,
            result[f"grad_norm_B_{name}"],
            result[f"grad_norm_B_{name}_ci"],
            "o-",
            color,
            f"{label}, at init",
        )
        _with_ci(
            ax,
            ranks,
            result[f"grad_norm_B_training_{name}"],
            result[f"grad_norm_B_training_{name}_ci"],
            "s--",
            color,
            f"{label}, steps 2–{GRAD_WINDOW + 1}",
            alpha=0.6,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("rank r")
    ax.set_ylabel("‖∂L/∂B‖_F")

    def slope_text(name: str) -> str:
        lo, hi = result[f"grad_norm_slope_{name}_ci"]
        interval = "" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]"
        return f"{result[f'grad_norm_slope_{name}']:+.2f}{interval}"

    ax.set_title(
        f"gradient of B at init: slope {slope_text('standard')} (α/r),\n"
        f"{slope_text('rslora')} (α/√r)",
        fontsize=9,
    )
    ax.legend(loc="lower left", fontsize=7)

    ax = axes["curves"]
    shown = [r for r in (ranks[0], result["reference_rank"], ranks[-1]) if r in ranks]
    colors = style.rank_colors(len(shown))
    for color, r in zip(colors, shown, strict=True):
        i = ranks.index(r)
        for name, ls in (("standard", "-"), ("rslora", "--")):
            curve = result[f"loss_curves_{name}"][i]
            if curve is not None:
                ax.semilogy(
                    style.smooth(nan_array(curve)),
                    ls,
                    color=color,
                    lw=1.2,
                    label=f"r={r}, {'α/r' if ls == '-' else 'α/√r'}",
                )
                lo, hi = result[f"loss_curves_{name}_ci"][i]
                if lo[0] is not None:
                    steps = np.arange(len(lo))
                    ax.fill_between(
                        steps,
                        style.smooth(nan_array(lo)),
                        style.smooth(nan_array(hi)),
                        color=color,
                        alpha=0.12,
                        lw=0,
                    )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed; geometric mean, 95% band)")
    lr = result["lr"]
    ax.set_title(
        f"Adam, α={result['alpha']:g}, η tuned at r={result['reference_rank']} then kept\n"
        f"solid α/r (η={lr['standard']:g}), dashed α/√r (η={lr['rslora']:g})",
        fontsize=9,
    )
    ax.legend(loc="lower left", ncol=3, fontsize=7)

    ax = axes["final"]
    tuned = result["tuned_lr"]
    for name, label in scalings:
        color = style.COLORS["lora" if name == "standard" else "rslora"]
        _with_ci(
            ax,
            ranks,
            result[f"final_loss_{name}"],
            result[f"final_loss_{name}_ci"],
            "o-",
            color,
            f"{label}, η tuned at r={result['reference_rank']}",
        )
        _with_ci(
            ax,
            ranks,
            tuned[f"final_loss_{name}"],
            tuned[f"final_loss_{name}_ci"],
            "D:",
            color,
            f"{label}, best η per rank",
            alpha=0.7,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("rank r")
    ax.set_ylabel(f"final training loss (mean of last {LAST_LOSSES} steps)")
    ax.set_title("does rank help? η kept (solid) vs η re-tuned per rank (dotted)", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    return fig


def summary(result: dict[str, Any]) -> str:
    """Iso-loss slopes for Adam/SGD, gradient-norm slopes vs rank, and the largest rank's
    final loss under each scaling with η kept and re-tuned; means over seeds with their
    95% intervals."""
    grids, tuned, r = result["grids"], result["tuned_lr"], result["ranks"][-1]

    def slope(part: dict[str, Any], key: str) -> str:
        return format_interval({"mean": part[key], "ci": part[f"{key}_ci"]}, 2)

    def loss(values: list[float | None]) -> str:
        return "n/a" if values[-1] is None else f"{values[-1]:.2g}"

    return (
        f"iso-loss log η vs log α slope: Adam {slope(grids['adam'], 'contour_slope')}, "
        f"SGD {slope(grids['sgd'], 'contour_slope')}; ‖∂L/∂B‖ vs r slope at init: "
        f"α/r {slope(result, 'grad_norm_slope_standard')}, "
        f"α/√r {slope(result, 'grad_norm_slope_rslora')}; loss at r={r} (geometric mean), "
        f"η kept: α/r {loss(result['final_loss_standard'])} vs α/√r "
        f"{loss(result['final_loss_rslora'])}, η re-tuned: {loss(tuned['final_loss_standard'])} "
        f"vs {loss(tuned['final_loss_rslora'])}"
    )
