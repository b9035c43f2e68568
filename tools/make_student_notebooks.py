"""Generate the student notebooks, ``notebooks/student/*.ipynb``, from the solution notebooks.

The solution notebooks in ``notebooks/`` are the source; the student versions are derived
from them by cell tags (cell metadata ``"tags"``), never edited by hand:

* a code cell tagged ``"exercise"`` (and ``"exercise:<name>"``) defines the function or
  class that exercise ``<name>`` asks for and calls ``check(...)``. In the student version
  every function and method body becomes its docstring plus
  ``raise NotImplementedError(...)``; imports, class attributes, comments and the
  ``check`` call stay. Such a cell may hold nothing else (no top-level code that could
  give the answer away), and every function in it needs a docstring: the stub keeps it
  as the task;
* a cell tagged ``"solution"`` is left out;
* in markdown, folded answers (``<details><summary>Solutions ...</summary> ... </details>``)
  are cut out, with a pointer to the solution notebook;
* everything else is copied as it is, with outputs and execution counts cleared, and a
  first cell saying where the notebook comes from. Notebook metadata is reduced to the
  kernel, so that re-executing a solution notebook does not change its student version.

Every notebook in ``notebooks/`` with at least one exercise cell gets a student version.

    python tools/make_student_notebooks.py          # write notebooks/student/
    python tools/make_student_notebooks.py --check  # exit 1 if they are not up to date
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "notebooks"
STUDENT = SOLUTIONS / "student"

EXERCISE_TAG = "exercise"
EXERCISE_NAME_PREFIX = "exercise:"
SOLUTION_TAG = "solution"

_FOLDED_ANSWERS = re.compile(
    r"<details>\s*<summary>\s*(?:solutions?|answers?)\b.*?</summary>.*?</details>\s*",
    re.IGNORECASE | re.DOTALL,
)


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_name(cell: nbformat.NotebookNode) -> str | None:
    """The exercise a cell is tagged with (``"exercise:<name>"``), or None."""
    if cell.cell_type != "code" or EXERCISE_TAG not in tags(cell):
        return None
    names = [
        t[len(EXERCISE_NAME_PREFIX) :] for t in tags(cell) if t.startswith(EXERCISE_NAME_PREFIX)
    ]
    if len(names) != 1:
        raise ValueError(
            f"an exercise cell needs exactly one tag 'exercise:<name>', got tags {tags(cell)}"
        )
    return names[0]


def exercise_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The notebook's exercise cells by exercise name, in notebook order."""
    found: dict[str, nbformat.NotebookNode] = {}
    for cell in notebook.cells:
        name = exercise_name(cell)
        if name is None:
            continue
        if name in found:
            raise ValueError(f"exercise {name!r} has two cells")
        found[name] = cell
    return found


def checked_object(source: str) -> tuple[str, str]:
    """``(exercise name, name of the student's function or class)`` from the cell's check call."""
    for node in ast.parse(source).body:
        if _is_check_call(node):
            call = node.value
            if (
                len(call.args) >= 2
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[1], ast.Name)
            ):
                return call.args[0].value, call.args[1].id
    raise ValueError("an exercise cell must end with check('<name>', <your function>)")


def _is_check_call(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "check"
    )


def stub_source(source: str) -> str:
    """The student version of an exercise cell: every body replaced by NotImplementedError."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    replacements: list[tuple[int, int, str]] = []  # (first line kept out, last line, new text)

    def visit(body: list[ast.stmt], prefix: str, top: bool) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualified = prefix + node.name
                doc = node.body[0] if node.body else None
                if not (
                    isinstance(doc, ast.Expr)
                    and isinstance(doc.value, ast.Constant)
                    and isinstance(doc.value.value, str)
                ):
                    raise ValueError(
                        f"{qualified} needs a docstring: the stub keeps it as the task"
                    )
                indent = " " * doc.col_offset
                message = f"{indent}raise NotImplementedError({qualified + ': your code here'!r})\n"
                if len(node.body) > 1:
                    replacements.append((doc.end_lineno, node.end_lineno, message))
                else:
                    replacements.append((doc.end_lineno, doc.end_lineno, message))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.", top=False)
            elif top and not (
                isinstance(node, (ast.Import, ast.ImportFrom)) or _is_check_call(node)
            ):
                raise ValueError(
                    f"line {node.lineno}: an exercise cell holds imports, functions, classes "
                    "and the check call only (anything else could give the answer away)"
                )

    visit(tree.body, "", top=True)
    for after, last, text in sorted(replacements, reverse=True):
        if after == last:  # a body that is only the docstring
            lines[after:after] = [text]
        else:
            lines[after:last] = [text]
    return "".join(lines)


def strip_folded_answers(markdown: str, solution_name: str) -> str:
    pointer = f"*(The answers are in the solution notebook, `../{solution_name}`.)*\n\n"
    stripped = _FOLDED_ANSWERS.sub(lambda _: pointer, markdown).rstrip("\n")
    return stripped + ("\n" if markdown.endswith("\n") else "")


def student_notebook(solution: nbformat.NotebookNode, solution_name: str) -> nbformat.NotebookNode:
    """The student version of one solution notebook (see the module docstring)."""
    banner = nbformat.v4.new_markdown_cell(
        f"*Student version of [`{solution_name}`](../{solution_name}), generated by "
        "`tools/make_student_notebooks.py`: each exercise cell is a stub that raises "
        "`NotImplementedError` until you write it, so running the notebook stops at the "
        "first exercise you have not done (run the cells below it to go on). The answers "
        "are in the solution notebook.*",
        id="student-version",
    )
    cells = [banner]
    for cell in solution.cells:
        if SOLUTION_TAG in tags(cell):
            continue
        source = cell.source
        if cell.cell_type == "markdown":
            source = strip_folded_answers(source, solution_name)
        elif exercise_name(cell) is not None:
            source = stub_source(source)
        maker = {
            "code": nbformat.v4.new_code_cell,
            "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell,
        }[cell.cell_type]
        copy = maker(source, id=cell.get("id"))
        copy.metadata = dict(cell.get("metadata", {}))
        cells.append(copy)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": dict(solution.metadata.get("kernelspec", {})),
        "language_info": {"name": "python"},
    }
    notebook.nbformat, notebook.nbformat_minor = solution.nbformat, solution.nbformat_minor
    nbformat.validate(notebook)
    return notebook


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def generate(solutions: Path = SOLUTIONS) -> dict[str, str]:
    """{file name: text} of every student notebook, from the tagged solution notebooks."""
    out = {}
    for path in sorted(solutions.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        if exercise_cells(solution):
            out[path.name] = notebook_text(student_notebook(solution, path.name))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if notebooks/student/ is not up to date"
    )
    args = parser.parse_args(argv)
    wanted = generate()
    present = {p.name for p in STUDENT.glob("*.ipynb")} if STUDENT.is_dir() else set()
    stale = sorted(
        name
        for name, text in wanted.items()
        if not (STUDENT / name).is_file() or (STUDENT / name).read_text(encoding="utf-8") != text
    )
    extra = sorted(present - set(wanted))
    if args.check:
        for name in stale:
            print(f"out of date: notebooks/student/{name}", file=sys.stderr)
        for name in extra:
            print(
                f"not generated from any solution notebook: notebooks/student/{name}",
                file=sys.stderr,
            )
        if stale or extra:
            print("run: python tools/make_student_notebooks.py", file=sys.stderr)
            return 1
        return 0
    STUDENT.mkdir(exist_ok=True)
    for name in stale:
        (STUDENT / name).write_text(wanted[name], encoding="utf-8")
        print(f"wrote notebooks/student/{name}")
    for name in extra:
        (STUDENT / name).unlink()
        print(f"removed notebooks/student/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
