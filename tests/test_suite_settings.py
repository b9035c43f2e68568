"""The suite's own rules (tests/conftest.py): in CI a skipped test fails the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def _run_suite(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CI"}
    environment["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a bare pytest starts faster
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment,
        timeout=120,
    )


@pytest.fixture
def suite_with_a_skip(tmp_path: Path) -> Path:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_some.py").write_text(
        "import pytest\n\n"
        "def test_passes():\n    assert True\n\n"
        "def test_skips():\n    pytest.skip('a missing dependency')\n"
    )
    (tmp_path / "test_module_skip.py").write_text(
        "import pytest\n\npytest.importorskip('a_module_nobody_installed')\n"
    )
    return tmp_path


@pytest.mark.parametrize("ci", ["true"])
def test_a_skip_fails_the_run_in_ci(suite_with_a_skip: Path, ci: str) -> None:
    done = _run_suite(suite_with_a_skip, ci)
    assert done.returncode == 1, done.stdout
    assert "nothing may be skipped in CI" in done.stdout
    assert "test_some.py::test_skips" in done.stdout and "test_module_skip.py" in done.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_skip_stays_a_skip_outside_ci(suite_with_a_skip: Path, ci: str | None) -> None:
    done = _run_suite(suite_with_a_skip, ci)
    assert done.returncode == 0, done.stdout
    assert "2 skipped" in done.stdout and "nothing may be skipped" not in done.stdout


def test_a_suite_without_skips_passes_in_ci(tmp_path: Path) -> None:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_fine.py").write_text("def test_passes():\n    assert True\n")
    assert _run_suite(tmp_path, "true").returncode == 0
