"""lora_np: LoRA from first principles, in NumPy.

A small reverse-mode autograd engine (:mod:`lora_np.tensor`, :mod:`lora_np.ops`), a
finite-difference gradient checker (:mod:`lora_np.gradcheck`), PyTorch-shaped layers
(:mod:`lora_np.nn`), optimizers (:mod:`lora_np.optim`), LoRA and its variants
(:mod:`lora_np.lora`) and random-subspace training (:mod:`lora_np.subspace`).
"""

from lora_np.gradcheck import GradcheckError, gradcheck, numerical_grad
from lora_np.rng import get_rng, manual_seed
from lora_np.tensor import Function, Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "get_rng",
    "gradcheck",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "numerical_grad",
]
