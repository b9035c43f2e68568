"""The transformer's layers and the tiny GPT: shapes, names, errors, gradients, the mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lora_np import Tensor, gradcheck
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.models import GPT, token_nll
from lora_np.models.gpt import Block, FeedForward
from lora_np.nn import GELU, CausalSelfAttention, Embedding, LayerNorm, functional_call
from lora_np.nn.activations import GELUFunction
from lora_np.nn.attention import (
    CausalAttentionFunction,
    causal_attention,
    causal_attention_composed,
    future_mask,
)
from lora_np.nn.embedding import scatter_add_rows


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape)


def tiny_gpt(seed: int = 0, dtype=np.float64) -> GPT:
    """A GPT small enough to check by finite differences, its weights made O(1)."""
    model = GPT(5, 4, 4, 2, 2, mlp_ratio=2, dtype=dtype, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data = (0.5 * rng.standard_normal(p.shape)).astype(dtype)
    return model


def check_module(module, *inputs: np.ndarray, **kwargs) -> bool:
    """gradcheck of ``module(*inputs)`` with respect to the inputs and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    values = [p.data for _, p in module.named_parameters()]
    count = len(inputs)

    def fn(*tensors: Tensor) -> Tensor:
        params = dict(zip(names, tensors[count:], strict=True))
        return functional_call(module, params, *tensors[:count])

    return gradcheck(fn, [*inputs, *values], name=type(module).__name__, **kwargs)


# --------------------------------------------------------------------------- the layers


def test_embedding_looks_up_rows_and_adds_gradients_of_repeated_ids() -> None:
    table = Embedding(5, 3, dtype=np.float64, rng=np.random.default_rng(0))
    ids = np.array([[0, 2, 2], [4, 2, 0]])
    out = table(ids)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.data, table.weight.data[ids])
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(table.weight.grad[:, 0], [2.0, 0.0, 3.0, 0.0, 1.0])
    assert check_module(table, ids)


def test_scatter_add_rows_is_np_add_at() -> None:
    index = np.array([3, 0, 3, 3, 1])
    values = randn(5, 4)
    expected = np.zeros((6, 4))
    np.add.at(expected, index, values)
    np.testing.assert_allclose(scatter_add_rows(6, index, values), expected, rtol=1e-15)
    assert not scatter_add_rows(2, np.zeros(0, dtype=np.int64), np.zeros((0, 4))).any()


def test_embedding_default_init_is_standard_normal_and_float32() -> None:
    table = Embedding(400, 50, rng=np.random.default_rng(0))
    assert table.weight.dtype == np.float32
    assert abs(float(table.weight.data.std()) - 1.0) < 0.02


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_layer_norm_matches_the_formula_and_gradchecks(shape: tuple[int, ...]) -> None:
    norm = LayerNorm(shape[-1], dtype=np.float64)
    norm.weight.data = randn(shape[-1], seed=1)
    norm.bias.data = randn(shape[-1], seed=2)
    x = randn(*shape, seed=3, scale=3.0) + 2.0
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as PyTorch
    expected = (x - mean) / np.sqrt(variance + 1e-5) * norm.weight.data + norm.bias.data
    np.testing.assert_allclose(norm(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)
    assert check_module(norm, x)


def test_layer_norm_starts_as_the_identity_affine_map() -> None:
    norm = LayerNorm(6)
    assert norm.weight.dtype == np.float32
    np.testing.assert_array_equal(norm.weight.data, np.ones(6))
    np.testing.assert_array_equal(norm.bias.data, np.zeros(6))
    out = norm(Tensor(randn(4, 6).astype(np.float32))).data
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-6)


def test_gelu_is_the_tanh_approximation_and_gradchecks() -> None:
    x = np.linspace(-6.0, 6.0, 25)
    expected = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(GELU()(Tensor(x)).data, expected, rtol=1e-14, atol=1e-15)
    assert gradcheck(lambda t: GELU()(t), [x.reshape(5, 5)])
    assert GELUFunction.apply(Tensor(x.astype(np.float32))).dtype == np.float32
    integers = np.array([-2, 0, 3])  # computed in float64, as np.tanh does
    np.testing.assert_array_equal(
        GELU()(Tensor(integers)).data, GELU()(Tensor(integers.astype(np.float64))).data
    )


def test_feed_forward_and_block_gradcheck() -> None:
    rng = np.random.default_rng(0)
    assert check_module(FeedForward(4, 8, dtype=np.float64, rng=rng), randn(2, 3, 4, seed=1))
    block = Block(4, 2, 2, dtype=np.float64, rng=rng)
    assert check_module(block, randn(2, 3, 4, seed=2))


# --------------------------------------------------------------------------- attention


def test_fused_and_composed_attention_agree_in_values_and_gradients() -> None:
    q, k, v = randn(2, 5, 6, seed=1), randn(2, 5, 6, seed=2), randn(2, 5, 6, seed=3)
    g = randn(2, 5, 6, seed=4)
    results = []
    for attention in (causal_attention, causal_attention_composed):
        tensors = [Tensor(a, requires_grad=True) for a in (q, k, v)]
        out = attention(*tensors, n_heads=3)
        out.backward(g)
        results.append([out.data] + [t.grad for t in tensors])
    for fused, composed in zip(*results, strict=True):
        np.testing.assert_allclose(fused, composed, rtol=1e-12, atol=1e-12)


def test_attention_layer_gradchecks_with_every_projection() -> None:
    layer = CausalSelfAttention(6, 3, dtype=np.float64, rng=np.random.default_rng(0))
    assert [n for n, _ in layer.named_children()] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert check_module(layer, randn(2, 4, 6, seed=5))
    assert gradcheck(
        lambda q, k, v: causal_attention_composed(q, k, v, 2),
        [randn(1, 3, 4, seed=6), randn(1, 3, 4, seed=7), randn(1, 3, 4, seed=8)],
    )


def test_masked_positions_get_exactly_zero_weight() -> None:
    fn = CausalAttentionFunction(n_heads=2)
    fn.needs_input_grad = (True, True, True)
    q, k, v = (randn(3, 6, 4, seed=s, scale=3.0) for s in (1, 2, 3))
    fn.forward(q, k, v)
    weights = fn.weights  # (B, H, T, T)
    future = future_mask(6)
    assert np.all(weights[..., future] == 0.0)
    assert np.all(weights[..., ~future] > 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(weights[..., 0, 0], 1.0)  # the first position sees itself


def test_the_future_does_not_reach_the_past() -> None:
    """Changing the input at t = 4 leaves outputs at t < 4 bit for bit, and their gradient
    with respect to it is exactly zero."""
    layer = CausalSelfAttention(6, 2, dtype=np.float64, rng=np.random.default_rng(0))
    x = randn(2, 6, 6, seed=1)
    changed = x.copy()
    changed[:, 4] += 10.0
    before, after = layer(Tensor(x)).data, layer(Tensor(changed)).data
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert not np.allclose(before[:, 4:], after[:, 4:])
    inputs = Tensor(x, requires_grad=True)
    out = layer(inputs)
    upstream = np.zeros(out.shape)
    upstream[:, :4] = randn(2, 4, 6, seed=2)
    out.backward(upstream)
    assert np.all(inputs.grad[:, 4:] == 0.0)
    assert np.all(inputs.grad[:, :4] != 0.0)


def test_attention_saves_only_what_its_backward_reads() -> None:
    q, k, v = (Tensor(randn(1, 3, 4, seed=s)) for s in (1, 2, 3))
    saved = causal_attention(q, Tensor(k.data, requires_grad=True), v, n_heads=2)._ctx
    assert {"weights", "q", "v"} <= set(vars(saved)) and "k" not in vars(saved)  # dK: Q, P, V
    saved = causal_attention(q, k, Tensor(v.data, requires_grad=True), n_heads=2)._ctx
    assert "weights" in vars(saved) and not {"q", "k", "v"} & set(vars(saved))  # dV = Pᵀ·G


@pytest.mark.parametrize(
    ("shapes", "n_heads", "match"),
    [
        (((2, 3, 4), (2, 3, 4), (2, 3, 5)), 2, "share one shape"),
        (((3, 4), (3, 4), (3, 4)), 2, "share one shape"),
        (((2, 3, 4),) * 3, 3, "dividing the 4 features"),
        (((2, 3, 4),) * 3, 0, "dividing"),
    ],
)
def test_attention_rejects_bad_shapes(shapes, n_heads, match) -> None:
    tensors = [Tensor(np.zeros(s)) for s in shapes]
    for attention in (causal_attention, causal_attention_composed):
        with pytest.raises(ValueError, match=match):
            attention(*tensors, n_heads=n_heads)
    with pytest.raises(ValueError, match="n_heads must be a positive int dividing d_model"):
        CausalSelfAttention(6, 4)


# --------------------------------------------------------------------------- the GPT


def test_gpt_names_are_the_contract() -> None:
    model = GPT(27, 16, 8, 2, 2, rng=np.random.default_rng(0))
    expected = ["tok_emb.weight", "pos_emb.weight"]
    for i in range(2):
        expected += [f"blocks.{i}.ln1.weight", f"blocks.{i}.ln1.bias"]
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            expected += [f"blocks.{i}.attn.{proj}.weight", f"blocks.{i}.attn.{proj}.bias"]
        expected += [f"blocks.{i}.ln2.weight", f"blocks.{i}.ln2.bias"]
        expected += [f"blocks.{i}.mlp.fc1.weight", f"blocks.{i}.mlp.fc1.bias"]
        expected += [f"blocks.{i}.mlp.fc2.weight", f"blocks.{i}.mlp.fc2.bias"]
    expected += ["ln_f.weight", "ln_f.bias", "lm_head.weight"]
    state = model.state_dict()
    assert list(state) == expected
    assert state["blocks.1.mlp.fc1.weight"].shape == (32, 8)
    assert state["lm_head.weight"].shape == (27, 8)
    assert state["pos_emb.weight"].shape == (16, 8)
    assert all(v.dtype == np.float32 for v in state.values())


def test_the_issue_shape_has_about_105k_parameters_and_gpt2_init() -> None:
    model = GPT(27, 16, 64, 4, 2, rng=np.random.default_rng(0))
    assert sum(p.size for p in model.parameters()) == 104_576
    std = model.blocks[0].attn.q_proj.weight.data.std()
    residual = model.blocks[0].attn.o_proj.weight.data.std()
    assert abs(std - 0.02) < 0.002 and abs(residual - 0.01) < 0.001  # 0.02/√(2·2)
    assert not model.blocks[1].mlp.fc1.bias.data.any()


def test_gpt_forward_shapes_and_float32_logits() -> None:
    model = GPT(11, 8, 8, 2, 1, rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 11, (3, 5))
    logits = model(ids)
    assert logits.shape == (3, 5, 11) and logits.dtype == np.float32
    np.testing.assert_array_equal(model(Tensor(ids)).data, logits.data)
    # a shorter prefix gives the same logits at its positions (causality, end to end)
    np.testing.assert_allclose(model(ids[:, :3]).data, logits.data[:, :3], rtol=1e-6, atol=1e-6)


def test_tiny_gpt_gradchecks_in_float64() -> None:
    model = tiny_gpt()
    ids = np.array([[0, 3, 1, 4], [2, 2, 0, 1]])
    assert check_module(model, ids)


def test_tiny_gpt_loss_gradchecks_through_token_nll() -> None:
    model = tiny_gpt(seed=3)
    ids = np.array([[0, 3, 1], [2, 2, 0]])
    targets = np.array([[3, 1, -1], [2, 0, 4]])
    names = [n for n, _ in model.named_parameters()]

    def loss(*params: Tensor) -> Tensor:
        return token_nll(
            functional_call(model, dict(zip(names, params, strict=True)), ids), targets
        )

    assert gradcheck(loss, [p.data for p in model.parameters()], name="token_nll")


def test_token_nll_ignores_padding() -> None:
    logits = randn(2, 3, 4, seed=1)
    targets = np.array([[1, 2, -1], [0, -1, -1]])
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = -(log_p[0, 0, 1] + log_p[0, 1, 2] + log_p[1, 0, 0]) / 3
    assert token_nll(Tensor(logits), targets).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="leading shape"):
        token_nll(Tensor(logits), targets[:, :2])
    with pytest.raises(TypeError, match="integer ids"):
        token_nll(Tensor(logits), targets.astype(float))
    with pytest.raises(ValueError, match="every target is the ignore value"):
        token_nll(Tensor(logits), np.full((2, 3), -1))


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (np.zeros((2, 3)), TypeError, r"integer array, got dtype float64"),
        (np.array([[0, 11]]), ValueError, r"in \[0, 11\), got values in \[0, 11\]"),
        (np.array([[-1, 0]]), ValueError, r"in \[0, 11\)"),
        (np.zeros((2, 9), dtype=int), ValueError, r"\[1, context_length = 8\], got 9"),
        (np.zeros((2, 0), dtype=int), ValueError, r"context_length = 8\], got 0"),
        (np.zeros(4, dtype=int), ValueError, r"shape \(batch, time\), got shape \(4,\)"),
    ],
)
def test_gpt_rejects_bad_ids_with_what_it_expected(ids, error, match) -> None:
    model = GPT(11, 8, 8, 2, 1, rng=np.random.default_rng(0))
    with pytest.raises(error, match=match):
        model(ids)


def test_gpt_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_heads must divide d_model"):
        GPT(11, 8, 10, 4, 1)
    with pytest.raises(ValueError, match="n_layers must be a positive int, got 0"):
        GPT(11, 8, 8, 2, 0)
    with pytest.raises(ValueError, match=r"vocab_size must be a positive int, got 2\.5"):
        GPT(2.5, 8, 8, 2, 1)


def test_generate_is_deterministic_per_rng_and_checks_its_arguments() -> None:
    model = GPT(11, 6, 8, 2, 1, rng=np.random.default_rng(0))
    start = np.zeros((4, 1), dtype=np.int64)
    first = model.generate(start, 9, temperature=1.5, rng=np.random.default_rng(7))
    again = model.generate(start, 9, temperature=1.5, rng=np.random.default_rng(7))
    other = model.generate(start, 9, temperature=1.5, rng=np.random.default_rng(8))
    assert first.shape == (4, 10) and first.dtype == np.int64
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.min() >= 0 and first.max() < 11
    np.testing.assert_array_equal(first[:, :1], start)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            model.generate(start, 3, temperature=bad)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        model.generate(start, -1)
    with pytest.raises(TypeError, match="integer array"):
        model.generate(start.astype(float), 2)


def test_generate_keeps_a_prompt_longer_than_the_context_and_reads_its_end() -> None:
    model = GPT(11, 6, 8, 2, 1, rng=np.random.default_rng(0))
    prompt = np.random.default_rng(1).integers(0, 11, (2, 9))
    long = model.generate(prompt, 3, rng=np.random.default_rng(5))
    cropped = model.generate(prompt[:, -6:], 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(long[:, :9], prompt)
    np.testing.assert_array_equal(long[:, 9:], cropped[:, 6:])
    with pytest.raises(ValueError, match="token ids must be in"):
        model.generate(np.full((1, 9), 11), 1)  # a bad id anywhere in the prompt


def test_a_temperature_too_small_to_divide_by_is_greedy() -> None:
    model = GPT(11, 6, 8, 2, 1, rng=np.random.default_rng(0))
    start = np.zeros((3, 1), dtype=np.int64)
    ids = model.generate(start, 4, temperature=1e-310, rng=np.random.default_rng(0))
    greedy = start
    for _ in range(4):
        greedy = np.concatenate([greedy, model(greedy).data[:, -1].argmax(axis=1)[:, None]], 1)
    np.testing.assert_array_equal(ids, greedy)


def test_generate_follows_the_model_and_sharpens_with_low_temperature() -> None:
    model = GPT(5, 4, 8, 2, 1, rng=np.random.default_rng(0))
    model.lm_head.weight.data[:] = 0.0
    model.lm_head.weight.data[3] = 1.0  # token 3's logit is the sum of ln_f's output
    model.ln_f.bias.data[:] = 2.0
    ids = model.generate(np.zeros((50, 1), dtype=np.int64), 3, 0.05, np.random.default_rng(0))
    assert np.all(ids[:, 1:] == 3)


def test_lora_targets_q_and_v_by_suffix_as_peft() -> None:
    model = GPT(27, 16, 8, 2, 2, rng=np.random.default_rng(0))
    apply_lora(model, LoRAConfig(rank=2, alpha=4, target_modules=["q_proj", "v_proj"]))
    assert [n for n, _ in lora_layers(model)] == [
        "blocks.0.attn.q_proj",
        "blocks.0.attn.v_proj",
        "blocks.1.attn.q_proj",
        "blocks.1.attn.v_proj",
    ]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 8 and all(".lora_" in n for n in trainable)
    ids = np.zeros((1, 3), dtype=np.int64)
    assert model(ids).shape == (1, 3, 27)


# --------------------------------------------------------------------------- the bench section


def test_bench_section_runs_without_torch_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lora_np.cli.bench import Timer
    from lora_np.cli.bench_gpt import format_gpt_section, gpt_section

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    section = gpt_section(Timer(repeats=1, block=0.0))
    assert section["torch"] == {"status": "skipped", "reason": "torch not installed"}
    assert [row["name"] for row in section["rows"]] == ["full", "lora"]
    assert all("torch_ms" not in row for row in section["rows"])
    peak = section["memory"]["lora_np_tracemalloc_peak_bytes"]
    assert peak["full"] > 1e6 and peak["lora"] > 1e6  # activations of 1,024 tokens
    assert section["trainable_parameters"] == {"full": 104_576, "lora": 2 * 2 * 8 * 128}
    lines = format_gpt_section(section)
    assert "  torch: skipped: torch not installed" in lines
    assert lines[1].startswith("[gpt]")
    # the header says how many BLAS threads lora_np had, not "one thread each"
    threads = section["lora_np_blas_threads"]
    assert f"lora_np ({threads} BLAS thread" in lines[1] and "PyTorch eager (1 thread)" in lines[1]
