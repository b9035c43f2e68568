"""Exercise of notebook 10 (memory): how many bytes a forward pass leaves for backward,
for full fine-tuning, LoRA and LoRA-FA, checked against a walk of the real graph
(:func:`lora_np.graph_memory.saved_bytes`)."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import ExerciseError, Student, as_int, case_text, exercise
from lora_np.graph_memory import saved_bytes
from lora_np.lora import LoRAConfig, apply_lora
from lora_np.nn import MLP
from lora_np.nn import functional as F
from lora_np.tensor import Tensor

NOTEBOOK = "10_memory"

#: what trains in each mode
MODES = ("full", "lora", "lora_fa")


def graph_bytes(sizes: tuple[int, ...], batch: int, mode: str, rank: int, seed: int = 0) -> int:
    """The bytes the graph keeps after the forward pass of one float32 batch through
    ``MLP(sizes)`` and its cross-entropy, in ``mode`` (parameters and the batch left out)."""
    rng = np.random.default_rng(seed)
    model = MLP(list(sizes), rng=rng)
    if mode != "full":
        config = LoRAConfig(
            rank=rank, alpha=2.0 * rank, target_modules="all-linear", freeze_a=mode == "lora_fa"
        )
        model = apply_lora(model, config, rng=rng)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    loss = F.cross_entropy(model(Tensor(x)), y)
    return saved_bytes(loss, exclude=[p.data for p in model.parameters()] + [x, y])


@exercise(
    "activation_bytes",
    NOTEBOOK,
    "activation_bytes(sizes, batch, mode, rank) -> int",
    "The bytes the graph keeps for backward after one float32 batch through MLP(sizes) "
    "and its cross-entropy, for mode 'full', 'lora' (LoRA of rank r on every Linear but "
    "the last) or 'lora_fa' (the same, A frozen), parameters and the batch not counted.",
)
def _activation_bytes(student: Student, rng: np.random.Generator) -> str:
    cases = []
    for mode in (*MODES, *MODES):
        depth = int(rng.integers(2, 4))  # hidden layers
        sizes = tuple(int(v) for v in rng.integers(3, 17, size=depth + 2))
        cases.append((sizes, int(rng.integers(2, 9)), mode, int(rng.integers(1, 4))))
    for index, (sizes, batch, mode, rank) in enumerate(cases):
        where = (
            f" for sizes {list(sizes)}, batch {batch}, mode {mode!r}"
            + (f", rank {rank}" if mode != "full" else "")
            + case_text(index, cases)
        )
        got = as_int(
            student(sizes, batch, mode, rank, where=where),
            "your activation_bytes",
            where,
            none_hint="; return the number of bytes",
        )
        expected = graph_bytes(sizes, batch, mode, rank)
        if got != expected:
            raise ExerciseError(
                f"your count is {got:,} bytes{where}, but the graph keeps {expected:,} "
                f"(off by {got - expected:+,}); list what each function saves, and for "
                "which gradient"
            )
    return (
        f"{len(cases)} MLPs, each mode twice, against a walk of the graph "
        "(lora_np.graph_memory.saved_bytes)"
    )
