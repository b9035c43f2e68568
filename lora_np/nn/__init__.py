"""PyTorch-shaped layers: the Module container, layers, functional composites, initialisers.

* :mod:`~lora_np.nn.module` — :class:`Module`, :class:`Parameter`, :func:`functional_call`;
* :mod:`~lora_np.nn.layers` — :class:`Linear`, activations, :class:`Dropout`,
  :class:`Sequential`, :class:`MLP`;
* the transformer's layers, each with its fused primitive: :class:`Embedding`
  (:mod:`~lora_np.nn.embedding`), :class:`LayerNorm` (:mod:`~lora_np.nn.normalization`),
  :class:`GELU` (:mod:`~lora_np.nn.activations`), :class:`CausalSelfAttention`
  (:mod:`~lora_np.nn.attention`);
* :class:`Conv2d` (:mod:`~lora_np.nn.conv`), a 2-D convolution with its primitive;
* :mod:`~lora_np.nn.functional` — losses and activations composed from the primitives;
* :mod:`~lora_np.nn.init` — PyTorch's initialisers.
"""

from lora_np.nn import functional, init
from lora_np.nn.activations import GELU
from lora_np.nn.attention import CausalSelfAttention
from lora_np.nn.conv import Conv2d
from lora_np.nn.embedding import Embedding
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
from lora_np.nn.normalization import LayerNorm

__all__ = [
    "GELU",
    "MLP",
    "CausalSelfAttention",
    "Conv2d",
    "Dropout",
    "Embedding",
    "Identity",
    "IncompatibleKeys",
    "LayerNorm",
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
