"""LoRA and its variants: the layer, model surgery, merging, and adapters on disk.

* :class:`LoRALinear` — a frozen Linear plus s·B·A (mirrors the seed's PyTorch module);
  rsLoRA, DoRA, PiSSA and LoRA-FA are options of the same layer.
"""

from lora_np.lora.layer import LoRALinear, lora_scaling

__all__ = ["LoRALinear", "lora_scaling"]
