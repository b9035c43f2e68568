"""Li et al.'s toy objective (2018, §2), whose intrinsic dimension is known exactly.

D numbers in ``groups`` blocks, each block must sum to its target: only ``groups``
directions of R^D matter, so random subspaces solve it from d = groups on
(:func:`toy_sum_problem`; :class:`GroupSums` is the "model").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.nn import Module, Parameter
from lora_np.optim import Adam
from lora_np.progress import progress_bar
from lora_np.rng import get_rng
from lora_np.subspace import SubspaceModel
from lora_np.tensor import Tensor


class GroupSums(Module):
    """θ ∈ R^D (one Parameter) whose forward returns the sums of its ``groups`` blocks.

    With D = 1,000 and 10 groups: output g = Σ_{i=100g}^{100g+99} θ_i.
    """

    def __init__(self, D: int, groups: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if D % groups != 0:
            raise ValueError(f"GroupSums: D = {D} must split into {groups} equal groups")
        self.groups = int(groups)
        self.theta = Parameter(get_rng(rng).standard_normal(D) / math.sqrt(D))

    def forward(self) -> Tensor:
        return self.theta.reshape(self.groups, -1).sum(axis=1)


def toy_sum_problem(
    dims: Sequence[int] = tuple(range(1, 21)),
    D: int = 1000,
    groups: int = 10,
    *,
    steps: int = 3000,
    lr: float = 0.3,
    solved_tol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Li et al.'s toy objective in random subspaces of size d: its d_int is ``groups``.

    θ ∈ R^D is cut into ``groups`` blocks of D/groups numbers; the loss asks block g to sum
    to t_g = g + 1:

        L(θ) = Σ_g (Σ_{i ∈ block g} θ_i − t_g)² = ‖Aθ − t‖²,

    A the (groups × D) 0/1 matrix of the blocks. In the subspace θ = θ0 + P·θ_d the loss is
    ‖(AP)·θ_d − (t − Aθ0)‖², a least-squares problem with a (groups × d) matrix AP. A
    random AP has full rank, so:

    * d < groups: AP·θ_d covers only a d-dimensional part of R^groups, and the best θ_d
      leaves a residual > 0 — no point of the subspace solves the problem;
    * d ≥ groups: AP is onto, some θ_d gives loss 0. So d_int = groups, exactly, whatever
      D is: the 990 other directions of R^1000 do not matter to the objective.

    For each d this computes the **exact** minimum over the subspace (``np.linalg.lstsq``
    on AP, with the dense P drawn by :class:`~lora_np.subspace.SubspaceModel`) and the
    loss that **training** θ_d reaches (Adam, ``steps`` steps from θ_d = 0, learning rate
    ``lr`` on a cosine schedule, all in float64 through the autograd engine).
    ``dint_exact`` and ``dint_trained`` are the smallest d whose loss is below
    ``solved_tol`` × the loss at θ0. At d = groups the solution is unique and AP can be
    badly conditioned, so Adam may need far more steps there than with a few spare
    directions: ``dint_trained`` can exceed ``dint_exact`` by one or two, never fall below it.
    Seed ``seed`` draws θ0 from ``default_rng([seed])`` and P for size d from
    ``default_rng([seed, d])``.
    """
    if isinstance(D, bool) or not isinstance(D, int) or D < 1:
        raise ValueError(f"toy_sum_problem: D must be a positive int, got {D!r}")
    if not is_int(groups) or not 1 <= groups <= D:
        raise ValueError(f"toy_sum_problem: groups must be an int in [1, D], got {groups!r}")
    if not is_int(steps) or steps < 0:
        raise ValueError(f"toy_sum_problem: steps must be an int >= 0, got {steps!r}")
    dims = list(dims)
    if not dims or any(not is_int(d) or not 1 <= d <= D for d in dims) or sorted(set(dims)) != dims:
        raise ValueError(
            f"toy_sum_problem: dims must be increasing ints in [1, D = {D}], got {dims}"
        )
    dims = [int(d) for d in dims]
    target = np.arange(1, groups + 1, dtype=np.float64)
    blocks = np.kron(np.eye(groups), np.ones((1, D // groups)))  # A: (groups, D)
    theta0_model = GroupSums(D, groups, rng=np.random.default_rng([seed]))
    initial = float(np.sum((blocks @ theta0_model.theta.data - target) ** 2))

    exact, trained = [], []
    for d in progress_bar(dims, enabled=progress, desc="toy sum problem: d"):
        sub = SubspaceModel(theta0_model, d, "dense", rng=np.random.default_rng([seed, d]))
        # exact: min over θ_d of ‖AP·θ_d − (t − Aθ0)‖²
        ap = blocks @ sub.projection.matrix
        residual = target - blocks @ sub.theta0
        best, *_ = np.linalg.lstsq(ap, residual, rcond=None)
        exact.append(float(np.sum((ap @ best - residual) ** 2)))
        # trained: Adam on θ_d through the engine
        opt = Adam(sub.parameters(), lr=lr)
        goal = Tensor(target)
        for step in range(steps):
            for group in opt.param_groups:  # cosine decay from lr to 0
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            opt.zero_grad()
            loss = ((sub() - goal) ** 2).sum()
            loss.backward()
            opt.step()
        final = float(((sub() - goal) ** 2).sum().item())
        trained.append(final)

    def first_solved(losses: list[float]) -> int | None:
        return next(
            (d for d, v in zip(dims, losses, strict=True) if v < solved_tol * initial), None
        )

    return {
        "D": D,
        "groups": groups,
        "targets": target.tolist(),
        "dims": dims,
        "initial_loss": initial,
        "exact_min_loss": exact,
        "trained_loss": trained,
        "solved_tol": solved_tol,
        "dint_exact": first_solved(exact),
        "dint_trained": first_solved(trained),
        "optimizer": f"adam, lr {lr} (cosine to 0), {steps} steps, float64",
        "projection": "dense",
    }
