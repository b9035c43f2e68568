"""The reference LoRA layer in PyTorch: the module ``lora_np.lora.LoRALinear`` matches.

This is the small, common way to write LoRA by hand in PyTorch (Hu et al. 2021, Eq. 3),
kept here so that notebook 03 can set it beside lora_np's layer and the PyTorch
comparison tests (``tests/test_lora_peft_compat.py``) can check the two agree: the same
constructor, the same submodules and ``state_dict`` keys, the same initialisation and the
same forward. PyTorch is not a dependency of lora_np; this file is only imported where
torch is installed.

    h = linear(x) + (alpha / rank) · lora_b(lora_a(dropout(x)))

``linear`` holds the pretrained weight W (out, in), frozen; ``lora_a`` is A (rank, in),
Kaiming-normal with a = √5; ``lora_b`` is B (out, rank), zeros, so the layer starts out
equal to ``linear``. Only ``linear.weight`` is frozen here: a bias of the base layer still
trains unless the caller freezes it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A Linear layer with a trainable low-rank update B·A scaled by alpha / rank.

    Args:
        in_feats: input size of the layer.
        out_feats: output size of the layer.
        rank: inner size r of the update B·A (any r >= 1; r << min(in, out) saves most).
        alpha: the update is scaled by alpha / rank.
        dropout: dropout probability on the adapter's input (training only).
        bias: whether the base ``linear`` has a bias.
    """

    def __init__(
        self,
        in_feats: int,
        out_feats: int,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.rank = rank
        self.alpha = alpha
        self.linear = nn.Linear(in_feats, out_feats, bias=bias)  # the pretrained layer
        self.lora_a = nn.Linear(in_feats, rank, bias=False)  # A: down to r numbers
        self.lora_b = nn.Linear(rank, out_feats, bias=False)  # B: back up to out_feats
        self.dropout = nn.Dropout(dropout)
        self.linear.weight.requires_grad = False  # W stays as it was
        nn.init.kaiming_normal_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)  # B·A = 0: the output starts equal to linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_feats) -> (..., out_feats)."""
        update = self.lora_b(self.lora_a(self.dropout(x)))
        return self.linear(x) + (self.alpha / self.rank) * update
