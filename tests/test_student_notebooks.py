"""The student notebooks: generated from the solutions by cell tags, committed up to date,
and each one runs (quick mode) up to its first exercise and stops there, with the
exercise's own message.

Also: how the generator turns an exercise cell into a stub, and the setup cell that makes
every notebook importable from a clone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "make_student_notebooks", REPO / "tools" / "make_student_notebooks.py"
)
TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TOOL)

SOLUTION_NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
GENERATED = TOOL.generate()
STUDENT_NOTEBOOKS = [REPO / "notebooks" / "student" / name for name in sorted(GENERATED)]


# ============================================================ committed = generated


def test_the_committed_student_notebooks_are_what_the_generator_makes() -> None:
    committed = sorted(p.name for p in (REPO / "notebooks" / "student").glob("*.ipynb"))
    assert committed == sorted(GENERATED), "run: python tools/make_student_notebooks.py"
    for name, text in GENERATED.items():
        path = REPO / "notebooks" / "student" / name
        assert path.read_text(encoding="utf-8") == text, (
            f"notebooks/student/{name} is out of date; run: python tools/make_student_notebooks.py"
        )
    assert TOOL.main(["--check"]) == 0


def test_every_notebook_with_exercises_has_a_student_version() -> None:
    tagged = [
        p.name for p in SOLUTION_NOTEBOOKS if TOOL.exercise_cells(nbformat.read(p, as_version=4))
    ]
    assert tagged and sorted(tagged) == sorted(GENERATED)


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.stem for p in STUDENT_NOTEBOOKS])
def test_a_student_notebook_holds_stubs_and_no_answers(path: Path) -> None:
    student = nbformat.read(path, as_version=4)
    solution = nbformat.read(REPO / "notebooks" / path.name, as_version=4)
    nbformat.validate(student)
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    assert all(c.get("execution_count") is None for c in student.cells if c.cell_type == "code")
    assert not any(TOOL.SOLUTION_TAG in TOOL.tags(c) for c in student.cells)
    assert "<details>" not in "".join(c.source for c in student.cells if c.cell_type == "markdown")
    stubs = TOOL.exercise_cells(student)
    answers = TOOL.exercise_cells(solution)
    assert list(stubs) == list(answers)
    for name, cell in stubs.items():
        assert cell.source == TOOL.stub_source(answers[name].source)
        assert "raise NotImplementedError" in cell.source
        assert TOOL.checked_object(cell.source) == TOOL.checked_object(answers[name].source)


# ============================================================ they run to the first stub


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.stem for p in STUDENT_NOTEBOOKS])
def test_a_student_notebook_runs_to_its_first_exercise_and_stops_there(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    notebook = nbformat.read(path, as_version=4)
    first = next(i for i, c in enumerate(notebook.cells) if TOOL.exercise_name(c))
    name = TOOL.exercise_name(notebook.cells[first])
    monkeypatch.setenv("LORA_NP_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # no PYTHONPATH: the notebook's own setup cell must find this clone
    monkeypatch.delenv("PYTHONPATH", raising=False)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    with pytest.raises(CellExecutionError) as caught:
        client.execute()
    assert caught.value.ename == "ExerciseError", caught.value
    assert caught.value.evalue.startswith(f"{name}: not written yet"), caught.value.evalue
    ran = [c for c in notebook.cells[: first + 1] if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran)  # every cell up to the stub ran
    for cell in ran[:-1]:  # and all but the stub ran clean
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:200]
    assert all(
        c.execution_count is None for c in notebook.cells[first + 1 :] if c.cell_type == "code"
    )
    setup_output = "".join(o.get("text", "") for o in ran[0].outputs)
    assert "lora_np is imported from this clone" in setup_output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


# =========================================================================== the generator


EXERCISE_CELL = '''import numpy as np

from lora_np.exercises import check


def double(x):
    """Return 2·x."""
    # the answer, with a comment
    y = x + x
    return y


class Thing:
    """A class."""

    register = False

    def method(self, a):
        """Use a."""
        return a

    def only_a_docstring(self):
        """Nothing to do."""


check("double", double)
'''


def test_a_stub_keeps_signatures_docstrings_imports_and_the_check() -> None:
    stub = TOOL.stub_source(EXERCISE_CELL)
    assert stub == (
        "import numpy as np\n\nfrom lora_np.exercises import check\n\n\n"
        'def double(x):\n    """Return 2·x."""\n'
        "    raise NotImplementedError('double: your code here')\n\n\n"
        'class Thing:\n    """A class."""\n\n    register = False\n\n'
        '    def method(self, a):\n        """Use a."""\n'
        "        raise NotImplementedError('Thing.method: your code here')\n\n"
        '    def only_a_docstring(self):\n        """Nothing to do."""\n'
        "        raise NotImplementedError('Thing.only_a_docstring: your code here')\n\n\n"
        'check("double", double)\n'
    )
    assert TOOL.checked_object(stub) == ("double", "double")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x):\n    return x\n\ncheck('f', f)\n", "needs a docstring"),
        ("answer = 42\n\ndef f(x):\n    '''doc'''\n    return x\n", "imports, functions, classes"),
    ],
)
def test_a_cell_that_would_give_the_answer_away_is_refused(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TOOL.stub_source(source)


def test_folded_answers_are_cut_from_markdown() -> None:
    text = (
        "## Exercises\n\n1. Do it.\n\n<details>\n<summary>Solutions (click to open)</summary>\n\n"
        "1. Forty-two.\n</details>\n\nAfter.\n"
    )
    stripped = TOOL.strip_folded_answers(text, "01_x.ipynb")
    assert (
        "Forty-two" not in stripped
        and "Solutions" not in stripped
        and "1. Do it." in stripped
        and "After." in stripped
    )
    assert "`../01_x.ipynb`.)*\n\nAfter." in stripped


def test_an_exercise_cell_needs_exactly_one_name() -> None:
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata = {"tags": ["exercise"]}
    with pytest.raises(ValueError, match="exactly one tag"):
        TOOL.exercise_name(cell)


# =========================================================================== the setup cell


def _setup_cells() -> dict[str, nbformat.NotebookNode]:
    cells = {}
    for path in SOLUTION_NOTEBOOKS:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        cells[path.name] = code[0]
    return cells


def test_every_notebook_opens_with_the_same_setup_cell() -> None:
    cells = _setup_cells()
    assert all("setup" in TOOL.tags(c) for c in cells.values()), sorted(cells)
    assert len({c.source for c in cells.values()}) == 1


def test_the_setup_cell_imports_this_clone_without_an_install(tmp_path: Path) -> None:
    source = next(iter(_setup_cells().values())).source
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = source + "\nimport lora_np\nprint(lora_np.__file__)\n"
    for folder in (REPO / "notebooks", REPO / "notebooks" / "student"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        said, location = result.stdout.strip().splitlines()
        assert said == "lora_np is imported from this clone"
        assert Path(location).resolve().is_relative_to(REPO)
