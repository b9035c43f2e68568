"""Small helpers the experiment modules share: progress bars and JSON-able results."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(
    items: Iterable[T], *, enabled: bool, desc: str, total: int | None = None
) -> Iterator[T]:
    """``tqdm.auto`` over ``items`` when ``enabled``, the plain iterable otherwise."""
    if not enabled:
        return iter(items)
    return iter(tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True))


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
