"""Adapters on disk, in PEFT's format: what is trained here loads in PyTorch, and back.

A directory holds two files:

* ``adapter_config.json`` — ``peft_type: "LORA"``, ``r``, ``lora_alpha``, ``lora_dropout``,
  ``target_modules`` (the exact names adapted: a list, or a regular expression where a
  list would catch more), ``bias``, ``use_rslora``, ``use_dora``,
  ``init_lora_weights``, ``rank_pattern``, ``alpha_pattern``, ``modules_to_save``;
* ``adapter_model.safetensors`` — the tensors, written with the ``safetensors`` library
  (a JSON header and raw little-endian arrays: no pickle, nothing executable). PEFT's keys,
  for a module at dotted path ``p``:

  ======================================================  ===========  =====================
  key                                                     shape        lora_np parameter
  ======================================================  ===========  =====================
  ``base_model.model.<p>.lora_A.weight``                  (r, in)      ``<p>.lora_a.weight``
  ``base_model.model.<p>.lora_B.weight``                  (out, r)     ``<p>.lora_b.weight``
  ``base_model.model.<p>.lora_magnitude_vector`` (DoRA)   (out,)       ``<p>.magnitude``
  ``base_model.model.<p>.base_layer.bias`` (bias modes)   (out,)       ``<p>.linear.bias``
  ``base_model.model.<q>.<param>`` (other biases,         as is        ``<q>.<param>``
  modules_to_save)
  ======================================================  ===========  =====================

A folder is replaced whole or not at all. :func:`save_adapter` writes both files into a
hidden sibling folder ``.<name>.partial``, syncs them, renames it ``.<name>.new`` (now known
complete), renames the old folder ``.<name>.old``, renames ``.<name>.new`` to the folder's
name and removes ``.<name>.old`` (:func:`lora_np.files.replace_folder`). Any other files in
the old folder are carried over. A failure or a crash at any point leaves the old adapter
loadable, or the new one: the only moment without a folder of that name lies between the
two last renames, and then ``.<name>.new`` is complete, so :func:`load_adapter` reads it (and
the next save finishes the swap). Both files are read from one opened folder, so a save
running meanwhile cannot hand a reader an old config with new weights.

:func:`load_adapter` checks everything — the config, every key, every shape — before it
changes the model, and refuses a model whose LoRA layers are merged.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lora_np.files import read_folder, replace_folder, write_atomic
from lora_np.lora.config import LoRAConfig
from lora_np.lora.manifest import adapter_manifest
from lora_np.lora.model import apply_lora, lora_layers
from lora_np.nn import Module

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

# The fields of adapter_config.json that lora_np reads, and those that describe where an
# adapter came from or how PEFT runs it and change nothing it computes. Any other field
# is a PEFT option lora_np does not implement (fan_in_fan_out, layers_to_transform,
# lora_bias, ...): a config that sets one is refused, one that leaves it unset is fine.
_READ = {
    "peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora",
    "use_dora", "init_lora_weights", "rank_pattern", "alpha_pattern", "modules_to_save",
}  # fmt: skip
_METADATA = {
    "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
    "peft_version", "megatron_config", "megatron_core", "qalora_group_size", "runtime_config",
}  # fmt: skip
_INIT_TO_PEFT = {"kaiming": True, "gaussian": "gaussian", "pissa": "pissa"}
#: safetensors' dtype names (little-endian) that NumPy reads as they are; BF16 is widened
_NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip


# --------------------------------------------------------------------------- writing


def _most_common(values: list[Any]) -> Any:
    return Counter(values).most_common(1)[0][0]


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def adapter_tensors(model: Module) -> dict[str, np.ndarray]:
    """The adapter's arrays under PEFT's key names (what ``adapter_model.safetensors``
    holds): the tensors of :func:`~lora_np.lora.manifest.adapter_manifest`."""
    return {
        e.peft_key: np.ascontiguousarray(model.get_parameter(e.name).data)
        for e in adapter_manifest(model)
    }


def _names_catch_others(model: Module, names: list[str]) -> bool:
    """True if one of the adapted ``names``, read as PEFT reads a list entry, would also
    match another module of the model as it was before LoRA (a name ending in
    ``"." + name``); the insides of the LoRA layers do not count."""
    inside = tuple(f"{n}." for n in names)
    others = [m for m, _ in model.named_modules() if m and not m.startswith(inside)]
    return any(m.endswith(f".{n}") for m in others for n in names)


def adapter_config(model: Module) -> dict[str, Any]:
    """The ``adapter_config.json`` contents for ``model``'s adapters (PEFT's field names).

    ``target_modules`` lists the exact names adapted; per-layer ranks/alphas that differ
    from ``r``/``lora_alpha`` go to ``rank_pattern``/``alpha_pattern`` under their escaped
    full names, so PEFT resolves them to the same layers. A list entry (and a pattern key)
    also matches every module whose name ends in ``"." + entry``; where one of the names
    would thus catch another module too (``"0"`` catches ``"2.0"``), the names are written
    exactly: ``target_modules`` as a regular expression that only they match in full, the
    pattern keys anchored with ``^``.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("save_adapter: the model has no LoRA layers (call apply_lora first)")
    for flag in ("use_rslora", "use_dora"):
        values = {getattr(layer.options, flag) for _, layer in layers}
        if len(values) > 1:
            raise ValueError(
                f"save_adapter: layers disagree on {flag}; the PEFT format has one setting"
            )
    names = [name for name, _ in layers]
    ambiguous = _names_catch_others(model, names)
    key = (lambda n: "^" + re.escape(n)) if ambiguous else re.escape
    config = getattr(model, "lora_config", None)
    first = layers[0][1]
    r = config.rank if config is not None else _most_common([lyr.rank for _, lyr in layers])
    alpha = config.alpha if config is not None else _most_common([lyr.alpha for _, lyr in layers])
    return {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": None,
        "revision": None,
        "inference_mode": True,
        "r": int(r),
        "lora_alpha": _plain_number(alpha),
        "lora_dropout": first.options.dropout,
        "target_modules": "|".join(map(re.escape, names)) if ambiguous else names,
        "bias": config.bias if config is not None else "none",
        "use_rslora": first.options.use_rslora,
        "use_dora": first.options.use_dora,
        "init_lora_weights": _INIT_TO_PEFT[first.options.init],
        "rank_pattern": {key(n): lyr.rank for n, lyr in layers if lyr.rank != r},
        "alpha_pattern": {
            key(n): _plain_number(lyr.alpha) for n, lyr in layers if lyr.alpha != alpha
        },
        "modules_to_save": list(getattr(model, "_lora_originals", {})) or None,
        "fan_in_fan_out": False,
        "layers_to_transform": None,
        "layers_pattern": None,
    }


def save_adapter(model: Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``model``'s adapters to ``directory`` in PEFT's format; return the directory.

    Only what fine-tuning changed is written (see the module docstring for the keys). The
    folder is replaced whole or not at all; other files in it are kept. ``directory``
    must not be an existing file.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"save_adapter: {directory} is a file; an adapter is a folder (holding "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}): give a folder path"
        )
    config = adapter_config(model)
    tensors = adapter_tensors(model)
    from safetensors.numpy import save as save_safetensors  # loaded when an adapter is saved

    weights = save_safetensors(tensors)
    config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    with replace_folder(directory) as staging:
        write_atomic(staging / WEIGHTS_NAME, lambda f: f.write(weights), "wb")
        write_atomic(staging / CONFIG_NAME, lambda f: f.write(config_text), encoding="utf-8")
    return directory


# --------------------------------------------------------------------------- reading


def read_adapter_config(path: str | os.PathLike[str]) -> LoRAConfig:
    """Parse and check an ``adapter_config.json``; errors name the file and the field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no adapter config at {path}") from None
    return parse_adapter_config(data, path)


def parse_adapter_config(data: bytes, path: str | os.PathLike[str]) -> LoRAConfig:
    """The :class:`LoRAConfig` that the bytes of ``path`` (an ``adapter_config.json``)
    describe; errors name the file and the field."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("peft_type") != "LORA":
        raise ValueError(f"{path}: peft_type must be 'LORA', got {raw.get('peft_type')!r}")
    for key in ("r", "lora_alpha", "target_modules"):
        if key not in raw:
            raise ValueError(f"{path}: missing field {key!r}")
    for key, value in raw.items():
        if key not in _READ and key not in _METADATA and not _unset(value):
            raise ValueError(
                f"{path}: field {key!r} = {value!r} is a PEFT option lora_np does not "
                "implement (only an unset value, None, false or empty, can be loaded)"
            )
    init = raw.get("init_lora_weights", True)
    if init is True or init is False:
        init = "kaiming"  # the values are loaded from the file anyway
    elif isinstance(init, str) and init.startswith("pissa"):
        init = "pissa"
    elif init != "gaussian":
        raise ValueError(f"{path}: init_lora_weights = {init!r} is not supported by lora_np")
    try:
        return LoRAConfig(
            rank=raw["r"],
            alpha=raw["lora_alpha"],
            dropout=raw.get("lora_dropout", 0.0),
            target_modules=raw["target_modules"],
            bias=raw.get("bias", "none"),
            modules_to_save=tuple(raw.get("modules_to_save") or ()),
            init=init,
            use_rslora=raw.get("use_rslora", False),
            use_dora=raw.get("use_dora", False),
            rank_pattern=dict(raw.get("rank_pattern") or {}),
            alpha_pattern=dict(raw.get("alpha_pattern") or {}),
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err


def _unset(value: Any) -> bool:
    """PEFT's "option not used": None, False, or an empty list, dict or string (a 0 is a
    layer index, not False)."""
    return value is None or value is False or (isinstance(value, (list, dict, str)) and not value)


def read_adapter_tensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read ``adapter_model.safetensors``; a truncated or corrupt file is a ValueError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no adapter weights at {path}") from None
    return parse_adapter_tensors(data, path)


def parse_adapter_tensors(data: bytes, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays in the bytes of ``path`` (an ``adapter_model.safetensors``); a truncated or
    corrupt file is a ValueError naming it."""
    from safetensors import SafetensorError, deserialize  # loaded when an adapter is read

    try:
        views = deserialize(data)
    except (SafetensorError, ValueError, OverflowError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    tensors = {}
    for key, view in views:
        if view["dtype"] == "BF16":  # NumPy has no bfloat16: the top half of a float32
            bits = np.frombuffer(view["data"], dtype="<u2").astype(np.uint32) << 16
            tensors[key] = bits.view(np.float32).reshape(view["shape"])
        elif view["dtype"] in _NUMPY_DTYPES:
            dtype = np.dtype(_NUMPY_DTYPES[view["dtype"]])
            tensors[key] = np.frombuffer(view["data"], dtype=dtype).reshape(view["shape"])
        else:
            raise ValueError(f"{path}: key {key!r} has dtype {view['dtype']}, not a float")
    return tensors


def _read_adapter_folder(directory: Path) -> tuple[LoRAConfig, dict[str, np.ndarray], Path]:
    """The config and the tensors of the adapter in ``directory``, read from one folder
    (see the module docstring); also the folder they came from."""
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"load_adapter: {directory} is a file; an adapter is a folder holding "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    try:
        folder, files = read_folder(directory, (CONFIG_NAME, WEIGHTS_NAME))
    except FileNotFoundError as err:
        what = "config" if Path(err.filename).name == CONFIG_NAME else "weights"
        raise FileNotFoundError(f"no adapter {what} at {err.filename}") from None
    config = parse_adapter_config(files[CONFIG_NAME], folder / CONFIG_NAME)
    tensors = parse_adapter_tensors(files[WEIGHTS_NAME], folder / WEIGHTS_NAME)
    return config, tensors, folder


def _expected_shapes(model: Module, config: LoRAConfig) -> dict[str, tuple[str, tuple]]:
    """PEFT key -> (lora_np parameter name, shape) that the adapter must provide: the
    manifest of the model's LoRA layers, or of those the config would create."""
    existing = lora_layers(model)
    if existing:
        _check_existing_layers(existing, config)
    return {e.peft_key: (e.name, e.shape) for e in adapter_manifest(model, config)}


def _check_existing_layers(layers: list[tuple[str, Any]], config: LoRAConfig) -> None:
    """Loading into LoRA layers that exist: they must be the ones the config describes,
    and made with PiSSA exactly when the adapter was (PiSSA's base weight is the residual
    W − B₀A₀, so its adapters are not interchangeable with plain ones)."""
    for name, layer in layers:
        want = config.options_for(name)
        if (layer.options.init == "pissa") != (want.init == "pissa"):
            raise ValueError(
                f"the model's LoRA layer {name!r} has init={layer.options.init!r}, the "
                f"adapter has init={want.init!r}: a PiSSA adapter needs PiSSA layers (whose "
                "base weight is the residual), and a plain one plain layers"
            )
        for attr in ("rank", "alpha", "use_rslora", "use_dora"):
            have, value = getattr(layer.options, attr), getattr(want, attr)
            if have != value:
                raise ValueError(
                    f"the model's LoRA layer {name!r} has {attr}={have!r}, "
                    f"the adapter has {value!r}"
                )


def load_adapter(model: Module, directory: str | os.PathLike[str]) -> Module:
    """Load an adapter saved by :func:`save_adapter` or by PEFT's ``save_pretrained``.

    If the model has no LoRA layers yet, they are created from the saved config (as
    :func:`apply_lora` would), then the saved arrays are copied in. Nothing is changed
    unless the whole adapter checks out: a missing or wrong-shaped key, an unexpected key,
    a wrong ``peft_type``, a corrupt or truncated file each raise an error naming the file
    (and the key). A model with merged LoRA layers is refused (RuntimeError): the values
    loaded into a merged layer would not be used.
    """
    merged = [name for name, layer in lora_layers(model) if layer.merged]
    if merged:
        raise RuntimeError(
            f"load_adapter: the model's LoRA layers {merged} are merged (their adapters are "
            "folded into the weights), so new adapter values would not be used; unmerge() "
            "them first, or load into the model before merging"
        )
    config, tensors, folder = _read_adapter_folder(Path(directory))
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    try:
        expected = _expected_shapes(model, config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_path}: does not fit this model: {err}") from err
    # PEFT also writes the inner copies of modules_to_save when bias="all"; they duplicate
    # the plain keys, so they are skipped.
    ignored = re.compile(r".*\.(modules_to_save|original_module)\..*")
    for key in sorted(set(tensors) - set(expected)):
        if not ignored.fullmatch(key):
            raise ValueError(
                f"{weights_path}: unexpected key {key!r} (this model's adapter has "
                f"{sorted(expected)})"
            )
    for key, (_, shape) in expected.items():
        if key not in tensors:
            raise ValueError(f"{weights_path}: missing key {key!r} (expected shape {shape})")
        array = tensors[key]
        if tuple(array.shape) != tuple(shape):
            raise ValueError(
                f"{weights_path}: key {key!r} has shape {tuple(array.shape)}, the model "
                f"needs {tuple(shape)}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{weights_path}: key {key!r} has dtype {array.dtype}, not float")

    if not lora_layers(model):
        apply_lora(model, config)
    params = dict(model.named_parameters())
    for key, (name, _) in expected.items():
        params[name].data = tensors[key].astype(params[name].dtype)
    return model
