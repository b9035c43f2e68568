"""Exercise of notebook 06 (α and scaling): the update that one optimizer step makes from
B = 0, where α and the learning rate meet, checked against the library's layer and
optimizers."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    Student,
    as_array,
    case_text,
    exercise,
    expect_close,
    shape_text,
)
from lora_np.lora import LoRALinear
from lora_np.nn import Linear
from lora_np.optim import SGD, Adam
from lora_np.tensor import Tensor

NOTEBOOK = "06_alpha_and_scaling"


@exercise(
    "first_step_update",
    NOTEBOOK,
    "first_step_update(x, A, G, alpha, rank, lr, optimizer) -> dW",
    "The change of the layer's update s·B·A after one optimizer step ('sgd' or 'adam', "
    "PyTorch's rules) from B = 0 with A held, for a loss whose gradient with respect to "
    "the layer's output is G (N, out).",
)
def _first_step_update(student: Student, rng: np.random.Generator) -> str:
    cases = []
    for optimizer in ("sgd", "adam", "sgd", "adam"):
        n, in_f, out_f = (int(v) for v in rng.integers(3, 9, size=3))
        rank = int(rng.integers(1, min(in_f, out_f) + 1))
        cases.append(
            (
                optimizer,
                n,
                in_f,
                out_f,
                rank,
                float(rng.uniform(1, 32)),
                float(10 ** rng.uniform(-3, -1)),
            )
        )
    for index, (optimizer, n, in_f, out_f, rank, alpha, lr) in enumerate(cases):
        x, A, G = (
            rng.standard_normal((n, in_f)),
            rng.standard_normal((rank, in_f)),
            rng.standard_normal((n, out_f)),
        )
        where = shape_text(x=x, A=A, G=G)[:-1] + (
            f", alpha {alpha:.4g}, rank {rank}, lr {lr:.3g}, {optimizer})" + case_text(index, cases)
        )
        got = as_array(
            student(x, A, G, alpha, rank, lr, optimizer, where=where),
            "your dW",
            shape=(out_f, in_f),
            where=where,
            shape_note="a weight's shape, (out, in)",
        )
        expected = _library_first_step(x, A, G, alpha, rank, lr, optimizer)
        expect_close(
            got,
            expected,
            "your dW",
            where,
            rtol=1e-7,
            atol=1e-12,
            reference=f"LoRALinear and lora_np.optim's {optimizer}",
        )
    return f"{len(cases)} random layers, two with SGD and two with Adam"


def _library_first_step(
    x: np.ndarray, A: np.ndarray, G: np.ndarray, alpha: float, rank: int, lr: float, optimizer: str
) -> np.ndarray:
    """One real step: a float64 LoRALinear with these A and B = 0, loss = <G, output>."""
    unused = np.random.default_rng(0)  # W does not matter, and A is set below
    base = Linear(A.shape[1], G.shape[1], bias=False, dtype=np.float64, rng=unused)
    layer = LoRALinear.from_linear(base, rank, alpha, rng=unused)
    layer.lora_a.weight.data = A.copy()
    params = [layer.lora_a.weight, layer.lora_b.weight]
    opt = SGD(params, lr=lr) if optimizer == "sgd" else Adam(params, lr=lr)
    opt.zero_grad()
    layer(Tensor(x)).backward(G)
    opt.step()
    return layer.delta_weight()
