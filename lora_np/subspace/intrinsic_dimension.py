"""The intrinsic dimension of a task (Li et al. 2018): accuracy of random-subspace training
against the subspace size d, and d_int90, the smallest d that reaches 90% of the directly
trained accuracy (:func:`intrinsic_dimension`, :func:`crossing_dimension`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lora_np.checks import is_int, is_positive_int
from lora_np.nn import Module
from lora_np.optim import OPTIMIZERS, make_optimizer
from lora_np.progress import progress_counter
from lora_np.subspace.model import SubspaceModel
from lora_np.subspace.projections import PROJECTIONS
from lora_np.train import evaluate, fit

# Li et al. (2018), "Measuring the Intrinsic Dimension of Objective Landscapes": train a
# model only inside a random d-dimensional subspace of its weights (θ = θ0 + P·θ_d, see
# lora_np.subspace.model), for a grid of d, and call the smallest d that reaches 90% of
# the directly trained model's accuracy the intrinsic dimension d_int90.

#: Defaults found on the digits MLP 64-128-128-10 (D = 26,122), Adam, batch 64,
#: 1,000 steps: θ_d trains well with lr 1e-2 to 1e-1 (3e-2 is the default), ten times
#: the 1e-3 to 3e-3 that suits direct training. As Li et al. note, θ_d wants a larger
#: learning rate: one unit of θ_d moves the weights by one unit-norm column of P, spread
#: over all D weights.
SUBSPACE_LR = 3e-2
DIRECT_LR = 3e-3

_INTERPOLATION = (
    "linear interpolation of mean accuracy against log(d) between the two grid points "
    "that bracket the target"
)


def intrinsic_dimension(
    make_model: Callable[[np.random.Generator], Module],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    dims: Sequence[int],
    seeds: Sequence[int] = (0,),
    *,
    baseline: float | None = None,
    threshold: float = 0.9,
    absolute_threshold: float | None = None,
    projection: str = "dense",
    lr: float = SUBSPACE_LR,
    baseline_lr: float = DIRECT_LR,
    steps: int = 1000,
    baseline_steps: int | None = None,
    batch_size: int = 64,
    optimizer: str = "adam",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a random-subspace model for every d in ``dims`` and seed; find d_int90.

    Args:
        make_model: ``rng -> Module``, a freshly initialised model (θ0). Seed ``s`` calls
            it with ``np.random.default_rng(s)``, so every d of one seed starts from the
            same θ0.
        data: ``(X_train, y_train, X_test, y_test)`` (e.g. ``lora_np.data.digits_split()``);
            accuracy is measured on the test part.
        dims: the grid of subspace sizes d (positive ints, each <= D).
        seeds: one run per seed and d. Seed ``s`` with size ``d`` draws P from
            ``default_rng([s, d])`` and its mini-batches from ``default_rng([s, d, 1])``.
        baseline: the accuracy to compare with. ``None``: train each seed's model
            directly (all D weights; ``baseline_lr``, ``baseline_steps``) and use the mean.
        threshold: d_int is the smallest d whose mean accuracy reaches
            ``threshold · baseline`` (0.9: d_int90).
        absolute_threshold: if given, the target is this accuracy instead (Li et al.'s
            headline numbers use one global threshold per dataset).
        projection: "dense", "sparse" or "fastfood" (see :mod:`lora_np.subspace.projections`).
        lr, steps, batch_size, optimizer: training of θ_d ("adam" or "sgd").
        progress: a progress bar over the runs (``tqdm.auto``).

    Returns a dict with ``dims``, ``seeds``, ``accuracy`` (per d, per seed),
    ``accuracy_mean`` and ``accuracy_std`` (over seeds) per d, ``D``, ``baseline`` (and
    ``baseline_std``, ``baseline_source`` saying where it came from), ``target``,
    ``dint90`` and ``dint90_grid``, ``interpolation`` and the training settings.

    d_int90 is found on the grid and refined between grid points: with d_i the first grid
    point whose mean accuracy a_i reaches the target t, and d_{i-1} the one before,

        log d_int = log d_{i-1} + (t − a_{i-1}) / (a_i − a_{i-1}) · (log d_i − log d_{i-1}),

    i.e. linear interpolation in log d (the grid is usually geometric). ``dint90_grid`` is
    d_i itself. If already the smallest d reaches the target, ``dint90`` is that d
    (``dint90_bracketed`` False: the true value may be lower); if no d does, both are
    None.
    """
    X_train, y_train, X_test, y_test = _check_data(data)
    dims = _check_dims(dims)
    seeds = _check_seeds(seeds)
    if projection not in PROJECTIONS:
        raise ValueError(
            f"intrinsic_dimension: unknown projection {projection!r}; expected one of "
            f"{list(PROJECTIONS)}"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"intrinsic_dimension: optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}"
        )
    if not threshold > 0:
        raise ValueError(f"intrinsic_dimension: threshold must be > 0, got {threshold!r}")
    baseline_steps = steps if baseline_steps is None else baseline_steps

    D = sum(p.size for p in make_model(np.random.default_rng(seeds[0])).parameters())
    if dims[-1] > D:
        raise ValueError(
            f"intrinsic_dimension: every d must be <= D = {D} (the model's weight count), "
            f"got d = {dims[-1]}"
        )

    def train_and_score(model: Module, rate: float, n_steps: int, rng: np.random.Generator):
        opt = make_optimizer(optimizer, model.parameters(), rate)
        fit(
            model,
            (X_train, y_train),
            optimizer=opt,
            steps=n_steps,
            batch_size=batch_size,
            eval_every=n_steps,
            progress=False,
            rng=rng,
        )
        return float(evaluate(model, X_test, y_test)["accuracy"])

    runs = len(dims) * len(seeds) + (len(seeds) if baseline is None else 0)
    bar = progress_counter(enabled=progress, total=runs, desc="intrinsic dimension", unit="run")
    try:
        if baseline is None:
            direct = []
            for s in seeds:
                model = make_model(np.random.default_rng(s))
                rng = np.random.default_rng([s, 0, 1])
                direct.append(train_and_score(model, baseline_lr, baseline_steps, rng))
                bar.set_postfix(baseline=f"{direct[-1]:.3f}", refresh=False)
                bar.update(1)
            baseline_value, baseline_std = float(np.mean(direct)), float(np.std(direct))
            baseline_source = (
                f"trained directly (all {D} weights; {optimizer}, lr {baseline_lr}, "
                f"{baseline_steps} steps, batch {batch_size}); mean over seeds {list(seeds)}"
            )
        else:
            baseline_value, baseline_std, baseline_source = float(baseline), None, "given"

        accuracy = np.zeros((len(dims), len(seeds)))
        for i, d in enumerate(dims):
            for j, s in enumerate(seeds):
                sub = SubspaceModel(
                    make_model(np.random.default_rng(s)),
                    d,
                    projection,
                    rng=np.random.default_rng([s, d]),
                )
                accuracy[i, j] = train_and_score(sub, lr, steps, np.random.default_rng([s, d, 1]))
                bar.set_postfix(d=d, acc=f"{accuracy[i, j]:.3f}", refresh=False)
                bar.update(1)
    finally:
        bar.close()

    mean = accuracy.mean(axis=1)
    target = threshold * baseline_value if absolute_threshold is None else absolute_threshold
    dint, dint_grid, bracketed = crossing_dimension(dims, mean, target)
    return {
        "dims": list(dims),
        "seeds": list(seeds),
        "accuracy": accuracy.tolist(),
        "accuracy_mean": mean.tolist(),
        "accuracy_std": accuracy.std(axis=1).tolist(),
        "D": int(D),
        "projection": projection,
        "baseline": baseline_value,
        "baseline_std": baseline_std,
        "baseline_source": baseline_source,
        "threshold": threshold,
        "absolute_threshold": absolute_threshold,
        "target": float(target),
        "target_rule": (
            f"{threshold} × baseline" if absolute_threshold is None else "absolute threshold"
        ),
        "dint90": dint,
        "dint90_grid": dint_grid,
        "dint90_bracketed": bracketed,
        "interpolation": _INTERPOLATION,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "batch_size": batch_size,
    }


def crossing_dimension(
    dims: Sequence[int], accuracy: Sequence[float], target: float
) -> tuple[float | None, int | None, bool]:
    """Where mean accuracy first reaches ``target`` along an increasing grid of d.

    Returns ``(d_int, d_grid, bracketed)``: ``d_grid`` is the first grid point whose
    accuracy is >= target; ``d_int`` refines it by linear interpolation in log d with the
    grid point before (see :func:`intrinsic_dimension`); ``bracketed`` is False when the
    first grid point already reaches the target (then ``d_int = d_grid`` is only an upper
    bound). ``(None, None, False)`` if no grid point reaches it.
    """
    dims = [int(d) for d in dims]
    acc = [float(a) for a in accuracy]
    if len(dims) != len(acc):
        raise ValueError(f"crossing_dimension: {len(dims)} dims but {len(acc)} accuracies")
    for i, (d, a) in enumerate(zip(dims, acc, strict=True)):
        if a >= target:
            if i == 0:
                return float(d), d, False
            d0, a0 = dims[i - 1], acc[i - 1]
            fraction = (target - a0) / (a - a0)  # in (0, 1]: a0 < target <= a
            log_d = math.log(d0) + fraction * (math.log(d) - math.log(d0))
            return math.exp(log_d), d, True
    return None, None, False


def _check_data(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        length = f" of length {len(data)}" if hasattr(data, "__len__") else ""
        raise TypeError(
            "intrinsic_dimension: data must be (X_train, y_train, X_test, y_test), got "
            f"{type(data).__name__}{length}"
        )
    return tuple(np.asarray(a) for a in data)  # type: ignore[return-value]


def _check_dims(dims: Sequence[int]) -> list[int]:
    values = list(dims)
    if not values or any(not is_positive_int(d) for d in values):
        raise ValueError(f"intrinsic_dimension: dims must be positive ints, got {values!r}")
    if sorted(set(values)) != values:
        raise ValueError(f"intrinsic_dimension: dims must be strictly increasing, got {values!r}")
    return [int(d) for d in values]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values or any(not is_int(s) or s < 0 for s in values):
        raise ValueError(f"intrinsic_dimension: seeds must be non-negative ints, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"intrinsic_dimension: seeds must be distinct, got {values!r}")
    return [int(s) for s in values]
