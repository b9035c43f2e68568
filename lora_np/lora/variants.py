"""LoRA's variants as objects: each owns its forward, its merge and its parameters.

A :class:`~lora_np.lora.LoRALinear` delegates the three things a variant changes to its
``variant`` (chosen from the layer's options by :func:`variant_for`):

* ``forward(layer, x)`` — what the adapted layer computes;
* ``merged_weight(layer)`` — the single weight that computes the same, for ``merge()``;
* ``parameters(layer)`` — the adapter's tensors: where each lives in the layer, its name
  in PEFT's files and its shape (the adapter manifest reads this), and whether it trains.

:class:`LoRAVariant` is plain LoRA; DoRA (:mod:`lora_np.lora.dora`) is a subclass. A new
variant is a new subclass in its own file plus one line in :func:`variant_for`. rsLoRA,
PiSSA and LoRA-FA are not variants here: they change only the scaling, the initial
values or what trains (options of :class:`~lora_np.lora.options.LoRAOptions`), not what
the layer computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lora_np.lora.function import lora_linear
from lora_np.lora.options import LoRAOptions
from lora_np.tensor import Tensor

if TYPE_CHECKING:  # the layer imports this module, not the other way round
    from lora_np.lora.layer import LoRALinear
    from lora_np.nn import Parameter


@dataclass(frozen=True)
class AdapterParameter:
    """One tensor of a layer's adapter.

    ``attribute`` is its dotted path inside the layer (``"lora_a.weight"``), ``peft_name``
    its name after the layer's path in PEFT's files (``"lora_A.weight"``), ``shape`` its
    shape, ``trainable`` whether fine-tuning updates it.
    """

    attribute: str
    peft_name: str
    shape: tuple[int, ...]
    trainable: bool = True


class LoRAVariant:
    """Plain LoRA (Hu et al. 2021, Eq. 3): h = W·x + b + s·B·A·dropout(x)."""

    name = "lora"

    def add_parameters(self, layer: LoRALinear) -> None:
        """Create the variant's own parameters on ``layer`` (called once A and B are set)."""

    def parameters(
        self, options: LoRAOptions, in_features: int, out_features: int
    ) -> list[AdapterParameter]:
        """The adapter's tensors for a layer of this shape: A (r, in) and B (out, r).

        A does not train under LoRA-FA (``options.freeze_a``); B always does.
        """
        r = options.rank
        return [
            AdapterParameter(
                "lora_a.weight", "lora_A.weight", (r, in_features), not options.freeze_a
            ),
            AdapterParameter("lora_b.weight", "lora_B.weight", (out_features, r)),
        ]

    def forward(self, layer: LoRALinear, x: Tensor) -> Tensor:
        """h = linear(x) + s·lora_b(lora_a(dropout(x))), as one node.

        :func:`~lora_np.lora.function.lora_linear` computes what :meth:`forward_composite`
        computes, the same numbers and gradients (its docstring says when the input's
        gradient may be summed in another order), in one node of the graph instead of
        five, and keeps only what the needed gradients read.
        """
        linear = layer.linear
        return lora_linear(
            x,
            layer.dropout(x),
            linear.weight,
            linear.bias,
            layer.lora_a.weight,
            layer.lora_b.weight,
            layer.scaling,
        )

    def forward_composite(self, layer: LoRALinear, x: Tensor) -> Tensor:
        """The same forward, written with the layer's submodules (five nodes)."""
        # the output of the original model
        frozen_out = layer.linear(x)
        # lora_a projects inputs down to rank r, then lora_b projects back up
        lora_out = layer.lora_b(layer.lora_a(layer.dropout(x)))
        # scale by alpha/rank (alpha/sqrt(rank) for rsLoRA) and add
        return frozen_out + layer.scaling * lora_out

    def merged_weight(self, layer: LoRALinear) -> np.ndarray:
        """W + s·B·A: one matrix that computes what the adapted layer computes."""
        return layer.linear.weight.data + layer.delta_weight()


def trainable_parameters(layer: LoRALinear) -> list[Parameter]:
    """The parameters of ``layer``'s adapter that fine-tuning updates (B, A unless LoRA-FA,
    DoRA's magnitude)."""
    entries = layer.variant.parameters(layer.options, layer.in_features, layer.out_features)
    return [layer.get_parameter(e.attribute) for e in entries if e.trainable]
