"""The GPT beside a PyTorch twin (same names, same weights), and PEFT reading its adapter.

Optional: skipped unless torch (and, for the adapter, peft) is installed. The twin is the
one the bench times (:func:`lora_np.cli.bench_gpt.torch_twin`), so these tests also show
that the bench compares like with like.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lora_np.cli.bench_gpt import torch_twin  # noqa: E402
from lora_np.lora import LoRAConfig, apply_lora, lora_layers, save_adapter  # noqa: E402
from lora_np.models import GPT  # noqa: E402


def _model(seed: int = 0) -> GPT:
    """A float64 GPT with O(1) weights everywhere (LayerNorm and biases too)."""
    model = GPT(11, 8, 12, 3, 2, mlp_ratio=2, dtype=np.float64, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data = 0.5 * rng.standard_normal(p.shape)
    return model


IDS = np.random.default_rng(5).integers(0, 11, (3, 8))


def test_the_twin_has_the_same_names_and_shapes() -> None:
    ours = _model()
    twin = torch_twin(ours)
    theirs = twin.state_dict()
    assert list(theirs) == list(ours.state_dict())
    for key, value in ours.state_dict().items():
        assert tuple(theirs[key].shape) == value.shape, key


def test_logits_and_every_gradient_equal_pytorch_to_float64_round_off() -> None:
    ours = _model()
    twin = torch_twin(ours)
    upstream = np.random.default_rng(7).standard_normal((3, 8, 11))
    logits = ours(IDS)
    logits.backward(upstream)
    their_logits = twin(torch.from_numpy(IDS))
    (their_logits * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_allclose(logits.data, their_logits.detach().numpy(), rtol=1e-12, atol=1e-12)
    theirs = dict(twin.named_parameters())
    for name, p in ours.named_parameters():
        grad = theirs[name].grad.numpy()
        scale = max(1.0, float(np.abs(grad).max()))
        np.testing.assert_allclose(p.grad, grad, rtol=1e-10, atol=1e-12 * scale, err_msg=name)


def test_float32_models_agree_too() -> None:
    ours = GPT(27, 16, 64, 4, 2, rng=np.random.default_rng(0))
    twin = torch_twin(ours)
    assert next(twin.parameters()).dtype == torch.float32
    np.testing.assert_allclose(
        ours(IDS).data, twin(torch.from_numpy(IDS)).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_an_adapter_saved_here_loads_with_peft_into_the_twin(tmp_path) -> None:
    peft = pytest.importorskip("peft")
    base = _model(seed=3)
    twin = torch_twin(base)  # the base model, before any adapter
    before = base(IDS).data
    adapted = apply_lora(
        base,
        LoRAConfig(rank=2, alpha=4, target_modules=["q_proj", "v_proj"]),
        rng=np.random.default_rng(1),
    )
    rng = np.random.default_rng(2)
    for _, layer in lora_layers(adapted):  # B starts at zero: give the adapter something to say
        layer.lora_b.weight.data = rng.standard_normal(layer.lora_b.weight.shape)
    save_adapter(adapted, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(twin, tmp_path)
    names = {n for n, _ in peft_model.named_modules() if n.endswith(("q_proj", "v_proj"))}
    assert "base_model.model.blocks.1.attn.v_proj" in names
    expected = adapted(IDS).data
    got = peft_model(torch.from_numpy(IDS)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    with peft_model.disable_adapter():  # and without the adapter, the base model again
        plain = peft_model(torch.from_numpy(IDS)).detach().numpy()
    np.testing.assert_allclose(plain, before, rtol=1e-12, atol=1e-12)
    assert not np.allclose(before, expected)
