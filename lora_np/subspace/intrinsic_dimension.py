"""The intrinsic dimension of a task (Li et al. 2018): accuracy of random-subspace training
against the subspace size d, and d_int90, the smallest d that reaches 90% of the directly
trained accuracy (:func:`intrinsic_dimension`, :func:`crossing_dimension`), with a
bootstrap interval over seeds (:func:`crossing_interval`, :func:`summarize_runs`).
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
    baseline: float | Sequence[float] | None = None,
    threshold: float = 0.9,
    absolute_threshold: float | None = None,
    projection: str = "dense",
    lr: float = SUBSPACE_LR,
    baseline_lr: float = DIRECT_LR,
    steps: int = 1000,
    baseline_steps: int | None = None,
    batch_size: int = 64,
    optimizer: str = "adam",
    ci_draws: int = 1000,
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
        baseline: the accuracy to compare with: one number, or one per seed (e.g. the
            ``baseline_per_seed`` of an earlier call on the same models and seeds).
            ``None``: train each seed's model directly (all D weights; ``baseline_lr``,
            ``baseline_steps``) and use the mean.
        threshold: d_int is the smallest d whose mean accuracy reaches
            ``threshold · baseline`` (0.9: d_int90).
        absolute_threshold: if given, the target is this accuracy instead (Li et al.'s
            headline numbers use one global threshold per dataset).
        projection: "dense", "sparse" or "fastfood" (see :mod:`lora_np.subspace.projections`).
        lr, steps, batch_size, optimizer: training of θ_d ("adam" or "sgd").
        ci_draws: bootstrap resamples of the list of seeds for ``dint90_ci`` (see
            :func:`crossing_interval`); drawn from ``default_rng([len(dims), *seeds])``,
            so the interval too is the same for the same arguments.
        progress: a progress bar over the runs (``tqdm.auto``).

    Returns a dict with ``dims``, ``seeds``, ``accuracy`` (per d, per seed),
    ``accuracy_mean`` and ``accuracy_std`` (over seeds) per d, ``D``, ``baseline`` (and
    ``baseline_per_seed``, ``baseline_std``, ``baseline_source`` saying where it came
    from), ``target``, ``dint90`` and ``dint90_grid``, ``dint90_ci`` (a 95% bootstrap
    interval over seeds), ``start_accuracy`` (θ0's accuracy, mean over seeds) with
    ``improvement_target``, ``dint90_improvement`` and its ``dint90_improvement_ci`` (d at
    90% of the *improvement* from θ0's accuracy to the baseline; see
    :func:`summarize_runs`), ``interpolation`` and the training settings.

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
            baselines, baseline_std = direct, float(_sample_std(np.asarray(direct)))
            baseline_source = (
                f"trained directly (all {D} weights; {optimizer}, lr {baseline_lr}, "
                f"{baseline_steps} steps, batch {batch_size}); mean over seeds {list(seeds)}"
            )
        else:
            baselines = (
                [float(b) for b in baseline]
                if np.ndim(baseline) == 1  # one per seed: a list, a tuple or an array
                else [float(baseline)] * len(seeds)
            )
            if len(baselines) != len(seeds):
                raise ValueError(
                    f"intrinsic_dimension: {len(baselines)} baselines for {len(seeds)} seeds"
                )
            baseline_std, baseline_source = None, "given"

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

    starts = [
        float(evaluate(make_model(np.random.default_rng(s)), X_test, y_test)["accuracy"])
        for s in seeds
    ]
    summary = summarize_runs(
        dims,
        accuracy,
        baselines,
        starts,
        threshold=threshold,
        absolute_threshold=absolute_threshold,
        draws=ci_draws,
        rng=np.random.default_rng([len(dims), *seeds]),
    )
    return {
        "dims": list(dims),
        "seeds": list(seeds),
        "accuracy": accuracy.tolist(),
        **summary,
        "D": int(D),
        "projection": projection,
        "baseline_std": baseline_std,
        "baseline_source": baseline_source,
        "interpolation": _INTERPOLATION,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "batch_size": batch_size,
    }


def summarize_runs(
    dims: Sequence[int],
    accuracy: Any,
    baselines: Sequence[float],
    starts: Sequence[float] | None = None,
    *,
    threshold: float = 0.9,
    absolute_threshold: float | None = None,
    draws: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """d_int90 and its bootstrap interval from finished runs, one column per seed.

    ``accuracy`` is (len(dims), n_seeds); ``baselines`` holds each seed's full-training
    accuracy and ``starts`` (optional) each seed's accuracy before any training (θ0).
    Each seed s contributes a target, and the target of a set of seeds is their mean:

    * ``target`` = threshold · mean baseline (or ``absolute_threshold``), i.e. seed s
      contributes threshold · b_s;
    * ``improvement_target`` = start + threshold · (baseline − start): 90% of the way from
      θ0's accuracy to the baseline. It does not reward a head start: a pretrained model
      that starts at 0.6 of a 0.8 target has 75% of the usual d90 target done already.

    d_int90 (and ``dint90_improvement``) is where the mean accuracy over seeds crosses its
    target (:func:`crossing_dimension`); ``dint90_ci`` is the percentile bootstrap
    interval over seeds (:func:`crossing_interval`). Returns ``accuracy_mean``,
    ``accuracy_std``, ``baseline``, ``baseline_per_seed``, ``threshold``,
    ``absolute_threshold``, ``target`` (and ``target_per_seed``), ``target_rule``,
    ``dint90``, ``dint90_grid``, ``dint90_bracketed``, ``dint90_ci``, ``n_seeds``, and
    with ``starts`` also ``start_accuracy``, ``start_per_seed``, ``improvement_target``
    (and ``improvement_target_per_seed``), ``dint90_improvement`` and
    ``dint90_improvement_ci``.
    """
    dims = _check_dims(dims)
    acc = np.asarray(accuracy, dtype=float)
    base = np.asarray(baselines, dtype=float)
    if acc.ndim != 2 or acc.shape[0] != len(dims) or base.shape != (acc.shape[1],):
        raise ValueError(
            f"summarize_runs: accuracy must be (len(dims), n_seeds) = ({len(dims)}, "
            f"{len(base)}), got {acc.shape} with {base.shape[0]} baselines"
        )
    if not threshold > 0:
        raise ValueError(f"summarize_runs: threshold must be > 0, got {threshold!r}")
    if starts is not None and np.shape(starts) != base.shape:
        raise ValueError(
            f"summarize_runs: {np.size(starts)} starts for {base.shape[0]} seeds; give one "
            "start accuracy per seed"
        )
    _check_bootstrap(draws, level, "summarize_runs")
    rng = np.random.default_rng(0) if rng is None else rng
    if absolute_threshold is None:
        per_seed_target = threshold * base
    else:
        per_seed_target = np.full(base.shape, float(absolute_threshold))
    mean = acc.mean(axis=1)
    target = float(per_seed_target.mean())
    dint, dint_grid, bracketed = crossing_dimension(dims, mean, target)
    out: dict[str, Any] = {
        "accuracy_mean": mean.tolist(),
        "accuracy_std": _sample_std(acc).tolist(),
        "baseline": float(base.mean()),
        "baseline_per_seed": base.tolist(),
        "threshold": threshold,
        "absolute_threshold": absolute_threshold,
        "target": target,
        "target_per_seed": per_seed_target.tolist(),
        "target_rule": (
            f"{threshold} × baseline" if absolute_threshold is None else "absolute threshold"
        ),
        "dint90": dint,
        "dint90_grid": dint_grid,
        "dint90_bracketed": bracketed,
        "dint90_ci": crossing_interval(dims, acc, per_seed_target, draws, level, rng),
        "n_seeds": int(acc.shape[1]),
    }
    if starts is not None:
        start = np.asarray(starts, dtype=float)
        per_seed_improvement = start + threshold * (base - start)
        improvement_target = float(per_seed_improvement.mean())
        out.update(
            start_accuracy=float(start.mean()),
            start_per_seed=start.tolist(),
            improvement_target=improvement_target,
            improvement_target_per_seed=per_seed_improvement.tolist(),
            dint90_improvement=crossing_dimension(dims, mean, improvement_target)[0],
            dint90_improvement_ci=crossing_interval(
                dims, acc, per_seed_improvement, draws, level, rng
            ),
        )
    return out


def crossing_interval(
    dims: Sequence[int],
    accuracy: Any,
    per_seed_target: Any,
    draws: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> list[float | None]:
    """A percentile bootstrap interval ``[lo, hi]`` for the crossing d over seeds.

    Each of ``draws`` resamples picks n_seeds seeds with replacement, averages their
    accuracy curves (``accuracy`` is (len(dims), n_seeds)) and their targets, and finds
    where the averaged curve crosses (:func:`crossing_dimension`). ``lo`` and ``hi`` are
    the (1 − level)/2 and (1 + level)/2 quantiles of those crossings, taken without
    interpolation (the "lower" and "higher" order statistics). A resample whose curve
    never reaches its target counts as d = ∞, so ``hi`` (or both) is None when more than
    (1 − level)/2 of the resamples never get there. With one seed there is nothing to
    resample: ``[None, None]``. With few seeds (5) the interval is a rough one: it can
    only show the spread those seeds have.
    """
    acc = np.asarray(accuracy, dtype=float)
    _check_bootstrap(draws, level, "crossing_interval")
    if acc.ndim != 2 or np.shape(per_seed_target) != (acc.shape[1],):
        raise ValueError(
            f"crossing_interval: accuracy must be (len(dims), n_seeds) with one target per "
            f"seed, got accuracy {acc.shape} and targets {np.shape(per_seed_target)}"
        )
    if acc.shape[1] < 2:
        return [None, None]
    rng = np.random.default_rng(0) if rng is None else rng
    picks = rng.integers(0, acc.shape[1], size=(draws, acc.shape[1]))
    values = bootstrap_crossings(dims, acc, per_seed_target, picks)
    lo = float(np.quantile(values, (1 - level) / 2, method="lower"))
    hi = float(np.quantile(values, (1 + level) / 2, method="higher"))
    return [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]


def _sample_std(values: np.ndarray) -> np.ndarray:
    """The sample standard deviation (ddof = 1) over the last axis, the seeds, as
    :func:`lora_np.experiments.common.mean_interval` reports it; 0 for one seed."""
    if values.shape[-1] < 2:
        return np.zeros(values.shape[:-1])
    return values.std(axis=-1, ddof=1)


def _check_bootstrap(draws: Any, level: Any, name: str) -> None:
    if not is_positive_int(draws):
        raise ValueError(f"{name}: draws must be a positive int, got {draws!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"{name}: level must be a number in (0, 1), got {level!r}")


def bootstrap_crossings(
    dims: Sequence[int], accuracy: Any, per_seed_target: Any, picks: np.ndarray
) -> np.ndarray:
    """The crossing d of each resample: row k of ``picks`` lists seeds (column
    indices of ``accuracy``) of resample k; their curves and targets are averaged and
    :func:`crossing_dimension` applied. A curve that never reaches its target gives
    ``inf``. Shared by :func:`crossing_interval` and by comparisons that must resample
    two curves with the same seeds (a ratio of two d's)."""
    acc = np.asarray(accuracy, dtype=float)
    dims = _check_crossing_inputs(dims, acc, "bootstrap_crossings")  # once, not per resample
    targets = np.asarray(per_seed_target, dtype=float)
    out = np.empty(len(picks))
    for k, pick in enumerate(picks):
        d, _, _ = _crossing(dims, acc[:, pick].mean(axis=1).tolist(), targets[pick].mean())
        out[k] = math.inf if d is None else d
    return out


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
    acc = [float(a) for a in accuracy]
    return _crossing(_check_crossing_inputs(dims, acc, "crossing_dimension"), acc, target)


def _check_crossing_inputs(dims: Sequence[int], accuracy: Any, name: str) -> list[int]:
    """The grid as ints, once it is an increasing grid of positive ints with one finite
    accuracy per point (``accuracy``: a curve, or one column per seed)."""
    dims = _check_dims(dims, name)
    acc = np.asarray(accuracy, dtype=float)
    if len(acc) != len(dims):
        raise ValueError(f"{name}: {len(dims)} dims but {len(acc)} accuracies")
    if not np.all(np.isfinite(acc)):
        raise ValueError(f"{name}: the accuracies must be finite, got {acc.tolist()}")
    return dims


def _crossing(
    dims: list[int], acc: list[float], target: float
) -> tuple[float | None, int | None, bool]:
    """:func:`crossing_dimension` on inputs already checked."""
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


def _check_dims(dims: Sequence[int], name: str = "intrinsic_dimension") -> list[int]:
    values = list(dims)
    if not values or any(not is_positive_int(d) for d in values):
        raise ValueError(f"{name}: dims must be positive ints, got {values!r}")
    if sorted(set(values)) != values:
        raise ValueError(f"{name}: dims must be strictly increasing, got {values!r}")
    return [int(d) for d in values]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values or any(not is_int(s) or s < 0 for s in values):
        raise ValueError(f"intrinsic_dimension: seeds must be non-negative ints, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"intrinsic_dimension: seeds must be distinct, got {values!r}")
    return [int(s) for s in values]
