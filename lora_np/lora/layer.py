"""LoRALinear: a frozen Linear layer plus a trainable low-rank update (Hu et al. 2021).

The LoRA paper's Eq. 3: instead of learning a full update ΔW of the pretrained weight
W (out, in), learn two thin matrices A (r, in) and B (out, r) with r ≪ min(in, out)::

    h = W·x + (α/r)·B·A·x

B starts at zero, so the layer computes exactly what the pretrained layer did; A starts
random, so B's gradient is not zero and training can begin. Only r·(in + out) numbers
train instead of in·out.

This module mirrors the seed's PyTorch ``LoRALinear`` exactly (``/shared/seed_lora_linear.py``):
same constructor arguments, submodules ``linear`` / ``lora_a`` / ``lora_b`` / ``dropout``,
same ``state_dict`` keys, same initialisation (A ~ Kaiming-normal with a=√5, B = 0), same
forward ``linear(x) + (α/r)·lora_b(lora_a(dropout(x)))``. Like the seed, it freezes only
``linear.weight``: a bias of the base layer stays trainable unless
:func:`lora_np.lora.mark_only_lora_as_trainable` freezes it.

It then goes further, as PEFT does:

* :meth:`LoRALinear.from_linear` wraps an existing (trained) Linear;
* ``merge()`` writes W + s·B·A into the base weight, so inference costs nothing extra;
* init ``"gaussian"`` (A ~ N(0, 1/r²), as PEFT) and ``"pissa"`` (A, B from the top-r
  singular vectors of W, Meng et al. 2024);
* rsLoRA (Kalajdzievski 2023): scaling α/√r instead of α/r, so the update's size does not
  shrink as the rank grows;
* DoRA (Liu et al. 2024): a trainable magnitude per output row, see :mod:`lora_np.lora.dora`;
* LoRA-FA (Zhang et al. 2023): A frozen at its random init, only B trains.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lora_np.lora.dora import dora_scale, dora_weight
from lora_np.nn import Dropout, Linear, Module, Parameter, init
from lora_np.rng import get_rng
from lora_np.tensor import Tensor

INIT_METHODS = ("kaiming", "gaussian", "pissa")


def check_lora_arguments(
    in_features: int, out_features: int, rank: Any, alpha: Any, dropout: Any
) -> None:
    """Raise a clear ValueError/TypeError for a rank, alpha or dropout that cannot work."""
    if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool):
        raise TypeError(f"LoRA rank must be an int, got {type(rank).__name__} {rank!r}")
    if not 1 <= rank <= min(in_features, out_features):
        raise ValueError(
            f"LoRA rank must be in [1, min(in, out)] = [1, {min(in_features, out_features)}] "
            f"for a layer of shape (out={out_features}, in={in_features}); got {rank}"
        )
    if not isinstance(alpha, (int, float, np.number)) or isinstance(alpha, bool):
        raise TypeError(f"LoRA alpha must be a number, got {type(alpha).__name__} {alpha!r}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"LoRA alpha must be a finite number > 0, got {alpha}")
    if not isinstance(dropout, (int, float, np.number)) or isinstance(dropout, bool):
        raise TypeError(f"LoRA dropout must be a number, got {type(dropout).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")


def lora_scaling(rank: int, alpha: float, use_rslora: bool = False) -> float:
    """s = α/r (LoRA, Eq. 3), or α/√r with rsLoRA (Kalajdzievski 2023, Theorem 3.2)."""
    return float(alpha) / (math.sqrt(rank) if use_rslora else rank)


class LoRALinear(Module):
    """``linear(x) + scaling · lora_b(lora_a(dropout(x)))`` with ``linear.weight`` frozen.

    Args:
        in_feats, out_feats: the layer's input and output sizes.
        rank: r, the inner size of the update B·A; 1 <= r <= min(in, out).
        alpha: α > 0; the update is scaled by ``scaling`` = α/r (α/√r with ``use_rslora``).
        dropout: probability of dropping an input on the adapter path (training only).
        bias: whether the base ``linear`` has a bias (as in the seed: not frozen here).

    Keyword-only (beyond the seed): ``init`` ("kaiming" | "gaussian" | "pissa"),
    ``use_rslora``, ``use_dora``, ``dora_detach_norm`` (DoRA §4.3, default True as in
    PEFT), ``freeze_a`` (LoRA-FA), ``dtype``, ``rng`` (for the initial draws and the
    dropout masks).

    A DoRA layer has one more parameter, ``magnitude`` (out,), next to ``lora_a.weight``
    and ``lora_b.weight``.
    """

    def __init__(
        self,
        in_feats: int,
        out_feats: int,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        bias: bool = False,
        *,
        init: str = "kaiming",
        use_rslora: bool = False,
        use_dora: bool = False,
        dora_detach_norm: bool = True,
        freeze_a: bool = False,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        rng = get_rng(rng)
        # weights of the original pretrained model (random here, as in the seed)
        base = Linear(in_feats, out_feats, bias=bias, dtype=dtype, rng=rng)
        self._setup(
            base, rank, alpha, dropout, init, use_rslora, use_dora, dora_detach_norm, freeze_a, rng
        )

    @classmethod
    def from_linear(
        cls,
        linear: Linear,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        init: str = "kaiming",
        use_rslora: bool = False,
        use_dora: bool = False,
        *,
        dora_detach_norm: bool = True,
        freeze_a: bool = False,
        rng: np.random.Generator | None = None,
    ) -> LoRALinear:
        """Wrap an existing Linear (it becomes ``self.linear``, shared, not copied).

        Its weight is frozen. With ``init="pissa"`` its weight is *replaced* by the
        residual W − s·B·A (as PEFT does), so the wrapped layer's output is unchanged but
        the Linear object you passed in now holds the residual.
        """
        if isinstance(linear, LoRALinear):
            raise TypeError("from_linear: this layer already has LoRA; wrap its .linear instead")
        if not isinstance(linear, Linear):
            raise TypeError(f"from_linear expects a lora_np.nn.Linear, got {type(linear).__name__}")
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._setup(
            linear,
            rank,
            alpha,
            dropout,
            init,
            use_rslora,
            use_dora,
            dora_detach_norm,
            freeze_a,
            get_rng(rng),
        )
        return layer

    def _setup(
        self,
        linear: Linear,
        rank: int,
        alpha: float,
        dropout: float,
        init_method: str,
        use_rslora: bool,
        use_dora: bool,
        dora_detach_norm: bool,
        freeze_a: bool,
        rng: np.random.Generator,
    ) -> None:
        in_f, out_f = linear.in_features, linear.out_features
        check_lora_arguments(in_f, out_f, rank, alpha, dropout)
        if init_method not in INIT_METHODS:
            raise ValueError(f"LoRA init must be one of {INIT_METHODS}, got {init_method!r}")
        dtype = linear.weight.dtype
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.use_rslora = bool(use_rslora)
        self.use_dora = bool(use_dora)
        self.dora_detach_norm = bool(dora_detach_norm)
        self.freeze_a = bool(freeze_a)
        self.init = init_method
        self.scaling = lora_scaling(self.rank, self.alpha, self.use_rslora)
        self.in_features, self.out_features = in_f, out_f
        self.linear = linear
        # extra LoRA params: A (r, in) projects down, B (out, r) projects back up
        self.lora_a = Linear(in_f, self.rank, bias=False, dtype=dtype, rng=rng)
        self.lora_b = Linear(self.rank, out_f, bias=False, dtype=dtype, rng=rng)
        self.dropout = Dropout(dropout, rng=rng)
        # original params are frozen (only the weight, as in the seed)
        self.linear.weight.requires_grad = False
        self._merged_from: np.ndarray | None = None  # W before merge(), restored by unmerge()
        self.disabled = False  # set by disable_adapter(): forward runs the base layer only
        self._init_params(rng)
        if self.use_dora:
            # m starts at ‖W‖_row (of the weight after any PiSSA residual split, plus B·A)
            start = self.linear.weight.data.astype(np.float64) + self.delta_weight()
            self.magnitude = Parameter(np.linalg.norm(start, axis=1).astype(dtype))
        if freeze_a:
            self.lora_a.weight.requires_grad = False

    def _init_params(self, rng: np.random.Generator) -> None:
        """A and B at the start of training (B·A = 0 except for PiSSA)."""
        if self.init == "kaiming":  # the seed's choice
            init.kaiming_normal_(self.lora_a.weight, a=math.sqrt(5), rng=rng)
            init.zeros_(self.lora_b.weight)
        elif self.init == "gaussian":  # PEFT's init_lora_weights="gaussian"
            init.normal_(self.lora_a.weight, 0.0, 1.0 / self.rank, rng=rng)
            init.zeros_(self.lora_b.weight)
        else:
            self._init_pissa()

    def _init_pissa(self) -> None:
        """PiSSA (Meng et al. 2024, Eq. 2-3): W = U·S·Vᵀ; put the top-r part in the adapter.

        A = √(S_r/s)·V_rᵀ and B = U_r·√(S_r/s), so that s·B·A = U_r·S_r·V_rᵀ exactly; the
        frozen weight becomes the residual W − s·B·A. The output is unchanged at init.
        """
        weight = self.linear.weight.data
        u, sv, vt = np.linalg.svd(weight.astype(np.float64), full_matrices=False)
        r = self.rank
        root = np.sqrt(sv[:r] / self.scaling)
        a = root[:, None] * vt[:r]
        b = u[:, :r] * root[None, :]
        self.lora_a.weight.data = a.astype(weight.dtype)
        self.lora_b.weight.data = b.astype(weight.dtype)
        residual = weight.astype(np.float64) - self.scaling * (b @ a)
        self.linear.weight.data = residual.astype(weight.dtype)

    # ----------------------------------------------------------------- the update
    def delta_weight(self) -> np.ndarray:
        """ΔW = s·B·A, shape (out, in): what LoRA adds to W (before DoRA's rescaling)."""
        b = self.lora_b.weight.data
        a = self.lora_a.weight.data
        return (self.scaling * (b @ a)).astype(self.linear.weight.dtype)

    def merged_weight(self) -> np.ndarray:
        """The weight ``merge()`` writes: W + s·B·A, or for DoRA W' = m ⊙ (W + s·B·A)/‖·‖_row."""
        if self._merged_from is not None:
            raise RuntimeError("merged_weight(): the layer is already merged")
        w = self.linear.weight
        if self.use_dora:
            delta = Tensor(self.delta_weight())
            magnitude = Tensor(self.magnitude.data)
            return dora_weight(Tensor(w.data), delta, magnitude, detach_norm=True).data
        return w.data + self.delta_weight()

    # ----------------------------------------------------------------- merging
    @property
    def merged(self) -> bool:
        """True while the adapter is folded into ``linear.weight``."""
        return self._merged_from is not None

    def merge(self, safe: bool = False) -> None:
        """Write the adapted weight into ``linear.weight``; forward then skips the adapter.

        ``safe=True`` first checks the new weight is finite (no NaN/inf) and raises
        ValueError without writing anything if it is not. The old weight is kept, so
        :meth:`unmerge` restores it bit for bit.
        """
        if self.merged:
            raise RuntimeError("merge(): the layer is already merged; call unmerge() first")
        new = self.merged_weight()
        if safe and not np.all(np.isfinite(new)):
            bad = int(np.sum(~np.isfinite(new)))
            raise ValueError(
                f"merge(safe=True): the merged weight has {bad} non-finite entries "
                "(NaN or inf); nothing was written"
            )
        self._merged_from = self.linear.weight.data
        self.linear.weight.data = new.astype(self._merged_from.dtype)

    def unmerge(self) -> None:
        """Restore the weight saved by :meth:`merge` (exactly, not by subtraction)."""
        if not self.merged:
            raise RuntimeError("unmerge(): the layer is not merged")
        self.linear.weight.data = self._merged_from
        self._merged_from = None

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """h = W·x + b + s·B·A·dropout(x) (or DoRA's form); the base layer alone if merged."""
        if self.merged or self.disabled:
            return self.linear(x)
        if self.use_dora:
            return self._forward_dora(x)
        # the output of the original model
        frozen_out = self.linear(x)
        # lora_a projects inputs down to rank r, then lora_b projects back up
        lora_out = self.lora_b(self.lora_a(self.dropout(x)))
        # scale by alpha/rank (alpha/sqrt(rank) for rsLoRA) and add
        return frozen_out + self.scaling * lora_out

    def _dropout_active(self) -> bool:
        return self.training and self.dropout.p > 0.0

    def _forward_dora(self, x: Tensor) -> Tensor:
        """DoRA forward. Without dropout: h = x·W'ᵀ + b with W' from :func:`dora_weight`.

        With dropout on the adapter path (PEFT's form), with g = m/‖W + s·B·A‖_row and
        x̃ = dropout(x)::

            h = W·x + b + (g − 1) ⊙ (W·x̃) + g ⊙ s·B·A·x̃

        which is g ⊙ (W + s·B·A)·x + b = W'·x + b whenever x̃ = x.
        """
        w = self.linear.weight
        delta = (self.lora_b.weight @ self.lora_a.weight) * self.scaling
        if not self._dropout_active():
            merged = dora_weight(w, delta, self.magnitude, self.dora_detach_norm)
            out = x @ merged.T
            return out if self.linear.bias is None else out + self.linear.bias
        g = dora_scale(w, delta, self.magnitude, self.dora_detach_norm)
        x_drop = self.dropout(x)
        lora_out = self.lora_b(self.lora_a(x_drop)) * self.scaling
        return self.linear(x) + (g - 1.0) * (x_drop @ w.T) + g * lora_out

    def extra_repr(self) -> str:
        parts = [
            f"in_features={self.in_features}",
            f"out_features={self.out_features}",
            f"rank={self.rank}",
            f"alpha={self.alpha:g}",
            f"scaling={self.scaling:g}",
        ]
        if self.use_rslora:
            parts.append("rslora")
        if self.use_dora:
            parts.append("dora")
        if self.init != "kaiming":
            parts.append(f"init={self.init}")
        if self.merged:
            parts.append("merged")
        return ", ".join(parts)
