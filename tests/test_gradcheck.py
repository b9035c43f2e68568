"""The gradient checker, checked: it must accept right gradients and reject wrong ones.

Each wrong op below is a bug that is easy to write by hand. They are defined here, outside
the ``lora_np`` package, so they are not primitives of it: the catalogue in
``test_ops.py``, which gradchecks every primitive of the package, never sees them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from lora_np import ops
from lora_np.gradcheck import GradcheckError, gradcheck, numerical_grad
from lora_np.tensor import Function, Tensor

# ----------------------------------------------------------------------------- wrong ops


class TransposeAsReshape(Function):
    """out = aᵀ, but backward reshapes G instead of transposing it: right shape,
    elements in the wrong places."""

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.shape = a.shape
        return a.T

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad.reshape(self.shape),)


class ZeroGradExp(Function):
    """out = exp(a), backward forgets everything: dL/da = 0."""

    def forward(self, a: np.ndarray) -> np.ndarray:
        return np.exp(a)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (np.zeros_like(grad),)


class FlippedTanh(Function):
    """out = tanh(a), backward with the sign flipped: dL/da = -G (1 - out²)."""

    def forward(self, a: np.ndarray) -> np.ndarray:
        self.out = np.tanh(a)
        return self.out

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (-grad * (1 - self.out**2),)


class BiasAddMean(Function):
    """out = a + b with b of shape (n,) broadcast over the rows of a (m, n).

    The backward "un-broadcasts" b's gradient itself and averages the copies instead of
    adding them up: the shape is right, so the engine's own sum-to-shape never sees it."""

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grad, grad.mean(axis=0)


class BiasAddFirstCopy(Function):
    """Same op; backward keeps the gradient of the first copy of b only (forgot the sum)."""

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grad, grad[0]


class MulOneBadElement(Function):
    """out = a * b; the gradient of b is off by +5 at element (1, 2), a's is right."""

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        return a * b

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gb = grad * self.a
        gb[1, 2] += 5.0
        return grad * self.b, gb


RNG = np.random.default_rng(7)
X34 = RNG.standard_normal((3, 4))
B4 = RNG.standard_normal(4)

#: (name, function, inputs): each gradient is wrong.
WRONG: list[tuple[str, Callable[..., Tensor], list[np.ndarray]]] = [
    ("transpose-as-reshape", TransposeAsReshape.apply, [X34]),
    ("zero gradient", ZeroGradExp.apply, [X34]),
    ("flipped sign", FlippedTanh.apply, [X34]),
    ("broadcast mean instead of sum", BiasAddMean.apply, [X34, B4]),
    ("broadcast first copy instead of sum", BiasAddFirstCopy.apply, [X34, B4]),
]

#: the same functions written correctly, on the same inputs.
RIGHT: list[tuple[str, Callable[..., Tensor], list[np.ndarray]]] = [
    ("transpose", lambda a: a.T, [X34]),
    ("exp", lambda a: a.exp(), [X34]),
    ("tanh", lambda a: a.tanh(), [X34]),
    ("broadcast add", lambda a, b: a + b, [X34, B4]),
]


@pytest.mark.parametrize(("name", "fn", "inputs"), WRONG, ids=[w[0] for w in WRONG])
@pytest.mark.parametrize("fast", [False, True], ids=["elementwise", "fast"])
def test_gradcheck_rejects_wrong_gradients(
    name: str, fn: Callable[..., Tensor], inputs: list[np.ndarray], fast: bool
) -> None:
    with pytest.raises(GradcheckError, match="gradcheck failed"):
        gradcheck(fn, inputs, fast=fast, name=name)


@pytest.mark.parametrize(("name", "fn", "inputs"), RIGHT, ids=[r[0] for r in RIGHT])
@pytest.mark.parametrize("fast", [False, True], ids=["elementwise", "fast"])
def test_gradcheck_accepts_right_gradients(
    name: str, fn: Callable[..., Tensor], inputs: list[np.ndarray], fast: bool
) -> None:
    assert gradcheck(fn, inputs, fast=fast, name=name) is True


@pytest.mark.parametrize("seed", range(5))
def test_fast_mode_rejects_for_any_seed(seed: int) -> None:
    with pytest.raises(GradcheckError, match="directional derivative"):
        gradcheck(TransposeAsReshape.apply, [X34], fast=True, seed=seed)


# ----------------------------------------------------------------------------- why random u


def _check_with_ones_upstream(fn: Callable[[Tensor], Tensor], x: np.ndarray) -> bool:
    """The naive check: compare the gradient of sum(fn(x)), i.e. an all-ones upstream."""
    t = Tensor(x.copy(), requires_grad=True)
    fn(t).sum().backward()
    numeric = numerical_grad(fn, x.copy())  # upstream defaults to ones
    return bool(np.allclose(t.grad, numeric, atol=1e-5, rtol=1e-3))


def test_all_ones_upstream_misses_transpose_as_reshape() -> None:
    # with u = 1, backward reshapes a matrix of ones: ones again, exactly right by luck
    assert _check_with_ones_upstream(TransposeAsReshape.apply, X34)
    # the random upstream of gradcheck sees the elements in the wrong places
    with pytest.raises(GradcheckError):
        gradcheck(TransposeAsReshape.apply, [X34])


def test_all_ones_upstream_still_catches_other_bugs() -> None:
    # the naive helper is not useless, it is blind to this one class of bug
    assert not _check_with_ones_upstream(FlippedTanh.apply, X34)
    assert _check_with_ones_upstream(lambda a: a.T, X34)


# ----------------------------------------------------------------------------- the message


def test_error_message_names_input_shape_worst_element_and_values() -> None:
    a, b = X34, RNG.standard_normal((3, 4))
    with pytest.raises(GradcheckError) as info:
        gradcheck(MulOneBadElement.apply, [a, b], name="mul_with_a_bug")
    message = str(info.value)
    assert "mul_with_a_bug" in message
    assert "input 1 of shape (3, 4)" in message  # input 0 is right; input 1 is not
    assert "element (1, 2)" in message
    found = re.search(r"analytic (\S+) vs numeric (\S+) \(abs error (\S+),", message)
    assert found, message
    analytic, numeric, error = (float(v) for v in found.groups())
    assert analytic - numeric == pytest.approx(5.0, abs=1e-5)  # the planted error
    assert error == pytest.approx(5.0, abs=1e-2)
    assert "1 of 12 entries out of tolerance" in message


def test_error_message_in_fast_mode() -> None:
    with pytest.raises(GradcheckError) as info:
        gradcheck(FlippedTanh.apply, [X34], fast=True, name="flipped")
    message = str(info.value)
    assert "flipped, input 0 of shape (3, 4)" in message
    found = re.search(r"analytic (\S+) vs numeric (\S+)", message)
    assert found
    analytic, numeric = (float(v) for v in found.groups())
    assert analytic == pytest.approx(-numeric, rel=1e-4)  # the sign flip, seen along v


def test_non_finite_analytic_gradient_is_rejected() -> None:
    class NanGrad(Function):
        def forward(self, a: np.ndarray) -> np.ndarray:
            return a * 1.0

        def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
            return (np.full_like(grad, np.nan),)

    with pytest.raises(GradcheckError):
        gradcheck(NanGrad.apply, [X34])


# ----------------------------------------------------------------------------- what is checked


def test_constant_tensor_input_is_not_checked() -> None:
    # the bug sits in the gradient of b; held constant, b is not checked, so this passes
    b = Tensor(RNG.standard_normal((3, 4)))
    assert gradcheck(MulOneBadElement.apply, [X34, b])


def test_integer_input_is_held_constant() -> None:
    counts = np.arange(12).reshape(3, 4)
    assert gradcheck(lambda x, c: x * c, [X34, counts])


def test_inputs_are_checked_in_float64() -> None:
    seen = []

    def fn(x: Tensor) -> Tensor:
        seen.append(x.dtype)
        return (x * x).sum()

    assert gradcheck(fn, [X34.astype(np.float32)])
    assert set(seen) == {np.dtype(np.float64)}


def test_gradcheck_refuses_nothing_to_check() -> None:
    with pytest.raises(ValueError, match="at least one floating-point input"):
        gradcheck(lambda x: x * 2.0, [Tensor(X34)])
    with pytest.raises(ValueError, match="at least one floating-point input"):
        gradcheck(lambda i: Tensor(i * 2.0), [np.arange(3)])


def test_gradcheck_refuses_a_non_tensor_output() -> None:
    with pytest.raises(TypeError, match="must return a Tensor, got ndarray"):
        gradcheck(lambda x: x.data * 2, [X34])


def test_gradcheck_reports_an_output_independent_of_the_inputs() -> None:
    with pytest.raises(GradcheckError, match="does not depend on any input"):
        gradcheck(lambda x: Tensor(np.ones(3)), [X34])


def test_upstream_is_seeded_and_random() -> None:
    # two seeds, two different upstreams: the planted error shows different analytic values
    values = []
    for seed in (0, 1, 0):
        with pytest.raises(GradcheckError) as info:
            gradcheck(MulOneBadElement.apply, [X34, X34], seed=seed)
        values.append(re.search(r"analytic (\S+)", str(info.value)).group(1))
    assert values[0] == values[2] != values[1]


def test_checked_op_matches_a_primitive() -> None:
    # the right version of the wrong ops above is the primitive of ops.py
    assert gradcheck(lambda a: ops.Transpose.apply(a, axes=(1, 0)), [X34])


# ----------------------------------------------------------------------------- numerical_grad


def _cube_sum(x: Tensor) -> Tensor:
    return (x * x * x).sum()


def test_numerical_grad_central_is_second_order_forward_first_order() -> None:
    x = np.array([0.5, -1.0, 2.0])
    exact = 3 * x**2
    eps = 1e-3
    central = numerical_grad(_cube_sum, x, eps=eps, method="central")
    forward = numerical_grad(_cube_sum, x, eps=eps, method="forward")
    # Taylor: central error = eps²·f'''/6 = eps² here; forward error ≈ eps·f''/2 = 3x·eps
    np.testing.assert_allclose(central - exact, np.full(3, eps**2), atol=1e-9)
    np.testing.assert_allclose(forward - exact, 3 * x * eps, rtol=1e-2, atol=1e-6)
    assert np.all(np.abs(central - exact) < np.abs(forward - exact) / 100)


@pytest.mark.parametrize("method", ["central", "forward"])
def test_numerical_grad_accepts_right_and_rejects_wrong_gradients(method: str) -> None:
    u = RNG.standard_normal((3, 4))
    numeric = numerical_grad(lambda t: t.tanh(), X34, upstream=u, method=method)
    tolerance = {"central": 1e-7, "forward": 1e-5}[method]
    for cls, right in ((ops.Tanh, True), (FlippedTanh, False), (ZeroGradExp, False)):
        if cls is ZeroGradExp:
            numeric_cls = numerical_grad(lambda t: t.exp(), X34, upstream=u, method=method)
        else:
            numeric_cls = numeric
        t = Tensor(X34.copy(), requires_grad=True)
        cls.apply(t).backward(u)
        close = np.allclose(t.grad, numeric_cls, atol=tolerance, rtol=0)
        assert close == right, cls.__name__


def test_numerical_grad_keeps_float32_so_you_can_watch_it_fail() -> None:
    x = np.array([1.0, 2.0])
    good = numerical_grad(lambda t: (t * t).sum(), x)
    np.testing.assert_allclose(good, 2 * x, atol=1e-6)
    bad = numerical_grad(lambda t: (t * t).sum(), x.astype(np.float32))
    # 1 + 1e-6 is not representable in float32 (spacing 1.2e-7 near 1 leaves ~8 digits)
    assert np.max(np.abs(bad - 2 * x)) > 1e-3


def test_numerical_grad_does_not_modify_its_input() -> None:
    x = X34.copy()
    numerical_grad(lambda t: t.exp(), x)
    np.testing.assert_array_equal(x, X34)


def test_numerical_grad_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'central' or 'forward', got 'backward'"):
        numerical_grad(_cube_sum, X34, method="backward")
    with pytest.raises(TypeError, match="floating-point x, got dtype int64"):
        numerical_grad(_cube_sum, np.arange(3))
    with pytest.raises(ValueError, match=r"upstream has shape \(2,\), expected .* \(3, 4\)"):
        numerical_grad(lambda t: t * 2.0, X34, upstream=np.ones(2))
