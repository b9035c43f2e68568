"""Embedding: a table of learned vectors, one row per token id, as PyTorch's ``nn.Embedding``.

``out[b, t] = W[idx[b, t]]``. Looking a row up is indexing, so the gradient of the table
is a scatter-add: every position that read row i adds its upstream gradient into row i.
A token that appears twice in a batch gets both gradients, which is why the backward
pass must *add* and not assign.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.nn import init
from lora_np.nn.module import Module, Parameter
from lora_np.rng import get_rng
from lora_np.tensor import Function, Tensor


def scatter_add_rows(num_rows: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``out[i] = Σ_{n: index[n] = i} values[n]``: rows of ``values`` added into a table.

    The same result as ``np.add.at(np.zeros(...), index, values)``, computed by sorting the
    rows by their index and summing each run of equal indices with ``np.add.reduceat``,
    which is about ten times faster than ``np.add.at`` for a batch of token vectors.
    ``index`` (N,) holds ints in [0, num_rows); ``values`` is (N, dim).
    """
    out = np.zeros((num_rows, values.shape[-1]), dtype=values.dtype)
    if index.size == 0:
        return out
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    out[sorted_index[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


class EmbeddingFunction(Function):
    """out = W[idx]: idx (any shape, ints in [0, num)), W (num, dim) -> out (*idx.shape, dim).

    VJP: dL/dW[i] = Σ over the positions p with idx[p] = i of G[p] (a scatter-add, see
    :func:`scatter_add_rows`); the ids get no gradient. Saves, when W needs a gradient:
    idx and the number of rows of W (not W itself: the rule never reads the table).
    """

    def forward(self, idx: np.ndarray, weight: np.ndarray) -> np.ndarray:
        if self.needs_input_grad[1]:
            self.idx, self.num_rows = idx, weight.shape[0]
        return weight[idx]

    def backward(self, grad: np.ndarray) -> tuple[None, np.ndarray | None]:
        if not self.needs_input_grad[1]:
            return None, None
        rows = grad.reshape(-1, grad.shape[-1])
        return None, scatter_add_rows(self.num_rows, self.idx.reshape(-1), rows)


def check_token_ids(idx: Any, num_embeddings: int, where: str) -> np.ndarray:
    """``idx`` as an integer array of ids in [0, num_embeddings), or a clear error."""
    array = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{where}: token ids must be an integer array, got dtype {array.dtype} "
            "(convert with .astype(np.int64) if the values are whole numbers)"
        )
    if array.size and (array.min() < 0 or array.max() >= num_embeddings):
        raise ValueError(
            f"{where}: token ids must be in [0, {num_embeddings}), got values in "
            f"[{array.min()}, {array.max()}]"
        )
    return array


def embedding(idx: Any, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (num, dim) picked by the integer ids ``idx``: shape (*idx.shape, dim)."""
    ids = check_token_ids(idx, weight.shape[0], "embedding")
    return EmbeddingFunction.apply(ids, weight)


class Embedding(Module):
    """A table ``weight`` (num_embeddings, embedding_dim); ``forward(idx)`` is ``weight[idx]``.

    Default init as PyTorch: N(0, 1).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        for label, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not is_int(value) or value < 1:
                raise ValueError(f"Embedding: {label} must be a positive int, got {value!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=dtype))
        init.normal_(self.weight, 0.0, 1.0, rng=get_rng(rng))

    def forward(self, idx: Any) -> Tensor:
        return embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
