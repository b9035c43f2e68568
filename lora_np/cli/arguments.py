"""What the commands' options accept, and how a bad value is reported.

A bad value is a usage error: one line on standard error, ``python -m lora_np <command>:
error: ...``, exit status 2, no traceback, and before any work starts. Values argparse
can check alone are checked by the ``type=`` functions here while the command line is
parsed; a check that needs the file system (is ``--out`` a folder we can write?) raises
:class:`UsageError` at the start of the command's ``run``, which :func:`lora_np.cli.main`
reports the same way.

``--threads`` means the same in every command that has it (:data:`THREADS_HELP`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """A command-line value that cannot work; reported as a one-line usage error."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is left to ``--help``)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` as users read it: descriptions keep their line breaks, and each option's
    help ends with its default (unless it says it itself, or there is none to say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings:
            return text
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """An int >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An int >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


#: The one meaning of ``--threads`` (and of its 0) in every command.
THREADS_HELP = (
    "BLAS threads for the matrix products; 0 leaves BLAS as it is set "
    "(by OPENBLAS_NUM_THREADS, else one per core)"
)


def thread_count(text: str) -> int:
    """An int from 0 to the number of CPUs: more BLAS threads than cores only wait."""
    value = _int(text)
    cpus = os.cpu_count() or 1
    if not 0 <= value <= cpus:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {cpus} (the CPUs of this machine), got {value}"
        )
    return value


def folder_path(text: str) -> Path:
    """A folder path; the empty string is refused (it would mean the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder path, got ''")
    return Path(text)


def add_threads_option(parser: argparse.ArgumentParser, default: int) -> None:
    """``--threads N`` (0 <= N <= the number of CPUs, see :data:`THREADS_HELP`)."""
    parser.add_argument(
        "--threads",
        type=thread_count,
        default=default,
        metavar="N",
        help=THREADS_HELP,
    )


def add_no_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: the commands that draw progress bars can be told not to."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are drawn only on a terminal, never into a log)",
    )


def blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """A context limiting BLAS to ``threads`` threads (threadpoolctl), or doing nothing
    when ``threads`` is 0."""
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def writable_folder(path: Path | str, option: str = "--out") -> Path:
    """Create ``path`` if needed and check a file can be written in it; return it.

    Raises :class:`UsageError` naming ``option`` and the path when it is a file, cannot
    be created, or cannot be written to (tried, not guessed from permissions).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise UsageError(f"{option} {path}: cannot write there ({reason})") from None
    return path


def report_usage_error(prog: str, error: UsageError) -> int:
    """Print ``error`` as the parser would, and return the usage-error status 2."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2


__all__ = [
    "THREADS_HELP",
    "HelpFormatter",
    "OneLineParser",
    "UsageError",
    "add_threads_option",
    "blas_threads",
    "folder_path",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "report_usage_error",
    "thread_count",
    "writable_folder",
]
