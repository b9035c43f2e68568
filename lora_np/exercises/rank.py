"""Exercise of notebook 05 (rank vs full fine-tuning): model surgery, the step every sweep
of that notebook starts with — LoRA on some Linear layers of a model, everything else
frozen — checked against :func:`lora_np.lora.apply_lora`."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import ExerciseError, Student, case_text, exercise
from lora_np.lora import LoRAConfig, LoRALinear, apply_lora
from lora_np.nn import MLP, Linear, Module
from lora_np.tensor import Tensor, no_grad

NOTEBOOK = "05_rank_sweep_vs_full_finetuning"


@exercise(
    "add_lora",
    NOTEBOOK,
    "add_lora(model, targets, rank, alpha) -> model",
    "Model surgery: replace the Linear layers named in targets by LoRALinear layers that "
    "wrap them (same weights), and freeze every parameter but the adapters' A and B.",
)
def _add_lora(student: Student, rng: np.random.Generator) -> str:
    cases = [(["2"], 2, 4.0), (["0", "4"], 3, 3.0), (["0", "2", "4", "6"], 1, 8.0)]
    for index, (targets, rank, alpha) in enumerate(cases):
        where = f" for targets {targets}, rank {rank}, alpha {alpha:g}" + case_text(index, cases)
        seed = int(rng.integers(2**31))
        model = MLP([6, 8, 8, 8, 5], rng=np.random.default_rng(seed))
        x = rng.standard_normal((4, 6)).astype(np.float32)
        with no_grad():
            before = model(Tensor(x)).data
        weights = {
            n: m.weight.data.copy() for n, m in model.named_modules() if isinstance(m, Linear)
        }
        result = student(model, list(targets), rank, alpha, where=where)
        if not isinstance(result, Module):
            raise ExerciseError(
                f"your add_lora returned {type(result).__name__}{where}; return the model"
            )
        reference = apply_lora(
            MLP([6, 8, 8, 8, 5], rng=np.random.default_rng(seed)),
            LoRAConfig(rank=rank, alpha=alpha, target_modules=list(targets)),
            rng=np.random.default_rng(0),
        )
        _check_layers(result, targets, rank, alpha, weights, where)
        _check_trainable(result, reference, where)
        with no_grad():
            after = result(Tensor(x)).data
        if not np.array_equal(after, before):
            raise ExerciseError(
                f"right after add_lora the model's output changed by max |Δ| = "
                f"{float(np.max(np.abs(after - before))):.3g}{where}; with B = 0 it must "
                "compute exactly what the model computed before"
            )
    return f"{len(cases)} MLPs and sets of targets, against apply_lora"


def _check_layers(
    model: Module, targets: list[str], rank: int, alpha: float, weights: dict, where: str
) -> None:
    modules = dict(model.named_modules())
    for name, weight in weights.items():
        wrapped = name in targets
        layer = modules.get(name)
        base = layer.linear if isinstance(layer, LoRALinear) else layer
        if wrapped and not isinstance(layer, LoRALinear):
            raise ExerciseError(
                f"layer {name!r} is a {type(layer).__name__}{where}; it is a target, so it "
                "must be a LoRALinear (LoRALinear.from_linear wraps an existing Linear)"
            )
        if not wrapped and not isinstance(layer, Linear):
            raise ExerciseError(
                f"layer {name!r} is a {type(layer).__name__}{where}; it is not a target and "
                "must stay the Linear it was"
            )
        if wrapped and (layer.rank != rank or not np.isclose(layer.alpha, alpha)):
            raise ExerciseError(
                f"layer {name!r} has rank {layer.rank} and alpha {layer.alpha:g}{where}, "
                f"expected {rank} and {alpha:g}"
            )
        if not np.array_equal(base.weight.data, weight):
            raise ExerciseError(
                f"the weight of layer {name!r} changed{where}; the pretrained weights must "
                "stay as they were (wrap the layer, do not make a new one)"
            )


def _check_trainable(model: Module, reference: Module, where: str) -> None:
    got = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    expected = sorted(n for n, p in reference.named_parameters() if p.requires_grad)
    extra = sorted(set(got) - set(expected))
    missing = sorted(set(expected) - set(got))
    if extra:
        raise ExerciseError(
            f"these parameters still train{where}: {extra}; only the adapters' A and B may"
        )
    if missing:
        raise ExerciseError(f"these adapter parameters do not train{where}: {missing}")
