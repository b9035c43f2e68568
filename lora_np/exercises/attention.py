"""Exercise of notebook 09 (a tiny language model): causal softmax attention of heads that
are already split, checked first for causality (a later key or value must not change an
earlier output) and then against the library's fused primitive
(:class:`lora_np.nn.attention.CausalAttentionFunction`)."""

from __future__ import annotations

import numpy as np

from lora_np.exercises.grader import (
    ExerciseError,
    Student,
    as_array,
    case_text,
    exercise,
    expect_close,
    shape_text,
)
from lora_np.nn.attention import causal_attention
from lora_np.tensor import Tensor

NOTEBOOK = "09_lora_on_a_tiny_language_model"

#: the factor on q in the last case: its scores reach the thousands, where exp() overflows
#: unless each row's maximum is subtracted first
LARGE_SCORES = 1000.0


def library_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The library's causal attention of q, k, v (B, H, T, d): heads merged into the
    features, through the fused primitive, and split again."""
    batch, heads, length, size = q.shape

    def merged(a: np.ndarray) -> Tensor:
        return Tensor(a.transpose(0, 2, 1, 3).reshape(batch, length, heads * size))

    out = causal_attention(merged(q), merged(k), merged(v), n_heads=heads).data
    return out.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)


@exercise(
    "causal_attention",
    NOTEBOOK,
    "causal_attention(q, k, v) -> out",
    "softmax(Q·Kᵀ/√d)·V for q, k, v of shape (B, H, T, d), each query t attending to "
    "keys s ≤ t only (softmax along the keys, the future masked), stable for large scores.",
)
def _causal_attention(student: Student, rng: np.random.Generator) -> str:
    cases = []
    for _ in range(5):
        batch, heads = (int(v) for v in rng.integers(1, 4, size=2))
        length, size = int(rng.integers(2, 7)), int(rng.integers(1, 6))
        cases.append((batch, heads, length, size, 1.0))
    cases.append((2, 2, 5, 4, LARGE_SCORES))
    for index, (batch, heads, length, size, scale) in enumerate(cases):
        shape = (batch, heads, length, size)
        q = scale * rng.standard_normal(shape)
        k, v = rng.standard_normal(shape), rng.standard_normal(shape)
        where = (
            shape_text(q=q, k=k, v=v)
            + (", with large scores" if scale != 1.0 else "")
            + case_text(index, cases)
        )
        out = as_array(
            student(q, k, v, where=where),
            "your out",
            shape=shape,
            where=where,
            shape_note="q's shape: one output per query",
        )
        _expect_causal(student, q, k, v, out, where)
        expect_close(
            out,
            library_attention(q, k, v),
            "your out",
            where,
            rtol=1e-9,
            atol=1e-12,
            reference="lora_np's CausalAttentionFunction",
        )
    return f"{len(cases)} random sets of heads, the last with large scores; causality checked"


def _expect_causal(
    student: Student, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray, where: str
) -> None:
    """Change the key and value of the last position: no earlier output may move."""
    last = q.shape[2] - 1
    k2, v2 = k.copy(), v.copy()
    k2[:, :, last] += 1.0
    v2[:, :, last] -= 2.0
    moved = as_array(
        student(q, k2, v2, where=where),
        "your out",
        shape=q.shape,
        where=where + " (the key and value of the last position changed)",
    )
    changed = np.abs(moved[:, :, :last] - out[:, :, :last]) > 1e-12 * (1 + np.abs(out[:, :, :last]))
    if np.any(changed):
        position = int(np.argwhere(changed)[0][2])
        raise ExerciseError(
            f"your out at position {position} changes when only the key and value at the "
            f"later position {last} change{where}: query {position} sees the future; mask "
            "the scores of keys s > t before the softmax"
        )
