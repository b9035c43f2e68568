"""Exercises of notebook 03 (the LoRA layer): the layer as a Module, its forward and
gradients in NumPy, LoRA's and rsLoRA's scaling, and merging.

The reference is the library's own :class:`lora_np.lora.LoRALinear`, loaded with the case's
weights, and central differences for the gradients.
"""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    ExerciseError,
    Student,
    as_array,
    as_class,
    as_number,
    as_tuple,
    case_text,
    exercise,
    expect_close,
    expect_number,
    run_student,
    shape_text,
)
from lora_np.gradcheck import numerical_grad
from lora_np.lora import LoRALinear, lora_scaling
from lora_np.nn import Linear, Module
from lora_np.tensor import Tensor, no_grad

NOTEBOOK = "03_the_lora_layer"


def _library_layer(
    W: np.ndarray, bias: np.ndarray | None, A: np.ndarray, B: np.ndarray, alpha: float, rank: int
) -> LoRALinear:
    """LoRALinear holding exactly these weights (in their dtype), in eval mode."""
    out_f, in_f = W.shape
    unused = np.random.default_rng(0)  # the initial draws are overwritten right away
    base = Linear(in_f, out_f, bias=bias is not None, dtype=W.dtype, rng=unused)
    base.weight.data = W.copy()
    if bias is not None:
        base.bias.data = bias.copy()
    layer = LoRALinear.from_linear(base, rank, alpha, rng=unused)
    layer.lora_a.weight.data = A.copy()
    layer.lora_b.weight.data = B.copy()
    return layer.eval()


def _lora_output(layer: LoRALinear, x: np.ndarray) -> np.ndarray:
    with no_grad():
        return layer(Tensor(x)).data


def _draw_case(
    rng: np.random.Generator, dtype: type = np.float64, square: bool = False, with_bias: bool = True
) -> dict:
    """A random LoRA case: sizes, weights, a B that is not zero, α different from r."""
    n = int(rng.integers(1, 6))
    in_f = int(rng.integers(3, 9))
    out_f = in_f if square else int(rng.choice([v for v in range(2, 9) if v != in_f]))
    rank = int(rng.integers(1, min(in_f, out_f) + 1))
    alpha = float(rng.uniform(0.5, 20.0))
    case = {
        "x": rng.standard_normal((n, in_f)),
        "W": rng.standard_normal((out_f, in_f)),
        "bias": rng.standard_normal(out_f) if with_bias else None,
        "A": rng.standard_normal((rank, in_f)),
        "B": rng.standard_normal((out_f, rank)),
        "alpha": alpha,
        "rank": rank,
    }
    for key in ("x", "W", "bias", "A", "B"):
        if case[key] is not None:
            case[key] = case[key].astype(dtype)
    return case


def _where(case: dict, index: int, total: int, with_x: bool = True) -> str:
    arrays = {"x": case["x"]} if with_x else {}
    shapes = shape_text(**arrays, W=case["W"], A=case["A"], B=case["B"])
    bias = "no bias" if case["bias"] is None else "with bias"
    dtype = "" if case["x"].dtype == np.float64 else f", {case['x'].dtype}"
    return (
        f"{shapes[:-1]}, rank {case['rank']}, alpha {case['alpha']:.4g}, {bias}{dtype}) "
        f"(case {index + 1} of {total})"
    )


def _forward_cases(rng: np.random.Generator) -> list[dict]:
    return [
        _draw_case(rng),
        _draw_case(rng),
        _draw_case(rng, square=True),
        _draw_case(rng, with_bias=False),
        _draw_case(rng, dtype=np.float32),
    ]


def _tolerance(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-10}


@exercise(
    "lora_linear",
    NOTEBOOK,
    "class MyLoRALinear(Module): __init__(in_feats, out_feats, rank, alpha); forward(x)",
    "The LoRA layer as a Module: a frozen Linear `linear` (no bias) plus `lora_a` "
    "(in → rank) and `lora_b` (rank → out) without bias, B zero at the start, and "
    "forward linear(x) + (alpha/rank)·lora_b(lora_a(x)).",
)
def _lora_linear(student: Student, rng: np.random.Generator) -> str:
    cls = as_class(student.obj, Module, "lora_np.nn.Module")
    name = cls.__name__
    sizes = [(6, 4, 2, 8.0), (5, 7, 3, 1.5), (8, 8, 1, 4.0)]
    for index, (in_f, out_f, rank, alpha) in enumerate(sizes):
        where = f" for {name}({in_f}, {out_f}, rank={rank}, alpha={alpha:g})" + case_text(
            index, sizes
        )
        layer = run_student(lambda a=(in_f, out_f, rank, alpha): cls(*a), f"{name}(...)", where)
        _check_structure(layer, name, in_f, out_f, rank, alpha, where)
        x = rng.standard_normal((4, in_f)).astype(layer.linear.weight.dtype)
        # at the start the layer must compute exactly what its frozen base computes
        y0 = _student_forward(layer, x, name, where, out_f)
        with no_grad():
            base = layer.linear(Tensor(x)).data
        if not np.allclose(y0.data, base, rtol=1e-6, atol=1e-6):
            raise ExerciseError(
                f"at the start your layer's output differs from its base layer{where}: "
                f"max |Δ| = {float(np.max(np.abs(y0.data - base))):.3g}; LoRA starts as the "
                "pretrained layer"
            )
        # after training has moved B: the library's layer with the same weights agrees
        layer.lora_b.weight.data = rng.standard_normal((out_f, rank)).astype(
            layer.linear.weight.dtype
        )
        reference = LoRALinear(
            in_f, out_f, rank, alpha, dtype=layer.linear.weight.dtype, rng=np.random.default_rng(0)
        )
        reference.load_state_dict({k: v.copy() for k, v in _state(layer).items()})
        u = rng.standard_normal((4, out_f))
        y = _student_forward(layer, x, name, where, out_f)
        expected = reference(Tensor(x))
        expect_close(y.data, expected.data, f"your {name}'s output", where, rtol=1e-5, atol=1e-5)
        run_student(lambda y=y, u=u: y.backward(u), f"{name}: backward through your forward", where)
        expected.backward(u)
        if layer.linear.weight.grad is not None:
            raise ExerciseError(f"linear.weight received a gradient{where}; it must stay frozen")
        for part in ("lora_a", "lora_b"):
            got = getattr(layer, part).weight.grad
            if got is None:
                raise ExerciseError(
                    f"{part}.weight received no gradient{where}: does your forward use it?"
                )
            expect_close(
                got,
                getattr(reference, part).weight.grad,
                f"the gradient of {part}.weight",
                where,
                rtol=1e-4,
                atol=1e-5,
                reference="LoRALinear's",
            )
    return (
        f"{len(sizes)} layer sizes: submodules, state-dict keys, frozen base, B = 0 at the "
        "start, forward and gradients equal to LoRALinear's"
    )


def _state(layer: Module) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in layer.state_dict().items()}


def _check_structure(
    layer: Module, name: str, in_f: int, out_f: int, rank: int, alpha: float, where: str
) -> None:
    expected_shapes = {"linear": (out_f, in_f), "lora_a": (rank, in_f), "lora_b": (out_f, rank)}
    for part, shape in expected_shapes.items():
        sub = getattr(layer, part, None)
        if not isinstance(sub, Linear):
            raise ExerciseError(
                f"your {name} needs a submodule `{part}`, a lora_np.nn.Linear{where}; got "
                f"{type(sub).__name__ if sub is not None else 'nothing'}"
            )
        if sub.weight.shape != shape:
            raise ExerciseError(
                f"{part}.weight has shape {sub.weight.shape}{where}, expected {shape} "
                "(a Linear's weight is (out, in))"
            )
        if sub.bias is not None:
            raise ExerciseError(f"{part} has a bias{where}; create it with bias=False")
    keys = sorted(_state(layer))
    expected_keys = sorted(
        LoRALinear(in_f, out_f, rank, alpha, rng=np.random.default_rng(0)).state_dict()
    )
    if keys != expected_keys:
        raise ExerciseError(
            f"your {name}'s state_dict keys are {keys}{where}, expected {expected_keys} (the "
            "names PEFT and LoRALinear use)"
        )
    for attribute, value in (("rank", rank), ("alpha", alpha), ("scaling", alpha / rank)):
        got = getattr(layer, attribute, None)
        if not isinstance(got, (int, float, np.number)) or not np.isclose(got, value, rtol=1e-12):
            raise ExerciseError(f"your {name}.{attribute} is {got!r}{where}, expected {value:g}")
    if layer.linear.weight.requires_grad:
        raise ExerciseError(
            f"linear.weight requires a gradient{where}; freeze it "
            "(requires_grad = False): LoRA trains only A and B"
        )
    for part in ("lora_a", "lora_b"):
        if not getattr(layer, part).weight.requires_grad:
            raise ExerciseError(f"{part}.weight is frozen{where}; it is what LoRA trains")
    if np.any(layer.lora_b.weight.data):
        raise ExerciseError(
            f"lora_b.weight is not zero at the start{where}; B starts at zero so that the "
            "layer starts as the pretrained one"
        )
    if not np.any(layer.lora_a.weight.data):
        raise ExerciseError(
            f"lora_a.weight is all zeros at the start{where}; with A = B = 0 neither ever "
            "gets a gradient (draw A at random)"
        )


def _student_forward(layer: Module, x: np.ndarray, name: str, where: str, out_f: int) -> Tensor:
    y = run_student(lambda: layer(Tensor(x)), f"{name}.forward", where)
    if not isinstance(y, Tensor):
        raise ExerciseError(
            f"your {name}.forward returned {type(y).__name__}{where}; return the Tensor the "
            "layers compute (so that gradients can flow)"
        )
    if y.shape != (x.shape[0], out_f):
        raise ExerciseError(
            f"your {name}.forward returned shape {y.shape}{where}, expected {(x.shape[0], out_f)}"
        )
    return y


@exercise(
    "lora_forward",
    NOTEBOOK,
    "lora_forward(x, W, bias, A, B, alpha, rank) -> y",
    "The LoRA layer's output y = x·Wᵀ + bias + (alpha/rank)·x·Aᵀ·Bᵀ for x (N, in), "
    "W (out, in), A (rank, in), B (out, rank); bias (out,) or None.",
)
def _lora_forward(student: Student, rng: np.random.Generator) -> str:
    cases = _forward_cases(rng)
    for index, case in enumerate(cases):
        where = _where(case, index, len(cases))
        args = [case[k] for k in ("x", "W", "bias", "A", "B", "alpha", "rank")]
        n, out_f = case["x"].shape[0], case["W"].shape[0]
        got = as_array(
            student(*args, where=where),
            "your y",
            shape=(n, out_f),
            dtype=case["x"].dtype,
            where=where,
            shape_note="(N, out)",
        )
        layer = _library_layer(*[case[k] for k in ("W", "bias", "A", "B", "alpha", "rank")])
        expected = _lora_output(layer, case["x"])
        expect_close(
            got, expected, "your y", where, reference="LoRALinear", **_tolerance(got.dtype)
        )
    return f"{len(cases)} random layers (one square, one without bias, one in float32)"


@exercise(
    "lora_vjp",
    NOTEBOOK,
    "lora_vjp(x, A, B, alpha, rank, g) -> (gA, gB)",
    "The gradients of L = <g, y> with respect to A and B, for y = x·Wᵀ + (alpha/rank)·x·Aᵀ·Bᵀ "
    "and an upstream gradient g (N, out).",
)
def _lora_vjp(student: Student, rng: np.random.Generator) -> str:
    cases = [_draw_case(rng), _draw_case(rng), _draw_case(rng, square=True), _draw_case(rng)]
    cases[-1]["B"] = np.zeros_like(cases[-1]["B"])  # LoRA's init: then A's gradient is zero
    for index, case in enumerate(cases):
        x, A, B, alpha, rank = (case[k] for k in ("x", "A", "B", "alpha", "rank"))
        g = rng.standard_normal((x.shape[0], B.shape[0]))
        where = _where(case, index, len(cases))
        if not np.any(B):
            where += ", at B = 0"
        result = student(x, A, B, alpha, rank, g, where=where)
        gA, gB = as_tuple(result, "your result", ("gA", "gB"), where)
        gA = as_array(gA, "your gA", shape=A.shape, where=where, shape_note="A's shape")
        gB = as_array(gB, "your gB", shape=B.shape, where=where, shape_note="B's shape")
        s = alpha / rank
        expect_A = numerical_grad(
            lambda t, x=x, B=B, s=s: (Tensor(x) @ t.T @ Tensor(B).T) * s, A, upstream=g
        )
        expect_B = numerical_grad(
            lambda t, x=x, A=A, s=s: (Tensor(x) @ Tensor(A).T @ t.T) * s, B, upstream=g
        )
        expect_close(gA, expect_A, "your gA", where, atol=1e-8, reference="central differences")
        expect_close(gB, expect_B, "your gB", where, atol=1e-8, reference="central differences")
    return f"{len(cases)} random layers, one at LoRA's init B = 0"


@exercise(
    "lora_scaling",
    NOTEBOOK,
    "lora_scaling(rank, alpha, use_rslora) -> float",
    "The factor s that multiplies B·A: alpha/rank for LoRA, alpha/√rank for rsLoRA.",
)
def _lora_scaling(student: Student, rng: np.random.Generator) -> str:
    cases = [
        (r, float(rng.uniform(0.5, 64)), flag) for r in (2, 8, 64, 3) for flag in (False, True)
    ]
    cases += [(4, 16, False), (4, 16, True), (1, 1.0, True)]
    for index, (rank, alpha, rslora) in enumerate(cases):
        where = (
            f" for rank = {rank}, alpha = {alpha:g}, use_rslora = {rslora} "
            f"(case {index + 1} of {len(cases)})"
        )
        got = as_number(student(rank, alpha, rslora, where=where), "your scaling", where)
        expect_number(
            got,
            lora_scaling(rank, alpha, rslora),
            "your scaling",
            where,
            reference="lora_np.lora.lora_scaling",
        )
    return f"{len(cases)} (alpha, rank) pairs, with and without rsLoRA"


@exercise(
    "lora_merge",
    NOTEBOOK,
    "lora_merge(W, A, B, alpha, rank) -> W_merged",
    "Fold the adapter into the weight: a new (out, in) matrix W_merged such that "
    "x·W_mergedᵀ is the LoRA layer's output; W itself stays unchanged.",
)
def _lora_merge(student: Student, rng: np.random.Generator) -> str:
    cases = _forward_cases(rng)
    for index, case in enumerate(cases):
        W, bias, A, B, alpha, rank = (case[k] for k in ("W", "bias", "A", "B", "alpha", "rank"))
        where = _where(case, index, len(cases), with_x=False)
        merged = as_array(
            student(W, A, B, alpha, rank, where=where),
            "your W_merged",
            shape=W.shape,
            dtype=W.dtype,
            where=where,
            shape_note="W's shape (out, in)",
        )
        # more inputs than input features: equal outputs on them mean equal weights
        x = rng.standard_normal((W.shape[1] + 3, W.shape[1])).astype(W.dtype)
        expected = _lora_output(_library_layer(W, bias, A, B, alpha, rank), x)
        got = x @ merged.T + (0 if bias is None else bias)
        if not np.allclose(got, expected, **_tolerance(W.dtype)):
            difference = float(np.max(np.abs(got - expected)))
            raise ExerciseError(
                f"your merge changes the output: max |Δ| = {difference:.3g} between the "
                f"merged layer x·W_mergedᵀ + bias and the LoRA layer (LoRALinear){where}"
            )
    return f"{len(cases)} random layers: the merged layer computes what the LoRA layer computes"
