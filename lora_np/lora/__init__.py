"""LoRA and its variants: the layer, model surgery, merging, and adapters on disk.

* :class:`LoRALinear` — a frozen Linear plus s·B·A (matches the reference PyTorch module);
  its settings are one :class:`LoRAOptions`, and its ``variant`` (plain LoRA, or DoRA in
  :mod:`~lora_np.lora.dora`) owns the forward, the merge and the adapter's parameters;
  rsLoRA, PiSSA and LoRA-FA are options of the same layer.
* :class:`LoRAConfig` and :func:`apply_lora` — put adapters into a model;
  :func:`mark_only_lora_as_trainable`, :func:`merge_and_unload`, :func:`unload`,
  :func:`disable_adapter`, :func:`lora_plus_param_groups` — work with them.
* :func:`lora_state_dict`, :func:`save_adapter` / :func:`load_adapter` — what an adapter
  holds (one manifest, :mod:`~lora_np.lora.manifest`) and adapters on disk in PEFT's
  format (:mod:`~lora_np.lora.io`).
* :mod:`~lora_np.lora.analysis` — what LoRA learns: subspace similarity, ΔW vs W, spectra.
"""

from lora_np.lora.config import LoRAConfig
from lora_np.lora.io import load_adapter, save_adapter
from lora_np.lora.layer import LoRALinear, MergedTrainingWarning, RankWarning
from lora_np.lora.manifest import adapter_manifest, lora_state_dict
from lora_np.lora.model import (
    apply_lora,
    count_parameters,
    disable_adapter,
    find_target_names,
    lora_layers,
    lora_plus_param_groups,
    mark_only_lora_as_trainable,
    merge_and_unload,
    print_trainable_parameters,
    unload,
)
from lora_np.lora.options import LoRAOptions, lora_scaling

__all__ = [
    "LoRAConfig",
    "LoRALinear",
    "LoRAOptions",
    "MergedTrainingWarning",
    "RankWarning",
    "adapter_manifest",
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
