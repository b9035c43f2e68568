"""LoRAConfig: which layers get an adapter and how, validated when it is made.

A config is the per-layer :class:`~lora_np.lora.options.LoRAOptions` (rank, alpha,
dropout, init, the variants) plus which layers they apply to; :meth:`LoRAConfig.options_for`
gives one layer its own options (after ``rank_pattern`` / ``alpha_pattern``). Field names
follow the LoRA paper and lora_np's layer (``rank``, ``alpha``); the PEFT names (``r``,
``lora_alpha``, ``lora_dropout``) appear only in the file format, see :mod:`lora_np.lora.io`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from lora_np.checks import is_finite_positive, is_positive_int
from lora_np.lora.options import LoRAOptions

BIAS_MODES = ("none", "all", "lora_only")
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoRAConfig(LoRAOptions):
    """Settings for :func:`lora_np.lora.apply_lora`: the options of
    :class:`~lora_np.lora.options.LoRAOptions` (``rank``, ``alpha``, ``dropout``, ``init``,
    ``use_rslora``, ``use_dora``, ``dora_detach_norm``, ``freeze_a``) for every targeted
    layer, and:

    Attributes:
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
            train fully and are saved with the adapter, e.g. a new classifier head; None
            (PEFT's default) is none.
        rank_pattern, alpha_pattern: per-layer overrides ``{pattern: value}``; a pattern
            matches a module name that equals it or ends with ``"." + pattern`` (a regular
            expression, as PEFT); the first matching pattern wins.
    """

    target_modules: list[str] | tuple[str, ...] | str | None = None
    bias: str = "none"
    modules_to_save: tuple[str, ...] | None = ()
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_targets()
        if self.bias not in BIAS_MODES:
            raise ValueError(f"LoRAConfig.bias must be one of {BIAS_MODES}, got {self.bias!r}")
        if self.modules_to_save is None:
            object.__setattr__(self, "modules_to_save", ())
        if isinstance(self.modules_to_save, str) or not all(
            isinstance(n, str) and n for n in self.modules_to_save
        ):
            raise TypeError(
                "LoRAConfig.modules_to_save must be a list of module names, got "
                f"{self.modules_to_save!r}"
            )
        object.__setattr__(self, "modules_to_save", tuple(self.modules_to_save))
        self._check_pattern("rank_pattern", is_positive_int, "int >= 1")
        self._check_pattern("alpha_pattern", is_finite_positive, "number > 0")

    def options_for(self, name: str) -> LoRAOptions:
        """The options of the layer named ``name``: this config's, with its rank and alpha
        from ``rank_pattern`` / ``alpha_pattern`` where a pattern matches the name."""
        own = {f.name: getattr(self, f.name) for f in fields(LoRAOptions)}
        own["rank"] = pattern_value(name, self.rank_pattern, self.rank)
        own["alpha"] = pattern_value(name, self.alpha_pattern, self.alpha)
        return LoRAOptions(**own)

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
        object.__setattr__(self, "target_modules", sorted(t) if isinstance(t, set) else list(t))

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
            if not ok(value):
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
