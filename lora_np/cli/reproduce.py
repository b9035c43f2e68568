"""``python -m lora_np reproduce [--quick] [--only NAME ...] [--out DIR] [--seed N] [--threads N]``.

Runs each experiment of :data:`lora_np.experiments.EXPERIMENTS` in turn, writes
``DIR/<name>.json`` (the result dict) and ``DIR/<name>.png`` (its figure), and prints one
line per experiment: its headline number and how long it took. Both are made in memory
first (the result, its figure and its headline), then each is written to a temporary name
in ``DIR`` and renamed, so a failure or an interrupt in the experiment, its plot or its
summary leaves the previous pair as it was, and no file is ever half written. If an
experiment fails, its traceback is printed, the others still run, and the command exits
with status 1. A quick run never overwrites a full run's results.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lora_np.cli.arguments import (
    UsageError,
    add_no_progress_option,
    add_threads_option,
    blas_threads,
    folder_path,
    nonnegative_int,
    writable_folder,
)
from lora_np.experiments import load, names
from lora_np.experiments.common import jsonable
from lora_np.files import write_atomic

#: Where the figures go: the full run's are committed and shown in the README; a quick
#: run (CI size) writes beside them, into a folder git ignores.
FULL_OUT = "figures"
QUICK_OUT = "figures/quick"


def output_folder(out: Path | str | None, *, quick: bool) -> Path:
    """``--out`` if given, else ``figures/`` for a full run and ``figures/quick/`` for a
    quick one."""
    return Path(out) if out is not None else Path(QUICK_OUT if quick else FULL_OUT)


def check_quick_keeps_full_runs(out: Path, selected: list[str]) -> None:
    """A quick run must not overwrite a full run's results: a :class:`UsageError` if
    ``out/<name>.json`` of a selected experiment holds one (its ``"quick"`` is false)."""
    for name in selected:
        path = out / f"{name}.json"
        try:
            was_quick = json.loads(path.read_text(encoding="utf-8")).get("quick", True)
        except (OSError, ValueError, AttributeError):  # none, or not a result: nothing to keep
            continue
        if was_quick is False:
            raise UsageError(
                f"--out {out}: {path} holds a full run, which a quick run never "
                f"overwrites; write the quick run elsewhere (default: {QUICK_OUT}/)"
            )


DESCRIPTION = """\
Run the experiments behind the README's figures. Each one writes DIR/<name>.json (its
numbers) and DIR/<name>.png (its figure) and prints one line: its headline result and how
long it took. --quick runs every experiment at CI size and writes figures/quick/, never
over the committed full-run figures. Files appear whole or not at all. If an experiment
fails, its traceback is printed, the others still run, and the exit status is 1.

examples:
  python -m lora_np reproduce --quick
  python -m lora_np reproduce --only rank_sweep variants --seed 1 --out /tmp/figs
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``reproduce`` options to ``parser``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer steps, seeds and grid points (CI size); the claims are the same",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=names(),
        help=f"run only these experiments (default: all of {', '.join(names())})",
    )
    parser.add_argument(
        "--out",
        type=folder_path,
        default=None,
        metavar="DIR",
        help=f"output folder (default: {FULL_OUT}/, or {QUICK_OUT}/ with --quick)",
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, metavar="N", help="random seed (N >= 0)"
    )
    add_no_progress_option(parser)
    add_threads_option(parser, default=1)


def save_result(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` as strict JSON (NaN/inf become null, see ``common.jsonable``)."""
    text = json.dumps(jsonable(result), indent=1, allow_nan=False) + "\n"
    write_atomic(path, lambda f: f.write(text))


def render_png(figure: Any) -> bytes:
    """``figure`` as the bytes of a PNG file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def reproduce(
    selected: list[str],
    out: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, str]:
    """Run ``selected`` experiments, write their files into ``out`` and print summaries.

    Returns ``{name: summary line}`` for the experiments that finished; a failure is
    reported on stderr and left out of the returned dict.
    """
    out.mkdir(parents=True, exist_ok=True)
    finished: dict[str, str] = {}
    for name in selected:
        start = time.perf_counter()
        try:
            module = load(name)
            result = jsonable(module.run(quick=quick, seed=seed, progress=progress))
            png = render_png(module.plot(result))  # everything made before anything is written
            line = module.summary(result)
            save_result(result, out / f"{name}.json")
            write_atomic(out / f"{name}.png", lambda f, png=png: f.write(png), mode="wb")
        except Exception:
            print(f"{name}: FAILED", file=sys.stderr)
            traceback.print_exc()
            continue
        seconds = time.perf_counter() - start
        finished[name] = line
        print(f"{name}: {line}  [{seconds:.1f} s]", flush=True)
    return finished


def run(args: argparse.Namespace) -> int:
    """Entry point for ``python -m lora_np reproduce``; returns the exit status."""
    out = writable_folder(output_folder(args.out, quick=args.quick))  # before any work
    selected = list(dict.fromkeys(args.only)) if args.only else names()
    if args.quick:
        check_quick_keeps_full_runs(out, selected)
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    with blas_threads(args.threads):
        finished = reproduce(
            selected,
            out,
            quick=args.quick,
            seed=args.seed,
            progress=not args.no_progress,
        )
    return 0 if len(finished) == len(selected) else 1
