"""What the graph keeps alive: only what the backward rules read.

The graph links functions (and leaves), never intermediate tensors, and each function
saves only the arrays its VJP reads for the inputs that need a gradient (see the module
docstrings of :mod:`lora_np.tensor` and :mod:`lora_np.ops`). These tests check that as
structure — which arrays are saved, which objects are garbage — never as time or bytes.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pytest

from lora_np import graph_memory, nn, ops
from lora_np.lora import LoRALinear
from lora_np.nn import functional as F
from lora_np.tensor import Function, Tensor, no_grad


def leaf(*shape: int, seed: int = 0, requires_grad: bool = True) -> Tensor:
    data = np.random.default_rng(seed).standard_normal(shape)
    return Tensor(data, requires_grad=requires_grad)


def graph_functions(out: Tensor) -> list[Function]:
    """Every function reachable from ``out`` through ``next_nodes``."""
    found: list[Function] = []
    stack = [out._ctx] if out._ctx is not None else []
    while stack:
        fn = stack.pop()
        if any(fn is seen for seen in found):
            continue
        found.append(fn)
        stack.extend(node for node in fn.next_nodes if isinstance(node, Function))
    return found


def saved_arrays(fn: Function) -> list[np.ndarray]:
    """The arrays a function holds (what it saved for backward, and array settings)."""
    return [value for value in vars(fn).values() if isinstance(value, np.ndarray)]


def all_saved_arrays(out: Tensor) -> list[np.ndarray]:
    return [array for fn in graph_functions(out) for array in saved_arrays(fn)]


# ----------------------------------------------------------------------------- structure


def test_functions_hold_no_intermediate_tensor_and_not_their_output() -> None:
    x, w = leaf(5, 4), leaf(3, 4, seed=1)
    hidden = F.relu(F.linear(x, w))
    loss = (hidden * hidden).sum() + hidden.tanh().mean()
    functions = graph_functions(loss)
    assert len(functions) >= 6
    for fn in functions:
        for name, value in vars(fn).items():
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, Tensor):  # only the leaves, as places for their gradients
                    assert v.is_leaf and name == "next_nodes", (type(fn).__name__, name)


def test_next_nodes_say_where_each_gradient_goes() -> None:
    x = leaf(5, 4)  # a leaf that requires grad: the gradient goes to x itself
    w = leaf(3, 4, seed=1, requires_grad=False)  # frozen: no gradient at all
    h = F.linear(x, w)
    out = h.tanh()
    assert out._ctx.next_nodes == (h._ctx,)  # an intermediate: to the function that made it
    assert h._ctx.next_nodes[0] is x and h._ctx.next_nodes[1] is None
    assert h._ctx.output_shape == (5, 3) and h._ctx.output_dtype == np.float64
    assert out.grad_fn is out._ctx


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("add", lambda a, b: a + b),
        ("neg", lambda a, b: -a),
        ("sub", lambda a, b: a - b),
        ("sum", lambda a, b: a.sum(axis=0)),
        ("reshape", lambda a, b: a.reshape(-1)),
        ("transpose", lambda a, b: a.T),
        ("broadcast_to", lambda a, b: a.broadcast_to((2, 3, 4))),
    ],
)
def test_shape_and_sum_ops_keep_no_arrays(name: str, op: Any) -> None:
    out = op(leaf(3, 4), leaf(3, 4, seed=1))
    assert out.requires_grad
    assert all_saved_arrays(out) == [], name


def test_mul_saves_each_operand_only_for_the_other_ones_gradient() -> None:
    a, b = leaf(3, 4), leaf(3, 4, seed=1)
    both = saved_arrays((a * b)._ctx)
    assert len(both) == 2 and {id(s) for s in both} == {id(a.data), id(b.data)}
    frozen_b = Tensor(b.data)
    (fn,) = graph_functions(a * frozen_b)
    assert [s is frozen_b.data for s in saved_arrays(fn)] == [True]  # b, for dL/da = G·b
    (fn,) = graph_functions(Tensor(a.data) * b)
    assert [s is a.data for s in saved_arrays(fn)] == [True]  # a, for dL/db = G·a


def test_linear_saves_x_only_for_the_weight_and_w_only_for_the_input() -> None:
    x, w, b = leaf(5, 4), leaf(3, 4, seed=1), leaf(3, seed=2)
    frozen_w, frozen_b = Tensor(w.data), Tensor(b.data)
    (fn,) = graph_functions(F.linear(x, frozen_w, frozen_b))  # a frozen layer
    assert [s is w.data for s in saved_arrays(fn)] == [True]
    (fn,) = graph_functions(F.linear(Tensor(x.data), w, b))  # the first layer: x is data
    assert [s is x.data for s in saved_arrays(fn)] == [True]
    (fn,) = graph_functions(F.linear(Tensor(x.data), frozen_w, b))  # only the bias trains
    assert saved_arrays(fn) == []


def test_a_frozen_layer_does_not_keep_its_input() -> None:
    model = nn.MLP([6, 8, 8, 3], dtype=np.float64, rng=np.random.default_rng(0))
    model[2].requires_grad_(False)  # the middle Linear is frozen
    x = Tensor(np.random.default_rng(1).standard_normal((5, 6)))
    hidden = model[1](model[0](x))  # the frozen layer's input, which requires grad
    assert hidden.requires_grad
    out = model[4](model[3](model[2](hidden)))
    loss = F.cross_entropy(out, np.array([0, 1, 2, 0, 1]))
    saved = all_saved_arrays(loss)
    assert saved
    assert not any(np.shares_memory(array, hidden.data) for array in saved)


@pytest.mark.parametrize("input_needs_grad", [False, True])
def test_a_lora_layer_keeps_its_input_once_for_lora_a(input_needs_grad: bool) -> None:
    layer = LoRALinear(6, 5, rank=2, alpha=4.0, dropout=0.0, bias=True, dtype=np.float64)
    assert not layer.linear.weight.requires_grad
    x = leaf(4, 6, requires_grad=input_needs_grad)
    out = layer(x)
    sharing_x = [a for a in all_saved_arrays(out) if np.shares_memory(a, x.data)]
    assert len(sharing_x) == 1 and sharing_x[0] is x.data  # lora_a's, for dL/dA = Gᵀ·x


# ----------------------------------------------------------------------------- freed at once


def test_an_intermediate_no_rule_needs_is_freed_at_once() -> None:
    x = leaf(4, 3)
    scaled = x * 2.0  # Mul keeps the constant 2.0 for dL/dx, not x, not its output
    tensor_alive, array_alive = weakref.ref(scaled), weakref.ref(scaled.data)
    loss = scaled.sum()  # Sum keeps a shape
    del scaled
    assert tensor_alive() is None and array_alive() is None  # no cycle: no gc needed
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.full((4, 3), 2.0))


def test_a_saved_output_lives_until_backward_and_its_tensor_does_not() -> None:
    x = leaf(4, 3)
    hidden = (x * 2.0).tanh()  # Tanh saves its output array for dL/da = G·(1 − out²)
    tensor_alive, array_alive = weakref.ref(hidden), weakref.ref(hidden.data)
    loss = hidden.sum()
    del hidden
    assert tensor_alive() is None  # the graph holds no intermediate tensor
    assert array_alive() is not None  # ... but the array Tanh's VJP reads
    loss.backward()
    assert array_alive() is None  # freed by backward, while the loss is still alive
    assert loss.requires_grad and loss._ctx.next_nodes == ()


def test_a_frozen_layers_input_is_freed_when_nothing_else_needs_it() -> None:
    x = leaf(5, 4)
    w = Tensor(np.random.default_rng(1).standard_normal((3, 4)))  # frozen
    hidden = x * 3.0
    array_alive = weakref.ref(hidden.data)
    loss = F.linear(hidden, w).sum()
    del hidden
    assert array_alive() is None
    loss.backward()
    np.testing.assert_allclose(x.grad, 3.0 * np.ones((5, 3)) @ w.data)


# ----------------------------------------------------------------------------- no_grad, twice


def test_under_no_grad_forward_is_told_that_nothing_needs_a_gradient() -> None:
    seen = []

    class Spy(Function):
        def forward(self, a: np.ndarray) -> np.ndarray:
            seen.append(self.needs_input_grad)
            return a * 1.0

        def backward(self, grad: np.ndarray) -> tuple[np.ndarray]:
            return (grad,)

    x = leaf(3)
    with no_grad():
        out = Spy.apply(x)
        model_out = nn.Linear(3, 2, dtype=np.float64)(x).tanh()
    assert seen == [(False,)] and out._ctx is None and model_out._ctx is None
    Spy.apply(x)
    assert seen[-1] == (True,)


def test_backward_releases_every_saved_array() -> None:
    x, w = leaf(5, 4), leaf(3, 4, seed=1)
    loss = F.cross_entropy(F.linear(x, w).tanh(), np.array([0, 1, 2, 0, 1]))
    functions = graph_functions(loss)
    assert all_saved_arrays(loss)
    loss.backward()
    assert all(saved_arrays(fn) == [] for fn in functions)


def test_a_second_backward_raises_before_touching_any_gradient() -> None:
    x = leaf(3)
    shared = x.exp()
    first, second = shared.sum(), (shared * 2.0).sum()
    first.backward()
    grad_after_first = x.grad.copy()
    with pytest.raises(RuntimeError, match=r"Exp a second time.*retain_graph=True"):
        second.backward()  # reaches Exp, released by the first backward
    np.testing.assert_array_equal(x.grad, grad_after_first)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        first.backward()


def test_retain_graph_keeps_what_backward_needs() -> None:
    x = leaf(3)
    loss = x.exp().sum()
    loss.backward(retain_graph=True)
    assert all_saved_arrays(loss)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data))


def test_the_fused_cross_entropy_is_one_node() -> None:
    z = leaf(4, 3)
    loss = F.cross_entropy(z, np.array([0, 2, 1, 1]))
    (fn,) = graph_functions(loss)
    assert isinstance(fn, ops.SoftmaxCrossEntropy) and fn.next_nodes == (z,)


# ----------------------------------------------------------------------------- adding it up


def test_saved_bytes_counts_each_buffer_once_and_leaves_out_what_is_excluded() -> None:
    x, w = leaf(5, 4), leaf(3, 4, seed=1)
    hidden = F.relu(F.linear(x, w))  # Linear saves x (for W) and w (for x); ReLU its mask
    loss = (hidden * hidden).sum()  # Mul saves hidden twice: one buffer
    found = graph_memory.graph_functions(loss)
    assert [type(fn).__name__ for fn in found] == ["Sum", "Mul", "ReLU", "Linear"]
    mask = 5 * 3  # booleans
    assert graph_memory.saved_bytes(loss) == x.data.nbytes + w.data.nbytes + mask + 5 * 3 * 8
    assert graph_memory.saved_bytes(loss, exclude=[x.data, w.data]) == mask + 5 * 3 * 8
    assert graph_memory.saved_bytes(Tensor(np.ones(3))) == 0  # a leaf: no graph


def test_a_saved_view_counts_its_whole_base() -> None:
    base, other = leaf(6, 4), leaf(2, 4, seed=1)
    rows = base[2:4]  # a view: GetItem saves no array, but Mul keeps it for dL/d(other)
    loss = (rows * other).sum()
    buffers = graph_memory.saved_buffers(loss)
    assert len(buffers) == 2 and any(b is base.data for b in buffers)
    assert graph_memory.saved_bytes(loss) == base.data.nbytes + other.data.nbytes


def test_backward_leaves_nothing_to_count() -> None:
    x, w = leaf(5, 4), leaf(3, 4, seed=1)
    loss = F.cross_entropy(F.linear(x, w).tanh(), np.array([0, 1, 2, 0, 1]))
    assert graph_memory.saved_bytes(loss) > 0
    loss.backward()
    assert graph_memory.saved_bytes(loss) == 0
