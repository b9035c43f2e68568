"""Random-subspace training: θ = θ0 + P·θ_d (Li et al. 2018, intrinsic dimension).

LoRA rests on a hypothesis: the problem a network solves (and even more, a fine-tuning
of it) can be solved while moving in far fewer directions than it has weights. Li et al.
measure this directly. Take all D weights of a model — every matrix and bias, the head
included — flattened into one vector θ, and write

    θ = θ0 + P·θ_d,

with θ0 the initial weights (frozen), P a fixed random D × d matrix whose columns have
unit norm over all D weights, and θ_d ∈ R^d the only thing that trains, starting at 0
(so the model starts exactly as θ0). The smallest d at which training reaches 90% of the
usual accuracy is the *intrinsic dimension* d_int90 (see
:mod:`lora_np.subspace.intrinsic_dimension`).

:class:`SubspaceModel` wraps any :class:`~lora_np.nn.Module` that way. Its forward
computes the flat θ once (one projection per step), cuts it into the per-parameter
tensors by plain indexing (``θ[start:stop].reshape(shape)``), and runs the wrapped
model on them with :func:`~lora_np.nn.functional_call` — the same mechanism LoRA's
functional form uses, so both read as two parametrisations of the same weights. Gradients
flow back through the slices and the projection's transpose to θ_d; θ0 never receives
one.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.nn import Module, Parameter, functional_call
from lora_np.rng import get_rng
from lora_np.subspace.projections import PROJECTIONS, Projection, make_projection
from lora_np.tensor import Tensor, no_grad


class SubspaceModel(Module):
    """``model`` reparametrised as θ = θ0 + P·θ_d, with only θ_d (length d) trainable.

    Args:
        model: any Module. It is deep-copied; the copy (``base_model``) holds θ0 and is
            frozen. All of its D parameters (weights, biases, the head) are reparametrised.
        d: the subspace dimension, 1 <= d <= D.
        projection: "dense" (Gaussian, d·D memory, refused above a memory budget),
            "sparse" (density ≈ 1/√D) or "fastfood" (O(D) memory, O(D log D) per step).
            All have columns of unit norm over all D weights (Li et al.'s global
            normalisation); see :mod:`lora_np.subspace.projections`.
        rng: draws P (None: the package generator, see ``lora_np.manual_seed``).
        dense_budget_bytes: override of
            :data:`lora_np.subspace.projections.DENSE_MEMORY_BUDGET_BYTES` for the dense P.

    ``theta_d`` is a Parameter of zeros with the model's dtype, and the only parameter
    that ``parameters()`` / ``named_parameters()`` / ``state_dict()`` show, so an optimizer
    given ``sub.parameters()`` trains θ_d alone. ``forward(*args)`` runs the wrapped model
    with the weights θ. ``materialize()`` returns a plain model with θ written in.

    Example::

        sub = SubspaceModel(MLP([64, 128, 128, 10]), d=300, projection="fastfood")
        opt = Adam(sub.parameters(), lr=1e-2)      # θ_d alone
        loss = cross_entropy(sub(x), y); loss.backward(); opt.step()
        plain = sub.materialize()                  # an MLP with θ0 + P·θ_d in it
    """

    def __init__(
        self,
        model: Module,
        d: int,
        projection: str = "dense",
        rng: np.random.Generator | None = None,
        *,
        dense_budget_bytes: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, Module):
            raise TypeError(f"SubspaceModel wraps a Module, got {type(model).__name__}")
        if not is_int(d):
            raise TypeError(f"SubspaceModel: d must be an int, got {d!r}")
        if projection not in PROJECTIONS:
            raise ValueError(
                f"SubspaceModel: unknown projection {projection!r}; expected one of "
                f"{list(PROJECTIONS)}"
            )
        base = copy.deepcopy(model)
        named = list(base.named_parameters())
        if not named:
            raise ValueError("SubspaceModel: the model has no parameters to reparametrise")
        D = sum(p.size for _, p in named)
        if not 1 <= d <= D:
            raise ValueError(
                f"SubspaceModel: need 1 <= d <= D, got d = {d} for a model with D = {D} weights"
            )
        dtype = np.result_type(*(p.dtype for _, p in named))

        # layout of the flat θ: parameter name -> (start, stop, shape), in named order
        self.layout: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        start = 0
        for name, p in named:
            self.layout[name] = (start, start + p.size, p.shape)
            start += p.size
        self._trainable_flags = {name: p.requires_grad for name, p in named}
        for _, p in named:
            p.requires_grad = False  # θ0 is frozen: only θ_d trains
        # not registered as a submodule, so its parameters stay out of parameters()
        object.__setattr__(self, "base_model", base)
        self.theta0 = np.concatenate([p.data.reshape(-1) for _, p in named]).astype(dtype)
        self.D, self.d = int(D), int(d)
        self.projection: Projection = make_projection(
            projection,
            self.D,
            self.d,
            dtype=dtype,
            rng=get_rng(rng),
            dense_budget_bytes=dense_budget_bytes,
        )
        self.theta_d = Parameter(np.zeros(self.d, dtype=dtype))

    # ----------------------------------------------------------------- the weights θ
    def flat_weights(self) -> Tensor:
        """θ = θ0 + P·θ_d as one Tensor of shape (D,), differentiable in θ_d."""
        return Tensor(self.theta0) + self.projection(self.theta_d)

    def weights(self) -> dict[str, Tensor]:
        """Parameter name -> its tensor in θ (the mapping ``functional_call`` takes)."""
        theta = self.flat_weights()
        return {
            name: theta[start:stop].reshape(shape)
            for name, (start, stop, shape) in self.layout.items()
        }

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.base_model.training != self.training:
            # the wrapper's train/eval mode governs the wrapped model (it is not a
            # registered submodule, so code that sets modes module by module misses it)
            self.base_model.train(self.training)
        return functional_call(self.base_model, self.weights(), *args, **kwargs)

    # ----------------------------------------------------------------- modes and copies
    def train(self, mode: bool = True) -> SubspaceModel:
        super().train(mode)
        self.base_model.train(mode)  # e.g. Dropout inside the wrapped model
        return self

    def materialize(self) -> Module:
        """A plain deep copy of the model with θ = θ0 + P·θ_d written into its weights.

        Its parameters are ordinary Parameters again (with the requires_grad flags the
        model had when it was wrapped), independent of this SubspaceModel.
        """
        with no_grad():
            theta = self.flat_weights().data
        model = copy.deepcopy(self.base_model)
        for name, p in model.named_parameters():
            start, stop, shape = self.layout[name]
            p.data = theta[start:stop].reshape(shape).astype(p.dtype)
            p.requires_grad = self._trainable_flags[name]
        return model.train(self.training)

    def extra_repr(self) -> str:
        return f"D={self.D}, d={self.d}, projection={self.projection.name!r}"

    def __repr__(self) -> str:
        inner = repr(self.base_model).replace("\n", "\n  ")
        return f"{type(self).__name__}({self.extra_repr()},\n  (base_model): {inner}\n)"
