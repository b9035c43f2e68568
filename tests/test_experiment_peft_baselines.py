"""Tests for lora_np.experiments.peft_baselines: head only, BitFit, bottleneck adapters."""

from __future__ import annotations

import numpy as np
import pytest

from lora_np import Tensor, gradcheck, no_grad
from lora_np.experiments.finetune import n_trainable
from lora_np.experiments.peft_baselines import (
    BottleneckAdapter,
    with_adapters,
    with_bitfit,
    with_head_only,
)
from lora_np.nn import MLP


@pytest.fixture
def mlp() -> MLP:
    return MLP([64, 128, 128, 10], rng=np.random.default_rng(0))


def _trainable_names(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_head_only_and_bitfit_train_what_they_say(mlp) -> None:
    head = with_head_only(mlp, "4")
    assert _trainable_names(head) == {"4.weight", "4.bias"}
    assert n_trainable(head) == 128 * 10 + 10
    bitfit = with_bitfit(mlp)
    assert _trainable_names(bitfit) == {"0.bias", "2.bias", "4.bias"}
    assert n_trainable(bitfit) == 128 + 128 + 10
    assert all(p.requires_grad for p in mlp.parameters())  # the original is left alone


def test_adapters_start_as_the_identity_and_count_their_parameters(mlp) -> None:
    adapted = with_adapters(mlp, ["0", "2"], 4, rng=np.random.default_rng(1))
    assert n_trainable(adapted) == 2 * (2 * 4 * 128 + 4 + 128)
    assert _trainable_names(adapted) == {
        f"{layer}.adapter.{part}.{kind}"
        for layer in ("0", "2")
        for part in ("down", "up")
        for kind in ("weight", "bias")
    }
    x = Tensor(np.random.default_rng(2).standard_normal((5, 64)).astype(np.float32))
    with no_grad():
        np.testing.assert_array_equal(adapted(x).data, mlp(x).data)


def test_adapter_is_differentiable() -> None:
    adapter = BottleneckAdapter(6, 2, rng=np.random.default_rng(3))
    rng = np.random.default_rng(4)
    for p in adapter.parameters():  # away from the zero init, so every path carries gradient
        p.data = rng.standard_normal(p.shape)
    x = Tensor(rng.standard_normal((3, 6)), requires_grad=True)
    assert gradcheck(lambda x: adapter(x), [x])


def test_bad_targets_are_named(mlp) -> None:
    with pytest.raises(TypeError, match="not a Linear"):
        with_adapters(mlp, ["1"], 4)
    with pytest.raises(ValueError, match="bottleneck must be a positive int"):
        with_adapters(mlp, ["0"], 0)
