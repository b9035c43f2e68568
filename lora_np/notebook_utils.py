"""Small helpers the notebooks share (the notebooks hold no logic of their own)."""

from __future__ import annotations

import os

QUICK_ENV = "LORA_NP_QUICK"


def quick_mode() -> bool:
    """True when the environment variable ``LORA_NP_QUICK`` is set to 1 (or true/yes).

    Notebooks read it to shrink steps and grids (``python -m lora_np notebooks --quick``
    and the test suite set it); quick mode never changes what a notebook claims.
    """
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{QUICK_ENV} must be 1/true/yes or 0/false/no, got {value!r}")
