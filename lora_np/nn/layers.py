"""Layers: Linear, activations, Dropout, Sequential and MLP, shaped as PyTorch's."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from lora_np.checks import is_int, is_number
from lora_np.nn import functional as F
from lora_np.nn import init
from lora_np.nn.module import Module, Parameter
from lora_np.rng import get_rng
from lora_np.tensor import Tensor


class Linear(Module):
    """y = x · Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch.

    Default init as PyTorch: W ~ kaiming_uniform(a=√5), i.e. U(±1/√in); b ~ U(±1/√in).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if not is_int(value) or value < 1:
                raise ValueError(f"Linear: {label} must be a positive int, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        rng = get_rng(rng)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=5**0.5, rng=rng)
        if bias:
            bound = 1.0 / in_features**0.5
            self.bias = Parameter(np.empty((out_features,), dtype=dtype))
            init.uniform_(self.bias, -bound, bound, rng=rng)
        else:
            self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


def _dropout_probability(p: Any) -> float:
    """``p`` as a float if it is a number in [0, 1) (a dropout probability), else the error
    :class:`Dropout` and :class:`MLP` both raise."""
    if not is_number(p):
        raise TypeError(f"Dropout: p must be a number in [0, 1), got {type(p).__name__} {p!r}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
    return float(p)


class Dropout(Module):
    """Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p).
    Identity in eval mode or when p = 0."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = _dropout_probability(p)
        self.rng = rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Calls its children in order; they are named "0", "1", ... as in PyTorch."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __getitem__(self, index: int | slice) -> Module:
        layers = list(self.children())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._module_names)

    def __iter__(self) -> Iterator[Module]:
        return self.children()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():
            x = layer(x)
        return x


_ACTIVATIONS: dict[str, Callable[[], Module]] = {"relu": ReLU, "tanh": Tanh}


class MLP(Sequential):
    """Linear → activation (→ Dropout) → ... → Linear, for ``sizes = [in, h1, ..., out]``.

    Built on Sequential, so a 64-128-128-10 MLP has layers "0" (Linear), "1" (ReLU),
    "2" (Linear), "3" (ReLU), "4" (Linear) when dropout is 0.
    """

    def __init__(
        self,
        sizes: list[int] | tuple[int, ...],
        activation: str | Callable[[], Module] = "relu",
        dropout: float = 0.0,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [in, out] sizes, got {list(sizes)}")
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(
                    f"MLP: unknown activation {activation!r}; expected one of "
                    f"{sorted(_ACTIVATIONS)} or a Module class"
                )
            make_activation = _ACTIVATIONS[activation]
        else:
            make_activation = activation
        dropout = _dropout_probability(dropout)
        rng = get_rng(rng)
        layers: list[Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(Linear(fan_in, fan_out, bias=bias, dtype=dtype, rng=rng))
            if i < len(sizes) - 2:
                layers.append(make_activation())
                if dropout > 0:
                    layers.append(Dropout(dropout, rng=rng))
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)


def linear_layers(model: Module) -> list[tuple[str, Linear]]:
    """(dotted name, layer) for every :class:`Linear` in ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]
