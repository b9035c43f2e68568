"""The package random generator and ``manual_seed``.

Every function in lora_np that draws random numbers takes ``rng: np.random.Generator |
None``. ``None`` means "use the package generator", which :func:`manual_seed` resets.
Same seed, same numbers, bit for bit.
"""

from __future__ import annotations

import numpy as np

from lora_np.checks import is_int

_GENERATOR: np.random.Generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the package generator to ``np.random.default_rng(seed)`` and return it."""
    global _GENERATOR
    if not is_int(seed):
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


def random_orthonormal(
    rows: int, k: int, rng: np.random.Generator, avoid: np.ndarray | None = None
) -> np.ndarray:
    """k orthonormal columns spanning a uniformly random k-dim subspace of R^rows.

    QR of a Gaussian matrix; multiplying each column by the sign of R's diagonal makes the
    result Haar-distributed rather than dependent on the QR convention. With a unit vector
    ``avoid``, the Gaussian columns are first projected onto its orthogonal complement,
    so the subspace is uniformly random among those orthogonal to ``avoid``.
    """
    G = rng.standard_normal((rows, k))
    if avoid is not None:
        G -= np.outer(avoid, avoid @ G)
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))
