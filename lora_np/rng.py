"""The package random generator and ``manual_seed``.

Every function in lora_np that draws random numbers takes ``rng: np.random.Generator |
None``. ``None`` means "use the package generator", which :func:`manual_seed` resets.
Same seed, same numbers, bit for bit.
"""

from __future__ import annotations

import numpy as np

_GENERATOR: np.random.Generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the package generator to ``np.random.default_rng(seed)`` and return it."""
    global _GENERATOR
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed expects an int seed, got {type(seed).__name__}")
    _GENERATOR = np.random.default_rng(int(seed))
    return _GENERATOR


def get_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """Return ``rng`` if given, else the package generator set by :func:`manual_seed`."""
    if rng is None:
        return _GENERATOR
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng
