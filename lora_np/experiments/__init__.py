"""The experiments behind LoRA, reproduced on a toy MLP: one module per experiment.

Every experiment module provides the same three functions:

* ``run(quick=False, seed=0, progress=True) -> dict`` — does the work and returns plain
  JSON-able results (lists, floats, ints, str; accuracies as fractions in [0, 1]). Same
  seed, same dict. ``quick=True`` shrinks steps, seeds and grids, never the claim.
* ``plot(result) -> matplotlib.figure.Figure`` — draws the figure from the dict alone, so
  a saved ``.json`` can be re-plotted without re-running anything.
* ``summary(result) -> str`` — the one-line headline that ``reproduce`` prints.

:data:`EXPERIMENTS` maps each experiment's name to its module path. Modules are imported
only when asked for (:func:`load`), so listing the experiments costs nothing.
``python -m lora_np reproduce`` (see :mod:`lora_np.cli.reproduce`) runs them in this
order. :func:`quick_mode` tells a notebook whether to run small.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lora_np.experiments.common import QUICK_ENV, quick_mode

EXPERIMENTS: dict[str, str] = {
    "gradcheck_eps": "lora_np.experiments.gradcheck_eps",
    "intrinsic_dimension": "lora_np.experiments.intrinsic_dimension",
    "rank_sweep": "lora_np.experiments.rank_sweep",
    "alpha_sweep": "lora_np.experiments.alpha_sweep",
    "subspace_similarity": "lora_np.experiments.subspace_similarity",
    "variants": "lora_np.experiments.variants",
    "tiny_lm": "lora_np.experiments.tiny_lm",
}

REQUIRED_FUNCTIONS = ("run", "plot", "summary")


def names() -> list[str]:
    """The registered experiment names, in the order ``reproduce`` runs them."""
    return list(EXPERIMENTS)


def load(name: str) -> ModuleType:
    """Import and return the module of experiment ``name``.

    Raises ValueError for an unknown name (listing the known ones) and TypeError if the
    module lacks one of ``run``, ``plot``, ``summary``.
    """
    if not isinstance(name, str):
        raise TypeError(f"experiment name must be a str, got {type(name).__name__}")
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {names()}")
    module = importlib.import_module(EXPERIMENTS[name])
    missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise TypeError(f"experiment module {module.__name__} does not define {missing}")
    return module


__all__ = ["EXPERIMENTS", "QUICK_ENV", "load", "names", "quick_mode"]
