"""lora_np: LoRA from first principles, in NumPy.

A small reverse-mode autograd engine (:mod:`lora_np.tensor`, :mod:`lora_np.ops`), a
finite-difference gradient checker (:mod:`lora_np.gradcheck`), PyTorch-shaped layers
(:mod:`lora_np.nn`), optimizers (:mod:`lora_np.optim`), LoRA and its variants
(:mod:`lora_np.lora`), random-subspace training (:mod:`lora_np.subspace`), data
(:mod:`lora_np.data`), training loops (:mod:`lora_np.train`) and the experiments
(:mod:`lora_np.experiments`, run by ``python -m lora_np reproduce``).
"""

from lora_np import data, lora, nn, optim, subspace
from lora_np.gradcheck import GradcheckError, gradcheck, numerical_grad
from lora_np.rng import get_rng, manual_seed
from lora_np.tensor import Function, Tensor, is_grad_enabled, no_grad
from lora_np.train import History, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "Function",
    "GradcheckError",
    "History",
    "Tensor",
    "data",
    "evaluate",
    "fit",
    "get_rng",
    "gradcheck",
    "is_grad_enabled",
    "lora",
    "manual_seed",
    "nn",
    "no_grad",
    "numerical_grad",
    "optim",
    "subspace",
]
