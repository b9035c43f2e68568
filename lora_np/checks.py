"""What counts as an int and as a number when lora_np checks an argument.

Python's ``bool`` is a subclass of ``int`` (``True == 1``), so ``isinstance(True, int)``
holds; a rank, a step count or a learning rate given as ``True`` is almost certainly a
mistake, so lora_np's argument checks use these two predicates, which refuse bools and
accept NumPy's scalar types as well as Python's. Each public function raises its own
error with its own argument's name; these only answer "is it an int / a number?".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer, False for a bool (or anything else)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for a real Python or NumPy number (int or float), False for a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_positive_int(value: Any) -> bool:
    """True for an int (see :func:`is_int`) that is at least 1."""
    return is_int(value) and value >= 1


def is_finite_positive(value: Any) -> bool:
    """True for a number (see :func:`is_number`) that is finite and > 0."""
    return is_number(value) and math.isfinite(value) and value > 0
