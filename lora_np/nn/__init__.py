"""PyTorch-shaped layers: the Module container, layers, functional composites, initialisers.

* :mod:`~lora_np.nn.module` — :class:`Module`, :class:`Parameter`, :func:`functional_call`;
* :mod:`~lora_np.nn.layers` — :class:`Linear`, activations, :class:`Dropout`,
  :class:`Sequential`, :class:`MLP`;
* :mod:`~lora_np.nn.functional` — losses and activations composed from the primitives;
* :mod:`~lora_np.nn.init` — PyTorch's initialisers.
"""

from lora_np.nn import functional, init
from lora_np.nn.conv import Conv2d as Conv2d  # the layer; its primitive is nn.conv.Convolution2d
from lora_np.nn.layers import (
    MLP,
    Dropout,
    Identity,
    Linear,
    ReLU,
    Sequential,
    Tanh,
    linear_layers,
)
from lora_np.nn.module import (
    IncompatibleKeys,
    Module,
    Parameter,
    StateDictError,
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
    "linear_layers",
]
