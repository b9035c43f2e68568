"""Character-level language modelling of names with the GPT: batches, training, NLL, samples.

The loop is the one every PyTorch user knows (zero_grad, forward, loss, backward, step),
on mini-batches of names encoded by :func:`lora_np.data.names.encode_names`. A batch is
cut to its longest name (plus its end token), so a batch of short names costs less.

The number reported everywhere is the negative log-likelihood in **nats per character**:
−(1/N)·Σ log p(next token) over every predicted token of a set of names, the end token of
each name included (a name of n letters has n + 1 targets). Uniform guessing over the 27
tokens scores log 27 ≈ 3.30.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lora_np.checks import is_positive_int
from lora_np.data.names import END, IGNORE, decode, encode_names
from lora_np.models.gpt import GPT, token_nll
from lora_np.nn import Module
from lora_np.optim import make_optimizer
from lora_np.progress import progress_counter
from lora_np.rng import get_rng
from lora_np.tensor import no_grad


def cosine_schedule(lr: float, steps: int) -> Callable[[int], float]:
    """Half a cosine from ``lr`` at step 1 towards 0 after ``steps``:
    ``lr · ½(1 + cos(π·(k − 1)/steps))`` at step k."""
    if not is_positive_int(steps):
        raise ValueError(f"cosine_schedule: steps must be a positive int, got {steps!r}")
    return lambda k: lr * 0.5 * (1.0 + math.cos(math.pi * (k - 1) / steps))


@dataclass(frozen=True)
class Sequences:
    """Encoded names: ``inputs`` and ``targets`` (N, context_length) int64 (see
    :func:`~lora_np.data.names.encode_names`) and ``lengths`` (N,), the targets per name."""

    inputs: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_names(cls, names: list[str], context_length: int) -> Sequences:
        inputs, targets = encode_names(names, context_length)
        return cls(inputs, targets, (targets != IGNORE).sum(axis=1))

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_tokens(self) -> int:
        """How many targets the set holds (letters plus one end token per name)."""
        return int(self.lengths.sum())

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``index``, cut to the longest of them: (inputs, targets), each (len(index), T)."""
        width = int(self.lengths[index].max())
        return self.inputs[index, :width], self.targets[index, :width]

    def subset(self, count: int) -> Sequences:
        """The first ``count`` names (all of them if there are fewer)."""
        return Sequences(self.inputs[:count], self.targets[:count], self.lengths[:count])


def nll(model: Module, data: Sequences, batch_size: int = 256) -> float:
    """Nats per character of ``model`` on ``data`` (every target token, end tokens included).

    The names go through in batches of similar length (sorted by length first), so little
    of the work is padding; the result does not depend on the order.
    """
    total = 0.0
    by_length = np.argsort(data.lengths, kind="stable")
    with no_grad():
        for start in range(0, len(data), batch_size):
            inputs, targets = data.batch(by_length[start : start + batch_size])
            count = int(np.sum(targets != IGNORE))
            total += float(token_nll(model(inputs), targets).item()) * count
    return total / data.num_tokens


def train(
    model: Module,
    data: Sequences,
    *,
    steps: int,
    lr: float | Callable[[int], float],
    rng: np.random.Generator,
    batch_size: int = 64,
    optimizer: str = "adam",
    eval_sets: dict[str, Sequences] | None = None,
    eval_every: int | None = None,
    keep_best: str | None = None,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, Any]:
    """``steps`` optimizer steps on the parameters of ``model`` that require grad.

    Batches of ``batch_size`` names are drawn without replacement within an epoch, in an
    order from ``rng``; a batch that runs past the end of an epoch is completed from the
    next one's order (so it may hold a name twice). ``lr`` is the learning rate, or a
    function of the step k = 1, 2, ... that gives it (see :func:`cosine_schedule`). Every
    ``eval_every`` steps (and at step 0 and at the end), the NLL on each set of
    ``eval_sets`` is recorded.
    ``keep_best`` names one of them: training then ends with the trained parameters as
    they were at the evaluation where that NLL was lowest (early stopping on a held-out
    set), and ``history["best_step"]`` says which step that was.

    Returns ``{"loss": [per step], "eval_steps": [...], <set name>: [NLL per eval step],
    ...}``. A loss that is not finite stops training with a FloatingPointError naming the
    step.
    """
    if not is_positive_int(steps) or not is_positive_int(batch_size):
        raise ValueError(
            f"train: steps and batch_size must be positive ints, got {steps}, {batch_size}"
        )
    if eval_every is not None and not is_positive_int(eval_every):
        raise ValueError(f"train: eval_every must be a positive int or None, got {eval_every!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train: the model has no parameter that requires grad")
    opt = make_optimizer(optimizer, params, lr(1) if callable(lr) else lr)
    eval_sets = eval_sets or {}
    if keep_best is not None and keep_best not in eval_sets:
        raise ValueError(
            f"train: keep_best={keep_best!r} is not one of the eval_sets {sorted(eval_sets)}"
        )
    every = eval_every or steps
    history: dict[str, Any] = {"loss": [], "eval_steps": [], **{name: [] for name in eval_sets}}
    best: dict[str, Any] = {"nll": math.inf}

    def record(step: int) -> None:
        history["eval_steps"].append(step)
        for name, sequences in eval_sets.items():
            history[name].append(nll(model, sequences))
        if keep_best is not None and history[keep_best][-1] < best["nll"]:
            best.update(nll=history[keep_best][-1], step=step, data=[p.data.copy() for p in params])

    if eval_sets:
        record(0)
    bar = progress_counter(enabled=progress, total=steps, desc=desc, unit="step")
    order = np.empty(0, dtype=np.int64)
    try:
        for step in range(1, steps + 1):
            if len(order) < batch_size:  # a new epoch: a fresh permutation
                order = np.concatenate([order, rng.permutation(len(data))])
            index, order = order[:batch_size], order[batch_size:]
            inputs, targets = data.batch(index)
            if callable(lr):
                for group in opt.param_groups:
                    group["lr"] = lr(step)
            opt.zero_grad()
            loss = token_nll(model(inputs), targets)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"train: the loss is {value} at step {step} of {steps}")
            loss.backward()
            opt.step()
            history["loss"].append(value)
            bar.update(1)
            if eval_sets and (step % every == 0 or step == steps):
                record(step)
    finally:
        bar.close()
    if keep_best is not None:
        for p, data in zip(params, best["data"], strict=True):
            p.data = data
        history["best_step"] = best["step"]
    return history


def sample_names(
    model: GPT, count: int, rng: np.random.Generator | None = None, temperature: float = 1.0
) -> list[str]:
    """``count`` names sampled from ``model``: start from the end token, stop at the next one."""
    if not is_positive_int(count):
        raise ValueError(f"sample_names: count must be a positive int, got {count!r}")
    start = np.full((count, 1), END, dtype=np.int64)
    ids = model.generate(start, model.context_length - 1, temperature, get_rng(rng))
    return [decode(row[1:]) for row in ids]
