"""Building blocks the fine-tuning experiments share: LoRA on chosen layers, a run of
Adam/SGD with a fixed budget, and distillation on a teacher's logits.

Kept apart from any one experiment so rank_sweep, alpha_sweep (and notebooks) fine-tune
the same way: same budget of steps, same batch size, same loss, only the knob under study
changes.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lora_np.lora import LoRAConfig, apply_lora, count_parameters
from lora_np.nn import Linear, Module
from lora_np.nn import functional as F
from lora_np.optim import make_optimizer
from lora_np.tensor import Tensor, no_grad
from lora_np.train import DivergenceWarning, evaluate, fit


def mse_to_logits(output: Tensor, target_logits: Any) -> Tensor:
    """Distillation loss: mean squared error between the model's and a teacher's logits."""
    return F.mse_loss(output, target_logits)


def with_lora(
    model: Module,
    rank: int,
    alpha: float | None = None,
    *,
    targets: Sequence[str],
    use_rslora: bool = False,
    rng: np.random.Generator,
) -> Module:
    """A deep copy of ``model`` with LoRA of rank ``rank`` on the Linear layers ``targets``.

    A layer too small for ``rank`` gets rank min(in, out) instead ("where the layer
    allows"). ``alpha`` defaults to the layer's rank (scaling α/r = 1); with an explicit
    ``alpha`` every layer uses it. Only the adapters train (biases frozen).
    """
    adapted = copy.deepcopy(model)
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    for name in targets:
        layer = adapted.get_submodule(name)
        if not isinstance(layer, Linear):
            raise TypeError(f"with_lora: {name!r} is a {type(layer).__name__}, not a Linear")
        cap = min(rank, layer.in_features, layer.out_features)
        if cap < rank:
            rank_pattern[re.escape(name)] = cap
            if alpha is None:
                alpha_pattern[re.escape(name)] = float(cap)
    config = LoRAConfig(
        rank=rank,
        alpha=float(rank if alpha is None else alpha),
        target_modules=list(targets),
        use_rslora=use_rslora,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
    )
    return apply_lora(adapted, config, rng=rng)


def trainable(model: Module) -> list[Tensor]:
    """The parameters that require grad (what the optimizer should see)."""
    return [p for p in model.parameters() if p.requires_grad]


def n_trainable(model: Module) -> int:
    """How many numbers fine-tuning changes."""
    return int(count_parameters(model)[0])


def train_fixed_budget(
    model: Module,
    X: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int,
    lr: float,
    optimizer: str = "adam",
    loss: Any = F.cross_entropy,
    batch_size: int = 128,
    rng: np.random.Generator,
) -> list[float] | None:
    """``steps`` optimizer steps on the trainable parameters; the per-step losses.

    Returns None if the loss became NaN/inf (a diverged run, e.g. a too-large step).
    Learning-rate grids run here on purpose into steps too large, so neither NumPy's
    overflow warnings nor fit's DivergenceWarning are shown; the losses tell.
    """
    opt = make_optimizer(optimizer, trainable(model), lr)
    return _steps(model, opt, X, targets, steps=steps, loss=loss, batch_size=batch_size, rng=rng)


def _steps(
    model: Module,
    opt: Any,
    X: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int,
    loss: Any,
    batch_size: int,
    rng: np.random.Generator,
) -> list[float] | None:
    """``steps`` steps of ``opt`` through :func:`lora_np.train.fit`, quietly (see
    :func:`train_fixed_budget`): the per-step losses, or None if the run diverged."""
    try:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            history = fit(
                model,
                (X, targets),
                optimizer=opt,
                loss=loss,
                steps=steps,
                batch_size=batch_size,
                eval_every=steps,
                progress=False,
                rng=rng,
            )
    except FloatingPointError:
        return None
    return history.loss


def train_with_curve(
    model: Module,
    X: np.ndarray,
    targets: np.ndarray,
    X_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    steps: int,
    eval_every: int,
    lr: float,
    optimizer: str = "adam",
    loss: Any = F.cross_entropy,
    batch_size: int = 128,
    rng: np.random.Generator,
) -> tuple[list[float], list[float]] | None:
    """:func:`train_fixed_budget` in chunks of ``eval_every`` steps, measuring the test
    accuracy after each: returns ``(losses, accuracies)``, accuracy k after step
    (k + 1)·eval_every (the last chunk may be shorter), or None if the run diverged.

    One optimizer (its state carries over between chunks) and one generator; each chunk
    starts a new pass over the data, so the batches differ from one uncut run of
    ``steps`` steps (same seed, same result all the same).
    """
    opt = make_optimizer(optimizer, trainable(model), lr)
    losses: list[float] = []
    accuracies: list[float] = []
    done = 0
    while done < steps:
        chunk = min(eval_every, steps - done)
        chunk_losses = _steps(
            model, opt, X, targets, steps=chunk, loss=loss, batch_size=batch_size, rng=rng
        )
        if chunk_losses is None:
            return None
        losses.extend(chunk_losses)
        accuracies.append(accuracy(model, X_test, labels_test))
        done += chunk
    return losses, accuracies


def accuracy(model: Module, X: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit is the label (:func:`lora_np.train.evaluate`)."""
    return float(evaluate(model, X, labels)["accuracy"])


def mse(model: Module, X: np.ndarray, target_logits: np.ndarray) -> float:
    """Mean squared error between the model's logits and ``target_logits`` (no graph)."""
    with no_grad():
        logits = model(Tensor(X.astype(np.float32))).data.astype(np.float64)
    return float(np.mean((logits - target_logits) ** 2))
