"""PyTorch-shaped layers: modules, functional composites and initialisers."""

from lora_np.nn import functional, init
from lora_np.nn.modules import (
    MLP,
    Dropout,
    Identity,
    IncompatibleKeys,
    Linear,
    Module,
    Parameter,
    ReLU,
    Sequential,
    StateDictError,
    Tanh,
    functional_call,
)

__all__ = [
    "MLP",
    "Dropout",
    "Identity",
    "IncompatibleKeys",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "StateDictError",
    "Tanh",
    "functional",
    "functional_call",
    "init",
]
