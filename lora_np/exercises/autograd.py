"""Exercises of notebook 01 (autograd from scratch): undo broadcasting, the matmul VJP, and
a primitive of your own run through the engine.

The expected gradients come from central differences (:func:`lora_np.numerical_grad`)
with a random upstream gradient, the way :func:`lora_np.gradcheck` checks the engine.
"""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    Student,
    as_array,
    as_class,
    as_tuple,
    case_text,
    exercise,
    expect_close,
    run_student,
    shape_text,
)
from lora_np.gradcheck import numerical_grad
from lora_np.tensor import Function, Tensor

NOTEBOOK = "01_autograd_from_scratch"
FINITE_DIFFERENCES = "central differences"


def _broadcast_cases(rng: np.random.Generator) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, broadcast shape) pairs: prepended axes, stretched axes, both, none."""
    n, m, k, b = (int(v) for v in rng.integers(2, 6, size=4))
    return [
        ((m,), (n, m)),  # a bias: one prepended axis
        ((n, 1), (n, m)),  # a stretched axis
        ((1, m), (n, m)),
        ((k, 1, m), (b, k, n, m)),  # both: one prepended, one stretched
        ((), (n, m)),  # a scalar
        ((1, 1), (n, m)),
        ((n, m), (n, m)),  # nothing to undo
    ]


@exercise(
    "matmul_vjp",
    NOTEBOOK,
    "matmul_vjp(a, b, g) -> (ga, gb)",
    "The VJP of out = a @ b: the gradients of L = <g, a @ b> with respect to a (n, k) and "
    "b (k, m), for an upstream gradient g (n, m).",
)
def _matmul_vjp(student: Student, rng: np.random.Generator) -> str:
    shapes = [tuple(int(v) for v in rng.choice(np.arange(1, 7), size=3, replace=False))]
    shapes += [tuple(int(v) for v in rng.integers(1, 7, size=3)) for _ in range(3)]
    side = int(rng.integers(2, 6))
    shapes.append((side, side, side))  # square: a reshape for a transpose keeps the shapes
    for index, (n, k, m) in enumerate(shapes):
        a, b, g = (
            rng.standard_normal((n, k)),
            rng.standard_normal((k, m)),
            rng.standard_normal((n, m)),
        )
        where = shape_text(a=a, b=b, g=g) + case_text(index, shapes)
        ga, gb = as_tuple(student(a, b, g, where=where), "your result", ("ga", "gb"), where)
        ga = as_array(ga, "your ga", shape=a.shape, where=where, shape_note="a's shape")
        gb = as_array(gb, "your gb", shape=b.shape, where=where, shape_note="b's shape")
        expect_ga = numerical_grad(lambda t, b=b: t @ Tensor(b), a, upstream=g)
        expect_gb = numerical_grad(lambda t, a=a: Tensor(a) @ t, b, upstream=g)
        expect_close(
            ga, expect_ga, "your ga (the gradient for a)", where, reference=FINITE_DIFFERENCES
        )
        expect_close(
            gb, expect_gb, "your gb (the gradient for b)", where, reference=FINITE_DIFFERENCES
        )
    return f"{len(shapes)} random shapes, one of them square; checked against central differences"


@exercise(
    "sin_function",
    NOTEBOOK,
    "class Sin(Function): forward(a) -> sin(a), backward(grad) -> (grad_a,)",
    "A primitive of your own: a Function subclass whose forward computes sin and saves what "
    "backward needs, and whose backward returns one gradient per input, run through the "
    "real engine.",
)
def _sin_function(student: Student, rng: np.random.Generator) -> str:
    cls = as_class(student.obj, Function, "lora_np.Function (class Sin(Function): ...)")
    name = cls.__name__
    shapes = [
        (int(rng.integers(2, 7)),),
        tuple(int(v) for v in rng.integers(2, 5, size=2)),
        (2, 3, 2),
    ]
    for index, shape in enumerate(shapes):
        x = rng.standard_normal(shape) * 2
        u = rng.standard_normal(shape)
        where = f" for an input of shape {shape}" + case_text(index, shapes)
        # forward and backward called directly, as the engine calls them
        function = run_student(cls, f"{name}()", where)
        function.needs_input_grad = (True,)
        out = run_student(lambda f=function, x=x: f.forward(x.copy()), f"{name}.forward", where)
        out = as_array(out, f"what your {name}.forward returned", shape=shape, where=where)
        expect_close(out, np.sin(x), f"your {name}.forward", where, reference="np.sin")
        grads = run_student(lambda f=function, u=u: f.backward(u.copy()), f"{name}.backward", where)
        if isinstance(grads, np.ndarray):
            grads = (grads,)  # the engine accepts a bare array for a one-input function
        (grad,) = as_tuple(grads, f"what your {name}.backward returned", ("grad_a",), where)
        grad = as_array(grad, f"your {name}.backward's gradient", shape=shape, where=where)
        expected = numerical_grad(lambda t: Tensor(np.sin(t.data)), x, upstream=u)
        expect_close(
            grad,
            expected,
            f"your {name}.backward's gradient",
            where + " with a random upstream gradient",
            reference=FINITE_DIFFERENCES,
        )
        # through the engine, applied twice: each application must keep its own saved input
        leaf = Tensor(x, requires_grad=True)
        nested = run_student(
            lambda leaf=leaf, u=u: cls.apply(cls.apply(leaf)).backward(u),
            f"{name}, through the engine as {name}.apply({name}.apply(x)).backward(u)",
            where,
        )
        del nested
        twice = numerical_grad(lambda t: Tensor(np.sin(np.sin(t.data))), x, upstream=u)
        got = as_array(
            leaf.grad, f"x.grad after {name}.apply({name}.apply(x))", shape=shape, where=where
        )
        expect_close(
            got,
            twice,
            f"x.grad after backward through {name}.apply({name}.apply(x))",
            where + " (each application must save its own input on self)",
            reference=FINITE_DIFFERENCES,
        )
    return (
        f"forward, backward and the engine's gradient of {name}.apply({name}.apply(x)) on "
        f"{len(shapes)} random inputs"
    )


@exercise(
    "sum_to_shape",
    NOTEBOOK,
    "sum_to_shape(g, shape) -> array",
    "Undo broadcasting: sum the gradient g (of the broadcast result's shape) back down to "
    "the input's shape.",
)
def _sum_to_shape(student: Student, rng: np.random.Generator) -> str:
    cases = _broadcast_cases(rng)
    for index, (shape, broadcast) in enumerate(cases):
        g = rng.standard_normal(broadcast)
        x = rng.standard_normal(shape)
        where = f" for shape {shape} and g of shape {broadcast}" + case_text(index, cases)
        got = as_array(
            student(g, shape, where=where),
            "your result",
            shape=shape,
            where=where,
            shape_note="the shape you were asked for",
        )
        # the gradient of x -> <g, broadcast_to(x)>: summing back is the adjoint of copying
        expected = numerical_grad(lambda t, to=broadcast: t.broadcast_to(to), x, upstream=g)
        expect_close(got, expected, "your result", where, reference=FINITE_DIFFERENCES)
    return f"{len(cases)} ways of broadcasting (prepended axes, stretched axes, both, none)"
