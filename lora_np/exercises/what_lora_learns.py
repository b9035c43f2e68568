"""Exercises of notebook 07 (what LoRA learns): the subspace similarity φ between two A
matrices, and the amplification factor of Table 7, against
:mod:`lora_np.lora.analysis`."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    Student,
    as_number,
    case_text,
    exercise,
    expect_number,
    shape_text,
)
from lora_np.lora.analysis import projected_norm, subspace_similarity, top_singular_subspaces

NOTEBOOK = "07_what_lora_learns"


def _related_pair(
    rng: np.random.Generator, r1: int, r2: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two A matrices (r1, n) and (r2, n) that share a few input directions, plus noise."""
    shared = rng.standard_normal((3, n)) * np.array([[4.0], [2.5], [1.5]])
    a1 = rng.standard_normal((r1, 3)) @ shared + 0.3 * rng.standard_normal((r1, n))
    a2 = rng.standard_normal((r2, 3)) @ shared + 0.3 * rng.standard_normal((r2, n))
    return a1, a2


@exercise(
    "subspace_similarity",
    NOTEBOOK,
    "subspace_similarity(A1, A2, i, j) -> float",
    "The LoRA paper's φ(A1, A2, i, j) = ‖U_iᵀ U_j‖²_F / min(i, j), with U_i and U_j the "
    "top-i and top-j right-singular vectors of A1 (r1, n) and A2 (r2, n).",
)
def _subspace_similarity(student: Student, rng: np.random.Generator) -> str:
    cases = [
        (4, 16, 20, 2, 5),
        (8, 3, 12, 8, 1),
        (6, 6, 10, 3, 3),
        (2, 8, 30, 1, 8),
        (5, 7, 9, 5, 7),
    ]
    for index, (r1, r2, n, i, j) in enumerate(cases):
        a1, a2 = _related_pair(rng, r1, r2, n)
        where = shape_text(A1=a1, A2=a2)[:-1] + f", i = {i}, j = {j})" + case_text(index, cases)
        got = as_number(student(a1, a2, i, j, where=where), "your φ", where)
        expected = subspace_similarity(a1, a2, i, j)
        expect_number(
            got, expected, "your φ", where, rtol=1e-8, atol=1e-10, reference="lora_np.lora.analysis"
        )
    return f"{len(cases)} pairs of A matrices of different ranks that share some directions"


@exercise(
    "amplification_factor",
    NOTEBOOK,
    "amplification_factor(W, delta, r) -> float",
    "Table 7's amplification factor ‖ΔW‖_F / ‖Uᵀ W V‖_F, with U (out, r) and V (in, r) the "
    "top-r left and right singular vectors of ΔW.",
)
def _amplification_factor(student: Student, rng: np.random.Generator) -> str:
    cases = [(8, 6, 2), (5, 9, 1), (7, 7, 3), (10, 4, 4)]
    for index, (out_f, in_f, r) in enumerate(cases):
        W = rng.standard_normal((out_f, in_f))
        delta = rng.standard_normal((out_f, r + 1)) @ rng.standard_normal((r + 1, in_f)) * 0.1
        where = shape_text(W=W, delta=delta)[:-1] + f", r = {r})" + case_text(index, cases)
        got = as_number(student(W, delta, r, where=where), "your amplification factor", where)
        expected = float(np.linalg.norm(delta)) / projected_norm(
            W, *top_singular_subspaces(delta, r)
        )
        expect_number(
            got,
            expected,
            "your amplification factor",
            where,
            rtol=1e-8,
            reference="lora_np.lora.analysis",
        )
    return f"{len(cases)} random W with a random low-rank ΔW"
