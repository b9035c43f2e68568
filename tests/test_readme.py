"""The README says only what the code does: its tables and links are checked here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lora_np.lora import LoRAConfig, apply_lora, count_parameters
from lora_np.nn import MLP

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")


def _table_rows(header_start: str) -> list[list[str]]:
    lines = TEXT.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _trainable(config: LoRAConfig) -> int:
    return count_parameters(apply_lora(MLP([64, 128, 128, 10]), config))[0]


def test_lora_parameter_count_table_is_what_the_code_counts() -> None:
    full = count_parameters(MLP([64, 128, 128, 10]))[0]
    assert f"full fine-tuning trains {full:,}" in TEXT
    rows = _table_rows("| rank r |")
    assert [int(r[0]) for r in rows] == [1, 2, 4, 8, 16, 32, 64]
    for rank_text, lora_text, head_text, percent_text in rows:
        rank = int(rank_text)
        lora = _trainable(LoRAConfig(rank, 2 * rank, target_modules="all-linear"))
        head = _trainable(
            LoRAConfig(rank, 2 * rank, target_modules="all-linear", modules_to_save=["4"])
        )
        assert lora_text == f"{lora:,}" and head_text == f"{head:,}"
        assert percent_text == f"{100 * lora / full:.1f}% / {100 * head / full:.1f}%"


LOCAL_LINKS = sorted({link for link in re.findall(r"\]\(([^)#]+)\)", TEXT) if "://" not in link})


def test_readme_shows_every_figure_and_notebook() -> None:
    root = README.parent
    for png in sorted((root / "figures").glob("*.png")):
        assert f"figures/{png.name}" in LOCAL_LINKS, f"README does not show {png.name}"
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}" in LOCAL_LINKS, f"README misses {notebook.name}"


@pytest.mark.parametrize("link", LOCAL_LINKS)
def test_local_links_and_images_exist(link: str) -> None:
    assert (README.parent / link).exists(), f"README links to {link}, which does not exist"


def test_quickstart_is_the_two_commands() -> None:
    block = re.search(r"## Quickstart\n\n```bash\n(.*?)```", TEXT, re.S)
    assert block is not None
    assert block.group(1).splitlines() == [
        'pip install -e ".[dev]" && python -m lora_np reproduce --quick',
        "python -m pytest",
    ]


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```\n(.*?)(?=\n\n|\Z)", TEXT, re.S)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs_and_prints_what_the_readme_says(
    index: int, tmp_path: Path
) -> None:
    """Each block runs in a fresh interpreter (as a reader would paste it); where the
    text after it says it "prints" something in backticks, that text must appear."""
    code, after = PYTHON_BLOCKS[index]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    claims = re.findall(r"'\w+': [\d.]+(?=\.\.\.)", code)  # "# {'accuracy': 0.971...}"
    after = after.strip()
    if after.startswith("prints"):
        printed = re.split(r"`[.:]", after, maxsplit=1)[0] + "`"  # "prints `a` and `b`"
        claims += re.findall(r"`([^`]+)`", printed)
    for claim in claims:
        assert claim in done.stdout, f"README says it prints {claim!r}; it printed {done.stdout}"
