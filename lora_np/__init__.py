"""lora_np: LoRA from first principles, in NumPy.

The engine is imported here and needs NumPy alone: :class:`Tensor` and the graph it
records (:mod:`lora_np.tensor`), the primitives (:mod:`lora_np.ops`), the gradient checker
(:mod:`lora_np.gradcheck`) and the package random generator (:mod:`lora_np.rng`).

The rest loads when first used, in the order data flows:

* :mod:`lora_np.nn` (layers), :mod:`lora_np.optim` (optimizers), :mod:`lora_np.data`,
  :mod:`lora_np.train` (``fit``, ``evaluate``);
* :mod:`lora_np.models` (the tiny GPT), :mod:`lora_np.lora` (LoRA and its variants;
  adapters on disk need ``safetensors``), :mod:`lora_np.subspace` (random-subspace
  training, intrinsic dimension);
* :mod:`lora_np.exercises` (the student track's checks), :mod:`lora_np.experiments`
  (figures need ``matplotlib``) and :mod:`lora_np.cli` (``python -m lora_np``).

``lora_np.nn`` and the like work as attributes (``import lora_np; lora_np.nn.Linear``);
they are imported on that first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from lora_np.gradcheck import GradcheckError, gradcheck, numerical_grad
from lora_np.rng import get_rng, manual_seed
from lora_np.tensor import Function, Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

#: Subpackages and modules that load on first access, and names that live in them.
_LAZY_MODULES = (
    "data",
    "exercises",
    "experiments",
    "lora",
    "models",
    "nn",
    "optim",
    "subspace",
    "train",
)
_LAZY_NAMES = {"History": "train", "evaluate": "train", "fit": "train"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"lora_np.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"lora_np.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module 'lora_np' has no attribute {name!r}")


__all__ = [
    "Function",
    "GradcheckError",
    "History",
    "Tensor",
    "data",
    "evaluate",
    "exercises",
    "experiments",
    "fit",
    "get_rng",
    "gradcheck",
    "is_grad_enabled",
    "lora",
    "manual_seed",
    "models",
    "nn",
    "no_grad",
    "numerical_grad",
    "optim",
    "subspace",
]
