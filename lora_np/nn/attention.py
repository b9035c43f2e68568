"""Causal multi-head self-attention (Vaswani et al. 2017), the GPT way.

For an input h (B, T, D) and H heads of size d = D/H::

    Q = h·W_qᵀ + b_q,  K = h·W_kᵀ + b_k,  V = h·W_vᵀ + b_v      (q_proj, k_proj, v_proj)
    split each into heads: (B, T, D) -> (B, T, H, d) -> (B, H, T, d)
    S = Q·Kᵀ / √d                      scores (B, H, T, T): query t against key s
    S[t, s] = −∞ for s > t             the causal mask: position t sees only s ≤ t
    P = softmax(S) along s             each row sums to 1; masked entries are exactly 0
    O = P·V, heads merged back to (B, T, D), then out = O·W_oᵀ + b_o   (o_proj)

The projections are ordinary :class:`~lora_np.nn.Linear` layers named as in PyTorch
models (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``), so LoRA can target them by name.

Two implementations of the part between the projections, with the same numbers:

* :func:`causal_attention_composed` — built from the engine's primitives (reshape,
  transpose, matmul, add, log-softmax, exp): readable, and every step is a graph node;
* :func:`causal_attention` — one primitive, :class:`CausalAttentionFunction`, whose
  backward reads only the arrays it saved. The model uses this one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lora_np.checks import is_int
from lora_np.nn.layers import Linear
from lora_np.nn.module import Module
from lora_np.rng import get_rng
from lora_np.tensor import Function, Tensor


def future_mask(length: int) -> np.ndarray:
    """(T, T) booleans, True where key s lies after query t (s > t): what causal attention hides."""
    return np.triu(np.ones((length, length), dtype=bool), k=1)


def _check_qkv(shapes: tuple[tuple[int, ...], ...], n_heads: Any, where: str) -> None:
    if len(set(shapes)) != 1 or len(shapes[0]) != 3:
        raise ValueError(
            f"{where}: q, k and v must share one shape (batch, time, features), got "
            f"{', '.join(str(s) for s in shapes)}"
        )
    if not is_int(n_heads) or n_heads < 1 or shapes[0][-1] % n_heads:
        raise ValueError(
            f"{where}: n_heads must be a positive int dividing the {shapes[0][-1]} features, "
            f"got {n_heads!r}"
        )


class CausalAttentionFunction(Function):
    """out = merge(softmax(mask(Q·Kᵀ/√d))·V) for q, k, v (B, T, D) split into ``n_heads``.

    Heads: (B, T, D) -> (B, H, T, d) (a reshape and a transpose, views of the inputs);
    "merge" is the inverse. With P the attention weights (B, H, T, T), s = 1/√d, and G the
    upstream gradient split into heads the same way, the VJP is::

        dV = Pᵀ·G
        dP = G·Vᵀ
        dS = P ⊙ (dP − Σ_s (dP ⊙ P))      (softmax's VJP, row by row)
        dQ = s · dS·K,   dK = s · dSᵀ·Q

    then each merged back to (B, T, D). Masked entries have P = 0 exactly, so dS is 0
    there too and no gradient flows to a future key. Saves: P, and of Q, K, V only what
    the rule reads for the inputs that need a gradient (K for dQ, Q for dK, V for dQ and
    dK); the three are views of the inputs, so saving them copies nothing. Nothing is
    saved when no input needs a gradient.
    """

    def __init__(self, n_heads: int) -> None:
        self.n_heads = n_heads

    def _heads(self, a: np.ndarray) -> np.ndarray:
        batch, time, features = a.shape
        return a.reshape(batch, time, self.n_heads, features // self.n_heads).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(a: np.ndarray) -> np.ndarray:
        batch, heads, time, size = a.shape
        return a.transpose(0, 2, 1, 3).reshape(batch, time, heads * size)

    def forward(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        _check_qkv((q.shape, k.shape, v.shape), self.n_heads, "causal attention")
        qh, kh, vh = self._heads(q), self._heads(k), self._heads(v)
        self.scale = 1.0 / math.sqrt(qh.shape[-1])
        scores = qh @ kh.transpose(0, 1, 3, 2)
        scores *= self.scale
        scores[..., future_mask(q.shape[1])] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)  # the diagonal is never masked: finite
        weights = np.exp(scores, out=scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        needs_q, needs_k, needs_v = self.needs_input_grad
        if needs_q or needs_k or needs_v:
            self.weights = weights
        if needs_k:
            self.q = qh
        if needs_q:
            self.k = kh
        if needs_q or needs_k:
            self.v = vh
        return self._merge(weights @ vh)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        needs_q, needs_k, needs_v = self.needs_input_grad
        g = self._heads(grad)
        p = self.weights
        gq = gk = gv = None
        if needs_v:
            gv = self._merge(p.transpose(0, 1, 3, 2) @ g)
        if needs_q or needs_k:
            dp = g @ self.v.transpose(0, 1, 3, 2)
            ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
            ds *= self.scale
            if needs_q:
                gq = self._merge(ds @ self.k)
            if needs_k:
                gk = self._merge(ds.transpose(0, 1, 3, 2) @ self.q)
        return gq, gk, gv


def causal_attention(q: Tensor, k: Tensor, v: Tensor, n_heads: int) -> Tensor:
    """Causal softmax attention of q, k, v (B, T, D) with ``n_heads`` heads, one primitive."""
    return CausalAttentionFunction.apply(q, k, v, n_heads=n_heads)


def causal_attention_composed(q: Tensor, k: Tensor, v: Tensor, n_heads: int) -> Tensor:
    """The same as :func:`causal_attention`, written with the engine's generic primitives.

    Each line is a graph node (or a few); the engine differentiates it with no attention
    rule of its own. The causal mask adds −∞ to the future scores, so their softmax
    weight exp(−∞) is exactly 0.
    """
    _check_qkv((q.shape, k.shape, v.shape), n_heads, "causal_attention_composed")
    batch, time, features = q.shape
    size = features // n_heads

    def heads(a: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, d)
        return a.reshape(batch, time, n_heads, size).transpose(0, 2, 1, 3)

    qh, kh, vh = heads(q), heads(k), heads(v)
    scores = (qh @ kh.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(size))
    minus_infinity = np.where(future_mask(time), -np.inf, 0.0).astype(q.dtype)
    weights = (scores + Tensor(minus_infinity)).log_softmax(axis=-1).exp()
    out = weights @ vh  # (B, H, T, d)
    return out.transpose(0, 2, 1, 3).reshape(batch, time, features)


class CausalSelfAttention(Module):
    """Multi-head causal self-attention with projections ``q_proj``, ``k_proj``, ``v_proj``,
    ``o_proj`` (each ``Linear(d_model, d_model)`` with bias); heads of size d_model/n_heads.

    ``forward(h)``: h (B, T, d_model) -> (B, T, d_model); see the module docstring.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        if not is_int(d_model) or d_model < 1:
            raise ValueError(
                f"CausalSelfAttention: d_model must be a positive int, got {d_model!r}"
            )
        if not is_int(n_heads) or n_heads < 1 or d_model % n_heads:
            raise ValueError(
                f"CausalSelfAttention: n_heads must be a positive int dividing d_model = "
                f"{d_model}, got {n_heads!r}"
            )
        self.d_model, self.n_heads = int(d_model), int(n_heads)
        rng = get_rng(rng)
        self.q_proj = Linear(d_model, d_model, dtype=dtype, rng=rng)
        self.k_proj = Linear(d_model, d_model, dtype=dtype, rng=rng)
        self.v_proj = Linear(d_model, d_model, dtype=dtype, rng=rng)
        self.o_proj = Linear(d_model, d_model, dtype=dtype, rng=rng)

    def forward(self, h: Tensor) -> Tensor:
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        return self.o_proj(causal_attention(q, k, v, self.n_heads))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"
