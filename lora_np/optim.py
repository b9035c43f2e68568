"""Optimizers: SGD, Adam and AdamW, with PyTorch's exact update rules.

An optimizer holds *parameter groups*: lists of parameters that share hyperparameters.
``SGD(model.parameters(), lr=0.1)`` makes one group; a list of dicts makes several, each
with its own settings, e.g. LoRA+ gives the B matrices a larger learning rate::

    Adam([{"params": a_params}, {"params": b_params, "lr": 16 * lr}], lr=lr)

``step()`` reads each parameter's ``.grad`` and updates ``param.data`` in place (as
PyTorch does; the dtype never changes, a float32 weight stays float32). A parameter that
does not require grad, or whose ``.grad`` is None this step, is skipped, and per-parameter
state (momentum, Adam's moments) is created only when a parameter is first updated.

Notation in the docstrings: θ a parameter, g its gradient, η the learning rate, λ the
weight decay, t the step count of that parameter (1 at its first update).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lora_np.checks import is_number
from lora_np.tensor import Tensor

ParamsLike = Iterable[Tensor] | Iterable[Mapping[str, Any]]

#: keys a parameter group may carry besides its hyperparameters
_EXTRA_GROUP_KEYS = ("params", "name")


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad and state dicts.

    Subclasses define ``defaults`` (through ``__init__``), ``_check(group)`` to validate
    hyperparameters and ``_update(param, grad, state, group)`` for one parameter.
    """

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        #: parameter -> its state (a Tensor hashes by identity, as in PyTorch)
        self.state: dict[Tensor, dict[str, Any]] = {}
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or of dicts, got a single Tensor; "
                "wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ----------------------------------------------------------------- groups
    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group ``{"params": [...], <hyperparameter>: value, ...}``; missing
        hyperparameters take the optimizer's defaults."""
        if not isinstance(group, Mapping):
            raise TypeError(
                f"a parameter group must be a dict with a 'params' key, got {type(group).__name__}"
            )
        if "params" not in group:
            raise ValueError(f"a parameter group needs a 'params' key, got keys {sorted(group)}")
        unknown = sorted(set(group) - set(self.defaults) - set(_EXTRA_GROUP_KEYS))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown keys {unknown} in a parameter group; "
                f"expected 'params' and any of {sorted(self.defaults)}"
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: a parameter group has no parameters")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}"
                )
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"can only optimize floating-point tensors, got dtype {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("a parameter appears more than once in the optimizer's groups")
        full = {**self.defaults, **group, "params": params}
        self._check(full)
        self.param_groups.append(full)

    def _check(self, group: dict[str, Any]) -> None:
        _check_number("lr", group["lr"], low=0.0)
        _check_number("weight_decay", group["weight_decay"], low=0.0)

    # ----------------------------------------------------------------- stepping
    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (gradients accumulate otherwise)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that requires grad and has a gradient.

        A group's hyperparameters are read once per step (:func:`_plain_settings`), then
        each parameter's gradient is checked and handed to ``_update``. The update is
        NumPy arithmetic on ``param.data`` and ``param.grad``, arrays, not Tensors: it
        records no graph (PyTorch's optimizers need ``no_grad`` for that; here there is
        nothing to turn off).
        """
        for group in self.param_groups:
            settings = _plain_settings(group)
            for p in group["params"]:
                grad = p.grad
                if grad is None or not p._requires_grad:  # (the property's flag)
                    continue
                if type(grad) is not np.ndarray:
                    grad = np.asarray(grad)
                data = p.data
                if grad.shape != data.shape:
                    raise ValueError(
                        f"{type(self).__name__}.step: a gradient of shape {grad.shape} "
                        f"for a parameter of shape {data.shape}"
                    )
                if not data.flags.writeable:
                    p.data = data.copy()
                state = self.state.get(p)
                if state is None:  # made at the parameter's first update
                    state = self.state[p] = {}
                self._update(p, grad, state, settings)

    def _update(
        self, param: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        """Update one parameter in place; ``group`` holds the hyperparameters as Python
        numbers (see :func:`_plain_settings`)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- state dicts
    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        Parameters are numbered in the order of the groups, as PyTorch does; values are
        copies of the arrays and plain numbers (no Tensors), ready to save.
        """
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {
            index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for p, s in self.state.items()
        }
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and state saved by :meth:`state_dict`.

        The groups must have the same sizes as this optimizer's and each saved array the
        shape of its parameter; arrays are copied and cast to the parameter's dtype.
        Everything is checked before anything changes.
        """
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(
                "load_state_dict expects a dict with keys 'state' and 'param_groups' "
                f"(from Optimizer.state_dict()), got {type(state_dict).__name__}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: group {i} has {len(saved['params'])} parameters in the "
                    f"state dict and {len(group['params'])} in this optimizer"
                )
        params = self._all_params()
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved_state in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(
                    f"load_state_dict: state for parameter {i}, but there are {len(params)}"
                )
            p = params[i]
            entry: dict[str, Any] = {}
            for name, value in saved_state.items():
                if isinstance(value, np.ndarray):
                    if value.shape != p.shape:
                        raise ValueError(
                            f"load_state_dict: state {name!r} of parameter {i} has shape "
                            f"{value.shape}, the parameter has {p.shape}"
                        )
                    value = np.array(value, dtype=p.dtype)
                entry[name] = value
            new_state[p] = entry
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            updated = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            self._check(updated)
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def _plain_settings(group: Mapping[str, Any]) -> dict[str, Any]:
    """A group's hyperparameters with NumPy numbers made Python floats.

    A Python number is "weak" in NumPy's type promotion: ``lr * grad`` stays float32 for a
    float32 gradient, while an ``np.float64`` learning rate would compute it in float64.
    Read once per group at each step, so a changed ``group["lr"]`` (a schedule) counts.
    """
    settings = dict(group)
    del settings["params"]
    for key, value in settings.items():
        if isinstance(value, np.number):
            settings[key] = float(value)
        elif type(value) is tuple:  # betas
            settings[key] = tuple([float(v) if isinstance(v, np.number) else v for v in value])
    return settings


def _check_number(name: str, value: Any, low: float | None = None) -> None:
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (low is not None and value < low):
        raise ValueError(f"invalid {name}: expected a finite number >= {low}, got {value}")


def _check_betas(betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        _check_number(f"betas[{i}]", beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"invalid betas[{i}]: expected 0 <= beta < 1, got {beta}")


# --------------------------------------------------------------------------- SGD


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's formulation).

    Per step, for each parameter (μ momentum, τ dampening)::

        g ← g + λ·θ                         (if weight_decay λ ≠ 0: L2 penalty λ/2·‖θ‖²)
        b ← g                               (first step: the buffer starts as g)
        b ← μ·b + (1 − τ)·g                 (later steps)
        g ← g + μ·b  if nesterov  else  b   (if μ ≠ 0)
        θ ← θ − η·g

    Note the buffer accumulates gradients and η multiplies afterwards (Sutskever et al.
    put η inside the buffer); the two agree while η is constant.
    """

    def __init__(
        self,
        params: ParamsLike,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_number("momentum", group["momentum"], low=0.0)
        _check_number("dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(
        self, param: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        if weight_decay != 0:
            grad = grad + weight_decay * param.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=param.dtype)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= group["lr"] * grad


# --------------------------------------------------------------------------- Adam / AdamW


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as in PyTorch.

    Per step t = 1, 2, ... of each parameter (β₁, β₂ = betas, ε = eps)::

        g ← g + λ·θ                        (if weight_decay λ ≠ 0: coupled, an L2 penalty)
        m ← β₁·m + (1 − β₁)·g              (first moment, starts at 0)
        v ← β₂·v + (1 − β₂)·g²             (second moment, starts at 0)
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   (bias correction)
        θ ← θ − η·m̂ / (√v̂ + ε)

    (Computed as PyTorch does: ``θ ← θ − (η / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε)``.)
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_betas(group["betas"])
        _check_number("eps", group["eps"], low=0.0)

    def _update(
        self, param: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)
            state["exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        t = state["step"]
        if weight_decay != 0:
            if self.decoupled_weight_decay:
                param.data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        # the docstring's last line in its order of operations, with two arrays the size
        # of θ made and then updated in place (a new array per operation would be four)
        denom = np.sqrt(v)
        denom /= math.sqrt(bias_correction2)
        denom += eps  # √v / √(1 − β₂ᵗ) + ε
        update = (lr / bias_correction1) * m
        update /= denom  # (η / (1 − β₁ᵗ))·m / denom
        param.data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as in PyTorch.

    The decay shrinks the weights directly instead of entering the gradient, so it is
    not rescaled by Adam's per-coordinate step size::

        θ ← θ·(1 − η·λ)                     (decoupled decay, before the Adam step)
        m, v, m̂, v̂ as in Adam with the raw gradient g
        θ ← θ − η·m̂ / (√v̂ + ε)

    Default weight_decay λ = 0.01, as in PyTorch.
    """

    decoupled_weight_decay = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


#: The optimizers by the names experiments use for them.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, params: Iterable[Any], lr: float) -> Optimizer:
    """``OPTIMIZERS[name](params, lr=lr)``; a ValueError naming the choices for another name."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](params, lr=lr)
