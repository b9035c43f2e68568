"""Test-session settings.

BLAS threads: the matrices in these tests are small, and on a 2-core machine OpenBLAS's
worker threads cost more than they save (measured 5-20x slower per step when the
machine is busy). One thread also makes timings irrelevant to the result: the suite
asserts numbers, never speed. This must run before NumPy loads OpenBLAS, which is why it
lives here, at the top of the first file pytest imports. Notebook kernels started by the
tests inherit the setting.

Nothing is skipped in CI: where the environment variable ``CI`` is set (to anything but
"", "0", "false" or "no"), a skipped test — a module skipped for want of PyTorch, say —
fails the run, so that a missing install cannot pass for a green suite. Locally a skip
stays a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


_skipped: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped, e.g. by pytest.importorskip
        _skipped.append(report.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _in_ci() and _skipped:
        terminalreporter.section("skipped in CI", red=True)
        terminalreporter.line(
            f"{len(_skipped)} skipped, and nothing may be skipped in CI (CI is set): "
            + ", ".join(sorted(set(_skipped)))
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _in_ci() and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """``python -m lora_np reproduce --quick`` over every experiment, run once per session
    (tests/test_experiments.py and the experiment test modules read its JSON files):
    ``(exit status, output folder)``."""
    from lora_np.cli import main

    out = tmp_path_factory.mktemp("figures")
    status = main(["reproduce", "--quick", "--no-progress", "--out", str(out)])
    return status, out
