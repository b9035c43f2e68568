"""Every primitive, gradient-checked; and every primitive's backward, checked alone.

The catalogue convention (follow it when you add a primitive)
-------------------------------------------------------------
A primitive is a :class:`~lora_np.tensor.Function` subclass defined in a module of the
``lora_np`` package. :func:`primitives` finds them all (it walks
``Function.__subclasses__()`` recursively, after importing the package's modules that
define any, see :data:`PRIMITIVE_MODULES`). :func:`test_every_primitive_has_samples`
fails for a primitive without sample inputs in :data:`CATALOGUE`, and
:func:`test_gradcheck_primitive` runs :func:`lora_np.gradcheck` on every sample, in
float64 with a random upstream gradient.

A sample case is ``(inputs, settings)``: ``inputs`` is the tuple passed to
``Cls.apply``, ``settings`` the dict passed to ``Cls(**settings)`` (axis, exponent,
index, a projection matrix, ...). Float arrays among the inputs are checked; a
``Tensor(x)`` without grad or an integer array is held constant. The catalogue is keyed
by class, so two primitives of the same name in different modules cannot collide.

A class defined outside the package — in a test (a deliberately wrong op written to
test the checker) or in a notebook — is not a primitive of the package and is never
catalogued.

Keep sample inputs small (a few dozen elements): the check costs two forward passes
per element.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import lora_np
from lora_np import ops
from lora_np.gradcheck import gradcheck
from lora_np.lora.function import LoRALinearFunction
from lora_np.nn import conv
from lora_np.nn import functional as F
from lora_np.subspace import projections
from lora_np.tensor import Function, Tensor

Case = tuple[tuple[Any, ...], dict[str, Any]]

# ----------------------------------------------------------------------------- primitives

#: Modules that may define primitives of their own. Each is imported if its file exists
#: (an import error is a real error and fails collection; it is not hidden). A package
#: is imported with all of its submodules. As a safety net, any other module of the
#: package whose source declares a ``class ...(...Function...)`` is imported as well.
PRIMITIVE_MODULES = ("lora_np.nn", "lora_np.subspace", "lora_np.lora")

_DECLARES_FUNCTION = re.compile(r"^class \w+\([\w.]*Function\)", re.MULTILINE)


def _import_primitive_modules() -> None:
    package_dir = Path(lora_np.__file__).parent
    for name in PRIMITIVE_MODULES:
        relative = Path(*name.split(".")[1:])
        as_file = (package_dir / relative).with_suffix(".py")
        as_package = package_dir / relative / "__init__.py"
        if as_file.exists():
            importlib.import_module(name)
        elif as_package.exists():
            package = importlib.import_module(name)
            for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
                importlib.import_module(info.name)
    for path in sorted(package_dir.rglob("*.py")):
        if _DECLARES_FUNCTION.search(path.read_text(encoding="utf-8")):
            parts = path.relative_to(package_dir.parent).with_suffix("").parts
            importlib.import_module(".".join(p for p in parts if p != "__init__"))


_import_primitive_modules()


def primitives() -> list[type[Function]]:
    """Every Function subclass defined in a module of the lora_np package, by name."""
    found: set[type[Function]] = set()
    stack = list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("lora_np."):
            found.add(cls)
    return sorted(found, key=lambda cls: (cls.__name__, cls.__module__))


# ----------------------------------------------------------------------------- catalogue

BROADCAST_SHAPES = [(), (4,), (3, 4), (1, 4), (2, 3, 4)]


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |x| in [0.5, 2]: safe for division, and no kink of relu nearby."""
    return np.asarray(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape))


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in [0.5, 2]: the domain of log, sqrt and fractional powers."""
    return rng.uniform(0.5, 2.0, size=shape)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """All different, at least 0.1 apart: max has no ties, so it is differentiable."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.1 + rng.uniform(0, 0.01, size)).reshape(shape) - 1.0


def _catalogue(rng: np.random.Generator) -> dict[type[Function], list[Case]]:
    """Sample cases for every primitive of the package."""

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    pairs = list(itertools.product(BROADCAST_SHAPES, repeat=2))
    logits = r(4, 5)
    logits[:, :2] += 1e3  # two large logits compete; exp(1e3) would overflow
    logits[:, 2] -= 1e3
    cat: dict[type[Function], list[Case]] = {
        ops.Add: [((r(*sa), r(*sb)), {}) for sa, sb in pairs]
        + [((r(3, 4), Tensor(r(4))), {})],  # a constant second input
        ops.Mul: [((r(*sa), r(*sb)), {}) for sa, sb in pairs] + [((Tensor(r(3, 4)), r(1, 4)), {})],
        ops.Div: [((r(*sa), _away_from_zero(rng, sb)), {}) for sa, sb in pairs]
        + [((r(3, 4), Tensor(_away_from_zero(rng, (4,)))), {})],
        ops.Neg: [((r(*s),), {}) for s in [(), (3, 4)]],
        ops.Pow: [((_positive(rng, (3, 4)),), {"exponent": p}) for p in (2, 3, 0.5, -1.5, 0, 1)]
        + [((r(2, 3),), {"exponent": 3}), ((r(2, 3),), {"exponent": 2.0})],
        ops.Exp: [((r(3, 4),), {}), ((r(),), {})],
        ops.Log: [((_positive(rng, (3, 4)),), {}), ((rng.uniform(1e-3, 1e-2, (5,)),), {})],
        ops.Sqrt: [((_positive(rng, (3, 4)),), {}), ((rng.uniform(1e-2, 1e-1, (5,)),), {})],
        ops.Tanh: [((r(3, 4),), {}), ((np.array([-30.0, -3.0, 0.0, 3.0, 30.0]),), {})],
        ops.Sigmoid: [((r(3, 4),), {}), ((np.array([-800.0, -30.0, 0.0, 30.0, 800.0]),), {})],
        ops.ReLU: [((_away_from_zero(rng, (3, 4)),), {}), ((_away_from_zero(rng, (2, 3, 4)),), {})],
        ops.MatMul: [
            ((r(3, 4), r(4, 5)), {}),
            ((r(2, 3, 4), r(4, 5)), {}),  # batched @ 2-D
            ((r(3, 4), r(2, 4, 5)), {}),  # 2-D @ batched
            ((r(1, 3, 4), r(2, 4, 5)), {}),  # batch axes broadcast
            ((r(2, 1, 3, 4), r(3, 4, 2)), {}),
            ((r(4), r(4, 5)), {}),  # 1-D @ 2-D
            ((r(3, 4), r(4)), {}),  # 2-D @ 1-D
            ((r(4), r(4)), {}),  # 1-D @ 1-D
            ((r(4), r(2, 4, 5)), {}),  # 1-D @ batched
            ((r(2, 3, 4), r(4)), {}),  # batched @ 1-D
            ((Tensor(r(3, 4)), r(4, 5)), {}),  # a frozen left input
            ((r(3, 4), Tensor(r(4, 5))), {}),  # a frozen right input
        ],
        ops.Linear: [
            ((r(3, 4), r(5, 4), r(5)), {}),  # x (N, in), W (out, in), b (out,)
            ((r(3, 4), r(5, 4)), {}),  # no bias
            ((r(2, 3, 4), r(5, 4), r(5)), {}),  # leading axes are rows
            ((r(4), r(5, 4), r(5)), {}),  # one sample
            ((Tensor(r(3, 4)), r(5, 4), r(5)), {}),  # data input: no dL/dx
            ((r(3, 4), Tensor(r(5, 4)), Tensor(r(5))), {}),  # frozen layer: dL/dx only
        ],
        ops.Sum: [
            ((r(2, 3, 4),), {"axis": axis, "keepdims": keep})
            for axis in (None, 0, 1, -1, (0, 2), (-1, -2), ())
            for keep in (False, True)
        ]
        + [((r(),), {}), ((r(5),), {"axis": 0})],
        ops.Max: [
            ((_distinct(rng, (2, 3, 4)),), {"axis": axis, "keepdims": keep})
            for axis in (None, 0, 1, -1, (0, 2))
            for keep in (False, True)
        ]
        + [((_distinct(rng, (5,)),), {})],
        ops.LogSoftmax: [
            ((r(3, 5),), {"axis": -1}),
            ((r(3, 5),), {"axis": 0}),
            ((r(2, 3, 4),), {"axis": 1}),
            ((logits,), {"axis": -1}),
            ((logits.T.copy(),), {"axis": 0}),
        ],
        ops.Reshape: [
            ((r(3, 4),), {"shape": (2, 6)}),
            ((r(3, 4),), {"shape": (-1,)}),
            ((r(2, 3, 4),), {"shape": (4, -1)}),
            ((r(),), {"shape": (1, 1)}),
        ],
        ops.Transpose: [((r(2, 3, 4),), {"axes": p}) for p in itertools.permutations(range(3))]
        + [
            ((r(3, 4),), {"axes": None}),
            ((r(2, 3, 4),), {"axes": None}),
            ((r(2, 3, 4),), {"axes": (-1, 0, -2)}),
            ((r(5),), {"axes": (0,)}),
        ],
        ops.BroadcastTo: [
            ((r(4),), {"shape": (3, 4)}),
            ((r(1, 4),), {"shape": (2, 3, 4)}),
            ((r(),), {"shape": (2, 3)}),
            ((r(3, 1),), {"shape": (2, 3, 4)}),
        ],
        ops.GetItem: [
            ((r(5, 4),), {"index": slice(1, 4)}),
            ((r(5, 4),), {"index": (slice(None, None, 2), slice(3, 0, -1))}),
            ((r(5, 4),), {"index": 2}),
            ((r(5, 4),), {"index": (1, -1)}),
            ((r(5, 4),), {"index": np.array([0, 2, 0, 0, 4])}),  # repeats accumulate
            ((r(5, 4),), {"index": [3, 3, 1]}),
            ((r(5, 4),), {"index": (np.array([0, 0, 1]), np.array([2, 2, 3]))}),
            ((r(5, 4),), {"index": (slice(None), np.array([1, 1, 0]))}),
            ((r(5, 4),), {"index": r(5, 4) > 0}),  # boolean mask
            ((r(5, 4),), {"index": np.array([True, False, True, True, False])}),
            ((r(2, 3, 4),), {"index": (Ellipsis, None, 1)}),
            ((r(5, 4),), {"index": Tensor(np.array([4, 0, 4]))}),
        ],
        ops.SoftmaxCrossEntropy: [
            ((r(4, 5),), {"labels": np.array([0, 4, 2, 2]), "reduction": reduction})
            for reduction in ops.REDUCTIONS
        ]
        + [
            ((logits,), {"labels": np.array([0, 1, 2, 3]), "reduction": "mean"}),
            ((r(1, 3),), {"labels": np.array([1]), "reduction": "mean"}),
        ],
        LoRALinearFunction: [
            # x, x̃ (another input: dropout's), W (out, in), A (r, in), B (out, r), b
            ((r(3, 4), r(3, 4), r(5, 4), r(2, 4), r(5, 2), r(5)), {"scaling": 1.5}),
            ((r(3, 4), r(3, 4), r(5, 4), r(2, 4), r(5, 2)), {"scaling": 0.5}),  # no bias
            ((r(2, 3, 4), r(2, 3, 4), r(5, 4), r(1, 4), r(5, 1), r(5)), {"scaling": 2.0}),
            ((r(4), r(4), r(5, 4), r(3, 4), r(5, 3), r(5)), {"scaling": 1.0}),  # one sample
            # the usual LoRA layer: data in, W and b frozen; and LoRA-FA's frozen A
            ((Tensor(r(3, 4)),) * 2 + (Tensor(r(5, 4)), r(2, 4), r(5, 2)), {"scaling": 3.0}),
            ((r(3, 4), r(3, 4), Tensor(r(5, 4)), Tensor(r(2, 4)), r(5, 2)), {"scaling": 3.0}),
        ],
        projections.DenseProject: [
            ((r(3),), {"matrix": projections.draw_dense(7, 3, np.float64, rng)}),
            ((r(1),), {"matrix": projections.draw_dense(5, 1, np.float64, rng)}),
        ],
        projections.SparseProject: [
            ((r(d),), _sparse_settings(num_rows, d, rng)) for num_rows, d in ((9, 4), (16, 16))
        ],
        projections.FastfoodProject: [
            ((r(d),), projections.draw_fastfood(num_rows, np.float64, rng))
            for num_rows, d in ((5, 3), (8, 8), (300, 7))
        ],
    }
    return cat


def _sparse_settings(num_rows: int, d: int, rng: np.random.Generator) -> dict[str, Any]:
    rows, values = projections.draw_sparse(num_rows, d, np.float64, rng)
    return {"rows": rows, "values": values, "num_rows": num_rows}


CATALOGUE = _catalogue(np.random.default_rng(0))


def _conv_cases(rng: np.random.Generator) -> list[Case]:
    """lora_np.nn.conv's primitive: x (N, C, H, W), w (O, C, k, k), b (O,)."""

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    return [
        ((r(2, 3, 5, 5), r(4, 3, 3, 3), r(4)), {"stride": 1, "padding": 0}),
        ((r(2, 2, 6, 5), r(3, 2, 3, 3), r(3)), {"stride": 2, "padding": 1}),  # odd, strided
        ((r(1, 1, 4, 4), r(2, 1, 2, 2)), {"stride": 2, "padding": 0}),  # no bias
        ((r(2, 2, 3, 4), r(2, 2, 1, 3), r(2)), {"stride": 1, "padding": 2}),  # wide padding
        ((Tensor(r(2, 1, 4, 4)), r(3, 1, 3, 3), r(3)), {"stride": 1, "padding": 1}),  # data
        ((r(2, 2, 4, 4), Tensor(r(2, 2, 3, 3)), Tensor(r(2))), {"stride": 1, "padding": 1}),
    ]


CATALOGUE[conv.Convolution2d] = _conv_cases(np.random.default_rng(1))


def _transformer_cases(rng: np.random.Generator) -> dict[type[Function], list[Case]]:
    """Sample cases for the fused primitives of the transformer layers in :mod:`lora_np.nn`."""
    from lora_np.nn.activations import GELUFunction
    from lora_np.nn.attention import CausalAttentionFunction
    from lora_np.nn.embedding import EmbeddingFunction
    from lora_np.nn.normalization import LayerNormFunction

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    ids = np.array([[0, 2, 2], [4, 0, 1]])  # repeated ids: their gradients must add up
    return {
        EmbeddingFunction: [((ids, r(5, 3)), {}), ((np.array([3, 3, 1]), r(4, 2)), {})],
        LayerNormFunction: [
            ((r(3, 5) * 3 + 1, r(5), r(5)), {"eps": 1e-5}),
            ((r(2, 3, 4), r(4), r(4)), {"eps": 0.1}),
            ((Tensor(r(3, 4)), r(4), r(4)), {"eps": 1e-5}),  # only the affine part trains
            ((r(3, 4), Tensor(r(4)), Tensor(r(4))), {"eps": 1e-5}),  # a frozen LayerNorm
        ],
        GELUFunction: [((r(3, 4),), {}), ((np.linspace(-8.0, 8.0, 9),), {})],
        CausalAttentionFunction: [
            ((r(2, 3, 4), r(2, 3, 4), r(2, 3, 4)), {"n_heads": 2}),
            ((r(1, 4, 6), r(1, 4, 6), r(1, 4, 6)), {"n_heads": 3}),
            ((r(2, 1, 2), r(2, 1, 2), r(2, 1, 2)), {"n_heads": 1}),  # one position
            ((r(1, 3, 4), Tensor(r(1, 3, 4)), r(1, 3, 4)), {"n_heads": 2}),  # frozen keys
            ((Tensor(r(1, 3, 4)), r(1, 3, 4), Tensor(r(1, 3, 4))), {"n_heads": 1}),
        ],
    }


CATALOGUE.update(_transformer_cases(np.random.default_rng(1)))


def _params() -> list[Any]:
    params = []
    for cls in primitives():
        for i, case in enumerate(CATALOGUE.get(cls, [])):
            params.append(pytest.param(cls, case, id=f"{cls.__name__}-{i}"))
    return params


def test_every_primitive_has_samples() -> None:
    missing = [f"{c.__module__}.{c.__qualname__}" for c in primitives() if not CATALOGUE.get(c)]
    assert not missing, (
        f"primitives without gradcheck samples: {missing}. Add cases to CATALOGUE in "
        "tests/test_ops.py (see this module's docstring)"
    )


def test_catalogue_names_only_primitives() -> None:
    stale = sorted(c.__name__ for c in set(CATALOGUE) - set(primitives()))
    assert not stale, f"CATALOGUE has cases for classes that are not primitives: {stale}"


def test_primitives_include_every_ops_and_projections_primitive() -> None:
    defined = {
        obj
        for module in (ops, projections)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Function) and obj is not Function
    }
    assert defined <= set(primitives())
    assert {ops.Add, ops.MatMul, ops.SoftmaxCrossEntropy, projections.FastfoodProject} <= defined


class _DefinedInATest(Function):
    """Not a primitive of the package: it must not need (or get) a catalogue entry."""

    def forward(self, a: np.ndarray) -> np.ndarray:
        return a

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad,)


def test_classes_defined_outside_the_package_are_not_primitives() -> None:
    found = primitives()
    assert _DefinedInATest not in found
    assert all(cls.__module__.startswith("lora_np.") for cls in found)


@pytest.mark.parametrize(("cls", "case"), _params())
def test_gradcheck_primitive(cls: type[Function], case: Case) -> None:
    inputs, kwargs = case

    def fn(*xs: Tensor) -> Tensor:
        return cls.apply(*xs, **kwargs)

    assert gradcheck(fn, inputs, name=f"{cls.__name__}({kwargs})")


# ----------------------------------------------------------------------------- what is saved


def _arrays(case: Case) -> tuple[np.ndarray, ...]:
    """A case's inputs as the arrays forward sees (float inputs in float64)."""
    out = []
    for x in case[0]:
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        out.append(data.astype(np.float64) if data.dtype.kind == "f" else data)
    return tuple(out)


def _new_arrays(before: dict[str, Any], fn: Function) -> list[str]:
    """Names of the ndarray attributes forward added to ``fn``."""
    return [
        name
        for name, value in vars(fn).items()
        if isinstance(value, np.ndarray) and before.get(name) is not value
    ]


@pytest.mark.parametrize(("cls", "case"), _params())
def test_forward_saves_no_array_when_no_input_needs_a_gradient(
    cls: type[Function], case: Case
) -> None:
    """What no_grad() gives every primitive: nothing kept for a backward that never comes."""
    fn = cls(**case[1])
    arrays = _arrays(case)
    fn.needs_input_grad = (False,) * len(arrays)
    before = dict(vars(fn))
    fn.forward(*arrays)
    assert not _new_arrays(before, fn)


@pytest.mark.parametrize(("cls", "case"), _params())
def test_backward_needs_only_what_forward_saved_for_the_inputs_that_need_it(
    cls: type[Function], case: Case
) -> None:
    """For every subset of inputs needing a gradient, forward saves only for those, and
    backward still returns exactly the gradients it returns when every input needs one."""
    arrays = _arrays(case)
    differentiable = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    full = cls(**case[1])
    full.needs_input_grad = tuple(a.dtype.kind == "f" for a in arrays)
    out = full.forward(*arrays)
    grad = np.random.default_rng(1).standard_normal(np.shape(out))
    expected = full.backward(grad)
    for count in range(1, len(differentiable) + 1):
        for chosen in itertools.combinations(differentiable, count):
            fn = cls(**case[1])
            fn.needs_input_grad = tuple(i in chosen for i in range(len(arrays)))
            fn.forward(*arrays)
            got = fn.backward(grad)
            for i in chosen:
                np.testing.assert_array_equal(got[i], expected[i])


def test_log_softmax_forward_is_stable_for_huge_logits() -> None:
    x = np.array([[1e3, 1e3 - 1.0, -1e3], [-1e3, -1e3, -1e3 + 2.0]])
    t = Tensor(x, requires_grad=True)
    result = t.log_softmax(axis=-1)
    out = result.data
    assert np.all(np.isfinite(out))
    result.backward(np.random.default_rng(0).standard_normal(x.shape))
    assert np.all(np.isfinite(t.grad))
    np.testing.assert_allclose(t.grad.sum(axis=-1), 0.0, atol=1e-12)  # softmax rows sum to 1
    # log_softmax is invariant to a shift, so it equals the result on small logits
    small = x - x.max(axis=-1, keepdims=True)
    expected = small - np.log(np.exp(small).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(axis=-1), 1.0)


# ----------------------------------------------------------------------------- property

BINARY = {"Add": ops.Add, "Mul": ops.Mul, "Div": ops.Div}


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(sorted(BINARY)),
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_binary_ops_broadcast_property(name: str, shapes: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (shape_a, shape_b), result_shape = shapes
    a = rng.standard_normal(shape_a)
    b = _away_from_zero(rng, shape_b)
    cls = BINARY[name]
    out = cls.apply(Tensor(a), Tensor(b))
    assert out.shape == result_shape == np.broadcast_shapes(shape_a, shape_b)
    reference = {"Add": np.add, "Mul": np.multiply, "Div": np.divide}[name](a, b)
    np.testing.assert_array_equal(out.data, reference)
    assert gradcheck(lambda x, y: cls.apply(x, y), [a, b], name=name)


# ----------------------------------------------------------------------------- backward alone
# needle-style: instantiate the Function, run forward on arrays, say which inputs need a
# gradient, call backward with a chosen upstream G and compare with NumPy by hand. A
# gradient may come back in the output's (broadcast) shape; the engine sums it later.


def vjp(
    cls: type[Function],
    arrays: tuple[np.ndarray, ...],
    grad: np.ndarray,
    needs: tuple[bool, ...] | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, tuple[Any, ...]]:
    fn = cls(**kwargs)
    fn.needs_input_grad = needs if needs is not None else (True,) * len(arrays)
    out = fn.forward(*arrays)
    grads = fn.backward(grad)
    return out, grads if isinstance(grads, tuple) else (grads,)


RNG = np.random.default_rng(123)
A34 = RNG.standard_normal((3, 4))
B34 = RNG.uniform(0.5, 2.0, (3, 4))
G34 = RNG.standard_normal((3, 4))


def test_add_backward() -> None:
    _, (ga, gb) = vjp(ops.Add, (A34, B34[0]), G34)
    np.testing.assert_array_equal(ga, G34)
    np.testing.assert_array_equal(np.broadcast_to(gb, (3, 4)), G34)


def test_neg_backward() -> None:
    _, (ga,) = vjp(ops.Neg, (A34,), G34)
    np.testing.assert_array_equal(ga, -G34)


def test_mul_backward_and_needs_input_grad() -> None:
    _, (ga, gb) = vjp(ops.Mul, (A34, B34), G34)
    np.testing.assert_allclose(ga, G34 * B34)
    np.testing.assert_allclose(gb, G34 * A34)
    _, (ga, gb) = vjp(ops.Mul, (A34, B34), G34, needs=(False, True))
    assert ga is None
    np.testing.assert_allclose(gb, G34 * A34)


def test_div_backward() -> None:
    _, (ga, gb) = vjp(ops.Div, (A34, B34), G34)
    np.testing.assert_allclose(ga, G34 / B34)
    np.testing.assert_allclose(gb, -G34 * A34 / B34**2)


@pytest.mark.parametrize("p", [2, 3, 0.5, -1.0, 0])
def test_pow_backward(p: float) -> None:
    _, (ga,) = vjp(ops.Pow, (B34,), G34, exponent=p)
    np.testing.assert_allclose(ga, G34 * p * B34 ** (p - 1))


def test_pow_zero_exponent_has_zero_gradient_at_zero() -> None:
    # regression: p·a^(p-1) = 0·0^(-1) = nan; a**0 is constant, so the gradient is 0
    x = np.array([0.0, 1.0, -2.0])
    _, (ga,) = vjp(ops.Pow, (x,), np.ones(3), exponent=0)
    np.testing.assert_array_equal(ga, np.zeros(3))


def test_pow_rejects_tensor_exponent() -> None:
    with pytest.raises(TypeError, match="constant scalar exponent"):
        ops.Pow(exponent=Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="constant scalar exponent"):
        ops.Pow(exponent=np.ones(3))


def test_exp_log_sqrt_backward() -> None:
    _, (g,) = vjp(ops.Exp, (A34,), G34)
    np.testing.assert_allclose(g, G34 * np.exp(A34))
    _, (g,) = vjp(ops.Log, (B34,), G34)
    np.testing.assert_allclose(g, G34 / B34)
    _, (g,) = vjp(ops.Sqrt, (B34,), G34)
    np.testing.assert_allclose(g, G34 * 0.5 / np.sqrt(B34))


def test_tanh_sigmoid_relu_backward() -> None:
    _, (g,) = vjp(ops.Tanh, (A34,), G34)
    np.testing.assert_allclose(g, G34 / np.cosh(A34) ** 2)
    out, (g,) = vjp(ops.Sigmoid, (A34,), G34)
    s = 1.0 / (1.0 + np.exp(-A34))
    np.testing.assert_allclose(out, s)
    np.testing.assert_allclose(g, G34 * np.exp(-A34) / (1.0 + np.exp(-A34)) ** 2)
    x = np.array([-1.0, 0.0, 2.0, -3.0, 0.5])
    out, (g,) = vjp(ops.ReLU, (x,), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.0, 0.0, 0.5])
    np.testing.assert_array_equal(g, [0.0, 0.0, 3.0, 0.0, 5.0])  # subgradient 0 at 0


def test_sigmoid_is_stable_at_extremes() -> None:
    out, (g,) = vjp(ops.Sigmoid, (np.array([-1000.0, 1000.0]),), np.ones(2))
    np.testing.assert_array_equal(out, [0.0, 1.0])
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_sigmoid_of_integers_is_floating_point_as_numpys_ufuncs() -> None:
    for dtype in (np.int64, np.int16, np.uint8, np.bool_):
        a = np.array([0, 1, 3], dtype=dtype)
        out = Tensor(a).sigmoid().data
        assert out.dtype == np.tanh(a).dtype, dtype  # float64, float32, float16, float16
        np.testing.assert_allclose(out, 1 / (1 + np.exp(-a.astype(np.float64))), rtol=1e-3)


def test_as_floating_keeps_floating_point_arrays_themselves() -> None:
    a = np.ones(3, dtype=np.float32)
    assert ops.as_floating(a) is a
    assert ops.as_floating(np.ones(3, dtype=np.int32)).dtype == np.float64


def test_matmul_backward_2d() -> None:
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))
    g = RNG.standard_normal((3, 5))
    out, (ga, gb) = vjp(ops.MatMul, (a, b), g)
    np.testing.assert_allclose(out, a @ b)
    np.testing.assert_allclose(ga, g @ b.T)
    np.testing.assert_allclose(gb, a.T @ g)


def test_matmul_backward_skips_frozen_input() -> None:
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))
    g = RNG.standard_normal((3, 5))
    _, (ga, gb) = vjp(ops.MatMul, (a, b), g, needs=(False, True))
    assert ga is None
    np.testing.assert_allclose(gb, a.T @ g)
    _, (ga, gb) = vjp(ops.MatMul, (a, b), g, needs=(True, False))
    assert gb is None
    np.testing.assert_allclose(ga, g @ b.T)


def test_matmul_backward_vectors_and_batches() -> None:
    u, v = RNG.standard_normal(4), RNG.standard_normal(4)
    _, (gu, gv) = vjp(ops.MatMul, (u, v), np.array(2.5))
    np.testing.assert_allclose(gu, 2.5 * v)
    np.testing.assert_allclose(gv, 2.5 * u)

    m = RNG.standard_normal((4, 5))
    g5 = RNG.standard_normal(5)
    _, (gu, gm) = vjp(ops.MatMul, (u, m), g5)
    np.testing.assert_allclose(gu, m @ g5)
    np.testing.assert_allclose(gm, np.outer(u, g5))

    m2 = RNG.standard_normal((3, 4))
    g3 = RNG.standard_normal(3)
    _, (gm, gu) = vjp(ops.MatMul, (m2, u), g3)
    np.testing.assert_allclose(gm, np.outer(g3, u))
    np.testing.assert_allclose(gu, m2.T @ g3)

    # (2,3,4) @ (4,5): the right gradient comes back per batch (2,4,5); the engine sums
    a, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 5))
    g = RNG.standard_normal((2, 3, 5))
    _, (ga, gb) = vjp(ops.MatMul, (a, b), g)
    np.testing.assert_allclose(ga, np.einsum("bik,jk->bij", g, b))
    np.testing.assert_allclose(gb.sum(axis=0), np.einsum("bki,bkj->ij", a, g))


def test_linear_backward_matches_matmul_formulas() -> None:
    x, w, b = RNG.standard_normal((3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal(5)
    g = RNG.standard_normal((3, 5))
    out, (gx, gw, gb) = vjp(ops.Linear, (x, w, b), g)
    np.testing.assert_allclose(out, x @ w.T + b)
    np.testing.assert_allclose(gx, g @ w)
    np.testing.assert_allclose(gw, g.T @ x)
    assert gw.flags.c_contiguous  # W's own layout
    np.testing.assert_allclose(gb, g)  # the engine sums it over the rows
    _, (gx, gw, gb) = vjp(ops.Linear, (x, w, b), g, needs=(False, True, False))
    assert gx is None and gb is None
    np.testing.assert_allclose(gw, g.T @ x)
    x3, g3 = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 3, 5))
    _, (gx, gw) = vjp(ops.Linear, (x3, w), g3)
    np.testing.assert_allclose(gx, g3 @ w)
    np.testing.assert_allclose(gw, np.einsum("bio,bij->oj", g3, x3))
    with pytest.raises(ValueError, match=r"\(out, in\)"):
        vjp(ops.Linear, (x, RNG.standard_normal(4)), g)


def test_linear_keeps_a_wider_bias_dtype() -> None:
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    out, _ = vjp(ops.Linear, (x, w, np.ones(4, np.float64)), np.ones((2, 4)))
    assert out.dtype == np.float64  # as x @ w.T + b would give


def test_sum_backward() -> None:
    x = RNG.standard_normal((2, 3, 4))
    g = RNG.standard_normal((2, 4))
    out, (gx,) = vjp(ops.Sum, (x,), g, axis=1)
    np.testing.assert_allclose(out, x.sum(axis=1))
    np.testing.assert_allclose(gx, np.repeat(g[:, None, :], 3, axis=1))
    g_keep = RNG.standard_normal((1, 3, 1))
    _, (gx,) = vjp(ops.Sum, (x,), g_keep, axis=(0, -1), keepdims=True)
    np.testing.assert_allclose(gx, np.broadcast_to(g_keep, x.shape))
    _, (gx,) = vjp(ops.Sum, (x,), np.array(3.0))
    np.testing.assert_array_equal(gx, np.full(x.shape, 3.0))


@pytest.mark.parametrize("method", ["sum", "max", "mean"])
@pytest.mark.parametrize(
    ("shape", "axis"), [((), 0), ((), -1), ((), (0,)), ((3,), 1), ((2, 3), -3)]
)
def test_reductions_reject_an_axis_the_tensor_does_not_have(
    method: str, shape: tuple[int, ...], axis: int | tuple[int, ...]
) -> None:
    """A 0-d tensor has no axis at all (NumPy rejects axis=0 there too)."""
    bad = axis if isinstance(axis, int) else axis[0]
    with pytest.raises(
        ValueError, match=rf"axis {bad} is out of range for a tensor with {len(shape)} dimensions"
    ):
        getattr(Tensor(np.ones(shape)), method)(axis=axis)


def test_reductions_of_a_0d_tensor_without_an_axis_still_work() -> None:
    x = Tensor(np.array(2.5), requires_grad=True)
    for method in ("sum", "max", "mean"):
        out = getattr(x, method)()
        assert out.data.shape == () and out.data == 2.5


def test_max_backward_routes_to_the_maximum_and_splits_ties() -> None:
    x = np.array([[1.0, 5.0, 2.0], [7.0, 7.0, 0.0]])
    out, (gx,) = vjp(ops.Max, (x,), np.array([10.0, 4.0]), axis=1)
    np.testing.assert_array_equal(out, [5.0, 7.0])
    np.testing.assert_array_equal(gx, [[0.0, 10.0, 0.0], [2.0, 2.0, 0.0]])
    out, (gx,) = vjp(ops.Max, (x,), np.array(6.0))
    assert out == 7.0
    np.testing.assert_array_equal(gx, [[0.0, 0.0, 0.0], [3.0, 3.0, 0.0]])
    out, (gx,) = vjp(ops.Max, (x,), np.array([[1.0, 2.0, 3.0]]), axis=0, keepdims=True)
    np.testing.assert_array_equal(out, [[7.0, 7.0, 2.0]])
    np.testing.assert_array_equal(gx, [[0.0, 0.0, 3.0], [1.0, 2.0, 0.0]])


def test_log_softmax_backward() -> None:
    x = RNG.standard_normal((3, 5))
    g = RNG.standard_normal((3, 5))
    out, (gx,) = vjp(ops.LogSoftmax, (x,), g, axis=-1)
    softmax = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(out, np.log(softmax))
    np.testing.assert_allclose(gx, g - softmax * g.sum(axis=-1, keepdims=True))
    _, (gx,) = vjp(ops.LogSoftmax, (np.array([[1e3, 1e3, -1e3]]),), np.array([[1.0, 0, 0]]))
    np.testing.assert_allclose(gx, [[0.5, -0.5, 0.0]])


def test_softmax_cross_entropy_backward_is_softmax_minus_onehot() -> None:
    z, y = RNG.standard_normal((4, 3)), np.array([2, 0, 0, 1])
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    per_row = -np.log(softmax[np.arange(4), y])
    out, (gz,) = vjp(ops.SoftmaxCrossEntropy, (z,), np.array(2.0), labels=y, reduction="mean")
    np.testing.assert_allclose(out, per_row.mean())
    np.testing.assert_allclose(gz, (softmax - onehot) * 2.0 / 4)
    out, (gz,) = vjp(ops.SoftmaxCrossEntropy, (z,), np.array(2.0), labels=y, reduction="sum")
    np.testing.assert_allclose(out, per_row.sum())
    np.testing.assert_allclose(gz, (softmax - onehot) * 2.0)
    g = RNG.standard_normal(4)
    out, (gz,) = vjp(ops.SoftmaxCrossEntropy, (z,), g, labels=y, reduction="none")
    np.testing.assert_allclose(out, per_row)
    np.testing.assert_allclose(gz, (softmax - onehot) * g[:, None])


def test_softmax_cross_entropy_saves_the_log_probabilities() -> None:
    z, y = RNG.standard_normal((4, 3)), np.array([2, 0, 0, 1])
    fn = ops.SoftmaxCrossEntropy(labels=y)
    fn.needs_input_grad = (True,)
    fn.forward(z)
    np.testing.assert_allclose(np.exp(fn.log_probs).sum(axis=1), 1.0)
    saved = [name for name, v in vars(fn).items() if isinstance(v, np.ndarray)]
    assert sorted(saved) == ["labels", "log_probs"]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_fused_cross_entropy_equals_the_composite(
    reduction: str, dtype: type, scale: float
) -> None:
    """The same NumPy operations in one node: equal values and gradients, not just close."""
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((16, 7)) * scale).astype(dtype)
    y = rng.integers(0, 7, size=16)
    upstream = rng.standard_normal(16 if reduction == "none" else ()).astype(dtype)
    results = []
    for loss_fn in (F.cross_entropy, F.composite_cross_entropy):
        t = Tensor(z.copy(), requires_grad=True)
        loss = loss_fn(t, y, reduction=reduction)
        loss.backward(upstream)
        results.append((loss, t.grad))
    (fused, fused_grad), (composite, composite_grad) = results
    assert fused.dtype == composite.dtype == dtype
    assert type(fused._ctx) is ops.SoftmaxCrossEntropy
    np.testing.assert_array_equal(fused.data, composite.data)
    np.testing.assert_array_equal(fused_grad, composite_grad)
    assert np.all(np.isfinite(fused_grad))


@pytest.mark.parametrize("loss_fn", [F.cross_entropy, F.composite_cross_entropy])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_of_an_empty_batch_raises(loss_fn: Any, reduction: str) -> None:
    empty = Tensor(np.zeros((0, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"the batch is empty \(logits of shape \(0, 3\)\)"):
        loss_fn(empty, np.zeros(0, dtype=np.int64), reduction=reduction)


def test_gradcheck_composite_cross_entropy() -> None:
    labels = np.array([3, 0, 1, 3, 2, 1])
    z = np.random.default_rng(6).standard_normal((6, 4))
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(
            lambda t, r=reduction: F.composite_cross_entropy(t, labels, reduction=r), [z]
        )


def test_reshape_backward() -> None:
    g = RNG.standard_normal((2, 6))
    _, (gx,) = vjp(ops.Reshape, (A34,), g, shape=(2, 6))
    np.testing.assert_array_equal(gx, g.reshape(3, 4))


def test_transpose_backward_is_the_inverse_permutation() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    g = RNG.standard_normal((4, 2, 3))
    out, (gx,) = vjp(ops.Transpose, (x,), g, axes=(2, 0, 1))
    np.testing.assert_array_equal(out, np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(gx, np.transpose(g, (1, 2, 0)))
    assert not np.array_equal(gx, g.reshape(x.shape))  # not a reshape
    # regression: negative axes (argsort of (-1, 0) is the identity, which was wrong)
    g2 = RNG.standard_normal((4, 3))
    _, (gx,) = vjp(ops.Transpose, (A34,), g2, axes=(-1, 0))
    np.testing.assert_array_equal(gx, g2.T)


@pytest.mark.parametrize("axes", [(0, 0), (0, 1, 2), (0, 2), (0, 5)])
def test_transpose_rejects_a_non_permutation(axes: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="not a permutation"):
        Tensor(A34).transpose(*axes)


def test_broadcast_to_backward_returns_output_shape() -> None:
    g = RNG.standard_normal((2, 3, 4))
    out, (gx,) = vjp(ops.BroadcastTo, (A34[:1],), g, shape=(2, 3, 4))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(gx, g)  # summed back to (1, 4) by the engine


def test_broadcast_to_rejects_incompatible_shape() -> None:
    with pytest.raises(ValueError, match=r"cannot broadcast shape \(3, 4\) to \(4, 3\)"):
        Tensor(A34).broadcast_to((4, 3))


def test_getitem_backward_accumulates_repeated_indices() -> None:
    x = np.arange(5.0)
    out, (gx,) = vjp(ops.GetItem, (x,), np.array([1.0, 10.0, 100.0, 1000.0]), index=[0, 3, 0, 0])
    np.testing.assert_array_equal(out, [0.0, 3.0, 0.0, 0.0])
    np.testing.assert_array_equal(gx, [1101.0, 0.0, 0.0, 10.0, 0.0])


def test_an_empty_list_index_selects_nothing_as_in_numpy() -> None:
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    picked = x[[]]
    assert picked.shape == np.arange(6.0).reshape(3, 2)[[]].shape == (0, 2)
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((3, 2)))


def test_getitem_backward_slices_and_masks() -> None:
    g = RNG.standard_normal((3, 2))
    _, (gx,) = vjp(ops.GetItem, (A34,), g, index=(slice(None), slice(1, 4, 2)))
    expected = np.zeros((3, 4))
    expected[:, 1] = g[:, 0]
    expected[:, 3] = g[:, 1]
    np.testing.assert_array_equal(gx, expected)
    mask = A34 > 0
    gm = RNG.standard_normal(int(mask.sum()))
    _, (gx,) = vjp(ops.GetItem, (A34,), gm, index=Tensor(mask))
    expected = np.zeros((3, 4))
    expected[mask] = gm
    np.testing.assert_array_equal(gx, expected)


def test_getitem_backward_basic_slice_is_an_exact_scatter() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    index = (Ellipsis, slice(2, 0, -1), None, 1)
    g = RNG.standard_normal(x[index].shape)
    _, (gx,) = vjp(ops.GetItem, (x,), g, index=index)
    expected = np.zeros_like(x)
    expected[:, 2, 1] = g[:, 0, 0]
    expected[:, 1, 1] = g[:, 1, 0]
    np.testing.assert_array_equal(gx, expected)


@pytest.mark.parametrize(
    ("index", "no_repeats"),
    [
        (2, True),
        (np.int64(-1), True),
        (slice(1, 4), True),
        ((Ellipsis, None, slice(None, None, 2)), True),
        (A34 > 0, True),
        ((np.array([True, False, True]), slice(1, 3)), True),
        ([0, 0], False),
        (np.array(1), False),  # any integer array goes through np.add.at
        ((slice(None), np.array([1, 1])), False),
        ((np.array([True, False, True]), np.array([0, 0])), False),
        (Tensor(np.array([3, 3])), False),
    ],
)
def test_getitem_uses_add_at_only_for_integer_array_indices(index: Any, no_repeats: bool) -> None:
    assert ops.GetItem(index).no_repeats is no_repeats


def test_every_ops_primitive_has_a_backward_alone_test() -> None:
    """Each ops primitive appears in a test above, by its class name."""
    source = Path(__file__).read_text()
    defined = [
        name
        for name, obj in vars(ops).items()
        if isinstance(obj, type) and issubclass(obj, Function) and obj is not Function
    ]
    missing = [name for name in defined if f"vjp(ops.{name}," not in source]
    assert not missing, f"no backward-alone test for: {missing}"


def test_shapes_in_catalogue_cover_broadcast_pairs() -> None:
    """Guard against a catalogue edit that drops the broadcasting cases."""
    for cls in (ops.Add, ops.Mul, ops.Div):
        seen = {(np.shape(a), np.shape(b)) for (a, b), _ in CATALOGUE[cls] if _is_array(a, b)}
        assert set(itertools.product(BROADCAST_SHAPES, repeat=2)) <= seen, cls.__name__


def _is_array(*values: Any) -> bool:
    return all(isinstance(v, np.ndarray) for v in values)
