"""Writing files and folders so that nothing is ever left half-written.

Every file lora_np writes (adapters, figures, results, executed notebooks) goes through
:func:`write_atomic`: the content is written to a temporary file in the same folder,
flushed to disk, and renamed over the target. A rename within one folder is atomic, so a
reader — or a crash — sees either the old file or the new one, never a mix.

A folder whose files only make sense together (an adapter: its config and its weights)
is replaced whole with :func:`replace_folder` and read back with :func:`read_folder`;
see :func:`replace_folder` for the protocol and what a crash at each step leaves.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
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


# --------------------------------------------------------------------------- whole folders


def _siblings(folder: Path) -> dict[str, Path]:
    """The hidden folders beside ``folder`` that :func:`replace_folder` uses."""
    return {
        stage: folder.with_name(f".{folder.name}.{stage}") for stage in ("partial", "new", "old")
    }


def _fsync_folder(folder: Path) -> None:
    """Make a folder's entries (new names, renames) durable; a no-op where folders cannot
    be opened (Windows), whose renames are durable by other means."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(handle)
    finally:
        os.close(handle)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (instant, no second copy of the data), or a copy where links fail."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _carry_over(old: Path, new: Path) -> None:
    """Put into ``new`` every entry of ``old`` that ``new`` does not have (hard links)."""
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(target))


def _finish_interrupted(folder: Path) -> None:
    """Bring ``folder`` back to a clean state after a replacement that died part way."""
    staged = _siblings(folder)
    if not folder.exists() and staged["new"].is_dir():
        os.rename(staged["new"], folder)  # the swap had begun: complete it
        _fsync_folder(folder.parent)
    for leftover in staged.values():
        _remove(leftover)


def _check_folder_target(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder; give a folder path")
    here = Path.cwd().resolve()
    if folder.exists() and (here == folder.resolve() or folder.resolve() in here.parents):
        raise ValueError(
            f"{folder} is (or contains) the current directory, which replacing it would "
            "remove; give its path from outside it"
        )


@contextlib.contextmanager
def replace_folder(path: Path | str) -> Iterator[Path]:
    """Write a folder's new contents into a staging folder, then swap it in whole.

    ``with replace_folder(d) as staging:`` yields an empty folder beside ``d``; write the
    new files into it (with :func:`write_atomic`, which syncs each one). If the block
    raises, the staging folder is removed and ``d`` is untouched. If it ends normally,
    entries of the old ``d`` that the block did not write are carried over (hard-linked),
    the old folder's permissions are kept, and the staging folder replaces ``d``.

    The protocol, with ``.d.partial``, ``.d.new`` and ``.d.old`` hidden beside ``d``:

    1. leftovers of an interrupted earlier replacement are cleaned up (and one that had
       got to step 4 is completed first, so no finished write is lost);
    2. the new contents are written into ``.d.partial`` and synced;
    3. ``.d.partial`` is renamed ``.d.new``: from now on it is known to be complete;
    4. ``d`` is renamed ``.d.old``, then ``.d.new`` is renamed ``d``;
    5. ``.d.old`` is removed.

    Each rename is atomic, so a crash leaves one of these states: before 3, ``d`` is the
    old folder (``.d.partial`` is ignored); between 3 and 4, ``d`` is the old folder and
    ``.d.new`` the complete new one; between the two renames of 4, there is no ``d`` but
    ``.d.new`` is complete; after 4, ``d`` is the new folder. :func:`current_folder`
    reads ``.d.new`` in the one state without ``d``, so a reader always finds a complete
    folder, old or new. One writer at a time per folder. If ``d`` is a symbolic link, the
    folder it points to is the one replaced (the siblings are staged beside it), and the
    link stays.
    """
    folder = Path(os.path.realpath(path))  # a symlink's target is replaced, the link kept
    _check_folder_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _finish_interrupted(folder)
    staged = _siblings(folder)
    staged["partial"].mkdir()
    try:
        yield staged["partial"]
        if folder.is_dir():
            _carry_over(folder, staged["partial"])
            os.chmod(staged["partial"], stat.S_IMODE(folder.stat().st_mode))
        _fsync_folder(staged["partial"])
        os.rename(staged["partial"], staged["new"])
        _fsync_folder(folder.parent)
    except BaseException:
        _remove(staged["partial"])
        raise
    _swap_in(staged["new"], folder, staged["old"])


def _swap_in(new: Path, folder: Path, old: Path) -> None:
    """Steps 4 and 5 of :func:`replace_folder`. A rename that fails with an error (rather
    than the process dying) is rolled back: the old folder goes back in its place."""
    had_old = folder.exists()
    try:
        if had_old:
            os.rename(folder, old)
    except OSError:
        _remove(new)
        raise
    try:
        os.rename(new, folder)
    except OSError:
        if had_old:
            with contextlib.suppress(OSError):
                os.rename(old, folder)
        if folder.exists():  # else .new stays: it is what current_folder() reads
            _remove(new)
        raise
    _fsync_folder(folder.parent)
    _remove(old)


def current_folder(path: Path | str) -> Path:
    """The folder that holds ``path``'s contents: ``path`` itself, or — if a
    :func:`replace_folder` died between its two renames, leaving no ``path`` — the complete
    new folder it had staged beside it."""
    folder = Path(path)
    if not folder.exists():
        staged = _siblings(Path(os.path.realpath(folder)))["new"]
        if staged.is_dir():
            return staged
    return folder


def read_folder(path: Path | str, names: Iterable[str]) -> tuple[Path, dict[str, bytes]]:
    """The bytes of the files ``names`` of folder ``path``, all from one folder, and the
    folder they came from (:func:`current_folder`: ``path`` itself, or the complete staged
    folder of an interrupted replacement).

    The folder is opened once and the files are opened inside it, so a
    :func:`replace_folder` running meanwhile cannot hand out a mix of old and new files;
    if it removed the old folder part way through, the files are read again from the new
    one. (Where the platform cannot open files relative to a folder, they are read by
    path.) A missing file is a FileNotFoundError whose ``filename`` is its path.
    """
    names = list(names)
    for _ in range(3):  # each retry follows a replacement that finished meanwhile
        folder = current_folder(path)
        if os.open not in os.supports_dir_fd or not folder.is_dir():
            return folder, {name: _read(folder / name) for name in names}
        handle = os.open(folder, os.O_RDONLY)
        try:
            opened = os.fstat(handle)
            try:
                return folder, {name: _read(folder / name, handle) for name in names}
            except FileNotFoundError:
                if _same_folder(folder, opened):
                    raise
        finally:
            os.close(handle)
    raise OSError(f"{path} was replaced three times while it was being read; try again")


def _same_folder(folder: Path, opened: os.stat_result) -> bool:
    try:
        now = os.stat(folder)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def _read(path: Path, folder_handle: int | None = None) -> bytes:
    try:
        if folder_handle is None:
            return path.read_bytes()
        fd = os.open(path.name, os.O_RDONLY, dir_fd=folder_handle)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
    with os.fdopen(fd, "rb") as file:
        return file.read()
