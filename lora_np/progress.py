"""Progress bars: ``tqdm.auto`` on a terminal or in a notebook, nothing in a log.

Every bar lora_np draws comes from here. A function that takes ``progress=True`` asks for
a bar; one is drawn only where someone watches it (:func:`interactive`): on a terminal
(standard error is a TTY) or in a Jupyter notebook (an ipykernel kernel, where
``tqdm.auto`` draws a widget). With standard error sent to a file or a pipe — a log, CI —
there is no bar, so a log holds the results and not hundreds of bar redraws.
``progress=False`` (the CLI's ``--no-progress``) hides the bar everywhere.

tqdm is imported only when a bar is actually shown, so the engine and the layers run with
NumPy alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True where a progress bar is watched: in a Jupyter kernel, or when standard error
    is a terminal."""
    if _in_jupyter_kernel():
        return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def _in_jupyter_kernel() -> bool:
    """An ipykernel kernel runs this code (looked up without importing IPython)."""
    if "ipykernel" not in sys.modules:
        return False
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class _NoBar:
    """What :func:`progress_counter` returns when no bar is shown: its methods, doing
    nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    items: Iterable[T], *, enabled: bool, desc: str, total: int | None = None
) -> Iterator[T]:
    """``tqdm.auto`` over ``items`` if ``enabled`` and :func:`interactive`, else the plain
    iterable."""
    if not (enabled and interactive()):
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True))


def progress_counter(*, enabled: bool, total: int, desc: str, unit: str = "it") -> Any:
    """A bar counting to ``total`` that the caller advances with ``update(n)`` (and may
    label with ``set_postfix`` / ``set_postfix_str``); close it with ``close()``. A
    do-nothing bar unless ``enabled`` and :func:`interactive`."""
    if not (enabled and interactive()):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=True)
