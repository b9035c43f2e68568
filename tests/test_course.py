"""COURSE.md says what the notebooks hold: every notebook on the path, every graded
exercise in its notebook's row, the deep-dives where the notebooks mark them, and a
common-mistake cell in every notebook."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from lora_np.exercises import list_exercises

REPO = Path(__file__).resolve().parent.parent
COURSE = (REPO / "COURSE.md").read_text(encoding="utf-8")
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _rows() -> dict[str, str]:
    """The path table's rows, by notebook number."""
    return {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| (\d\d) \|.*$", COURSE, re.MULTILINE)
    }


def _tagged(path: Path, tag: str) -> list[nbformat.NotebookNode]:
    cells = nbformat.read(path, as_version=4).cells
    return [c for c in cells if tag in c.get("metadata", {}).get("tags", [])]


def test_the_readme_links_to_the_course() -> None:
    assert "](COURSE.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_every_link_in_the_course_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", COURSE)
    assert links
    for link in links:
        assert (REPO / link).exists(), link


def test_every_notebook_has_a_row_on_the_path() -> None:
    rows = _rows()
    for path in NOTEBOOKS:
        number = path.name[:2]
        assert number in rows, f"COURSE.md has no row for {path.name}"
        assert f"(notebooks/{path.name})" in rows[number]


def test_every_graded_exercise_is_in_its_notebooks_row() -> None:
    rows = _rows()
    for info in list_exercises():
        assert f"`{info.name}`" in rows[info.notebook[:2]], info.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_deep_dives_are_where_the_course_says(path: Path) -> None:
    deep_dive_column = _rows()[path.name[:2]].split("|")[4].strip()
    assert bool(_tagged(path, "deep-dive")) == (deep_dive_column != "—"), deep_dive_column


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_deep_dives_time_is_the_sum_of_its_boxes(path: Path) -> None:
    """The course's minutes for a deep-dive are what its boxed notes say ("about 10
    minutes, 20 with its exercise" counts 20)."""
    deep_dive_column = _rows()[path.name[:2]].split("|")[4].strip()
    boxes = [
        re.search(r"\(about (\d+) minutes(?:, (\d+) with [^)]*)?", cell.source)
        for cell in _tagged(path, "deep-dive")
    ]
    assert all(boxes), "a deep-dive box without '(about N minutes'"
    minutes = sum(int(box.group(2) or box.group(1)) for box in boxes)
    listed = re.search(r"\((\d+) min\)", deep_dive_column)
    assert (int(listed.group(1)) if listed else 0) == minutes, (deep_dive_column, minutes)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_shows_a_common_mistake(path: Path) -> None:
    cells = _tagged(path, "mistake")
    assert any(c.cell_type == "code" and "assert" in c.source for c in cells), path.name
