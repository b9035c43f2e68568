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
