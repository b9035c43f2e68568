"""A GPT small enough to read and to train on a CPU: GPT-2's layout, pre-LayerNorm.

For token ids idx (B, T), T ≤ context_length::

    h = tok_emb(idx) + pos_emb(0, 1, ..., T − 1)          (B, T, d_model)
    for each block i:                                     blocks.{i}
        h = h + attn(ln1(h))                              causal self-attention
        h = h + mlp(ln2(h))                               fc2(gelu(fc1(x)))
    logits = lm_head(ln_f(h))                             (B, T, vocab_size)

The LayerNorm sits *before* each sub-layer (GPT-2; the original Transformer put it after),
so the residual stream h is a plain sum that every block adds to. The module names —
``tok_emb``, ``pos_emb``, ``blocks.{i}.ln1``, ``blocks.{i}.attn.q_proj`` (``k_proj``,
``v_proj``, ``o_proj``), ``blocks.{i}.ln2``, ``blocks.{i}.mlp.fc1``, ``blocks.{i}.mlp.fc2``,
``ln_f``, ``lm_head`` — are the ``state_dict`` keys (with ``.weight``/``.bias``), so a
PyTorch model with the same names loads the same weights, and LoRA targets
``["q_proj", "v_proj"]`` by name as PEFT does.

Initialisation as GPT-2: every Linear and Embedding weight ~ N(0, 0.02²), biases 0,
LayerNorm weight 1 and bias 0, and the two projections that write into the residual
stream (``attn.o_proj``, ``mlp.fc2``) ~ N(0, (0.02/√(2·n_layers))²), so that the sum of
2·n_layers residual updates starts at the size of one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lora_np.checks import is_finite_positive, is_int
from lora_np.nn import (
    CausalSelfAttention,
    Embedding,
    LayerNorm,
    Linear,
    Module,
    Sequential,
    init,
)
from lora_np.nn import functional as F
from lora_np.nn.activations import gelu
from lora_np.nn.embedding import check_token_ids
from lora_np.rng import get_rng
from lora_np.tensor import Tensor, no_grad

#: the standard deviation of GPT-2's initial weights
INIT_STD = 0.02


class FeedForward(Module):
    """The block's MLP: ``fc2(gelu(fc1(x)))``, d_model -> mlp_ratio·d_model -> d_model."""

    def __init__(self, d_model: int, hidden: int, *, dtype: Any, rng: np.random.Generator):
        super().__init__()
        self.fc1 = Linear(d_model, hidden, dtype=dtype, rng=rng)
        self.fc2 = Linear(hidden, d_model, dtype=dtype, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        # on the rows as one (B·T, d_model) matrix: NumPy multiplies a 3-D array by a
        # transposed (d_model, hidden) matrix several times slower than the same 2-D product
        rows = x.reshape(-1, x.shape[-1])
        return self.fc2(gelu(self.fc1(rows))).reshape(x.shape)


class Block(Module):
    """One transformer block, pre-LayerNorm: ``h + attn(ln1(h))``, then ``h + mlp(ln2(h))``."""

    def __init__(
        self, d_model: int, n_heads: int, mlp_ratio: int, *, dtype: Any, rng: np.random.Generator
    ):
        super().__init__()
        self.ln1 = LayerNorm(d_model, dtype=dtype)
        self.attn = CausalSelfAttention(d_model, n_heads, dtype=dtype, rng=rng)
        self.ln2 = LayerNorm(d_model, dtype=dtype)
        self.mlp = FeedForward(d_model, mlp_ratio * d_model, dtype=dtype, rng=rng)

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class GPT(Module):
    """A decoder-only transformer over ``vocab_size`` tokens (see the module docstring).

    Args:
        vocab_size: number of token ids; ids are ints in [0, vocab_size).
        context_length: the longest sequence ``forward`` accepts (rows of ``pos_emb``).
        d_model: width of the residual stream; n_heads must divide it.
        n_heads: attention heads per block, each of size d_model / n_heads.
        n_layers: number of blocks.
        mlp_ratio: the MLP's hidden width is mlp_ratio · d_model (4, as GPT-2).

    Keyword-only: ``dtype`` (float32 unless told), ``rng`` (the initial draws).
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        mlp_ratio: int = 4,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = {
            "vocab_size": vocab_size,
            "context_length": context_length,
            "d_model": d_model,
            "n_heads": n_heads,
            "n_layers": n_layers,
            "mlp_ratio": mlp_ratio,
        }
        for label, value in sizes.items():
            if not is_int(value) or value < 1:
                raise ValueError(f"GPT: {label} must be a positive int, got {value!r}")
        if d_model % n_heads:
            raise ValueError(
                f"GPT: n_heads must divide d_model, got d_model={d_model}, n_heads={n_heads}"
            )
        self.vocab_size, self.context_length = int(vocab_size), int(context_length)
        self.d_model, self.n_heads, self.n_layers = int(d_model), int(n_heads), int(n_layers)
        self.mlp_ratio = int(mlp_ratio)
        rng = get_rng(rng)
        self.tok_emb = Embedding(vocab_size, d_model, dtype=dtype, rng=rng)
        self.pos_emb = Embedding(context_length, d_model, dtype=dtype, rng=rng)
        self.blocks = Sequential(
            *[Block(d_model, n_heads, mlp_ratio, dtype=dtype, rng=rng) for _ in range(n_layers)]
        )
        self.ln_f = LayerNorm(d_model, dtype=dtype)
        self.lm_head = Linear(d_model, vocab_size, bias=False, dtype=dtype, rng=rng)
        self._init_gpt2(rng)

    def _init_gpt2(self, rng: np.random.Generator) -> None:
        residual_std = INIT_STD / math.sqrt(2 * self.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (Linear, Embedding)):
                writes_residual = name.endswith(("attn.o_proj", "mlp.fc2"))
                std = residual_std if writes_residual else INIT_STD
                init.normal_(module.weight, 0.0, std, rng=rng)
            if isinstance(module, Linear) and module.bias is not None:
                init.zeros_(module.bias)

    def config(self) -> dict[str, int]:
        """The constructor's sizes: ``GPT(**model.config())`` builds the same shape."""
        return {
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
            "mlp_ratio": self.mlp_ratio,
        }

    def check_ids(self, idx: Any) -> np.ndarray:
        """``idx`` as a (B, T) integer array with 1 ≤ T ≤ context_length, or a clear error."""
        array = check_token_ids(idx, self.vocab_size, "GPT")
        if array.ndim != 2:
            raise ValueError(
                f"GPT: token ids must have shape (batch, time), got shape {array.shape}"
            )
        if not 1 <= array.shape[1] <= self.context_length:
            raise ValueError(
                f"GPT: sequence length must be in [1, context_length = {self.context_length}], "
                f"got {array.shape[1]} (ids of shape {array.shape})"
            )
        return array

    def forward(self, idx: Any) -> Tensor:
        """Logits (B, T, vocab_size) for token ids ``idx`` (B, T)."""
        ids = self.check_ids(idx)
        h = self.tok_emb(ids) + self.pos_emb(np.arange(ids.shape[1]))
        h = self.blocks(h)
        return self.lm_head(self.ln_f(h))

    def generate(
        self,
        idx: Any,
        max_new_tokens: int,
        temperature: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Extend each row of ``idx`` (B, T) by ``max_new_tokens`` sampled tokens.

        At each step the model sees the last ``context_length`` tokens (a longer prompt is
        kept whole in the result) and the next token is drawn from softmax(logits /
        temperature) of the last position (temperature < 1 sharpens the distribution, > 1
        flattens it; one so close to 0 that logits / temperature overflows picks the
        arg-max). Same ``rng`` state, same tokens. Returns the ids (B, T + max_new_tokens)
        as int64.
        """
        ids = check_token_ids(idx, self.vocab_size, "GPT").astype(np.int64)
        self.check_ids(ids[..., -self.context_length :])  # (B, T) with T >= 1
        if not is_int(max_new_tokens) or max_new_tokens < 0:
            raise ValueError(
                f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}"
            )
        if not is_finite_positive(temperature):
            raise ValueError(
                f"generate: temperature must be a finite number > 0, got {temperature!r}"
            )
        rng = get_rng(rng)
        with no_grad():
            for _ in range(int(max_new_tokens)):
                logits = self(ids[:, -self.context_length :]).data[:, -1, :]
                with np.errstate(over="ignore", invalid="ignore"):  # see `overflowed`
                    scaled = logits.astype(np.float64) / float(temperature)
                    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
                    probs /= probs.sum(axis=1, keepdims=True)
                # inverse-CDF sampling: the first token whose cumulative probability exceeds u
                u = rng.random((len(ids), 1))
                chosen = np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), self.vocab_size - 1)
                overflowed = ~np.isfinite(scaled).all(axis=1)  # temperature ~ 0: greedy
                chosen[overflowed] = np.argmax(logits[overflowed], axis=1)
                ids = np.concatenate([ids, chosen[:, None]], axis=1)
        return ids

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def token_nll(logits: Tensor, targets: Any, ignore: int = -1) -> Tensor:
    """Mean −log p(target) in nats over every position whose target is not ``ignore``.

    ``logits`` (..., vocab), ``targets`` integer ids of the leading shape; positions whose
    target equals ``ignore`` (padding after the end of a sequence) count for nothing.
    """
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"token_nll: targets must have the logits' leading shape {logits.shape[:-1]}, "
            f"got {targets.shape}"
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"token_nll: targets must be integer ids, got dtype {targets.dtype}")
    keep = (targets != ignore).reshape(-1)
    if not keep.any():
        raise ValueError(f"token_nll: every target is the ignore value {ignore}")
    rows = logits.reshape(-1, logits.shape[-1])[keep]
    return F.cross_entropy(rows, targets.reshape(-1)[keep])
