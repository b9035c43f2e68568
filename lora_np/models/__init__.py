"""Models built from the layers: the tiny GPT.

* :mod:`~lora_np.models.gpt` — :class:`GPT` (GPT-2's layout, pre-LayerNorm) and
  :func:`token_nll`, the language-modelling loss.
"""

from lora_np.models.gpt import GPT, token_nll

__all__ = ["GPT", "token_nll"]
