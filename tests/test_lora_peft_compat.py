"""Side by side with PyTorch: the reference PyTorch LoRALinear, and PEFT reading and
writing our adapters.

Needs torch and peft (the ``compat`` extra: ``pip install -e ".[dev,compat]"``); they are
not dependencies of lora_np, so the module is skipped where they are missing — except
in CI, where a skip fails the run (tests/conftest.py). The reference module is
``reference/lora_linear.py`` in this repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from lora_np.lora import (  # noqa: E402
    LoRAConfig,
    LoRALinear,
    RankWarning,
    apply_lora,
    load_adapter,
    lora_layers,
    save_adapter,
)
from lora_np.nn import MLP  # noqa: E402
from lora_np.tensor import Tensor  # noqa: E402

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "reference" / "lora_linear.py"
SIZES = [4, 8, 8, 3]


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_lora_linear", REFERENCE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the reference module


def test_same_state_dict_forward_and_gradients_as_the_reference_module():
    reference = _reference_module()
    torch.manual_seed(0)
    theirs = reference.LoRALinear(5, 4, 3, 6.0, bias=True).double()
    with torch.no_grad():
        theirs.lora_b.weight.normal_()
    ours = LoRALinear(5, 4, 3, 6.0, bias=True, dtype=np.float64)
    their_sd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(their_sd)
    ours.load_state_dict(their_sd)
    # the same parameters are frozen
    assert {n: p.requires_grad for n, p in ours.named_parameters()} == {
        n: p.requires_grad for n, p in theirs.named_parameters()
    }
    x = np.random.default_rng(0).standard_normal((7, 5))
    u = np.random.default_rng(1).standard_normal((7, 4))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    (yt * torch.tensor(u)).sum().backward()
    xo = Tensor(x, requires_grad=True)
    yo = ours(xo)
    yo.backward(u)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    for name, p in theirs.named_parameters():
        mine = dict(ours.named_parameters())[name].grad
        if p.grad is None:
            assert mine is None, name
        else:
            np.testing.assert_allclose(mine, p.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_rank_above_min_in_out_works_as_in_the_reference_module():
    reference = _reference_module()
    torch.manual_seed(0)
    theirs = reference.LoRALinear(6, 8, 7, 1.0).double()  # PyTorch accepts r = 7 > min(6, 8)
    with torch.no_grad():
        theirs.lora_b.weight.normal_()
    with pytest.warns(RankWarning):
        ours = LoRALinear(6, 8, 7, 1.0, dtype=np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 6))
    expected = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


def test_same_init_distribution_as_the_reference_module():
    reference = _reference_module()
    torch.manual_seed(0)
    theirs = reference.LoRALinear(300, 200, 64, 8.0)
    ours = LoRALinear(300, 200, 64, 8.0, rng=np.random.default_rng(0))
    assert np.all(ours.lora_b.weight.data == 0) and torch.all(theirs.lora_b.weight == 0)
    std_t = theirs.lora_a.weight.detach().numpy().std()
    std_o = ours.lora_a.weight.data.std()
    assert abs(std_o / std_t - 1) < 0.03


# --------------------------------------------------------------------------- PEFT


def _torch_mlp(ours: MLP):
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )
    with torch.no_grad():
        for i in (0, 2, 4):
            net[i].weight.copy_(torch.from_numpy(ours[i].weight.data))
            net[i].bias.copy_(torch.from_numpy(ours[i].bias.data))
    return net


def _base() -> MLP:
    return MLP(SIZES, rng=np.random.default_rng(0))


def _x() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((6, 4)).astype(np.float32)


CASES = {
    "plain": {},
    "dora": {"use_dora": True},
    "rslora-bias-head": {"use_rslora": True, "bias": "all", "modules_to_save": ["4"]},
    "patterns": {"rank_pattern": {"2": 3}, "alpha_pattern": {"0": 7.0}},
}


@pytest.mark.parametrize("case", list(CASES))
def test_adapter_saved_here_loads_in_peft(tmp_path, case):
    model = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], **CASES[case]))
    rng = np.random.default_rng(1)
    for _, p in model.named_parameters():
        if p.requires_grad:
            p.data = (p.data + 0.3 * rng.standard_normal(p.shape)).astype(np.float32)
    save_adapter(model, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(_torch_mlp(_base()), tmp_path)
    theirs = peft_model(torch.from_numpy(_x())).detach().numpy()
    np.testing.assert_allclose(model(Tensor(_x())).data, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_adapter_saved_by_peft_loads_here(tmp_path, case):
    kwargs = dict(CASES[case])
    torch.manual_seed(0)
    config = peft.LoraConfig(
        r=2, lora_alpha=4, target_modules=["0", "2"], init_lora_weights=False, **kwargs
    )
    peft_model = peft.get_peft_model(_torch_mlp(_base()), config)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    peft_model.save_pretrained(tmp_path)
    model = load_adapter(_base(), tmp_path)
    assert [n for n, _ in lora_layers(model)] == ["0", "2"]
    xt = torch.from_numpy(_x())
    theirs = peft_model(xt)
    ours = model(Tensor(_x()))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    # and the gradients agree (for DoRA: PEFT treats the norm as a constant, as we do)
    u = np.random.default_rng(3).standard_normal(ours.shape).astype(np.float32)
    (theirs * torch.from_numpy(u)).sum().backward()
    ours.backward(u)
    params = dict(model.named_parameters())
    for name, p in peft_model.named_parameters():
        if not p.requires_grad or ".lora_" not in name:
            continue
        layer = name.split(".")[2]
        if ".lora_A." in name:
            mine = params[f"{layer}.lora_a.weight"]
        elif ".lora_B." in name:
            mine = params[f"{layer}.lora_b.weight"]
        else:
            mine = params[f"{layer}.magnitude"]
        np.testing.assert_allclose(mine.grad, p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_peft_adapter_whose_rank_is_above_min_in_out_loads_here(tmp_path):
    # r = 6 is more than layer "0" (out 8, in 4) and layer "4" (out 3, in 8) can use
    torch.manual_seed(0)
    config = peft.LoraConfig(r=6, lora_alpha=6, target_modules=["0", "4"], init_lora_weights=False)
    peft_model = peft.get_peft_model(_torch_mlp(_base()), config)
    peft_model.save_pretrained(tmp_path)
    with pytest.warns(RankWarning):
        model = load_adapter(_base(), tmp_path)
    assert [(n, layer.rank) for n, layer in lora_layers(model)] == [("0", 6), ("4", 6)]
    theirs = peft_model(torch.from_numpy(_x())).detach().numpy()
    np.testing.assert_allclose(model(Tensor(_x())).data, theirs, rtol=1e-5, atol=1e-6)


def test_merged_adapter_matches_peft_merge_and_unload(tmp_path):
    model = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], use_dora=True))
    for _, layer in lora_layers(model):
        layer.lora_b.weight.data = np.full(layer.lora_b.weight.shape, 0.2, np.float32)
    save_adapter(model, tmp_path)
    merged = peft.PeftModel.from_pretrained(_torch_mlp(_base()), tmp_path).merge_and_unload()
    for _, layer in lora_layers(model):
        layer.merge()
    for i in (0, 2):
        np.testing.assert_allclose(
            model[i].linear.weight.data, merged[i].weight.detach().numpy(), rtol=1e-5, atol=1e-6
        )


def test_pissa_adapter_saved_here_loads_in_peft(tmp_path):
    """PEFT redoes the SVD split of the same base weights, then loads our A and B."""
    model = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], init="pissa"))
    for _, layer in lora_layers(model):
        layer.lora_b.weight.data = layer.lora_b.weight.data + np.float32(0.1)
    save_adapter(model, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(_torch_mlp(_base()), tmp_path)
    theirs = peft_model(torch.from_numpy(_x())).detach().numpy()
    np.testing.assert_allclose(model(Tensor(_x())).data, theirs, rtol=1e-5, atol=1e-6)
