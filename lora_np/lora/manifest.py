"""The adapter manifest: the one list of what an adapter holds.

Each entry names one tensor of the adapter three ways: its dotted name in the lora_np
model (``"0.lora_a.weight"``), its key in PEFT's ``adapter_model.safetensors``
(``"base_model.model.0.lora_A.weight"``) and its shape. :func:`lora_np.lora.lora_state_dict`,
:func:`lora_np.lora.save_adapter` and the checks of :func:`lora_np.lora.load_adapter` all
read it, so they cannot disagree about what an adapter is.

What goes in, for a config ``c`` (the rules PEFT follows):

* every adapted layer's own tensors, as its variant lists them (A, B; DoRA's magnitude);
* biases: with ``c.bias == "lora_only"`` each adapted layer's base bias (PEFT:
  ``<layer>.base_layer.bias``); with ``"all"`` also every other bias of the model outside
  the ``modules_to_save``;
* every parameter of the ``c.modules_to_save``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lora_np.lora.config import LoRAConfig, name_matches
from lora_np.lora.layer import variant_for
from lora_np.lora.model import find_target_names, lora_layers
from lora_np.lora.options import LoRAOptions
from lora_np.nn import Linear, Module

#: What PEFT puts before a module's path in the keys of its adapter files.
PREFIX = "base_model.model."


@dataclass(frozen=True)
class ManifestEntry:
    """One tensor of an adapter: lora_np name, PEFT key, shape."""

    name: str
    peft_key: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class AdaptedLayer:
    """A layer that has (or will get) an adapter: its name, options, shape and bias."""

    name: str
    options: LoRAOptions
    in_features: int
    out_features: int
    has_bias: bool


def adapted_layers(model: Module, config: LoRAConfig | None = None) -> list[AdaptedLayer]:
    """The model's LoRA layers as they are; or, if it has none, the layers ``config``
    would adapt (as :func:`lora_np.lora.apply_lora` would choose them)."""
    existing = lora_layers(model)
    if existing or config is None:
        return [
            AdaptedLayer(
                n, lyr.options, lyr.in_features, lyr.out_features, lyr.linear.bias is not None
            )
            for n, lyr in existing
        ]
    modules = dict(model.named_modules())
    planned = []
    for name in find_target_names(model, config):
        linear: Linear = modules[name]
        planned.append(
            AdaptedLayer(
                name,
                config.options_for(name),
                linear.in_features,
                linear.out_features,
                linear.bias is not None,
            )
        )
    return planned


def _peft(name: str) -> str:
    return PREFIX + name


def adapter_manifest(model: Module, config: LoRAConfig | None = None) -> list[ManifestEntry]:
    """Every tensor of ``model``'s adapter (see the module docstring), in a fixed order.

    ``config`` defaults to the one :func:`~lora_np.lora.apply_lora` left on the model
    (``model.lora_config``); without either, only the adapted layers' own tensors count.
    """
    config = config if config is not None else getattr(model, "lora_config", None)
    bias = config.bias if config is not None else "none"
    to_save = _modules_to_save(model, config)
    layers = adapted_layers(model, config)
    entries: list[ManifestEntry] = []
    for layer in layers:
        variant = variant_for(layer.options)
        for p in variant.parameters(layer.options, layer.in_features, layer.out_features):
            entries.append(
                ManifestEntry(
                    f"{layer.name}.{p.attribute}", _peft(f"{layer.name}.{p.peft_name}"), p.shape
                )
            )
        if bias in ("all", "lora_only") and layer.has_bias:
            entries.append(
                ManifestEntry(
                    f"{layer.name}.linear.bias",
                    _peft(f"{layer.name}.base_layer.bias"),
                    (layer.out_features,),
                )
            )
    adapted = [layer.name for layer in layers]
    if bias == "all":
        for name, p in model.named_parameters():
            if not (name == "bias" or name.endswith(".bias")):
                continue
            owner = name.rpartition(".")[0]
            if _inside(owner, adapted) or _inside(owner, to_save):
                continue
            entries.append(ManifestEntry(name, _peft(name), p.shape))
    for module_name in to_save:
        for key, p in model.get_submodule(module_name).named_parameters():
            name = f"{module_name}.{key}"
            entries.append(ManifestEntry(name, _peft(name), p.shape))
    return entries


def lora_state_dict(model: Module) -> dict[str, np.ndarray]:
    """Just what fine-tuning changed (copies, with the model's own dotted names).

    The tensors of :func:`adapter_manifest`: the adapters (``<layer>.lora_a.weight``,
    ``.lora_b.weight``, DoRA ``.magnitude``), the biases that ``lora_config.bias`` trains,
    and the parameters of the ``modules_to_save``. Load it back with
    ``model.load_state_dict(sd, strict=False)``.
    """
    return {e.name: model.get_parameter(e.name).data.copy() for e in adapter_manifest(model)}


def _inside(name: str, roots: list[str]) -> bool:
    """True if module ``name`` is one of ``roots`` or lies inside one of them."""
    return any(name == r or name.startswith(r + ".") for r in roots)


def _modules_to_save(model: Module, config: LoRAConfig | None) -> list[str]:
    """The names of the fully trained modules: those apply_lora recorded on the model, or
    (before apply_lora) those the config's ``modules_to_save`` entries match."""
    if hasattr(model, "_lora_originals"):
        return list(model._lora_originals)
    if config is None:
        return []
    return [
        n
        for n, _ in model.named_modules()
        if n and any(name_matches(n, e) for e in config.modules_to_save)
    ]


__all__ = [
    "PREFIX",
    "AdaptedLayer",
    "ManifestEntry",
    "adapted_layers",
    "adapter_manifest",
    "lora_state_dict",
]
