"""Model surgery: put LoRA into a model, choose what trains, merge, disable, remove.

:func:`apply_lora` walks ``model.named_modules()``, replaces each targeted
:class:`~lora_np.nn.Linear` by a :class:`~lora_np.lora.LoRALinear` wrapping it
(in place: the wrapped Linear is the very same object) and then freezes everything except
the adapters. The names follow PEFT where PEFT has one (``merge_and_unload``,
``disable_adapter``, ``modules_to_save``, ``print_trainable_parameters``).

The model remembers its config as ``model.lora_config`` (used by
:func:`lora_np.lora.save_adapter` and :func:`mark_only_lora_as_trainable`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from lora_np.checks import is_number
from lora_np.lora.config import ALL_LINEAR, BIAS_MODES, LoRAConfig, name_matches
from lora_np.lora.layer import LoRALinear, check_layer_rank
from lora_np.lora.variants import trainable_parameters
from lora_np.nn import Linear, Module, Parameter, linear_layers


def lora_layers(model: Module) -> list[tuple[str, LoRALinear]]:
    """(name, layer) for every LoRALinear in ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def _replace(model: Module, name: str, new: Module) -> None:
    """Put ``new`` at dotted path ``name``, keeping the parent's child order (Sequential)."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)  # Module keeps the child's place


def _match_names(model: Module, entries: Any, what: str) -> list[str]:
    """Module names that list entries (exact or dotted suffix) name; unmatched is an error."""
    names = [n for n, _ in model.named_modules() if n]
    found: list[str] = []
    for entry in entries:
        hits = [n for n in names if name_matches(n, entry)]
        if not hits:
            raise ValueError(
                f"{what} entry {entry!r} matches no module of {type(model).__name__}; "
                f"its modules are {names}"
            )
        found.extend(h for h in hits if h not in found)
    return found


def find_target_names(model: Module, config: LoRAConfig) -> list[str]:
    """The names of the Linear layers that ``config.target_modules`` selects, in order.

    Raises a ValueError naming the Linear layers that exist when a target matches none,
    and a TypeError when a listed name is not a Linear.
    """
    existing = lora_layers(model)
    if existing:
        raise ValueError(
            f"the model already has LoRA layers {[n for n, _ in existing]}; call unload() "
            "or merge_and_unload() first"
        )
    linears = linear_layers(model)
    linear_names = [n for n, _ in linears]
    kinds = dict(model.named_modules())
    targets = config.target_modules
    if targets == ALL_LINEAR:
        chosen = linear_names[:-1]  # every Linear except the output layer (as PEFT)
        if not chosen:
            raise ValueError(
                f"target_modules='all-linear' leaves out the output layer, and the model has "
                f"only the Linear layers {linear_names}; name the layer explicitly"
            )
    elif isinstance(targets, str):
        chosen = [n for n in linear_names if re.fullmatch(targets, n)]
        if not chosen:
            raise ValueError(
                f"target_modules regex {targets!r} matches no Linear layer (it must match the "
                f"full name); the Linear layers are {linear_names}"
            )
    else:
        chosen = _match_names(model, targets, "target_modules")
        for name in chosen:
            if not isinstance(kinds[name], Linear):
                raise TypeError(
                    f"target_modules selects {name!r}, a {type(kinds[name]).__name__}; LoRA "
                    f"wraps Linear layers only. The Linear layers are {linear_names}"
                )
    if "" in chosen:
        raise ValueError("the model itself is a Linear: wrap it with LoRALinear.from_linear")
    return [n for n in linear_names if n in chosen]


def apply_lora(
    model: Module, config: LoRAConfig, *, rng: np.random.Generator | None = None
) -> Module:
    """Replace the targeted Linear layers by LoRALinear in place; return ``model``.

    Each layer gets its own options from the config (:meth:`LoRAConfig.options_for`: the
    config's, with ``rank_pattern``/``alpha_pattern`` applied). Everything is checked
    before the model is touched. Afterwards only the adapters (plus biases per
    ``config.bias`` and ``modules_to_save``) train.
    """
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"apply_lora expects a LoRAConfig, got {type(config).__name__}")
    if not isinstance(model, Module):
        raise TypeError(f"apply_lora expects a lora_np Module, got {type(model).__name__}")
    targets = find_target_names(model, config)
    modules = dict(model.named_modules())
    plan = []
    for name in targets:
        linear = modules[name]
        try:
            options = config.options_for(name)
            check_layer_rank(options, linear.in_features, linear.out_features)
        except (TypeError, ValueError) as err:
            raise type(err)(f"layer {name!r}: {err}") from err
        plan.append((name, linear, options))
    to_save = _match_names(model, config.modules_to_save, "modules_to_save")
    overlap = sorted(set(to_save) & set(targets))
    if overlap:
        raise ValueError(f"{overlap} are both LoRA targets and modules_to_save; choose one")

    for name, linear, options in plan:
        _replace(model, name, LoRALinear.from_linear(linear, options=options, rng=rng))
    model.lora_config = config
    # the modules_to_save as they were, so that disable_adapter() can show the base model
    model._lora_originals = {
        name: {p: arr.copy() for p, arr in modules[name].state_dict().items()} for name in to_save
    }
    mark_only_lora_as_trainable(model, config.bias)
    return model


def mark_only_lora_as_trainable(model: Module, bias: str = "none") -> Module:
    """Freeze every parameter except the adapters (loralib's name).

    Trainable afterwards: each LoRALinear's adapter as its variant lists it (B, A unless
    LoRA-FA, DoRA's magnitude); biases per ``bias`` ("none", "all": every bias,
    "lora_only": the adapted layers'); all parameters of the config's ``modules_to_save``.
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be 'none', 'all' or 'lora_only', got {bias!r}")
    for p in model.parameters():
        p.requires_grad = False
    for _, layer in lora_layers(model):
        for p in trainable_parameters(layer):
            p.requires_grad = True
        if bias == "lora_only" and layer.linear.bias is not None:
            layer.linear.bias.requires_grad = True
    if bias == "all":
        for module in model.modules():
            b = module._parameters.get("bias")
            if b is not None:
                b.requires_grad = True
    for name in _modules_to_save(model):
        model.get_submodule(name).requires_grad_(True)
    return model


def _modules_to_save(model: Module) -> list[str]:
    return list(getattr(model, "_lora_originals", {}))


def count_parameters(model: Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameter entries."""
    trainable = total = 0
    for p in model.parameters():
        total += p.size
        if p.requires_grad:
            trainable += p.size
    return trainable, total


def print_trainable_parameters(model: Module) -> None:
    """Print the counts in PEFT's words.

    ``trainable params: 3,072 || all params: 27,786 || trainable%: 11.0559``
    """
    trainable, total = count_parameters(model)
    share = 100.0 * trainable / total if total else 0.0
    print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {share:.4f}")


def _forget_lora(model: Module) -> None:
    for attr in ("lora_config", "_lora_originals"):
        if attr in model.__dict__:
            delattr(model, attr)


def merge_and_unload(model: Module, safe: bool = False) -> Module:
    """Fold every adapter into its Linear and put the plain Linear back; return ``model``.

    The result has the same outputs (up to rounding) and no LoRA left. With ``safe=True``
    all merged weights are computed and checked for NaN/inf before any is written.
    """
    layers = lora_layers(model)
    staged = []
    for name, layer in layers:
        new = None if layer.merged else layer.merged_weight()
        if safe and new is not None and not np.all(np.isfinite(new)):
            raise ValueError(
                f"merge_and_unload(safe=True): merging {name!r} gives non-finite weights "
                "(NaN or inf); the model was not changed"
            )
        staged.append((name, layer, new))
    for name, layer, new in staged:
        if new is not None:
            layer.linear.weight.data = new.astype(layer.linear.weight.dtype)
        _replace(model, name, layer.linear)
    _forget_lora(model)
    return model


def unload(model: Module) -> Module:
    """Remove the adapters without merging: the base model comes back (PEFT's ``unload``).

    Merged layers are unmerged first. Two caveats, as in PEFT: after PiSSA the base weight
    is the residual W − s·B·A, and ``modules_to_save`` keep their trained values.
    """
    for name, layer in lora_layers(model):
        if layer.merged:
            layer.unmerge()
        _replace(model, name, layer.linear)
    _forget_lora(model)
    return model


@contextlib.contextmanager
def disable_adapter(model: Module) -> Iterator[Module]:
    """Within the block the model computes what the base model computed.

    Adapters are bypassed and ``modules_to_save`` temporarily hold their original values;
    everything is restored on exit, even after an error.
    """
    layers = lora_layers(model)
    merged = [n for n, layer in layers if layer.merged]
    if merged:
        raise RuntimeError(f"disable_adapter: layers {merged} are merged; unmerge() them first")
    swapped: list[tuple[Parameter, np.ndarray]] = []
    try:
        for _, layer in layers:
            layer.disabled = True
        for name, originals in getattr(model, "_lora_originals", {}).items():
            params = dict(model.get_submodule(name).named_parameters())
            for key, array in originals.items():
                swapped.append((params[key], params[key].data))
                params[key].data = array
        yield model
    finally:
        for _, layer in layers:
            layer.disabled = False
        for param, data in swapped:
            param.data = data


def lora_plus_param_groups(model: Module, lr: float, ratio: float = 16.0) -> list[dict[str, Any]]:
    """LoRA+ (Hayou et al. 2024): B learns ``ratio`` times faster than A.

    Returns optimizer parameter groups ``[{"params": [...], "lr": lr}, {"params": [B's],
    "lr": ratio * lr}]`` over the trainable parameters (A's, DoRA magnitudes, trainable
    biases and modules_to_save go in the first group). Empty groups are left out.
    """
    for label, value in (("lr", lr), ("ratio", ratio)):
        if not is_number(value) or not value > 0:
            raise ValueError(f"lora_plus_param_groups: {label} must be a number > 0, got {value!r}")
    b_ids = {id(layer.lora_b.weight) for _, layer in lora_layers(model)}
    fast = [p for p in model.parameters() if p.requires_grad and id(p) in b_ids]
    slow = [p for p in model.parameters() if p.requires_grad and id(p) not in b_ids]
    groups = [{"params": slow, "lr": float(lr)}, {"params": fast, "lr": float(lr) * ratio}]
    return [g for g in groups if g["params"]]
