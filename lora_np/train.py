"""The training loop: ``fit`` a model on arrays, ``evaluate`` it, keep a ``History``.

One step of ``fit`` is the loop every PyTorch user knows::

    optimizer.zero_grad()             # forget the previous step's gradients
    loss = loss_fn(model(x), y)       # forward: builds the graph
    loss.backward()                   # backward: fills every parameter's .grad
    optimizer.step()                  # update the parameters from their .grad

around it: mini-batches that reshuffle every epoch (:func:`lora_np.data.batches`), a
progress bar (:mod:`lora_np.progress`; a widget in a notebook) showing the loss, and
periodic evaluation on the whole training set and on held-out data.

Training that goes wrong says so, whatever the optimizer: a NaN or infinite loss stops
it (FloatingPointError), so do weights that are no longer finite at the end, and a loss
that grows more than :data:`EXPLOSION_FACTOR`-fold over its first value gets a
:class:`DivergenceWarning` (Adam's step is bounded by its learning rate, so with a
far too large one the weights grow huge while the loss stays finite). These checks live
here rather than in the optimizers because the loop is what sees the loss, and because
a scan of every weight at every step would cost each optimizer step a pass over all the
weights. A model with merged LoRA layers is refused: a merged adapter gets no gradient.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lora_np.checks import is_positive_int
from lora_np.data.batching import batches, check_samples, num_batches
from lora_np.nn import Module
from lora_np.nn.functional import cross_entropy
from lora_np.progress import progress_counter
from lora_np.rng import get_rng
from lora_np.tensor import Tensor, no_grad

LossFn = Callable[[Tensor, Any], Tensor]

#: A loss this many times its first step's value means training is diverging.
EXPLOSION_FACTOR = 1000.0


class DivergenceWarning(RuntimeWarning):
    """The loss grew more than :data:`EXPLOSION_FACTOR`-fold during :func:`fit`."""


@dataclass
class History:
    """What happened during :func:`fit`.

    ``loss``: the mini-batch loss of every step, in order (``loss[k]`` is step k + 1).
    ``train_accuracy``, ``eval_accuracy``, ``eval_loss``: lists of ``(step, value)``,
    measured every ``eval_every`` steps and after the last step (on the whole training
    set, and on ``eval_data`` if given). ``steps``: optimizer steps taken; ``epochs``:
    passes over the training set (fractional when training by steps); ``wall_time``:
    seconds the loop took, evaluations included.
    """

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[tuple[int, float]] = field(default_factory=list)
    eval_accuracy: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    steps: int = 0
    epochs: float = 0.0
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-ready); pairs become ``[step, value]`` lists."""
        return {
            "loss": list(self.loss),
            "train_accuracy": [list(pair) for pair in self.train_accuracy],
            "eval_accuracy": [list(pair) for pair in self.eval_accuracy],
            "eval_loss": [list(pair) for pair in self.eval_loss],
            "steps": self.steps,
            "epochs": self.epochs,
            "wall_time": self.wall_time,
        }

    def __repr__(self) -> str:
        parts = [f"steps={self.steps}", f"epochs={self.epochs:g}"]
        if self.loss:
            parts.append(f"last loss={self.loss[-1]:.4g}")
        if self.train_accuracy:
            parts.append(f"train acc={self.train_accuracy[-1][1]:.4f}")
        if self.eval_accuracy:
            parts.append(f"eval acc={self.eval_accuracy[-1][1]:.4f}")
        parts.append(f"wall_time={self.wall_time:.2f}s")
        return f"History({', '.join(parts)})"


def _check_pair(data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X, y) of arrays, got {type(data).__name__}")
    X, y = (a.data if isinstance(a, Tensor) else a for a in data)
    return check_samples(X, y, name)


def _as_model_dtype(model: Module, X: np.ndarray) -> np.ndarray:
    """Cast floating inputs to the dtype of the model's first parameter (once, up front),
    so a float32 model is not silently run in float64 because the data was float64."""
    first = next(iter(model.parameters()), None)
    if first is not None and np.issubdtype(X.dtype, np.floating) and X.dtype != first.dtype:
        return X.astype(first.dtype)
    return X


def _positive_int(value: Any, name: str) -> int:
    if not is_positive_int(value):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@contextlib.contextmanager
def _modes_restored(model: Module) -> Iterator[None]:
    """Remember every submodule's train/eval flag; put them all back on exit."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, mode in saved:
            module.training = mode


def evaluate(
    model: Module,
    X: np.ndarray,
    y: np.ndarray,
    loss: LossFn = cross_entropy,
    batch_size: int = 4096,
) -> dict[str, float | None]:
    """``{"loss": ..., "accuracy": ...}`` of ``model`` on ``(X, y)``.

    Runs in eval mode (Dropout off) under ``no_grad`` and puts every module back in the
    mode it was in. Large inputs go through in chunks of ``batch_size`` rows; the loss is
    the chunk losses weighted by the targets each chunk holds, i.e. the mean over all
    targets for a loss that averages (as the defaults do). ``accuracy`` is the fraction of
    targets where the arg-max is the label (correct / targets, exactly), or None when the
    labels are not integer class ids. A negative label is no target (the padding of
    :func:`~lora_np.models.token_nll`, which skips it too): it counts in neither.
    """
    X, y = _check_pair((X, y), "evaluate")
    X = _as_model_dtype(model, X)
    batch_size = _positive_int(batch_size, "batch_size")
    total_loss, classify = 0.0, np.issubdtype(y.dtype, np.integer)
    targets = correct = 0
    with _modes_restored(model), no_grad():
        model.eval()
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            out = model(Tensor(xb))
            if classify:
                real = yb >= 0  # the labels that are targets (a negative one is padding)
                counted = int(np.count_nonzero(real))
                correct += int(np.count_nonzero((np.argmax(out.data, axis=-1) == yb) & real))
            else:
                counted = len(xb)
            total_loss += float(loss(out, yb).item()) * counted
            targets += counted
    return {
        "loss": total_loss / targets if targets else math.nan,
        "accuracy": correct / targets if classify and targets else None,
    }


def fit(
    model: Module,
    train: tuple[np.ndarray, np.ndarray],
    *,
    optimizer: Any,
    loss: LossFn = cross_entropy,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    eval_every: int | None = None,
    progress: bool = True,
    rng: np.random.Generator | None = None,
    desc: str = "fit",
) -> History:
    """Train ``model`` on ``train = (X, y)`` with ``optimizer``; return a :class:`History`.

    Give exactly one of ``epochs`` (passes over the data) or ``steps`` (optimizer steps;
    epochs repeat as needed, the last one possibly cut short). Mini-batches of
    ``batch_size`` are reshuffled each epoch with ``rng`` (None: the package generator,
    see :func:`lora_np.manual_seed`), so the same seed gives the same run.

    Every ``eval_every`` steps (default: once per epoch) and after the last step,
    accuracy on the whole training set — and loss and accuracy on ``eval_data`` if given
    — are recorded (see :func:`evaluate`). The model is in train mode while it trains;
    afterwards each module is put back in the mode it was in.

    A loss that is NaN or infinite stops training with a ``FloatingPointError`` naming
    the step (before its backward pass, so the parameters are those that produced it);
    parameters that are NaN or infinite after the last step raise one too. A loss above
    :data:`EXPLOSION_FACTOR` times the first step's gives a :class:`DivergenceWarning`
    (once per call). Refused before any step: a model with merged layers (modules whose
    ``merged`` is True, such as a LoRALinear after ``merge()``), whose adapters would get
    no gradient, and an optimizer none of whose parameters requires grad.
    ``progress=False`` hides the progress bar (see :mod:`lora_np.progress` for when one is
    shown).
    """
    X, y = _check_pair(train, "train")
    X = _as_model_dtype(model, X)
    if eval_data is not None:
        eval_data = _check_pair(eval_data, "eval_data")
    if (epochs is None) == (steps is None):
        raise ValueError(
            f"fit: give exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}"
        )
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(
            "fit: optimizer must have step() and zero_grad() (e.g. lora_np.optim.Adam), "
            f"got {type(optimizer).__name__}"
        )
    _check_trainable(model, optimizer)
    batch_size = _positive_int(batch_size, "batch_size")
    per_epoch = num_batches(len(X), batch_size)
    if steps is not None:
        total = _positive_int(steps, "steps")
    else:
        total = _positive_int(epochs, "epochs") * per_epoch
    eval_every = per_epoch if eval_every is None else _positive_int(eval_every, "eval_every")
    rng = get_rng(rng)

    history = History()
    start_time = time.perf_counter()
    bar = progress_counter(enabled=progress, total=total, desc=desc, unit="step")
    postfix: dict[str, str] = {}  # what the bar shows after the counts: loss, eval_acc
    try:
        with _modes_restored(model):
            model.train()
            step, warned = 0, False
            while step < total:
                for xb, yb in batches(X, y, batch_size, shuffle=True, rng=rng):
                    step += 1
                    value = _train_step(model, optimizer, loss, xb, yb, step, total)
                    history.loss.append(value)
                    first = history.loss[0]
                    if not warned and first > 0 and value > EXPLOSION_FACTOR * first:
                        warned = True  # once per call
                        _warn_divergence(first, value, step, total)
                    bar.update(1)
                    evaluated = step % eval_every == 0 or step == total
                    if evaluated:
                        # evaluate() runs in eval mode and restores every module's mode
                        _record_evaluation(model, loss, history, step, (X, y), eval_data)
                        if history.eval_accuracy:
                            postfix["eval_acc"] = f"{history.eval_accuracy[-1][1]:.3f}"
                    if evaluated or step % 10 == 0 or step == 1:
                        postfix["loss"] = f"{value:.4f}"
                        bar.set_postfix(postfix, refresh=False)
                    if step == total:
                        break
    finally:
        bar.close()
    _check_finite_parameters(model, optimizer, step)
    history.steps = step
    history.epochs = step / per_epoch
    history.wall_time = time.perf_counter() - start_time
    return history


def _optimized_parameters(optimizer: Any) -> list[Tensor] | None:
    """The parameters an optimizer updates, if it says (``param_groups``, as PyTorch's)."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        return None
    return [p for group in groups for p in group["params"]]


def _check_trainable(model: Module, optimizer: Any) -> None:
    merged = [name or type(m).__name__ for name, m in model.named_modules() if _is_merged(m)]
    if merged:
        raise RuntimeError(
            f"fit: layers {merged} are merged (merge() folds the adapter into the weight, "
            "for inference), so their adapters would get no gradient and never train; "
            "unmerge() them first, or merge_and_unload() to train plain layers"
        )
    params = _optimized_parameters(optimizer)
    if params is not None and not any(p.requires_grad for p in params):
        raise ValueError(
            f"fit: none of the optimizer's {len(params)} parameters requires grad, so nothing "
            "would train; build the optimizer from the trainable ones "
            "([p for p in model.parameters() if p.requires_grad])"
        )


def _is_merged(module: Module) -> bool:
    return getattr(module, "merged", False) is True


def _warn_divergence(first: float, value: float, step: int, total: int) -> None:
    warnings.warn(
        f"fit: the loss is {value:.4g} at step {step} of {total}, more than "
        f"{EXPLOSION_FACTOR:g} times its first value {first:.4g}: training is diverging. "
        "Try a smaller learning rate.",
        DivergenceWarning,
        stacklevel=3,
    )


def _check_finite_parameters(model: Module, optimizer: Any, step: int) -> None:
    params = _optimized_parameters(optimizer)
    if params is None:
        params = list(model.parameters())
    names = {id(p): name for name, p in model.named_parameters()}
    bad = [names.get(id(p), "?") for p in params if not np.all(np.isfinite(p.data))]
    if bad:
        raise FloatingPointError(
            f"fit: after step {step} the parameters {bad} hold NaN or inf; training went "
            "wrong. Try a smaller learning rate, and check the inputs for NaN or inf."
        )


def _train_step(
    model: Module,
    optimizer: Any,
    loss_fn: LossFn,
    xb: np.ndarray,
    yb: np.ndarray,
    step: int,
    total: int,
) -> float:
    """One optimizer step on one mini-batch; returns the loss (checked to be finite)."""
    optimizer.zero_grad()
    loss = loss_fn(model(Tensor(xb)), yb)
    if not isinstance(loss, Tensor) or loss.size != 1:
        raise ValueError(
            "fit: the loss function must return a one-element Tensor, got "
            f"{type(loss).__name__} of shape {getattr(loss, 'shape', None)}"
        )
    value = float(loss.item())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"fit: the loss is {value} at step {step} of {total}; training stopped. "
            "Try a smaller learning rate, and check the inputs for NaN or inf."
        )
    loss.backward()
    optimizer.step()
    return value


def _record_evaluation(
    model: Module,
    loss: LossFn,
    history: History,
    step: int,
    train: tuple[np.ndarray, np.ndarray],
    eval_data: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    train_metrics = evaluate(model, *train, loss=loss)
    if train_metrics["accuracy"] is not None:
        history.train_accuracy.append((step, train_metrics["accuracy"]))
    if eval_data is not None:
        metrics = evaluate(model, *eval_data, loss=loss)
        history.eval_loss.append((step, metrics["loss"]))
        if metrics["accuracy"] is not None:
            history.eval_accuracy.append((step, metrics["accuracy"]))
