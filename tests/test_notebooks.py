"""The course notebooks: each one runs (quick mode), and the committed ones are executed.

Two kinds of test, for every ``notebooks/*.ipynb`` (new notebooks are picked up
automatically):

1. execute it top to bottom in a fresh kernel with ``LORA_NP_QUICK=1``; any cell error
   fails. The executed copy goes to a temporary directory: the committed file is never
   touched by the tests.
2. read the committed file and check it is a finished full run: every code cell executed,
   counts 1..n in order (no stale or skipped cells), no error outputs, figures present
   where a cell shows one, run by ``python -m lora_np notebooks`` in full mode, and no
   ``.ipynb_checkpoints`` committed.

The runner itself (``python -m lora_np notebooks``) is tested on small notebooks it writes
in a temporary folder: a full run updates a notebook in place, a quick run writes its copy
to ``quick/`` beside it (or to ``--out``) and never over it.

To regenerate a notebook after editing it: ``python -m lora_np notebooks <name>``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from lora_np.cli import notebooks as notebook_runner
from lora_np.cli.arguments import UsageError
from lora_np.experiments import quick_mode

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REGENERATE = "regenerate it with `python -m lora_np notebooks {stem}`"


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]


def _error_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and "Traceback (most recent call last)" in (
                output.text
            ):
                found.append(f"cell {index}: a traceback printed to {output.name}")
    return found


def _has_image(cell: nbformat.NotebookNode) -> bool:
    return any(
        output.output_type in ("display_data", "execute_result") and "image/png" in output.data
        for output in cell.get("outputs", [])
    )


# --------------------------------------------------------------------------- they run


def test_the_course_has_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_in_quick_mode(path: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    # executed in the notebooks/ directory (relative paths work), written to a temporary copy
    executed = notebook_runner.execute_notebook(path, quick=True, timeout=300)
    notebook_runner.write_atomically(executed, tmp_path / path.name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, (
        f"executing {path.name} modified the committed file"
    )
    assert not _error_outputs(executed)
    assert executed.metadata["lora_np"] == {"quick": True}
    counts = [c.execution_count for c in _code_cells(executed)]
    assert counts == list(range(1, len(counts) + 1))


# --------------------------------------------------------------------------- committed state


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_an_ordered_error_free_full_run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    hint = REGENERATE.format(stem=path.stem)
    cells = _code_cells(notebook)
    assert cells, f"{path.name} has no code cells"

    counts = [c.execution_count for c in cells]
    unexecuted = [i for i, n in enumerate(counts) if n is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed; {hint}"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..{len(counts)} in order "
        f"(stale or out-of-order cells); {hint}"
    )
    errors = _error_outputs(notebook)
    assert not errors, f"{path.name} has error outputs: {errors}; {hint}"
    assert any(c.outputs for c in cells), f"{path.name} has no outputs at all; {hint}"
    missing_figures = [
        i for i, c in enumerate(notebook.cells) if "plt.show()" in c.source and not _has_image(c)
    ]
    assert not missing_figures, f"{path.name}: cells {missing_figures} show no figure; {hint}"
    run = notebook.metadata.get("lora_np")
    assert run is not None, f"{path.name} was not executed by the notebook runner; {hint}"
    assert run == {"quick": False}, f"{path.name} was committed from a quick run; {hint}"


def test_no_notebook_checkpoints_are_committed() -> None:
    git = shutil.which("git")
    if git and (REPO / ".git").exists():
        tracked = subprocess.run(
            [git, "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    else:  # not a checkout (e.g. an unpacked archive): look at the files themselves
        tracked = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    offending = [p for p in tracked if ".ipynb_checkpoints" in Path(p).parts]
    assert not offending, f"checkpoint files are committed: {offending}"


# --------------------------------------------------------------------------- the runner itself


def _write_notebook(path: Path, *sources: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


def _run_args(
    directory: Path, *names: str, quick: bool = True, out: Path | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    notebook_runner.configure(parser)
    options = ["--dir", str(directory), *(["--quick"] if quick else [])]
    return parser.parse_args([*names, *options, *(["--out", str(out)] if out else [])])


def test_runner_finds_notebooks_by_stem_prefix_and_file_name(tmp_path: Path) -> None:
    for name in ("02_b", "01_a", "10_c"):
        _write_notebook(tmp_path / f"{name}.ipynb", "1")
    assert [p.stem for p in notebook_runner.find_notebooks((), tmp_path)] == [
        "01_a",
        "02_b",
        "10_c",
    ]
    found = notebook_runner.find_notebooks(["10", "01_a.ipynb", "02_b"], tmp_path)
    assert [p.stem for p in found] == ["01_a", "02_b", "10_c"]
    with pytest.raises(ValueError, match="matches no notebook"):
        notebook_runner.find_notebooks(["03"], tmp_path)
    with pytest.raises(ValueError, match="matches 2 notebooks"):
        notebook_runner.find_notebooks(["0"], tmp_path)


def test_a_quick_run_writes_beside_the_notebook_never_over_it(tmp_path: Path) -> None:
    path = tmp_path / "ok.ipynb"
    environment_before = os.environ.get("LORA_NP_QUICK")
    _write_notebook(
        path,
        "from lora_np.experiments import quick_mode\nquick_mode()",
        "import time\nprint('second', flush=True)\ntime.sleep(0.3)\nprint('cell')",
    )
    source = path.read_bytes()
    assert notebook_runner.run(_run_args(tmp_path, "ok", quick=True)) == 0
    assert path.read_bytes() == source  # the notebook itself is untouched
    notebook = nbformat.read(tmp_path / "quick" / "ok.ipynb", as_version=4)
    assert [c.execution_count for c in notebook.cells] == [1, 2]
    assert notebook.cells[0].outputs[0].data["text/plain"] == "True"
    # output flushed in two pieces is stored as one block, so re-runs give the same file
    assert [o.text for o in notebook.cells[1].outputs] == ["second\ncell\n"]
    assert notebook.metadata["lora_np"] == {"quick": True}
    assert os.environ.get("LORA_NP_QUICK") == environment_before  # ours is restored


def test_a_full_run_updates_the_notebook_in_place(tmp_path: Path) -> None:
    path = tmp_path / "full.ipynb"
    _write_notebook(path, "from lora_np.experiments import quick_mode\nquick_mode()")
    assert notebook_runner.run(_run_args(tmp_path, "full", quick=False)) == 0
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].outputs[0].data["text/plain"] == "False"
    assert notebook.metadata["lora_np"] == {"quick": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.ipynb"]


def test_out_puts_the_executed_notebooks_elsewhere(tmp_path: Path) -> None:
    source = tmp_path / "course"
    source.mkdir()
    _write_notebook(source / "01_a.ipynb", "1 + 1")
    before = (source / "01_a.ipynb").read_bytes()
    assert notebook_runner.run(_run_args(source, quick=True, out=tmp_path / "executed")) == 0
    assert (source / "01_a.ipynb").read_bytes() == before
    assert nbformat.read(tmp_path / "executed" / "01_a.ipynb", as_version=4).metadata[
        "lora_np"
    ] == {"quick": True}


def test_a_quick_run_refuses_to_write_over_the_notebooks_it_runs(tmp_path: Path) -> None:
    _write_notebook(tmp_path / "01_a.ipynb", "1")
    before = (tmp_path / "01_a.ipynb").read_bytes()
    with pytest.raises(UsageError, match="a quick run never overwrites the notebooks it runs"):
        notebook_runner.run(_run_args(tmp_path, quick=True, out=tmp_path))
    assert (tmp_path / "01_a.ipynb").read_bytes() == before


def test_runner_leaves_a_failing_notebook_untouched(tmp_path: Path) -> None:
    path = tmp_path / "bad.ipynb"
    _write_notebook(path, "x = 1", "raise RuntimeError('deliberate')")
    before = path.read_bytes()
    assert notebook_runner.run(_run_args(tmp_path, "bad", quick=False)) == 1
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bad.ipynb"]  # no temporary file left


def test_runner_rejects_an_unknown_name(tmp_path: Path) -> None:
    _write_notebook(tmp_path / "01_a.ipynb", "1")
    with pytest.raises(UsageError, match="'nope' matches no notebook"):
        notebook_runner.run(_run_args(tmp_path, "nope"))


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("0", False), ("no", False), ("1", True), ("true", True)]
)
def test_quick_mode_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("LORA_NP_QUICK", value)
    assert quick_mode() is expected


def test_quick_mode_rejects_an_unclear_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORA_NP_QUICK", "maybe")
    with pytest.raises(ValueError, match="LORA_NP_QUICK"):
        quick_mode()


def test_atomic_write_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    _write_notebook(path, "1")
    path.chmod(0o640)
    notebook_runner.write_atomically(nbformat.read(path, as_version=4), path)
    assert path.stat().st_mode & 0o777 == 0o640
