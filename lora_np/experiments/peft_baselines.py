"""Parameter-efficient baselines to compare LoRA with: head only, BitFit, bottleneck adapters.

Each function returns a deep copy of a pretrained model in which only the method's
parameters train (the pretrained model is left alone):

* :func:`with_head_only` — the output layer trains, nothing else ("linear probing");
* :func:`with_bitfit` — every bias trains, every weight matrix stays frozen (Ben Zaken,
  Ravfogel & Goldberg 2022, "BitFit");
* :func:`with_adapters` — a bottleneck adapter after each chosen Linear layer (Houlsby et
  al. 2019, "Parameter-Efficient Transfer Learning for NLP"):

      h ↦ h + W_up · relu(W_down · h + b_down) + b_up,

  with W_down (m, out), W_up (out, m) and a bottleneck m ≪ out. W_up and b_up start at
  zero, so the adapted model starts equal to the pretrained one (as LoRA does with B = 0).
  It costs 2·m·out + m + out parameters per layer and, unlike LoRA, an extra matrix
  product at inference that cannot be merged into W.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from lora_np.checks import is_positive_int
from lora_np.nn import Linear, Module, init
from lora_np.nn import functional as F
from lora_np.rng import get_rng
from lora_np.tensor import Tensor


class BottleneckAdapter(Module):
    """h + up(relu(down(h))) with ``down`` = Linear(features, m), ``up`` = Linear(m, features)
    initialised to zero (weight and bias), so the adapter starts as the identity."""

    def __init__(
        self, features: int, bottleneck: int, *, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        if not is_positive_int(bottleneck):
            raise ValueError(
                f"BottleneckAdapter: bottleneck must be a positive int, got {bottleneck!r}"
            )
        self.down = Linear(features, bottleneck, rng=rng)
        self.up = Linear(bottleneck, features, rng=rng)
        init.zeros_(self.up.weight)
        init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(F.relu(self.down(h)))


class Adapted(Module):
    """A frozen layer followed by its adapter: ``adapter(layer(x))``."""

    def __init__(self, layer: Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.layer = layer
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.layer(x))


def _frozen_copy(model: Module) -> Module:
    frozen = copy.deepcopy(model)
    for p in frozen.parameters():
        p.requires_grad = False
    return frozen


def with_head_only(model: Module, head: str) -> Module:
    """A copy of ``model`` in which only the submodule ``head`` trains."""
    adapted = _frozen_copy(model)
    for p in adapted.get_submodule(head).parameters():
        p.requires_grad = True
    return adapted


def with_bitfit(model: Module) -> Module:
    """A copy of ``model`` in which only the biases (parameters named ``...bias``) train."""
    adapted = _frozen_copy(model)
    biases = [p for name, p in adapted.named_parameters() if name.split(".")[-1] == "bias"]
    if not biases:
        raise ValueError("with_bitfit: the model has no bias to train")
    for p in biases:
        p.requires_grad = True
    return adapted


def with_adapters(
    model: Module,
    targets: Sequence[str],
    bottleneck: int,
    *,
    rng: np.random.Generator | None = None,
) -> Module:
    """A copy of ``model`` with a :class:`BottleneckAdapter` of size ``bottleneck`` after
    each Linear named in ``targets`` (direct children, e.g. an MLP's "0", "2"); only the
    adapters train. Their down-projections are drawn from ``rng``."""
    adapted = _frozen_copy(model)
    rng = get_rng(rng)
    for name in targets:
        layer = adapted.get_submodule(name)
        if not isinstance(layer, Linear):
            raise TypeError(f"with_adapters: {name!r} is a {type(layer).__name__}, not a Linear")
        if name not in adapted._modules:
            raise ValueError(
                f"with_adapters: {name!r} must be a direct child of the model, got a nested name"
            )
        setattr(
            adapted,
            name,
            Adapted(layer, BottleneckAdapter(layer.out_features, bottleneck, rng=rng)),
        )
    return adapted
