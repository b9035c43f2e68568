"""``python -m lora_np notebooks [--quick] [--out DIR] [names...]``: execute the course notebooks.

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient + ipykernel), in
its own directory, so that relative paths in the notebook work. The executed notebook is
written only once every cell has run without error, and atomically (a temporary file in
the same directory, then a rename), so an error never leaves a half-executed notebook
behind.

A full run updates the notebooks in place: the committed notebooks are full runs.
``--quick`` sets ``LORA_NP_QUICK=1`` in the kernel's environment; notebooks read it
(:func:`lora_np.experiments.quick_mode`) to run small, and the executed copies go to
``quick/`` beside the notebooks (git ignores it), never over them. ``--out DIR`` writes
the executed notebooks to DIR instead. Each executed notebook records how it was run in
its metadata (``metadata["lora_np"] = {"quick": ...}``) so the test suite can tell a full
run from a quick one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

import lora_np
from lora_np.cli.arguments import UsageError, folder_path, positive_int, writable_folder
from lora_np.experiments.common import QUICK_ENV
from lora_np.files import write_atomic

#: The default folder of notebooks: ``notebooks/`` in the current directory (a checkout).
NOTEBOOK_DIR = Path("notebooks")
KERNEL_NAME = "python3"
#: The folder that holds the ``lora_np`` package this process runs; kernels import from it.
PACKAGE_PARENT = Path(lora_np.__file__).resolve().parent.parent


def find_notebooks(names: Sequence[str] = (), directory: Path | str = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks to run, in name order (so 01 runs before 02).

    With no ``names``: every ``*.ipynb`` in ``directory``. A name may be a path to a
    notebook, a file name (``01_autograd_from_scratch.ipynb``), a stem
    (``01_autograd_from_scratch``) or a unique prefix of a stem (``01``).
    """
    directory = Path(directory)
    available = sorted(p for p in directory.glob("*.ipynb") if p.is_file())
    if not names:
        return available
    chosen: list[Path] = []
    for name in names:
        as_path = Path(name)
        if as_path.suffix == ".ipynb" and as_path.is_file():
            matches = [as_path]
        else:
            stem = as_path.name.removesuffix(".ipynb")
            exact = [p for p in available if p.stem == stem]
            matches = exact or [p for p in available if p.stem.startswith(stem)]
        if len(matches) != 1:
            found = "no notebook" if not matches else f"{len(matches)} notebooks"
            raise ValueError(
                f"notebook name {name!r} matches {found} in {directory}; expected exactly one "
                f"of {[p.stem for p in available]}"
            )
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return sorted(chosen)


@contextlib.contextmanager
def _kernel_environment(quick: bool) -> Iterator[None]:
    """Set the environment the kernel inherits, and restore ours afterwards.

    ``LORA_NP_QUICK`` is "1" or "0"; the folder holding this very ``lora_np`` is put first
    on ``PYTHONPATH``, so the kernel imports the package the runner runs (a checkout's,
    even without an install); matplotlib draws
    inline, so figures are stored in the notebook. BLAS gets one thread unless the caller
    chose otherwise: the course's matrices are small, and on a 2-core machine BLAS worker
    threads cost more than they save (seen 10-100x slower on a busy machine).
    """
    settings = {
        QUICK_ENV: "1" if quick else "0",
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    path: Path | str,
    *,
    quick: bool = False,
    timeout: int = 600,
    kernel_name: str = KERNEL_NAME,
) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel and return the executed notebook.

    Nothing is written. Raises one of :data:`RUN_FAILURES`: a cell raised
    (``CellExecutionError``, with the failing cell and its traceback), a cell ran longer than
    ``timeout`` seconds, or the kernel died.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name,
        record_timing=False,  # no timestamps: re-running an unchanged notebook changes little
        coalesce_streams=True,  # one stdout block per cell, however the kernel flushed it
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    with _kernel_environment(quick):
        client.execute()
    notebook.metadata["lora_np"] = {"quick": bool(quick)}
    return notebook


#: How a notebook's run can fail (each reported as that notebook's failure; the others run).
RUN_FAILURES = (CellExecutionError, CellTimeoutError, DeadKernelError)


def write_atomically(notebook: nbformat.NotebookNode, path: Path | str) -> None:
    """Write ``notebook`` to ``path`` through a temporary file and a rename.

    The file keeps its permissions (a new file gets the usual ones, 0666 minus the umask;
    ``mkstemp`` alone would make it private).
    """
    nbformat.validate(notebook)
    write_atomic(path, lambda f: nbformat.write(notebook, f), encoding="utf-8")


DESCRIPTION = """\
Execute the course notebooks top to bottom, each in a fresh kernel in its own folder. A
full run updates the notebooks in place (the committed notebooks are full runs); with
--quick they run small and the executed copies go to quick/ beside them, never over the
notebooks themselves. A notebook is written only if every cell ran without error.

examples:
  python -m lora_np notebooks 03
  python -m lora_np notebooks --quick --out /tmp/executed
"""

#: Where a quick run writes its executed copies, inside the notebooks' folder.
QUICK_SUBFOLDER = "quick"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        help="notebooks to run (stem, file name or unique prefix, e.g. 01); default: all",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"run small ({QUICK_ENV}=1), for a fast check; writes to {QUICK_SUBFOLDER}/ "
        "beside the notebooks unless --out says where",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=NOTEBOOK_DIR,
        help="folder holding the notebooks (default: notebooks/ in the current directory)",
    )
    parser.add_argument(
        "--out",
        type=folder_path,
        default=None,
        metavar="DIR",
        help=f"write the executed notebooks to DIR (default: in place for a full run, "
        f"{QUICK_SUBFOLDER}/ beside the notebooks with --quick)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_int,
        default=600,
        metavar="SECONDS",
        help="time allowed per cell",
    )


def output_path(notebook: Path, out: Path | None, *, quick: bool) -> Path:
    """Where the executed ``notebook`` is written: into ``out`` if given; else over itself
    for a full run, and into ``quick/`` beside it for a quick one. A quick run that would
    overwrite the notebook it runs is a :class:`UsageError`."""
    if out is not None:
        target = out / notebook.name
    else:
        target = notebook.parent / QUICK_SUBFOLDER / notebook.name if quick else notebook
    if quick and target.resolve() == notebook.resolve():
        raise UsageError(
            f"--out {out}: a quick run never overwrites the notebooks it runs "
            f"({notebook}); write its copies elsewhere, or run without --quick"
        )
    return target


def run(args: argparse.Namespace) -> int:
    given_files = bool(args.names) and all(Path(n).is_file() for n in args.names)
    if not given_files and not find_notebooks((), args.dir):
        raise UsageError(
            f"no notebooks found in {args.dir.resolve()} (run from a checkout of the "
            "repository, or give --dir)"
        )
    try:
        paths = find_notebooks(args.names, args.dir)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for path in paths:  # every notebook readable before any runs
        try:
            nbformat.read(path, as_version=4)
        except (OSError, ValueError, KeyError) as error:  # NotJSONError is a ValueError
            raise UsageError(f"{path}: not a readable notebook ({error})") from None
    targets = {path: output_path(path, args.out, quick=args.quick) for path in paths}
    by_target: dict[Path, Path] = {}
    for path, target in targets.items():
        other = by_target.setdefault(target.resolve(), path)
        if other != path:
            raise UsageError(
                f"{other} and {path} would both be written to {target}; run them with "
                "different --out folders"
            )
    for folder in dict.fromkeys(target.parent for target in targets.values()):
        writable_folder(folder, "--out")  # before any notebook runs
    failed: list[str] = []
    mode = "quick" if args.quick else "full"
    for path, target in targets.items():
        print(f"[{mode}] {path.name} ...", flush=True)
        start = time.perf_counter()
        try:
            executed = execute_notebook(path, quick=args.quick, timeout=args.timeout)
        except RUN_FAILURES as error:
            print(f"  FAILED after {time.perf_counter() - start:.1f} s, nothing written:")
            print(str(error), file=sys.stderr)
            failed.append(path.name)
            continue
        write_atomically(executed, target)
        print(f"  ok in {time.perf_counter() - start:.1f} s, written to {target}", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
