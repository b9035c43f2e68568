"""The Tensor, the graph it records, and the backward pass.

A :class:`Tensor` wraps a NumPy array. When an operation is applied to tensors that
require a gradient, the result remembers the :class:`Function` that made it (its
``_ctx``, also called ``grad_fn``). The function remembers, for each of its inputs,
where that input's gradient must go (``next_nodes``): to the function that made the
input, to the input itself if it is a leaf that requires a gradient (a parameter), or
nowhere. That chain of functions, from the loss back to the leaves, is the graph.

The graph holds functions, not intermediate tensors: a function keeps only the arrays
its backward rule reads (each primitive's docstring says which, and why), and only for
inputs that need a gradient. An intermediate result that nothing saved is freed as soon
as the code that computed it drops it.

``loss.backward()`` walks the graph once, from the loss back to the leaves:

1. sort the functions topologically (iteratively, so a chain 10,000 deep is fine);
2. seed ``dL/dloss = 1`` (or the gradient you pass);
3. visit the functions in reverse topological order; each turns the gradient of its
   output into one gradient per input (its vector-Jacobian product, VJP);
4. undo broadcasting — in exactly one place, :func:`_sum_to_shape` — so each gradient has
   its input's shape;
5. add the gradient into each leaf's ``.grad`` (gradients accumulate, as in PyTorch).

Only inputs that need a gradient get one: a frozen weight or a data tensor costs no
backward matmul, and nothing is saved for it (``Function.needs_input_grad``).

A second ``backward()`` through the same graph raises ``RuntimeError``: once the
gradients have flowed, every function drops what it saved (so memory is released as
soon as possible, as PyTorch does). Pass ``retain_graph=True`` to the first call to keep
it and allow another pass; gradients then accumulate again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Union

import numpy as np

ArrayLike = Any

_GRAD_ENABLED = True

#: dtype kinds a Tensor may hold: bool, signed and unsigned integers, floating point
_NUMERIC_KINDS = "biuf"


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return _GRAD_ENABLED


class no_grad:  # noqa: N801 (PyTorch's name)
    """Context manager: operations inside record no graph (inference, optimizer steps).

    ``with no_grad(): ...`` turns recording off and, on the way out (even through an
    exception), back to what it was, so blocks nest. As in PyTorch it also decorates a
    function: ``@no_grad()`` runs each call inside its own such block.
    """

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def without_grad(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return without_grad

    def __enter__(self) -> None:
        global _GRAD_ENABLED
        self.previous = _GRAD_ENABLED
        _GRAD_ENABLED = False

    def __exit__(self, *exc_info: object) -> None:
        global _GRAD_ENABLED
        _GRAD_ENABLED = self.previous


class Function:
    """One differentiable primitive: ``forward`` on arrays, ``backward`` on arrays.

    Subclasses implement

    * ``forward(*arrays) -> ndarray``. When it runs, ``self.needs_input_grad[i]`` already
      says whether input ``i`` needs a gradient (all False under :func:`no_grad`). Store on
      ``self``, as plain attributes, exactly the arrays ``backward`` will read for the
      inputs that need one, and nothing else: what is saved stays alive until backward.
    * ``backward(grad) -> tuple``: one gradient per input, ``None`` for an input that does
      not need one. It may return new arrays, ``grad`` itself or views of it, or arrays it
      saved on ``self``; an array held anywhere else (a module-level constant) must be
      returned as a copy, because a leaf may keep a new array as its ``.grad``.

    A gradient may have the *output's* broadcast shape: the engine sums it back to the
    input's shape. Non-tensor settings (an axis, an exponent) go to ``__init__``. Each
    primitive's docstring states its VJP and what it saves, and why.

    When a call is recorded, :meth:`apply` also sets

    * ``next_nodes[i]``: where the gradient of input ``i`` goes — the :class:`Function`
      that made the input, the input itself if it is a leaf that requires a gradient, or
      ``None``;
    * ``output_shape``, ``output_dtype``: those of the output, which the gradient sent
      back to this function must have (an input's shape is thus recorded by the function
      that made it, or is the leaf's own).

    The function holds neither its output nor the intermediate tensors it was given.

    The test suite gradient-checks every subclass defined in the ``lora_np`` package with
    the sample inputs of its catalogue (``tests/test_ops.py``).
    """

    needs_input_grad: tuple[bool, ...] = ()
    next_nodes: tuple[Node | None, ...] = ()
    output_shape: tuple[int, ...] = ()
    output_dtype: np.dtype | None = None
    _released = False  # True once release() has dropped what backward needed

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor | ArrayLike, **settings: Any) -> Tensor:
        """Run the primitive on tensors and, if any input needs a gradient, record it."""
        tensors = _as_tensors(inputs)
        fn = cls(**settings)
        arrays, needs, next_nodes = [], [], []
        for t in tensors:
            needs_grad = _GRAD_ENABLED and t._requires_grad
            arrays.append(t.data)
            needs.append(needs_grad)
            # where t's gradient goes: to the function that made it, to t itself if it is a
            # leaf, or (if it needs no gradient) nowhere
            next_nodes.append((t if t._ctx is None else t._ctx) if needs_grad else None)
        fn.needs_input_grad = tuple(needs)
        out = Tensor(fn.forward(*arrays))
        if True in needs:  # record the call
            dtype = out.data.dtype
            if dtype.kind != "f":  # only floating-point tensors have gradients
                raise TypeError(
                    f"{cls.__name__}.forward returned dtype {dtype} for inputs that "
                    "require gradients; a differentiable function must return floating point"
                )
            out._requires_grad = True
            out._ctx = fn
            fn.next_nodes = tuple(next_nodes)
            fn.output_shape, fn.output_dtype = out.data.shape, dtype
        return out

    def release(self) -> None:
        """Drop everything saved for backward and the links to the inputs (called by the
        engine after use), so intermediate activations can be freed even while the loss
        is still referenced. The graph cannot be walked (or backpropagated) again."""
        needs_input_grad = self.needs_input_grad
        vars(self).clear()  # every saved array, setting and link (next_nodes is () again)
        self.needs_input_grad = needs_input_grad
        self._released = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


#: What a gradient is sent to: the function that made an input, or a leaf tensor.
Node = Union[Function, "Tensor"]


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
        if like.dtype.kind == "f":  # a float tensor keeps its dtype (np.result_type's answer)
            return Tensor(np.asarray(value, dtype=like.dtype))
        weak = float(value) if isinstance(value, float) else int(value)  # np.float64 too
        return Tensor(np.asarray(value, dtype=np.result_type(like.dtype, weak)))
    return Tensor(np.asarray(value))


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data, requires_grad=False)``: ``data`` is converted with ``np.asarray`` and
    keeps its dtype, which must be numeric (bool, integer or floating point; strings,
    objects and complex numbers raise TypeError). Only floating-point tensors may
    require a gradient.
    """

    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: ArrayLike, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data: np.ndarray = np.asarray(data)
        if self.data.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                "a Tensor holds bool, integer or floating-point numbers; got dtype "
                f"{self.data.dtype} (from {type(data).__name__})"
            )
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
    def grad_fn(self) -> Function | None:
        """The Function that made this tensor (PyTorch's name for ``_ctx``); None for a leaf."""
        return self._ctx

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
        The steps are those of the module docstring.
        """
        if not self._requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())"
            )
        seed = self._seed(grad)
        root = self._ctx
        if root is None:  # backward() on a leaf: its gradient is the initial one (its own copy)
            order: list[Function] = []
            grads: dict[Node, np.ndarray] = {self: seed.copy()}
        else:
            order = _topological_order(root)  # 1. inputs before the functions using them
            grads = {root: seed}  # 2. keyed by node (a Function or a leaf; identity hash)
        for fn in reversed(order):  # 3. each function once, after all its consumers
            fn_grad = grads.pop(fn, None)  # the gradient of fn's output, summed over uses
            if fn_grad is not None:
                _send_input_gradients(fn, fn_grad, grads)  # the VJP, and 4. sum to shape
            if not retain_graph:
                fn.release()
        for leaf, leaf_grad in grads.items():  # 5. only leaves are left in grads
            leaf.grad = leaf_grad if leaf.grad is None else leaf.grad + leaf_grad

    def _seed(self, grad: ArrayLike | None) -> np.ndarray:
        """dL/d(self): ones for a one-element tensor, else the ``grad`` given (checked)."""
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "backward() without a gradient argument needs a one-element output; "
                    f"got shape {self.shape}. Pass grad= of that shape, or reduce first "
                    "(e.g. .sum())"
                )
            return np.ones(self.data.shape, dtype=self.data.dtype)
        seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if seed.shape != self.shape:
            raise ValueError(
                f"backward() gradient has shape {seed.shape}, expected the output "
                f"shape {self.shape}"
            )
        return seed

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
        """Composite: ``sum / count``. Over no elements it is NaN (0/0), as in NumPy and
        PyTorch."""
        total = self.sum(axis=axis, keepdims=keepdims)
        count = self.data.size // max(total.data.size, 1)  # 0 if the axes reduced are empty
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


def _topological_order(root: Function) -> list[Function]:
    """Functions reachable from ``root``, each after the functions that made its inputs
    (an iterative depth-first search). Raises if one of them was already released."""
    order: list[Function] = []
    visited: set[Function] = set()
    stack: list[tuple[Function, bool]] = [(root, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
        elif fn not in visited:
            if fn._released:
                raise RuntimeError(
                    f"backward through {type(fn).__name__} a second time: what it saved "
                    "for backward was freed after the first backward. Call the first "
                    "backward(retain_graph=True) to keep it."
                )
            visited.add(fn)
            stack.append((fn, True))  # comes back here once its inputs are in order
            for node in fn.next_nodes:
                if isinstance(node, Function) and node not in visited:
                    stack.append((node, False))
    return order


def _send_input_gradients(fn: Function, grad: np.ndarray, grads: dict[Node, np.ndarray]) -> None:
    """Step 3 for one function: its VJP, then each input's gradient, summed to the input's
    shape (step 4), is added to what its node has received so far in ``grads``."""
    input_grads = fn.backward(grad)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(fn.next_nodes):
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned {len(input_grads)} gradients "
            f"for {len(fn.next_nodes)} inputs"
        )
    for i, node in enumerate(fn.next_nodes):
        returned = input_grads[i]
        if node is None or returned is None:
            continue
        g = returned if isinstance(returned, np.ndarray) else np.asarray(returned)
        leaf = isinstance(node, Tensor)
        shape, dtype = (
            (node.data.shape, node.data.dtype) if leaf else (node.output_shape, node.output_dtype)
        )
        if g.shape != shape:
            g = _sum_to_shape(g, shape, type(fn).__name__, i)
        if g.dtype != dtype:
            g = g.astype(dtype)
        if node in grads:
            grads[node] = grads[node] + g  # a new array: the sum of two contributions
        elif leaf and g is returned and not _new_from(fn, grad, input_grads, g):
            grads[node] = g.copy()  # a leaf's gradient is its own array
        else:
            grads[node] = g


def _new_from(fn: Function, grad: np.ndarray, input_grads: tuple[Any, ...], g: np.ndarray) -> bool:
    """True if ``g``, one of the ``input_grads`` that ``fn.backward(grad)`` returned, is an
    array that this call made and nothing else refers to: a leaf may keep it without a
    copy (PyTorch does so too).

    Plain tests, no reference counting: ``g`` is not a view of another array (such as
    Reshape's), it is not the upstream gradient itself (which Add passes on to both of its
    inputs, and which may be the initial gradient you passed), it was returned for one
    input only, and it is not an array ``fn`` holds as an attribute. The rest is the contract of
    :class:`Function`: ``backward`` does not return an array held anywhere else.
    """
    if g.base is not None or g is grad:  # a view, or the gradient it was given
        return False
    uses = 0
    for returned in input_grads:
        if returned is g:
            uses += 1
    if uses > 1:  # returned for two inputs
        return False
    for value in vars(fn).values():  # noqa: SIM110 (a plain loop makes no generator)
        if value is g:  # kept by fn
            return False
    return True


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
