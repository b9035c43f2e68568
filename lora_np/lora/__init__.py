"""LoRA and its variants: the layer, model surgery, merging, and adapters on disk.

* :class:`LoRALinear` — a frozen Linear plus s·B·A (mirrors the seed's PyTorch module);
  rsLoRA, DoRA, PiSSA and LoRA-FA are options of the same layer.
* :class:`LoRAConfig` and :func:`apply_lora` — put adapters into a model;
  :func:`mark_only_lora_as_trainable`, :func:`merge_and_unload`, :func:`unload`,
  :func:`disable_adapter`, :func:`lora_plus_param_groups` — work with them.
* :func:`save_adapter` / :func:`load_adapter` — adapters on disk in PEFT's format.
"""

from lora_np.lora.config import LoRAConfig
from lora_np.lora.io import load_adapter, save_adapter
from lora_np.lora.layer import LoRALinear, lora_scaling
from lora_np.lora.model import (
    apply_lora,
    count_parameters,
    disable_adapter,
    find_target_names,
    lora_layers,
    lora_plus_param_groups,
    lora_state_dict,
    mark_only_lora_as_trainable,
    merge_and_unload,
    print_trainable_parameters,
    unload,
)

__all__ = [
    "LoRAConfig",
    "LoRALinear",
    "apply_lora",
    "count_parameters",
    "disable_adapter",
    "find_target_names",
    "load_adapter",
    "lora_layers",
    "lora_plus_param_groups",
    "lora_scaling",
    "lora_state_dict",
    "mark_only_lora_as_trainable",
    "merge_and_unload",
    "print_trainable_parameters",
    "save_adapter",
    "unload",
]
