"""Test-session settings.

BLAS threads: the matrices in these tests are small, and on a 2-core machine OpenBLAS's
worker threads cost more than they save (measured 5-20x slower per step when the
machine is busy). One thread also makes timings irrelevant to the result: the suite
asserts numbers, never speed. This must run before NumPy loads OpenBLAS, which is why it
lives here, at the top of the first file pytest imports. Notebook kernels started by the
tests inherit the setting.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


from pathlib import Path  # noqa: E402  (after the BLAS settings above, on purpose)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """``python -m lora_np reproduce --quick`` over every experiment, run once per session
    (tests/test_experiments.py and the experiment test modules read its JSON files):
    ``(exit status, output folder)``."""
    from lora_np.cli import main

    out = tmp_path_factory.mktemp("figures")
    status = main(["reproduce", "--quick", "--no-progress", "--out", str(out)])
    return status, out
