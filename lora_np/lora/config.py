"""LoRAConfig: which layers get an adapter and how, validated when it is made.

Field names follow the LoRA paper and lora_np's layer (``rank``, ``alpha``); the PEFT
names (``r``, ``lora_alpha``, ``lora_dropout``) appear only in the file format, see
:mod:`lora_np.lora.io`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lora_np.lora.layer import INIT_METHODS

BIAS_MODES = ("none", "all", "lora_only")
ALL_LINEAR = "all-linear"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


@dataclass
class LoRAConfig:
    """Settings for :func:`lora_np.lora.apply_lora`.

    Attributes:
        rank: r for every targeted layer (unless ``rank_pattern`` says otherwise).
        alpha: α; each layer's update is scaled by α/r (α/√r with ``use_rslora``).
        dropout: dropout probability on the adapter path, in [0, 1).
        target_modules: which Linear layers get an adapter (names as ``named_modules``
            gives them):

            * a list/tuple of names — a name matches a module whose full name equals it or
              ends with ``"." + name`` (as PEFT matches); every entry must match a Linear;
            * a string — a regular expression that must match the *full* name
              (``re.fullmatch``, as PEFT);
            * ``"all-linear"`` — every Linear except the output layer (the last Linear in
              module order), as PEFT leaves out a model's output head;
            * ``None`` is an error (there is no architecture table to guess from): say
              which layers you want.
        bias: which biases train — ``"none"``, ``"all"``, or ``"lora_only"`` (the biases
            of the layers that have an adapter).
        modules_to_save: names (matched like ``target_modules`` lists) of modules that
            train fully and are saved with the adapter, e.g. a new classifier head.
        init: ``"kaiming"`` (the seed's), ``"gaussian"`` (PEFT's), ``"pissa"``.
        use_rslora, use_dora: the variants (see :class:`lora_np.lora.LoRALinear`).
        dora_detach_norm: DoRA §4.3, treat the norm as a constant in backward.
        freeze_a: LoRA-FA, A stays at its random init.
        rank_pattern, alpha_pattern: per-layer overrides ``{pattern: value}``; a pattern
            matches a module name that equals it or ends with ``"." + pattern`` (a regular
            expression, as PEFT); the first matching pattern wins.
    """

    rank: int
    alpha: float
    dropout: float = 0.0
    target_modules: list[str] | tuple[str, ...] | str | None = None
    bias: str = "none"
    modules_to_save: list[str] | tuple[str, ...] = ()
    init: str = "kaiming"
    use_rslora: bool = False
    use_dora: bool = False
    dora_detach_norm: bool = True
    freeze_a: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.rank, (int, np.integer)) or isinstance(self.rank, bool):
            raise TypeError(f"LoRAConfig.rank must be an int, got {self.rank!r}")
        if self.rank < 1:
            raise ValueError(f"LoRAConfig.rank must be >= 1, got {self.rank}")
        if not _is_number(self.alpha) or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"LoRAConfig.alpha must be a finite number > 0, got {self.alpha!r}")
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}")
        self._check_targets()
        if self.bias not in BIAS_MODES:
            raise ValueError(f"LoRAConfig.bias must be one of {BIAS_MODES}, got {self.bias!r}")
        if isinstance(self.modules_to_save, str) or not all(
            isinstance(n, str) and n for n in self.modules_to_save
        ):
            raise TypeError(
                "LoRAConfig.modules_to_save must be a list of module names, got "
                f"{self.modules_to_save!r}"
            )
        self.modules_to_save = tuple(self.modules_to_save)
        if self.init not in INIT_METHODS:
            raise ValueError(f"LoRAConfig.init must be one of {INIT_METHODS}, got {self.init!r}")
        for flag in ("use_rslora", "use_dora", "dora_detach_norm", "freeze_a"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"LoRAConfig.{flag} must be a bool, got {getattr(self, flag)!r}")
        self._check_pattern("rank_pattern", lambda v: isinstance(v, int) and v >= 1, "int >= 1")
        self._check_pattern(
            "alpha_pattern", lambda v: _is_number(v) and math.isfinite(v) and v > 0, "number > 0"
        )

    def _check_targets(self) -> None:
        t = self.target_modules
        if t is None:
            raise ValueError(
                "LoRAConfig.target_modules is None: say which Linear layers get an adapter — "
                "a list of names (e.g. ['0', '2']), a regular expression, or 'all-linear' "
                "(every Linear but the output layer)"
            )
        if isinstance(t, str):
            if t != ALL_LINEAR:
                try:
                    re.compile(t)
                except re.error as err:
                    raise ValueError(
                        f"LoRAConfig.target_modules {t!r} is not a valid regular expression: {err}"
                    ) from err
            return
        if not isinstance(t, (list, tuple, set)) or not t:
            raise TypeError(
                "LoRAConfig.target_modules must be a non-empty list of names, a regular "
                f"expression or 'all-linear'; got {t!r}"
            )
        if not all(isinstance(n, str) and n for n in t):
            raise TypeError(f"LoRAConfig.target_modules entries must be non-empty strings: {t!r}")
        self.target_modules = sorted(t) if isinstance(t, set) else list(t)

    def _check_pattern(self, name: str, ok: Any, expected: str) -> None:
        pattern = getattr(self, name)
        if not isinstance(pattern, dict):
            raise TypeError(f"LoRAConfig.{name} must be a dict, got {type(pattern).__name__}")
        for key, value in pattern.items():
            if not isinstance(key, str):
                raise TypeError(f"LoRAConfig.{name} keys must be strings, got {key!r}")
            try:
                re.compile(key)
            except re.error as err:
                raise ValueError(f"LoRAConfig.{name} key {key!r} is not a regex: {err}") from err
            if isinstance(value, bool) or not ok(value):
                raise ValueError(f"LoRAConfig.{name}[{key!r}] must be an {expected}, got {value!r}")


def name_matches(name: str, target: str) -> bool:
    """A list entry ``target`` matches module ``name`` if equal or a dotted suffix (PEFT)."""
    return name == target or name.endswith("." + target)


def pattern_value(name: str, pattern: dict[str, Any], default: Any) -> Any:
    """The value of the first key of ``pattern`` that matches ``name`` as a regex on the
    whole name or on a dotted suffix of it (PEFT's rank_pattern rule); else ``default``."""
    for key, value in pattern.items():
        if re.fullmatch(rf"(?:.*\.)?(?:{key})", name):
            return value
    return default
