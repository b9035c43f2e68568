"""What the experiments and notebooks share: quick mode, and JSON-able results."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

#: The environment variable that puts notebooks in quick mode (``1``) or not (``0``).
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


def jsonable(value: Any) -> Any:
    """A copy of ``value`` made of dict/list/str/int/float/bool/None only.

    NumPy scalars and arrays become Python numbers and lists; NaN and ±inf become None
    (strict JSON has no NaN, and a diverged run is "no value", not a number).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in an experiment result: {value!r}")


def nan_array(values: Any) -> np.ndarray:
    """Inverse of :func:`jsonable` for plotting: a float array with None read as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def nan_grid(rows: Any) -> np.ndarray:
    """A 2-D float array from a list of lists that may hold None (read as NaN)."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
