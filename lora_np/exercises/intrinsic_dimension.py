"""Exercises of notebook 04 (intrinsic dimension): a dense random projection, the fast
Walsh–Hadamard transform, Fastfood's transpose, and d_int90 from a grid.

References: :func:`lora_np.subspace.fwht`, the engine's backward through
:class:`lora_np.subspace.projections.FastfoodProject`, and
:func:`lora_np.subspace.crossing_dimension` (the definition the library's
``intrinsic_dimension`` uses).
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from lora_np.exercises.grader import (
    ExerciseError,
    Student,
    as_array,
    as_number,
    case_text,
    exercise,
    expect_close,
    expect_number,
)
from lora_np.subspace import crossing_dimension, fwht
from lora_np.subspace.projections import FastfoodProject, draw_fastfood
from lora_np.tensor import Tensor

NOTEBOOK = "04_intrinsic_dimension"


@exercise(
    "dense_projection",
    NOTEBOOK,
    "dense_projection(D, d, rng) -> P",
    "A dense random projection P (D, d) for θ = θ0 + P·θ_d: i.i.d. standard normal entries "
    "drawn from rng, each column scaled to unit norm over all D weights.",
)
def _dense_projection(student: Student, rng: np.random.Generator) -> str:
    sizes = [(50, 7), (400, 30), (1000, 3), (9, 9)]
    for index, (D, d) in enumerate(sizes):
        seed = int(rng.integers(2**31))
        where = f" for D = {D}, d = {d}" + case_text(index, sizes)
        P = as_array(
            student(D, d, np.random.default_rng(seed), where=where),
            "your P",
            shape=(D, d),
            where=where,
            shape_note="(D, d): one column per direction",
        )
        norms = np.linalg.norm(P, axis=0)
        worst = int(np.argmax(np.abs(norms - 1)))
        if abs(norms[worst] - 1) > 1e-9:
            raise ExerciseError(
                f"column {worst} of your P has norm {norms[worst]:.6g}{where}; every column "
                "must have norm 1 over all D weights, so that a unit step in θ_d moves the "
                "weights by one unit"
            )
        again = student(D, d, np.random.default_rng(seed), where=where)
        if not (isinstance(again, np.ndarray) and np.array_equal(again, P)):
            raise ExerciseError(
                f"two calls with generators of the same seed gave different P{where}: draw "
                "with the rng you are given (rng.standard_normal), not np.random"
            )
        other = student(D, d, np.random.default_rng(seed + 1), where=where)
        if isinstance(other, np.ndarray) and np.array_equal(other, P):
            raise ExerciseError(
                f"generators with different seeds gave the same P{where}: P must be random"
            )
    # the distribution, on the largest case: √D·P is close to standard normal, and the
    # columns are independent directions (two random ones in R^400 are nearly orthogonal)
    D, d = 400, 30
    where = f" for D = {D}, d = {d}"
    P = as_array(
        student(D, d, np.random.default_rng(int(rng.integers(2**31))), where=where),
        "your P",
        shape=(D, d),
        where=where,
    )
    z = np.sqrt(D) * P.ravel()
    mean, kurtosis = float(np.mean(z)), float(np.mean(z**4) / np.mean(z**2) ** 2 - 3)
    if abs(mean) > 0.1 or abs(kurtosis) > 0.5:
        raise ExerciseError(
            f"the entries of your P (times √D) have mean {mean:.3g} and excess kurtosis "
            f"{kurtosis:.3g} for D = {D}, d = {d}; Gaussian entries give about 0 and 0 "
            "(draw them with rng.standard_normal, then normalise each column)"
        )
    cosines = np.abs(P.T @ P - np.diag(np.diag(P.T @ P)))
    i, j = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
    if cosines[i, j] > 0.5:
        raise ExerciseError(
            f"columns {i} and {j} of your P have cosine {cosines[i, j]:.3g}{where}; random "
            "directions in R^D are nearly orthogonal (|cosine| about 1/√D): draw every column "
            "afresh, from the rng"
        )
    return f"{len(sizes)} sizes: unit columns, reproducible from the rng, Gaussian directions"


@exercise(
    "fwht",
    NOTEBOOK,
    "fwht(x) -> array",
    "The unnormalised fast Walsh–Hadamard transform H·x of a vector of length 2^k "
    "(in O(L log L), without building H), leaving x unchanged.",
)
def _fwht(student: Student, rng: np.random.Generator) -> str:
    lengths = [1, 2, 4, 16, 128, 1024]
    for index, length in enumerate(lengths):
        x = rng.standard_normal(length)
        where = f" for x of length {length}" + case_text(index, lengths)
        got = as_array(student(x, where=where), "your H·x", shape=(length,), where=where)
        expect_close(
            got, fwht(x), "your H·x", where, rtol=1e-9, atol=1e-9, reference="lora_np.subspace.fwht"
        )
    # without building H: at L = 4096, H alone is 128 MiB; the transform needs a few x's
    x = rng.standard_normal(4096)
    tracemalloc.start()
    try:
        student(x, where=" for x of length 4096")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if peak > 64 * x.nbytes:
        raise ExerciseError(
            f"your fwht allocated {peak / 2**20:.1f} MiB at its peak for a vector of "
            f"{x.nbytes // 1024} KiB (length 4096): it builds H, or something as large. The "
            "fast transform needs only a few arrays of x's size: butterflies of sums and "
            "differences, log₂ L rounds of them"
        )
    return (
        f"lengths {lengths[0]} to {lengths[-1]}, against lora_np.subspace.fwht, and "
        "within a few vectors of memory at length 4096"
    )


@exercise(
    "fastfood_transpose",
    NOTEBOOK,
    "fastfood_transpose(g, signs, perm, gauss, scale, d) -> array",
    "Pᵀ·g for Fastfood's P = s·(H G Π H B)[:D, :d] (Π x = x[perm], D = len(g), L = len(signs)): "
    "the chain run backwards, with the padding and the truncation transposed too.",
)
def _fastfood_transpose(student: Student, rng: np.random.Generator) -> str:
    sizes = [(5, 3), (8, 8), (300, 7), (1000, 200), (64, 1)]
    for index, (D, d) in enumerate(sizes):
        settings = draw_fastfood(D, np.float64, rng)
        g = rng.standard_normal(D)
        where = f" for D = {D}, d = {d}, L = {len(settings['signs'])}" + case_text(index, sizes)
        args = [g, settings["signs"], settings["perm"], settings["gauss"], settings["scale"], d]
        got = as_array(
            student(*args, where=where), "your Pᵀ·g", shape=(d,), where=where, shape_note="(d,)"
        )
        # the invariant that defines a transpose: <P·θ, g> = <θ, Pᵀ·g> for every θ
        theta = rng.standard_normal(d)
        projected = FastfoodProject.apply(Tensor(theta), **settings).data
        left, right = float(projected @ g), float(theta @ got)
        if not np.isclose(left, right, rtol=1e-8, atol=1e-10):
            raise ExerciseError(
                f"your result is not the transpose of P{where}: for a random θ, <P·θ, g> = "
                f"{left:.6g} but <θ, your Pᵀ·g> = {right:.6g}"
            )
        leaf = Tensor(np.zeros(d), requires_grad=True)
        FastfoodProject.apply(leaf, **settings).backward(g)
        expect_close(
            got, leaf.grad, "your Pᵀ·g", where, rtol=1e-8, atol=1e-10, reference="the engine's VJP"
        )
    return f"{len(sizes)} sizes, D from 5 to 1,000: <P·θ, g> = <θ, Pᵀ·g> and the engine's VJP"


@exercise(
    "dint90",
    NOTEBOOK,
    "dint90(dims, accuracies, baseline) -> float",
    "d_int90: the smallest d whose accuracy reaches 0.9·baseline, interpolated linearly in "
    "log d between the grid points that bracket it (the first grid point if it already "
    "reaches it); nan when no grid point does.",
)
def _dint90(student: Student, rng: np.random.Generator) -> str:
    cases = _dint90_cases(rng)
    for index, (label, dims, accuracies, baseline) in enumerate(cases):
        where = f" for {label}: dims {list(dims)}, baseline {baseline:.4g}" + case_text(
            index, cases
        )
        value = student(list(dims), list(accuracies), baseline, where=where)
        got = as_number(
            value,
            "your d_int90",
            where,
            none_hint="; when no d reaches 0.9·baseline the answer is float('nan')",
        )
        found = crossing_dimension(dims, accuracies, 0.9 * baseline)[0]
        expected = float("nan") if found is None else found
        expect_number(
            got, expected, "your d_int90", where, rtol=1e-9, reference="crossing_dimension"
        )
    return f"{len(cases)} grids: bracketed, reached at once, never reached, not monotone, uneven"


def _dint90_cases(rng: np.random.Generator) -> list[tuple[str, list[int], list[float], float]]:
    baseline = float(rng.uniform(0.8, 0.99))
    target = 0.9 * baseline
    geometric = [10, 20, 50, 100, 200, 500, 1000]
    rising = np.sort(rng.uniform(0.1, 0.6, size=len(geometric)))
    rising[4:] = target + np.sort(rng.uniform(0.01, 0.08, size=3))  # crosses between 100 and 200
    uneven = [3, 5, 40, 41, 300]
    uneven_acc = [0.2, 0.3, 0.5, 0.55, target + 0.05]  # crosses between 41 and 300
    dip = [0.3, target + 0.02, target - 0.1, target + 0.04, target + 0.05]
    exact = [0.3, 0.5, target, target + 0.02]
    return [
        ("a geometric grid", geometric, [float(a) for a in rising], baseline),
        ("an uneven grid", uneven, uneven_acc, baseline),
        (
            "a curve that reaches the target, dips and reaches it again",
            [8, 16, 32, 64, 128],
            dip,
            baseline,
        ),
        (
            "a curve that reaches it at the first grid point",
            [50, 100, 200],
            [target + 0.01, 0.95, 0.96],
            baseline,
        ),
        ("a curve that never reaches it", [10, 100, 1000], [0.2, 0.5, target - 0.01], baseline),
        ("a curve that meets it exactly at a grid point", [16, 32, 64, 128], exact, baseline),
        ("a curve that meets it exactly at its last grid point", [16, 32, 64], exact[:3], baseline),
    ]
