"""What a graph keeps alive for backward: the functions behind a tensor, and their arrays.

After a forward pass, the memory that waits for ``backward()`` is exactly what the
graph's functions hold: each :class:`~lora_np.tensor.Function` keeps the arrays its VJP
reads (see :mod:`lora_np.ops`), linked to the loss through ``next_nodes``. These helpers
walk that graph and add it up, so that "how much does this step save for backward?" is
a number, not a guess::

    loss = F.cross_entropy(model(x), y)
    saved_bytes(loss, exclude=[p.data for p in model.parameters()] + [x.data])

Several functions may hold the same array (an input both a frozen Linear and LoRA's A
read), and an array may be a view of another: arrays are counted once per memory
buffer, by the buffer's full size (a view keeps its whole base alive). ``exclude`` names
arrays that are in memory anyway — the parameters (a Linear keeps W for dL/dx), the
batch — so that what is left is what the forward pass made and the graph kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lora_np.tensor import Function, Tensor


def graph_functions(output: Tensor) -> list[Function]:
    """Every function reachable from ``output`` through ``next_nodes``, each once
    (the function that made ``output`` first; empty for a leaf)."""
    found: list[Function] = []
    seen: set[int] = set()
    stack = [] if output.grad_fn is None else [output.grad_fn]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        found.append(fn)
        stack.extend(node for node in fn.next_nodes if isinstance(node, Function))
    return found


def held_arrays(fn: Function) -> list[tuple[str, np.ndarray]]:
    """(attribute, array) for every array ``fn`` holds: what forward saved for backward,
    and array-valued settings (an index, labels, a projection matrix), also inside tuples
    and lists (named ``"name[i]"``)."""
    arrays = []
    for name, value in vars(fn).items():
        if isinstance(value, np.ndarray):
            arrays.append((name, value))
        elif isinstance(value, (tuple, list)):
            arrays.extend(
                (f"{name}[{i}]", v) for i, v in enumerate(value) if isinstance(v, np.ndarray)
            )
    return arrays


def buffer_of(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory: itself, or the base of a view."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def saved_buffers(output: Tensor, exclude: Iterable[np.ndarray] = ()) -> list[np.ndarray]:
    """The distinct memory buffers that the graph behind ``output`` keeps alive, except
    those of the arrays in ``exclude`` (parameters, the batch: in memory anyway)."""
    excluded = {id(buffer_of(np.asarray(a))) for a in exclude}
    buffers: dict[int, np.ndarray] = {}
    for fn in graph_functions(output):
        for _, array in held_arrays(fn):
            owner = buffer_of(array)
            if id(owner) not in excluded:
                buffers.setdefault(id(owner), owner)
    return list(buffers.values())


def saved_bytes(output: Tensor, exclude: Iterable[np.ndarray] = ()) -> int:
    """Bytes the graph behind ``output`` keeps alive for backward, each buffer once, not
    counting the buffers of the arrays in ``exclude``."""
    return sum(int(b.nbytes) for b in saved_buffers(output, exclude))
