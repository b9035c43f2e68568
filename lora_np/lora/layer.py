"""LoRALinear: a frozen Linear layer plus a trainable low-rank update (Hu et al. 2021).

The LoRA paper's Eq. 3: instead of learning a full update ΔW of the pretrained weight
W (out, in), learn two thin matrices A (r, in) and B (out, r) with r ≪ min(in, out)::

    h = W·x + (α/r)·B·A·x

B starts at zero, so the layer computes exactly what the pretrained layer did; A starts
random, so B's gradient is not zero and training can begin. Only r·(in + out) numbers
train instead of in·out.

The layer matches the reference PyTorch ``LoRALinear`` module (``reference/lora_linear.py``
in the repository): same constructor arguments, submodules ``linear`` / ``lora_a`` /
``lora_b`` / ``dropout``, same ``state_dict`` keys, same initialisation (A ~ Kaiming-normal
with a=√5, B = 0), same forward ``linear(x) + (α/r)·lora_b(lora_a(dropout(x)))``. Like the
reference module, it freezes only ``linear.weight``: a bias of the base layer stays
trainable unless :func:`lora_np.lora.mark_only_lora_as_trainable` freezes it.

It then goes further, as PEFT does:

* :meth:`LoRALinear.from_linear` wraps an existing (trained) Linear;
* ``merge()`` writes the adapted weight into the base weight, so inference costs nothing
  extra, and ``unmerge()`` restores it exactly;
* the options of :class:`~lora_np.lora.options.LoRAOptions`: init ``"gaussian"`` and
  ``"pissa"``, rsLoRA's α/√r, DoRA (a variant with its own forward, see
  :mod:`lora_np.lora.dora`), LoRA-FA (A frozen).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from lora_np.lora.dora import DoRAVariant
from lora_np.lora.options import LoRAOptions
from lora_np.lora.variants import LoRAVariant, trainable_parameters
from lora_np.nn import Dropout, Linear, Module, init
from lora_np.rng import get_rng
from lora_np.tensor import Tensor, is_grad_enabled


def variant_for(options: LoRAOptions) -> LoRAVariant:
    """The variant that runs a layer with these options: DoRA, or plain LoRA."""
    return DoRAVariant() if options.use_dora else LoRAVariant()


def check_layer_rank(options: LoRAOptions, in_features: int, out_features: int) -> None:
    """Any rank r >= 1 fits a layer of shape (out, in), as in PyTorch's module and PEFT.

    B·A has rank at most min(in, out) however large r is, so a larger r adds parameters
    but no capacity; it is allowed (a PEFT adapter may have such a rank), and the layer
    warns about it (:class:`RankWarning`). PiSSA is the exception: it fills A and B with
    the top r singular vectors of W, and W has only min(in, out) of them, so there a
    larger r is a ValueError.
    """
    most = min(in_features, out_features)
    if options.init == "pissa" and options.rank > most:
        raise ValueError(
            f"init='pissa' takes A and B from the top r singular vectors of W, and a layer of "
            f"shape (out={out_features}, in={in_features}) has only min(in, out) = {most}; "
            f"got rank {options.rank}"
        )


class RankWarning(UserWarning):
    """A LoRA rank above min(in, out): allowed, but the extra rank adds no capacity."""


class MergedTrainingWarning(UserWarning):
    """A merged LoRALinear was run as if training: its adapter gets no gradient."""


def _warn_if_rank_adds_nothing(rank: int, in_features: int, out_features: int) -> None:
    most = min(in_features, out_features)
    if rank > most:
        warnings.warn(
            f"LoRA rank {rank} is above min(in, out) = {most} for a layer of shape "
            f"(out={out_features}, in={in_features}): B·A has rank at most {most}, so the "
            f"extra {rank - most} add parameters but no capacity",
            RankWarning,
            stacklevel=3,
        )


class LoRALinear(Module):
    """``linear(x) + scaling · lora_b(lora_a(dropout(x)))`` with ``linear.weight`` frozen.

    Args:
        in_feats, out_feats: the layer's input and output sizes.
        rank: r >= 1, the inner size of the update B·A (above min(in, out) it adds no
            capacity: allowed, with a :class:`RankWarning`).
        alpha: α > 0; the update is scaled by ``scaling`` = α/r (α/√r with ``use_rslora``).
        dropout: probability of dropping an input on the adapter path (training only).
        bias: whether the base ``linear`` has a bias (not frozen here, as in the reference
            module).

    Keyword-only: any other field of :class:`~lora_np.lora.options.LoRAOptions`
    (``init``, ``use_rslora``, ``use_dora``, ``dora_detach_norm``, ``freeze_a``),
    ``dtype``, ``rng`` (for the initial draws and the dropout masks) and ``base``: a
    Linear of shape (out_feats, in_feats) to wrap instead of drawing a new one (then
    ``bias`` and ``dtype`` are the base's; :meth:`from_linear` is the usual way).

    ``options`` holds the settings; ``variant`` (plain LoRA or DoRA) decides the forward,
    the merge and the adapter's parameters. A DoRA layer has one more parameter,
    ``magnitude`` (out,), next to ``lora_a.weight`` and ``lora_b.weight``.
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
        base: Linear | None = None,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.options = LoRAOptions(rank, alpha, dropout, **options)
        rng = get_rng(rng)
        if base is None:
            # weights of the original pretrained model (random here, as in the reference)
            base = Linear(in_feats, out_feats, bias=bias, dtype=dtype, rng=rng)
        elif (base.in_features, base.out_features) != (in_feats, out_feats):
            raise ValueError(
                f"LoRALinear: base has shape (out={base.out_features}, in={base.in_features}), "
                f"expected (out={out_feats}, in={in_feats})"
            )
        check_layer_rank(self.options, in_feats, out_feats)
        _warn_if_rank_adds_nothing(self.rank, in_feats, out_feats)
        self.variant = variant_for(self.options)
        self.in_features, self.out_features = in_feats, out_feats
        self.linear = base
        dtype = base.weight.dtype
        # extra LoRA params: A (r, in) projects down, B (out, r) projects back up
        self.lora_a = Linear(in_feats, self.rank, bias=False, dtype=dtype, rng=rng)
        self.lora_b = Linear(self.rank, out_feats, bias=False, dtype=dtype, rng=rng)
        self.dropout = Dropout(self.options.dropout, rng=rng)
        # original params are frozen (only the weight, as in the reference module)
        self.linear.weight.requires_grad = False
        self._merged_from: np.ndarray | None = None  # W before merge(), restored by unmerge()
        self.disabled = False  # set by disable_adapter(): forward runs the base layer only
        self._warned_merged = False  # see forward(): warned of training while merged
        self._init_params(rng)
        self.variant.add_parameters(self)
        if self.options.freeze_a:
            self.lora_a.weight.requires_grad = False

    @classmethod
    def from_linear(
        cls,
        linear: Linear,
        rank: int | None = None,
        alpha: float | None = None,
        dropout: float = 0.0,
        *,
        options: LoRAOptions | None = None,
        rng: np.random.Generator | None = None,
        **more_options: Any,
    ) -> LoRALinear:
        """Wrap an existing Linear (it becomes ``self.linear``, shared, not copied).

        Give the settings one by one (``rank``, ``alpha``, ``dropout`` and any other field
        of :class:`~lora_np.lora.options.LoRAOptions` by keyword), or whole as ``options``.

        Its weight is frozen. With ``init="pissa"`` its weight is *replaced* by the
        residual W − s·B·A (as PEFT does), so the wrapped layer's output is unchanged but
        the Linear object you passed in now holds the residual.
        """
        if isinstance(linear, LoRALinear):
            raise TypeError("from_linear: this layer already has LoRA; wrap its .linear instead")
        if not isinstance(linear, Linear):
            raise TypeError(f"from_linear expects a lora_np.nn.Linear, got {type(linear).__name__}")
        if options is not None:
            if rank is not None or alpha is not None or dropout or more_options:
                raise TypeError("from_linear: give options, or the settings one by one, not both")
            fields = options.as_dict()
        else:
            fields = {"rank": rank, "alpha": alpha, "dropout": dropout, **more_options}
        return cls(linear.in_features, linear.out_features, base=linear, rng=rng, **fields)

    def _init_params(self, rng: np.random.Generator) -> None:
        """A and B at the start of training (B·A = 0 except for PiSSA)."""
        method = self.options.init
        if method == "kaiming":  # the reference module's choice
            init.kaiming_normal_(self.lora_a.weight, a=math.sqrt(5), rng=rng)
            init.zeros_(self.lora_b.weight)
        elif method == "gaussian":  # PEFT's init_lora_weights="gaussian"
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

    # ----------------------------------------------------------------- the options
    # (rank, alpha and scaling as attributes, as in the reference module; the other
    # settings are read from ``options``)
    @property
    def rank(self) -> int:
        return self.options.rank

    @property
    def alpha(self) -> float:
        return self.options.alpha

    @property
    def scaling(self) -> float:
        """s = α/r (α/√r with rsLoRA)."""
        return self.options.scaling

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
        return self.variant.merged_weight(self)

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
        self._warned_merged = False  # warn again if this merge is trained through

    def unmerge(self) -> None:
        """Restore the weight saved by :meth:`merge` (exactly, not by subtraction)."""
        if not self.merged:
            raise RuntimeError("unmerge(): the layer is not merged")
        self.linear.weight.data = self._merged_from
        self._merged_from = None

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """h = W·x + b + s·B·A·dropout(x) (or the variant's form); the base layer alone
        if merged or disabled.

        A merged layer is for inference: its adapter gets no gradient. Run in training
        mode with gradients on, it says so once per merge (:class:`MergedTrainingWarning`);
        :func:`lora_np.train.fit` refuses a model with merged layers outright.
        """
        if self.merged or self.disabled:
            if self.merged and self.training and not self._warned_merged and is_grad_enabled():
                self._warn_merged_training()
            return self.linear(x)
        return self.variant.forward(self, x)

    def _warn_merged_training(self) -> None:
        if not any(p.requires_grad for p in trainable_parameters(self)):
            return
        self._warned_merged = True
        warnings.warn(
            "a merged LoRALinear runs in training mode: its adapter is folded into "
            "linear.weight, so A and B get no gradient and will not train. Call unmerge() to "
            "train the adapter; for inference, use eval() or no_grad()",
            MergedTrainingWarning,
            stacklevel=4,
        )

    def extra_repr(self) -> str:
        parts = [
            f"in_features={self.in_features}",
            f"out_features={self.out_features}",
            f"rank={self.rank}",
            f"alpha={self.alpha:g}",
            f"scaling={self.scaling:g}",
        ]
        if self.options.use_rslora:
            parts.append("rslora")
        if self.variant.name != "lora":
            parts.append(self.variant.name)
        if self.options.init != "kaiming":
            parts.append(f"init={self.options.init}")
        if self.merged:
            parts.append("merged")
        return ", ".join(parts)
