"""Writing files so that nothing is ever left half-written.

Every file lora_np writes (adapters, figures, results, executed notebooks) goes through
:func:`write_atomic`: the content is written to a temporary file in the same folder,
flushed to disk, and renamed over the target. A rename within one folder is atomic, so a
reader — or a crash — sees either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _new_file_mode() -> int:
    """The mode an ordinary new file gets: 0666 minus the umask (mkstemp would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(
    path: Path | str,
    write: Callable[[IO[Any]], Any],
    mode: str = "w",
    encoding: str | None = None,
) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes). An existing file keeps its permissions;
    a new one gets an ordinary file's. If ``write`` raises, the temporary file is removed
    and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"write_atomic: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    permissions = stat.S_IMODE(path.stat().st_mode) if path.exists() else _new_file_mode()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, permissions)
        with os.fdopen(handle, mode, encoding=encoding) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
