"""The Tensor, the graph it records, and the backward pass.

A :class:`Tensor` wraps a NumPy array. When an operation is applied to tensors that
require a gradient, the result remembers the :class:`Function` that made it (its
``_ctx``); the functions remember their inputs. That chain of records is the graph.

``loss.backward()`` walks the graph once, from the loss back to the leaves:

1. sort the nodes topologically (iteratively, so a chain 10,000 deep is fine);
2. seed ``dL/dloss = 1`` (or the gradient you pass);
3. visit nodes in reverse topological order; each node's function turns the gradient of
   its output into one gradient per input (its vector-Jacobian product, VJP);
4. undo broadcasting — in exactly one place, :func:`_sum_to_shape` — so each gradient has
   its input's shape;
5. add the gradient into the leaf's ``.grad`` (gradients accumulate, as in PyTorch).

Only inputs that need a gradient get one: a frozen weight or a data tensor costs no
backward matmul (``Function.needs_input_grad``).

A second ``backward()`` through the same graph raises ``RuntimeError``: once the
gradients have flowed, every function drops the arrays it saved for backward (so memory
is released as soon as possible, as PyTorch does). Pass ``retain_graph=True`` to the first
call to keep them and allow another pass; gradients then accumulate again.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

ArrayLike = Any

_GRAD_ENABLED = True


def _refcount_of_a_local() -> int:
    """What ``sys.getrefcount`` reports for an array held by one local name alone (the
    number depends on the Python version; measured here the way backward() asks)."""
    array = np.empty(0)
    return sys.getrefcount(array)


#: backward() hands a leaf its gradient array without a copy when the array's refcount
#: is this low: then no other name, tensor, saved input or second leaf can see it.
_UNSHARED_REFCOUNT = _refcount_of_a_local()


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: operations inside record no graph (inference, optimizer steps)."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


class Function:
    """One differentiable primitive: ``forward`` on arrays, ``backward`` on arrays.

    Subclasses implement

    * ``forward(*arrays) -> ndarray`` — may save what backward needs on ``self``;
    * ``backward(grad) -> tuple`` — one gradient per input (or ``None`` for an input that
      does not need one; check ``self.needs_input_grad[i]`` to skip the work).

    A gradient may have the *output's* broadcast shape: the engine sums it back to the
    input's shape. Non-tensor settings (an axis, an exponent) go to ``__init__``.

    Every subclass is recorded in :data:`REGISTRY` (by class name, which must be unique)
    so that the test suite (``tests/test_ops.py``) can gradient-check all of them; a
    registered primitive without sample inputs fails that test. Samples for the
    primitives of :mod:`lora_np.ops` live in the test's catalogue; a primitive defined in
    another module brings its own as a classmethod::

        @classmethod
        def gradcheck_samples(cls, rng: np.random.Generator) -> list[tuple[tuple, dict]]:
            # each case: (inputs passed to apply, settings passed to __init__)
            return [((rng.standard_normal((3, 4)),), {"axis": 0})]

    Float arrays among the inputs are checked; pass ``Tensor(x)`` (no grad) or an integer
    array to hold an input constant. A class that must stay out of the registry (a
    deliberately wrong op written to test the checker) sets ``register = False`` in its
    own body.
    """

    needs_input_grad: tuple[bool, ...] = ()
    inputs: tuple[Tensor, ...] = ()
    _released = False  # True once release() has dropped the saved arrays

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("register", True):
            return
        previous = REGISTRY.get(cls.__name__)
        where = f"{cls.__module__}.{cls.__qualname__}"
        # re-defining the same class (a module reload) replaces it; a namesake would
        # silently hide a primitive from the gradcheck catalogue, so it is an error
        if previous is not None and f"{previous.__module__}.{previous.__qualname__}" != where:
            raise TypeError(
                f"two Function subclasses are named {cls.__name__!r}: "
                f"{previous.__module__}.{previous.__qualname__} and {where}; rename one "
                "(or set register = False on a class meant only for a test)"
            )
        REGISTRY[cls.__name__] = cls

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor | ArrayLike, **settings: Any) -> Tensor:
        """Run the primitive on tensors and, if any input needs a gradient, record it."""
        tensors = _as_tensors(inputs)
        fn = cls(**settings)
        fn.needs_input_grad = tuple([t._requires_grad for t in tensors])
        out = Tensor(fn.forward(*[t.data for t in tensors]))
        if _GRAD_ENABLED and any(fn.needs_input_grad):
            out.requires_grad = True  # (the setter checks that the output is floating-point)
            out._ctx = fn
            fn.inputs = tensors
        return out

    def release(self) -> None:
        """Drop everything saved for backward, and the links to the inputs (called by the
        engine after use), so intermediate activations can be freed even while the loss
        is still referenced. The graph cannot be walked (or backpropagated) again."""
        needs_input_grad = self.needs_input_grad
        vars(self).clear()  # every saved array and the inputs (``inputs`` is () again)
        self.needs_input_grad = needs_input_grad
        self._released = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


#: name -> Function subclass, filled by ``Function.__init_subclass__``.
REGISTRY: dict[str, type[Function]] = {}


def _first_tensor(values: tuple[Any, ...]) -> Tensor | None:
    for v in values:
        if isinstance(v, Tensor):
            return v
    return None


def _as_tensors(values: tuple[Any, ...]) -> tuple[Tensor, ...]:
    """An op's inputs as Tensors: tensors as they are, constants wrapped by _as_tensor."""
    for v in values:
        if not isinstance(v, Tensor):
            like = _first_tensor(values)
            return tuple([_as_tensor(x, like=like) for x in values])
    return values


def _as_tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """Wrap a constant. A Python number is "weak", as in NumPy's own promotion rules: it
    takes the dtype of the tensor it meets when that can hold it, so ``x * 2`` keeps
    float32 float32 (a float64 0-d array would upcast it), while ``int_tensor * 0.5``
    becomes float64 (casting 0.5 to the integer dtype would give 0)."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        weak = float(value) if isinstance(value, float) else int(value)  # np.float64 too
        return Tensor(np.asarray(value, dtype=np.result_type(like.dtype, weak)))
    return Tensor(np.asarray(value))


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data, requires_grad=False)``: ``data`` is converted with ``np.asarray`` and
    keeps its dtype. Only floating-point tensors may require a gradient.
    """

    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: ArrayLike, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data: np.ndarray = np.asarray(data)
        self.grad: np.ndarray | None = None
        self._ctx: Function | None = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True  # the setter checks the dtype

    # ----------------------------------------------------------------- attributes
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":  # "f": NumPy's np.floating, checked fast
            raise TypeError(
                "only floating-point tensors can require gradients; "
                f"got dtype {self.data.dtype} (convert with .astype(np.float32) first)"
            )
        self._requires_grad = bool(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user (not by an operation that tracks grad)."""
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self._ctx is not None:
            extra = f", grad_fn={type(self._ctx).__name__}"
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def detach(self) -> Tensor:
        """A new leaf sharing the same data, cut from the graph."""
        return Tensor(self.data, requires_grad=False)

    def astype(self, dtype: Any) -> Tensor:
        """A detached copy with another dtype (not differentiable)."""
        return Tensor(self.data.astype(dtype))

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- backward
    def backward(self, grad: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a one-element tensor; any other shape needs it.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "backward() without a gradient argument needs a one-element output; "
                    f"got shape {self.shape}. Pass grad= of that shape, or reduce first "
                    "(e.g. .sum())"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward() gradient has shape {seed.shape}, expected the output "
                    f"shape {self.shape}"
                )

        grads: dict[Tensor, np.ndarray] = {self: seed}  # keyed by node (identity hash)
        for node in reversed(_topological_order(self)):
            g = grads.pop(node, None)
            if g is None:
                continue
            fn = node._ctx
            if fn is None:  # a leaf: accumulate, as PyTorch does
                if node.grad is not None:
                    node.grad = node.grad + g
                elif g.flags.owndata and sys.getrefcount(g) <= _UNSHARED_REFCOUNT:
                    node.grad = g  # nothing else refers to g: keep it (PyTorch does too)
                else:
                    node.grad = g.copy()  # a view, the seed, or shared: the leaf's own copy
                continue
            if fn._released:
                raise RuntimeError(
                    f"backward through {type(fn).__name__} a second time: its saved "
                    "arrays were freed after the first backward. Call the first "
                    "backward(retain_graph=True) to keep them."
                )
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(fn.inputs):
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned {len(input_grads)} gradients "
                    f"for {len(fn.inputs)} inputs"
                )
            for i, (inp, needed, ig) in enumerate(
                zip(fn.inputs, fn.needs_input_grad, input_grads, strict=True)
            ):
                if not needed or ig is None:
                    continue
                if not isinstance(ig, np.ndarray):
                    ig = np.asarray(ig)
                data = inp.data
                if ig.shape != data.shape:
                    ig = _sum_to_shape(ig, data.shape, type(fn).__name__, i)
                if ig.dtype != data.dtype:
                    ig = ig.astype(data.dtype)
                grads[inp] = grads[inp] + ig if inp in grads else ig
            input_grads = ig = None  # hold no gradient here, so that the refcount above is exact
            if not retain_graph:
                fn.release()

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return ops.Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.Add.apply(self, ops.Neg.apply(_as_tensor(other, like=self)))

    def __rsub__(self, other: Any) -> Tensor:
        return ops.Add.apply(other, ops.Neg.apply(self))

    def __mul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(other, self)

    def __pow__(self, exponent: float) -> Tensor:
        return ops.Pow.apply(self, exponent=exponent)

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.GetItem.apply(self, index=index)

    # ----------------------------------------------------------------- methods
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Composite: ``sum / count``."""
        total = self.sum(axis=axis, keepdims=keepdims)
        count = self.data.size // max(total.data.size, 1) if self.data.size else 1
        return total / count

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def exp(self) -> Tensor:
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        return ops.Log.apply(self)

    def tanh(self) -> Tensor:
        return ops.Tanh.apply(self)

    def relu(self) -> Tensor:
        return ops.ReLU.apply(self)

    def sigmoid(self) -> Tensor:
        return ops.Sigmoid.apply(self)

    def sqrt(self) -> Tensor:
        return ops.Sqrt.apply(self)

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return self.transpose()

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        return ops.BroadcastTo.apply(self, shape=tuple(shape))

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.LogSoftmax.apply(self, axis=axis)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Nodes reachable from ``root``, each after all of its inputs (iterative DFS)."""
    order: list[Tensor] = []
    visited: set[Tensor] = set()  # a Tensor hashes by identity: a set of nodes, not values
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))  # comes back here once its inputs are in order
            if node._ctx is not None:
                for parent in node._ctx.inputs:
                    if parent._requires_grad and parent not in visited:
                        stack.append((parent, False))
    return order


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...], op: str, index: int) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` down to ``shape``. The one place it happens.

    Broadcasting prepends axes and stretches axes of size 1; the adjoint of copying a
    value is adding up its copies, so we sum over exactly those axes.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
        if grad.shape == shape:  # only prepended axes (a bias): done
            return grad
    if extra >= 0 and grad.ndim == len(shape):
        stretched = tuple(
            ax for ax, (g, s) in enumerate(zip(grad.shape, shape, strict=True)) if s == 1 and g != 1
        )
        if stretched:
            grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise RuntimeError(
            f"{op}.backward returned a gradient of shape {grad.shape} for input {index} "
            f"of shape {shape}, and it cannot be summed back to that shape"
        )
    return grad


from lora_np import ops  # noqa: E402  (ops subclasses Function, defined above)
