"""Exercises of notebook 02 (checking gradients): central differences, and the VJP of
log-softmax checked by them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lora_np.exercises.grader import (
    ExerciseError,
    Student,
    as_array,
    case_text,
    exercise,
    expect_close,
    shape_text,
)
from lora_np.gradcheck import numerical_grad

NOTEBOOK = "02_checking_gradients"


def _smooth_function(
    rng: np.random.Generator, shape: tuple[int, ...]
) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]]:
    """f(x) = Σ c·sin(x) + (Σ x)²/2 + Σ d·x³/3 and its exact gradient (couples all entries)."""
    c, d = rng.standard_normal(shape), rng.standard_normal(shape)

    def f(x: np.ndarray) -> float:
        if not isinstance(x, (np.ndarray, np.generic)) or np.shape(x) != shape:
            raise ExerciseError(
                f"your central_difference called f with {type(x).__name__} "
                f"{getattr(x, 'shape', '')}; call f with an array of x's shape {shape}"
            )
        return float(np.sum(c * np.sin(x)) + np.sum(x) ** 2 / 2 + np.sum(d * x**3) / 3)

    def gradient(x: np.ndarray) -> np.ndarray:
        return c * np.cos(x) + np.sum(x) + d * x**2

    return f, gradient


@exercise(
    "central_difference",
    NOTEBOOK,
    "central_difference(f, x, eps) -> array",
    "The gradient of a scalar function f at x by central differences, "
    "(f(x + eps·e_i) − f(x − eps·e_i)) / 2eps for every entry i, leaving x unchanged.",
)
def _central_difference(student: Student, rng: np.random.Generator) -> str:
    cases = [((int(rng.integers(2, 6)),), 1e-3), ((2, 3), 1e-3), ((), 1e-4), ((3, 2), 1e-5)]
    for index, (shape, eps) in enumerate(cases):
        x = rng.standard_normal(shape)
        f, gradient = _smooth_function(rng, shape)
        where = f" for x of shape {shape}, eps = {eps:g}" + case_text(index, cases)
        got = as_array(student(f, x, eps, where=where), "your gradient", shape=shape, where=where)
        # central differences are off by about eps²·|f'''|/6; forward ones by eps·|f''|/2
        expect_close(
            got,
            gradient(x),
            "your gradient",
            where,
            rtol=0.0,
            atol=20 * eps**2 + 1e-8,
            reference="the exact gradient",
        )
    # at a large eps the formulas part: it must be the central difference at *that* eps
    shape, eps = (3,), 0.1
    x = rng.standard_normal(shape)
    f, _ = _smooth_function(rng, shape)
    where = f" for x of shape {shape}, eps = {eps:g} (a large eps, where formulas differ)"
    got = as_array(student(f, x, eps, where=where), "your gradient", shape=shape, where=where)
    steps = np.eye(x.size) * eps
    central = np.array([(f(x + step) - f(x - step)) / (2 * eps) for step in steps])
    expect_close(
        got,
        central,
        "your gradient",
        where,
        rtol=1e-9,
        atol=1e-9,
        reference="(f(x + eps·eᵢ) − f(x − eps·eᵢ)) / (2·eps) with the eps given",
    )
    return (
        f"{len(cases)} smooth functions, eps from 1e-3 to 1e-5, to the accuracy that only "
        "central differences reach"
    )


@exercise(
    "log_softmax_vjp",
    NOTEBOOK,
    "log_softmax_vjp(x, g) -> gx",
    "The VJP of log-softmax along the last axis: the gradient of L = <g, log_softmax(x)> "
    "with respect to x, stable for large x.",
)
def _log_softmax_vjp(student: Student, rng: np.random.Generator) -> str:
    shapes = [(int(rng.integers(2, 7)),), (3, int(rng.integers(2, 6))), (2, 3, 4), (2, 5)]
    for index, shape in enumerate(shapes):
        x = rng.standard_normal(shape) * 3
        if index == len(shapes) - 1:
            x = x + 800.0  # exp(800) overflows float64: softmax must subtract the max first
        g = rng.standard_normal(shape)
        where = shape_text(x=x, g=g) + case_text(index, shapes)
        if index == len(shapes) - 1:
            where += ", with entries near 800"
        got = as_array(
            student(x, g, where=where), "your gx", shape=shape, where=where, shape_note="x's shape"
        )
        expected = numerical_grad(lambda t: t.log_softmax(axis=-1), x, upstream=g)
        expect_close(
            got, expected, "your gx", where, rtol=1e-5, atol=1e-6, reference="central differences"
        )
    return f"{len(shapes)} random shapes (1-D to 3-D), one with entries near 800"
