"""Progress bars: ``tqdm.auto`` when one is wanted, a silent stand-in otherwise.

tqdm is imported only when a bar is actually shown, so the engine and the layers run with
NumPy alone. ``tqdm.auto`` draws a widget in a notebook and text on a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _NoBar:
    """What :func:`progress_counter` returns when disabled: the bar's methods, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    items: Iterable[T], *, enabled: bool, desc: str, total: int | None = None
) -> Iterator[T]:
    """``tqdm.auto`` over ``items`` when ``enabled``, the plain iterable otherwise."""
    if not enabled:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True))


def progress_counter(*, enabled: bool, total: int, desc: str, unit: str = "it") -> Any:
    """A bar counting to ``total`` that the caller advances with ``update(n)`` (and may
    label with ``set_postfix``); close it with ``close()``. A do-nothing bar if not
    ``enabled``."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=True)
