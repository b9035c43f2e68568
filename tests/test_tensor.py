"""The Tensor and the backward pass: graph bookkeeping, accumulation, errors, dtypes.

The gradients of the individual primitives are checked in ``test_ops.py``; here we check
what the engine itself promises (see the docstring of :mod:`lora_np.tensor`).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from lora_np import ops
from lora_np.gradcheck import gradcheck
from lora_np.tensor import Function, Tensor, _sum_to_shape, is_grad_enabled, no_grad


def leaf(*shape: int, seed: int = 0, dtype: type = np.float64) -> Tensor:
    data = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return Tensor(data, requires_grad=True)


# ----------------------------------------------------------------------------- reuse


def test_a_plus_a_then_b_plus_b() -> None:
    # micrograd's classic bug: overwriting instead of adding the gradient of a reused node
    a = Tensor(np.array(3.0), requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert c.item() == 12.0
    assert a.grad == 4.0


def test_one_node_used_many_times() -> None:
    x = leaf(3)
    total = x
    for _ in range(49):
        total = total + x
    total.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 50.0))


def test_diamond_graph() -> None:
    x = leaf(4)
    y = x * 2.0
    f = (y * (x + 1.0)).sum()  # f = Σ 2x(x+1), df/dx = 4x + 2
    f.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data + 2)


def test_ten_thousand_deep_chain() -> None:
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001  # no RecursionError in backward (iterative topological sort)
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-9)


# ----------------------------------------------------------------------------- accumulation


def test_gradients_accumulate_across_backward_calls() -> None:
    x = leaf(3)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 5.0))
    x.zero_grad()
    assert x.grad is None


def test_second_backward_through_the_same_graph_raises() -> None:
    x = leaf(3)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward_and_accumulates() -> None:
    x = leaf(3)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * x.data)
    loss.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_saved_arrays_are_released_after_backward() -> None:
    a, b = leaf(3, 4), leaf(4, 2, seed=1)
    h = a @ b
    out = h.tanh()
    loss = out.sum()
    fns = [h._ctx, out._ctx, loss._ctx]
    loss.backward()
    for fn in fns:
        saved = set(vars(fn)) - {"needs_input_grad", "_released"}
        assert not saved, f"{type(fn).__name__} still holds {saved}"
        assert fn.next_nodes == ()  # the links to the inputs are gone too
    assert not hasattr(h._ctx, "a") and not hasattr(out._ctx, "out")


def test_retain_graph_keeps_saved_arrays() -> None:
    a, b = leaf(3, 4), leaf(4, 2, seed=1)
    h = a @ b
    h.sum().backward(retain_graph=True)
    assert h._ctx.a is a.data and h._ctx.b is b.data


def test_intermediate_gradients_are_not_kept() -> None:
    x = leaf(3)
    y = x * 2.0
    y.sum().backward()
    assert y.grad is None and x.grad is not None
    assert x.is_leaf and not y.is_leaf


# ----------------------------------------------------------------------------- errors


def test_backward_on_non_scalar_needs_a_gradient() -> None:
    y = leaf(2, 3) * 2.0
    with pytest.raises(RuntimeError, match=r"one-element output; got shape \(2, 3\)"):
        y.backward()
    g = np.arange(6.0).reshape(2, 3)
    y.backward(g)


def test_backward_gradient_of_the_wrong_shape_raises() -> None:
    y = leaf(2, 3) * 2.0
    with pytest.raises(ValueError, match=r"shape \(3, 2\), expected the output shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_on_one_element_non_scalar_seeds_one() -> None:
    x = leaf(1, 1)
    (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [[3.0]])


def test_backward_without_requires_grad_raises() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(np.ones(3)) * 2.0).sum().backward()


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (["a", "b"], "<U1"),
        (np.array([1, None], dtype=object), "object"),
        ([1 + 2j], "complex128"),
        (None, "object"),
        (np.array([b"x"]), "|S1"),
    ],
)
def test_a_tensor_holds_numbers_only(data: object, dtype: str) -> None:
    with pytest.raises(TypeError, match=re.escape(f"got dtype {dtype}")):
        Tensor(data)


def test_numeric_dtypes_are_accepted() -> None:
    for dtype in (np.bool_, np.int8, np.int64, np.uint8, np.uint64, np.float16, np.float64):
        assert Tensor(np.zeros(2, dtype=dtype)).dtype == dtype


def test_integer_tensor_cannot_require_grad() -> None:
    with pytest.raises(TypeError, match=r"floating-point.*int64"):
        Tensor(np.arange(3), requires_grad=True)
    t = Tensor(np.arange(3))
    with pytest.raises(TypeError, match="floating-point"):
        t.requires_grad = True


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((3, 4), (5, 6)), ((3, 4), (3,)), ((4,), (5, 2)), ((2, 3, 4), (3, 4, 5))],
)
def test_matmul_shape_mismatch_names_both_shapes(shape_a: tuple, shape_b: tuple) -> None:
    a, b = Tensor(np.ones(shape_a)), Tensor(np.ones(shape_b), requires_grad=True)
    with pytest.raises(ValueError, match="matmul shape mismatch") as info:
        _ = a @ b
    assert str(shape_a) in str(info.value) and str(shape_b) in str(info.value)


def test_matmul_rejects_scalars() -> None:
    with pytest.raises(ValueError, match=r"at least one axis.*\(\) and \(3,\)"):
        _ = Tensor(np.array(2.0)) @ Tensor(np.ones(3))


def test_reshape_error_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"shape \(3, 4\) \(12 elements\) into shape \(5,\)"):
        leaf(3, 4).reshape(5)


def test_item_needs_one_element() -> None:
    with pytest.raises(ValueError, match=r"one element, got shape \(3,\)"):
        leaf(3).item()


# ----------------------------------------------------------------------------- engine checks


class _WrongShapeBackward(Function):
    """Returns a gradient that cannot be summed to the input's shape (for the test below)."""

    def forward(self, a: np.ndarray) -> np.ndarray:
        return a * 2.0

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad.T,)


class _TooManyGradients(Function):
    def forward(self, a: np.ndarray) -> np.ndarray:
        return a.copy()

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grad, grad


def test_engine_shape_check_names_the_op() -> None:
    x = leaf(3, 4)
    y = _WrongShapeBackward.apply(x)
    with pytest.raises(RuntimeError, match=r"_WrongShapeBackward.backward.*\(4, 3\).*\(3, 4\)"):
        y.sum().backward()


class _RoundsToIntegers(Function):
    def forward(self, a: np.ndarray) -> np.ndarray:
        return np.rint(a).astype(np.int64)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad,)


def test_a_recorded_function_must_return_floating_point() -> None:
    with pytest.raises(TypeError, match=r"_RoundsToIntegers.forward returned dtype int64"):
        _RoundsToIntegers.apply(leaf(3))
    with no_grad():  # nothing is recorded, so integers are fine
        assert _RoundsToIntegers.apply(leaf(3)).dtype == np.int64
    assert _RoundsToIntegers.apply(Tensor(np.ones(3))).dtype == np.int64  # no input needs grad


def test_engine_counts_returned_gradients() -> None:
    with pytest.raises(RuntimeError, match="returned 2 gradients for 1 inputs"):
        _TooManyGradients.apply(leaf(3)).sum().backward()


@pytest.mark.parametrize(
    ("grad_shape", "shape", "expected"),
    [
        ((2, 3, 4), (3, 4), (2, 3, 4)),
        ((2, 3, 4), (1, 4), (2, 3, 4)),
        ((2, 3, 4), (), (2, 3, 4)),
        ((3, 4), (3, 1), (3, 4)),
        ((5,), (5,), (5,)),
    ],
)
def test_sum_to_shape_undoes_broadcasting(grad_shape: tuple, shape: tuple, expected: tuple) -> None:
    g = np.random.default_rng(0).standard_normal(grad_shape)
    out = _sum_to_shape(g, shape, "Op", 0)
    assert out.shape == shape
    # the adjoint of broadcasting: <broadcast(v), g> == <v, sum_to_shape(g)>
    v = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(np.sum(np.broadcast_to(v, expected) * g), np.sum(v * out))


@pytest.mark.parametrize(
    ("grad_shape", "shape"), [((3, 4), (4, 3)), ((4,), (3, 4)), ((2, 4), (3, 4))]
)
def test_sum_to_shape_refuses_what_broadcasting_cannot_explain(
    grad_shape: tuple, shape: tuple
) -> None:
    pattern = rf"MyOp.backward.*input 1 of shape {re.escape(str(shape))}"
    with pytest.raises(RuntimeError, match=pattern):
        _sum_to_shape(np.ones(grad_shape), shape, "MyOp", 1)


# ----------------------------------------------------------------------------- frozen inputs


def test_frozen_inputs_get_no_gradient_and_cost_no_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[bool, ...], tuple[bool, ...]]] = []
    original = ops.MatMul.backward

    def spy(self: ops.MatMul, grad: np.ndarray) -> tuple:
        grads = original(self, grad)
        calls.append((self.needs_input_grad, tuple(g is not None for g in grads)))
        return grads

    monkeypatch.setattr(ops.MatMul, "backward", spy)
    x = Tensor(np.random.default_rng(0).standard_normal((5, 4)))  # data
    w = Tensor(np.random.default_rng(1).standard_normal((4, 4)))  # frozen weight
    a = leaf(4, 2, seed=2)  # the one trainable tensor
    h = x @ w
    assert not h.requires_grad and h._ctx is None  # nothing to record at all
    (h @ a).sum().backward()
    assert calls == [((False, True), (False, True))]  # dL/dh never computed
    assert x.grad is None and w.grad is None
    np.testing.assert_allclose(a.grad, h.data.T @ np.ones((5, 2)))


def test_frozen_leaf_in_a_mixed_graph_gets_no_grad() -> None:
    w = Tensor(np.ones((3, 3)))
    b = leaf(3)
    loss = ((w * b) + w).sum()
    loss.backward()
    assert w.grad is None
    np.testing.assert_array_equal(b.grad, np.full(3, 3.0))


# ----------------------------------------------------------------------------- no_grad


def test_no_grad_records_no_graph() -> None:
    x = leaf(3)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    with pytest.raises(RuntimeError):
        y.backward()


def test_no_grad_nests_and_restores_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled()
        raise ZeroDivisionError
    assert is_grad_enabled()


def test_no_grad_decorates_a_function_and_recursion_restores_it() -> None:
    @no_grad()
    def depth(n: int) -> bool:
        return depth(n - 1) if n else is_grad_enabled()

    assert depth(3) is False
    assert is_grad_enabled()


def test_detach_cuts_the_graph() -> None:
    x = leaf(3)
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.data, y.data)  # same numbers, no copy
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2.0 * x.data)  # d is a constant: no path through it


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "expr",
    [
        lambda x: x * 2,
        lambda x: 2 * x,
        lambda x: x * 2.5,
        lambda x: x * np.sqrt(2.0),  # a NumPy float64 scalar is treated like a Python float
        lambda x: x + 1,
        lambda x: x - 1.0,
        lambda x: 1.0 - x,
        lambda x: x / 3,
        lambda x: 3 / (x * x + 1),
        lambda x: x**2,
        lambda x: -x,
        lambda x: x.mean(),
        lambda x: x.sum(axis=0),
        lambda x: x.max(axis=1),
        lambda x: x.exp().log(),
        lambda x: (x * x).sqrt(),
        lambda x: x.tanh() + x.sigmoid() + x.relu(),
        lambda x: x @ x.T,
        lambda x: x.log_softmax(axis=-1),
        lambda x: x[0, 1:],
        lambda x: x.reshape(1, -1).broadcast_to((2, 12)),
    ],
)
def test_float32_stays_float32(expr) -> None:
    x = leaf(3, 4, dtype=np.float32)
    out = expr(x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_tensor_times_a_float_becomes_float() -> None:
    # regression: the Python float used to be cast to the integer dtype (0.5 -> 0)
    x = Tensor(np.arange(3))
    np.testing.assert_array_equal((x * 0.5).data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal((x + 1.5).data, [1.5, 2.5, 3.5])
    assert (x + 1).dtype == np.int64
    assert (Tensor(np.arange(3, dtype=np.int8)) * 2).dtype == np.int8


def test_mixed_precision_gradient_has_the_input_dtype() -> None:
    a = leaf(3, dtype=np.float32)
    b = leaf(3, seed=1, dtype=np.float64)
    out = (a * b).sum()
    assert out.dtype == np.float64
    out.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# ----------------------------------------------------------------------------- surface


def test_attributes_and_conversions() -> None:
    data = np.arange(6.0).reshape(2, 3)
    t = Tensor(data, requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.size == 6
    assert len(t) == 2
    assert t.numpy() is t.data
    np.testing.assert_array_equal(t.T.data, data.T)
    assert Tensor(np.array([[4.5]])).item() == 4.5
    assert "requires_grad=True" in repr(t)
    assert "grad_fn=Mul" in repr(t * 2.0)
    assert Tensor(t).data is t.data


def test_numpy_array_on_the_left_defers_to_the_tensor() -> None:
    x = leaf(3)
    for out in (np.ones(3) + x, np.ones(3) * x, np.ones((2, 3)) @ x, np.ones(3) - x):
        assert isinstance(out, Tensor) and out.requires_grad


def test_composites_have_the_right_gradients() -> None:
    x, y = leaf(3, 4), leaf(3, 4, seed=1)
    assert gradcheck(lambda a, b: a - b, [x, y])
    assert gradcheck(lambda a: 1.0 - a, [x])
    assert gradcheck(lambda a: a.mean(axis=0), [x])
    assert gradcheck(lambda a: a.mean(), [x])
    assert gradcheck(lambda a: a.T @ a, [x])
    assert gradcheck(lambda a: a.transpose(1, 0).reshape(2, 6)[:, ::2], [x])


def test_mean_value() -> None:
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_allclose(x.mean(axis=(0, 2)).data, x.data.mean(axis=(0, 2)))
    np.testing.assert_allclose(x.mean(axis=1, keepdims=True).data, x.data.mean(1, keepdims=True))
    assert x.mean().item() == x.data.mean()


def test_a_mean_over_no_elements_is_nan_as_in_numpy() -> None:
    empty = np.zeros((0, 3))
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = (empty.mean(), empty.mean(axis=0), np.zeros((3, 0)).mean(axis=1))
    with np.errstate(invalid="ignore"):
        got = (
            Tensor(empty).mean(),
            Tensor(empty).mean(axis=0),
            Tensor(np.zeros((3, 0))).mean(axis=1),
        )
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g.data, e)  # NaN where NumPy has NaN
        assert g.shape == np.shape(e)
    assert Tensor(empty).mean(axis=1).shape == (0,)  # nothing to average: an empty result


# ---------------------------------------------------------------- a leaf's gradient is its own
# backward() keeps a gradient without a copy when the backward rule has just made it and
# nothing else refers to it (as PyTorch does); everything below must still get an array of
# its own.


def test_two_leaves_given_the_same_gradient_get_separate_arrays() -> None:
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.array([1.0, 2.0, 3.0]))  # Add hands one array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad *= 0  # an in-place edit (gradient clipping, say) touches one leaf only
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])


def test_the_seed_passed_to_backward_is_copied() -> None:
    x = Tensor(np.ones(3), requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0])
    x.backward(seed)
    assert not np.shares_memory(x.grad, seed)
    (x + 0.0).backward(seed)
    y = Tensor(np.ones(3), requires_grad=True)
    (y + 0.0).backward(seed)  # Add passes the initial gradient itself on to its inputs
    assert not np.shares_memory(y.grad, seed)
    seed[:] = 0
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(y.grad, [1.0, 2.0, 3.0])


def test_a_gradient_that_a_function_keeps_is_copied() -> None:
    class KeepsItsGradient(Function):
        def forward(self, a: np.ndarray) -> np.ndarray:
            self.kept = np.full(a.shape, 5.0)
            return a.copy()

        def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
            return (self.kept,)  # an array the function still holds

    x = Tensor(np.ones(2), requires_grad=True)
    out = KeepsItsGradient.apply(x)
    out.backward(np.ones(2), retain_graph=True)
    assert not np.shares_memory(x.grad, out._ctx.kept)


def test_a_gradient_that_is_a_view_is_copied() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    # Reshape's backward returns a view of the initial gradient
    x.reshape(6).backward(np.arange(6.0))
    assert x.grad.flags.owndata and x.grad.flags.writeable
    np.testing.assert_array_equal(x.grad, np.arange(6.0).reshape(2, 3))


def test_one_new_array_returned_for_two_inputs_is_copied() -> None:
    class SameArrayTwice(Function):
        def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return a + b

        def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            both = grad * 1.0  # a new array, handed to both inputs
            return both, both

    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    SameArrayTwice.apply(a, b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)


def test_a_fresh_gradient_is_kept_without_a_copy() -> None:
    made = []

    class Fresh(Function):
        def forward(self, a: np.ndarray) -> np.ndarray:
            return a * 2

        def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
            out = grad * 2
            made.append(id(out))
            return (out,)

    x = Tensor(np.ones(3), requires_grad=True)
    Fresh.apply(x).sum().backward()
    assert id(x.grad) == made[0]  # the array backward made, not a copy of it
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
