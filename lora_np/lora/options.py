"""LoRAOptions: how one layer is adapted, in one object, checked once.

Everything a :class:`~lora_np.lora.LoRALinear` needs besides its base layer: the rank r,
α, the adapter's dropout, how A and B start, and which variant of LoRA runs. A
:class:`~lora_np.lora.LoRAConfig` is these options plus which layers to adapt; it hands
each layer its own options (:meth:`LoRAConfig.options_for`), the layer keeps them
(``layer.options``), and the adapter file is written from them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from lora_np.checks import is_finite_positive, is_int, is_number

#: How A and B start: ``"kaiming"`` (A Kaiming-normal with a = √5, B = 0: the reference
#: PyTorch module's choice), ``"gaussian"`` (A ~ N(0, 1/r²), B = 0: PEFT's
#: ``init_lora_weights="gaussian"``), ``"pissa"`` (A, B from the top-r singular vectors of
#: W, Meng et al. 2024).
INIT_METHODS = ("kaiming", "gaussian", "pissa")

_FLAGS = ("use_rslora", "use_dora", "dora_detach_norm", "freeze_a")


def lora_scaling(rank: int, alpha: float, use_rslora: bool = False) -> float:
    """s = α/r (LoRA, Eq. 3), or α/√r with rsLoRA (Kalajdzievski 2023, Theorem 3.2)."""
    return float(alpha) / (math.sqrt(rank) if use_rslora else rank)


@dataclass(frozen=True)
class LoRAOptions:
    """How one Linear layer is adapted.

    Attributes:
        rank: r ≥ 1, the inner size of the update B·A.
        alpha: α > 0; the update is scaled by ``scaling`` = α/r (α/√r with ``use_rslora``).
        dropout: probability, in [0, 1), of dropping an input on the adapter path (training
            only).
        init: one of :data:`INIT_METHODS`.
        use_rslora: rsLoRA's scaling α/√r (Kalajdzievski 2023).
        use_dora: DoRA's magnitude and direction (Liu et al. 2024), see
            :mod:`lora_np.lora.dora`.
        dora_detach_norm: DoRA §4.3, the norm is a constant in backward (as PEFT).
        freeze_a: LoRA-FA (Zhang et al. 2023), A stays at its random init; only B trains.
    """

    rank: int
    alpha: float
    dropout: float = 0.0
    init: str = "kaiming"
    use_rslora: bool = False
    use_dora: bool = False
    dora_detach_norm: bool = True
    freeze_a: bool = False

    def __post_init__(self) -> None:
        if not is_int(self.rank):
            raise TypeError(
                f"LoRA rank must be an int, got {type(self.rank).__name__} {self.rank!r}"
            )
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not is_finite_positive(self.alpha):
            raise ValueError(f"LoRA alpha must be a finite number > 0, got {self.alpha!r}")
        if not is_number(self.dropout):
            raise TypeError(
                f"LoRA dropout must be a number, got {type(self.dropout).__name__} {self.dropout!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.init not in INIT_METHODS:
            raise ValueError(f"LoRA init must be one of {INIT_METHODS}, got {self.init!r}")
        for flag in _FLAGS:
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"LoRA {flag} must be a bool, got {getattr(self, flag)!r}")
        # plain Python numbers from here on (an np.int64 rank prints and saves as an int)
        object.__setattr__(self, "rank", int(self.rank))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "dropout", float(self.dropout))

    @property
    def scaling(self) -> float:
        """s, the factor on B·A: α/r, or α/√r with rsLoRA."""
        return lora_scaling(self.rank, self.alpha, self.use_rslora)

    def as_dict(self) -> dict[str, Any]:
        """The options as keyword arguments (``LoRAOptions(**options.as_dict())`` is equal)."""
        return asdict(self)
