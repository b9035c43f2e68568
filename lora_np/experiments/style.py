"""One look for every figure: sizes, fonts, colours and a few drawing helpers.

Figures are made with :class:`matplotlib.figure.Figure` directly rather than through
``pyplot``: no global figure list to leak, no backend needed to draw, and ``savefig``
renders with Agg. Notebooks display the returned Figure as usual.
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

# One colour per idea, used by every experiment so a reader learns them once.
COLORS: dict[str, str] = {
    "lora": "#1f77b4",  # LoRA (α/r scaling)
    "rslora": "#d62728",  # rsLoRA (α/√r scaling)
    "full": "#2ca02c",  # full fine-tuning
    "baseline": "#7f7f7f",  # references: before fine-tuning, random, ...
    "float32": "#ff7f0e",
    "float64": "#1f77b4",
    "highlight": "#9467bd",  # the planted rank, a chosen ε, ...
    "digits": "#8c564b",
}

RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}

PANEL_SIZE = (4.6, 3.6)  # inches per subplot


def figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    title: str | None = None,
    panel_size: tuple[float, float] = PANEL_SIZE,
    **kwargs: Any,
):
    """A Figure with an ``nrows × ncols`` grid of axes in the shared style.

    ``panel_size`` is (width, height) in inches per subplot. Returns ``(fig, axes)``;
    ``axes`` is always a 2-D array (``squeeze=False``) so callers
    index it the same way whatever the grid. Extra keyword arguments go to ``subplots``.
    """
    if nrows < 1 or ncols < 1:
        raise ValueError(f"figure needs at least one row and column, got {nrows}×{ncols}")
    with mpl.rc_context(RC):
        fig = Figure(
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows + (0.4 if title else 0.0)),
            layout="constrained",
        )
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
        if title:
            fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


def styled(function):
    """Decorator: run a ``plot`` function inside the shared rc settings.

    Artists take most of their look from rcParams when they are created, so the
    whole drawing (not only the Figure construction) must happen inside the context.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(RC):
            return function(*args, **kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__qualname__ = function.__qualname__
    wrapper.__doc__ = function.__doc__
    wrapper.__wrapped__ = function
    return wrapper


def note(ax: Any, text: str, loc: str = "lower right") -> None:
    """A small boxed caption inside the axes (for honest remarks on what the panel shows)."""
    positions = {
        "lower right": (0.98, 0.03, "right", "bottom"),
        "lower left": (0.02, 0.03, "left", "bottom"),
        "upper right": (0.98, 0.97, "right", "top"),
        "upper left": (0.02, 0.97, "left", "top"),
    }
    if loc not in positions:
        raise ValueError(f"note: loc must be one of {sorted(positions)}, got {loc!r}")
    x, y, ha, va = positions[loc]
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha=ha,
        va=va,
        fontsize=8,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "alpha": 0.85, "lw": 0.5},
    )


def rank_colors(n: int) -> list[Any]:
    """``n`` colours from light to dark, for curves indexed by a growing rank."""
    cmap = mpl.colormaps["plasma"]
    return [cmap(0.85 * i / max(n - 1, 1)) for i in range(n)]


def smooth(values: Any, window: int = 10) -> Any:
    """A trailing moving average (the first points average what exists so far)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    cumulative = np.cumsum(array)
    out = np.empty_like(array)
    for i in range(len(array)):
        start = max(0, i - window + 1)
        out[i] = (cumulative[i] - (cumulative[start - 1] if start else 0.0)) / (i - start + 1)
    return out


def mosaic(layout: list[list[str]], *, title: str | None = None, size: tuple[float, float]):
    """A Figure whose axes follow ``layout`` (see ``Figure.subplot_mosaic``), in the
    shared style; returns ``(fig, {name: axes})``. ``size`` is the whole figure in inches."""
    with mpl.rc_context(RC):
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplot_mosaic(layout)
        if title:
            fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes
