"""What the experiments and notebooks share: quick mode, JSON-able results, intervals."""

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


#: What an accuracy can be: intervals of accuracies are clipped to it.
ACCURACY_BOUNDS = (0.0, 1.0)

#: Two-sided 95% quantiles of Student's t distribution, t_{0.975}(df), for df = 1 … 30.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def mean_interval(values: Any, bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean over seeds with a 95% confidence interval: ``{"mean", "std", "ci", "n"}``.

    The interval is Student's: mean ± t_{0.975}(n − 1) · s / √n, with s the sample
    standard deviation (ddof = 1) — with 5 seeds, t = 2.776, so the interval is
    ± 1.24 s. ``std`` is s. None entries (diverged runs) are left out; with fewer than
    two values left, ``ci`` is ``[None, None]``. ``bounds`` clips the interval to the
    values the quantity can take (``(0, 1)`` for an accuracy).
    """
    kept = np.array([v for v in values if v is not None], dtype=float)
    n = int(kept.size)
    if n == 0:
        return {"mean": None, "std": None, "ci": [None, None], "n": 0}
    mean = float(kept.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci": [None, None], "n": n}
    std = float(kept.std(ddof=1))
    t = _T_975[n - 2] if n - 1 <= len(_T_975) else 1.96  # df > 30: the normal quantile
    half = t * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "std": std, "ci": [lo, hi], "n": n}


def format_interval(summary: dict[str, Any], digits: int = 3, percent: bool = False) -> str:
    """``"0.951 [0.940, 0.962]"`` from a :func:`mean_interval` (or any dict with
    ``mean`` and ``ci``); ``percent=True`` writes ``"95.1% [94.0, 96.2]"``."""
    mean, (lo, hi) = summary["mean"], summary["ci"]
    if mean is None:
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    head = f"{scale * mean:.{digits}f}{unit}"
    if lo is None or hi is None:
        return head
    return f"{head} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
