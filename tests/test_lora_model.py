"""Model surgery: targeting, freezing, counting, merging, unloading, disabling, LoRA+."""

from __future__ import annotations

import numpy as np
import pytest

from lora_np.lora import (
    LoRAConfig,
    LoRALinear,
    RankWarning,
    apply_lora,
    count_parameters,
    disable_adapter,
    lora_layers,
    lora_plus_param_groups,
    lora_state_dict,
    mark_only_lora_as_trainable,
    merge_and_unload,
    print_trainable_parameters,
    unload,
)
from lora_np.nn import MLP, Linear, Module, ReLU, Sequential
from lora_np.nn import functional as F
from lora_np.optim import Adam
from lora_np.tensor import Tensor
from lora_np.train import fit

F64 = np.float64


def _mlp(seed: int = 0, sizes=(6, 8, 8, 3)) -> MLP:
    return MLP(list(sizes), dtype=F64, rng=np.random.default_rng(seed))


def _x(n: int = 5, d: int = 6, seed: int = 1) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal((n, d)))


def _perturb(model: Module, seed: int = 2) -> None:
    """Give every adapter (and magnitude) non-trivial values."""
    rng = np.random.default_rng(seed)
    for _, layer in lora_layers(model):
        layer.lora_b.weight.data = rng.standard_normal(layer.lora_b.weight.shape)
        if layer.options.use_dora:
            layer.magnitude.data = layer.magnitude.data * rng.uniform(0.5, 1.5, layer.out_features)


class Block(Module):
    """A nested model, so that suffix matching has something to do."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.encoder = Sequential(Linear(4, 4, rng=rng), ReLU())
        self.query = Linear(4, 4, rng=rng)
        self.head = Linear(4, 2, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.query(self.encoder(x)))


# --------------------------------------------------------------------------- targeting


def test_apply_lora_replaces_in_place_and_keeps_order_and_outputs():
    model = _mlp()
    x = _x()
    y0 = model(x).data
    base0 = model[0]
    out = apply_lora(model, LoRAConfig(2, 4.0, target_modules=["0", "2"]))
    assert out is model
    assert [type(m).__name__ for m in model] == [
        "LoRALinear",
        "ReLU",
        "LoRALinear",
        "ReLU",
        "Linear",
    ]
    assert model[0].linear is base0  # the very same Linear, wrapped
    np.testing.assert_array_equal(model(x).data, y0)  # B = 0: nothing changed yet
    assert model.lora_config.rank == 2


def test_target_forms_list_suffix_regex_all_linear():
    names = lambda m: [n for n, _ in lora_layers(m)]  # noqa: E731
    assert names(apply_lora(Block(), LoRAConfig(1, 1.0, target_modules=["query"]))) == ["query"]
    # "0" matches "encoder.0" as a dotted suffix
    assert names(apply_lora(Block(), LoRAConfig(1, 1.0, target_modules=["0", "head"]))) == [
        "encoder.0",
        "head",
    ]
    assert names(apply_lora(Block(), LoRAConfig(1, 1.0, target_modules=r"encoder\.\d+"))) == [
        "encoder.0"
    ]
    # all-linear leaves out the output layer (the last Linear)
    assert names(apply_lora(Block(), LoRAConfig(1, 1.0, target_modules="all-linear"))) == [
        "encoder.0",
        "query",
    ]
    # a regex must match the full name: "quer" matches nothing
    with pytest.raises(ValueError, match="matches no Linear layer"):
        apply_lora(Block(), LoRAConfig(1, 1.0, target_modules="quer"))


def test_unmatched_target_names_what_exists_and_changes_nothing():
    model = _mlp()
    with pytest.raises(ValueError, match=r"'fc1' matches no module.*\['0', '1', '2', '3', '4'\]"):
        apply_lora(model, LoRAConfig(2, 4.0, target_modules=["0", "fc1"]))
    assert not lora_layers(model)
    with pytest.raises(TypeError, match="'1', a ReLU"):
        apply_lora(model, LoRAConfig(2, 4.0, target_modules=["1"]))
    # PiSSA with a rank above layer "4"'s min(in, out) = 3: refused before any layer is touched
    with pytest.raises(ValueError, match=r"layer '4'.*pissa"):
        apply_lora(model, LoRAConfig(4, 4.0, target_modules=["0", "4"], init="pissa"))
    assert not lora_layers(model)
    assert all(p.requires_grad for p in model.parameters())


def test_apply_lora_accepts_a_rank_above_a_layers_min_in_out():
    # layer "4" is (out=3, in=8): rank 4 > 3 adds no capacity, but is legal (as in PEFT)
    with pytest.warns(RankWarning, match=r"above min\(in, out\) = 3"):
        model = apply_lora(_mlp(), LoRAConfig(4, 4.0, target_modules=["0", "4"]))
    assert model[4].lora_a.weight.shape == (4, 8) and model[4].lora_b.weight.shape == (3, 4)
    _perturb(model)
    loss = F.cross_entropy(model(_x()), np.array([0, 1, 2, 0, 1]))
    loss.backward()
    assert model[4].lora_a.weight.grad is not None


def test_fit_refuses_a_model_with_merged_layers_and_trains_once_unmerged():
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules=["0", "2"]))
    X = np.random.default_rng(0).standard_normal((32, 6))
    y = np.random.default_rng(1).integers(0, 3, 32)
    optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model[2].merge()
    b_before = model[2].lora_b.weight.data.copy()
    with pytest.raises(RuntimeError, match=r"layers \['2'\] are merged.*unmerge\(\) them first"):
        fit(model, (X, y), optimizer=optimizer, steps=3, progress=False)
    np.testing.assert_array_equal(model[2].lora_b.weight.data, b_before)  # no step was taken
    model[2].unmerge()
    fit(model, (X, y), optimizer=optimizer, steps=3, progress=False)
    assert not np.array_equal(model[2].lora_b.weight.data, b_before)


def test_apply_twice_is_an_error():
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules=["0"]))
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model, LoRAConfig(2, 4.0, target_modules=["2"]))


def test_rank_and_alpha_patterns():
    model = apply_lora(
        _mlp(),
        LoRAConfig(
            2,
            4.0,
            target_modules="all-linear",
            rank_pattern={"2": 5},
            alpha_pattern={"2": 10.0},
        ),
    )
    assert (model[0].rank, model[0].alpha) == (2, 4.0)
    assert (model[2].rank, model[2].alpha, model[2].scaling) == (5, 10.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        ({"target_modules": None}, ValueError, "say which Linear layers"),
        ({"target_modules": []}, TypeError, "non-empty list"),
        ({"target_modules": "(["}, ValueError, "not a valid regular expression"),
        ({"target_modules": ["0"], "bias": "some"}, ValueError, "bias must be one of"),
        ({"target_modules": ["0"], "init": "zeros"}, ValueError, "init must be one of"),
        ({"target_modules": ["0"], "dropout": 1.0}, ValueError, "dropout must be in"),
        ({"target_modules": ["0"], "rank_pattern": {"0": 0}}, ValueError, "int >= 1"),
        ({"target_modules": ["0"], "alpha_pattern": {"0": -1}}, ValueError, "number > 0"),
        ({"target_modules": ["0"], "modules_to_save": "4"}, TypeError, "list of module names"),
        ({"target_modules": ["0"], "use_dora": 1}, TypeError, "must be a bool"),
    ],
)
def test_config_validation(kwargs, kind, match):
    with pytest.raises(kind, match=match):
        LoRAConfig(2, 4.0, **kwargs)


def test_modules_to_save_none_is_none_as_in_peft():
    assert LoRAConfig(2, 4.0, target_modules=["0"], modules_to_save=None).modules_to_save == ()


def test_config_rank_and_alpha_errors():
    with pytest.raises(ValueError, match="rank must be >= 1"):
        LoRAConfig(0, 1.0, target_modules=["0"])
    with pytest.raises(ValueError, match="alpha must be"):
        LoRAConfig(2, 0.0, target_modules=["0"])


# --------------------------------------------------------------------------- what trains


def _trainable(model: Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize(
    ("bias", "expected_bias"),
    [
        ("none", []),
        ("all", ["0.linear.bias", "2.linear.bias", "4.bias"]),
        ("lora_only", ["0.linear.bias", "2.linear.bias"]),
    ],
)
def test_mark_only_lora_as_trainable_bias_modes(bias, expected_bias):
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules=["0", "2"], bias=bias))
    adapters = ["0.lora_a.weight", "0.lora_b.weight", "2.lora_a.weight", "2.lora_b.weight"]
    assert sorted(_trainable(model)) == sorted(adapters + expected_bias)


def test_modules_to_save_and_dora_and_lora_fa_trainable_sets():
    config = LoRAConfig(
        2, 4.0, target_modules=["0"], modules_to_save=["4"], use_dora=True, freeze_a=True
    )
    model = apply_lora(_mlp(), config)
    assert sorted(_trainable(model)) == ["0.lora_b.weight", "0.magnitude", "4.bias", "4.weight"]
    mark_only_lora_as_trainable(model, "none")  # modules_to_save stay trainable
    assert "4.weight" in _trainable(model)


def test_frozen_weights_get_no_gradient():
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules="all-linear"))
    _perturb(model)
    loss = F.cross_entropy(model(_x()), np.array([0, 1, 2, 0, 1]))
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name


def test_counts_and_peft_style_print(capsys):
    model = apply_lora(MLP([64, 128, 128, 10]), LoRAConfig(8, 16.0, target_modules="all-linear"))
    trainable, total = count_parameters(model)
    base = 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10
    assert trainable == 8 * (64 + 128) + 8 * (128 + 128)
    assert total == base + trainable
    print_trainable_parameters(model)
    share = 100 * trainable / total
    assert capsys.readouterr().out == (
        f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {share:.4f}\n"
    )


def test_lora_state_dict_contents():
    config = LoRAConfig(2, 4.0, target_modules=["0"], bias="lora_only", modules_to_save=["4"])
    model = apply_lora(_mlp(), config)
    sd = lora_state_dict(model)
    assert sorted(sd) == [
        "0.linear.bias",
        "0.lora_a.weight",
        "0.lora_b.weight",
        "4.bias",
        "4.weight",
    ]
    # names are the model's own: they load back
    fresh = apply_lora(_mlp(seed=5), config)
    fresh.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(fresh[0].lora_a.weight.data, model[0].lora_a.weight.data)


# --------------------------------------------------------------------------- merge, unload, disable


@pytest.mark.parametrize(
    "extra", [{}, {"use_dora": True}, {"use_rslora": True}, {"init": "pissa"}], ids=str
)
def test_merge_and_unload_keeps_outputs(extra):
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules="all-linear", **extra))
    _perturb(model)
    x = _x()
    y = model(x).data
    model[0].merge()  # an already merged layer is fine too
    out = merge_and_unload(model)
    assert out is model and not lora_layers(model)
    assert all(type(m).__name__ in ("Linear", "ReLU") for m in model)
    assert not hasattr(model, "lora_config")
    np.testing.assert_allclose(model(x).data, y, rtol=0, atol=1e-12)


def test_safe_merge_and_unload_refuses_nan_and_leaves_model_unchanged():
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules="all-linear"))
    _perturb(model)
    model[2].lora_b.weight.data[0, 0] = np.inf
    W0 = model[0].linear.weight.data.copy()
    with pytest.raises(ValueError, match="'2' gives non-finite"):
        merge_and_unload(model, safe=True)
    assert len(lora_layers(model)) == 2
    np.testing.assert_array_equal(model[0].linear.weight.data, W0)


def test_unload_gives_back_the_base_model():
    model = _mlp()
    x = _x()
    y_base = model(x).data
    apply_lora(model, LoRAConfig(2, 4.0, target_modules="all-linear"))
    _perturb(model)
    model[2].merge()
    model.eval()  # a merged layer is for inference
    assert not np.allclose(model(x).data, y_base)
    unload(model)
    assert not lora_layers(model)
    np.testing.assert_array_equal(model(x).data, y_base)


def test_disable_adapter_equals_base_including_modules_to_save():
    model = _mlp()
    x = _x()
    y_base = model(x).data
    apply_lora(model, LoRAConfig(2, 4.0, target_modules=["0", "2"], modules_to_save=["4"]))
    _perturb(model)
    model[4].weight.data = model[4].weight.data + 1.0  # "trained" head
    y_adapted = model(x).data
    assert not np.allclose(y_adapted, y_base)
    with disable_adapter(model):
        np.testing.assert_array_equal(model(x).data, y_base)
    np.testing.assert_array_equal(model(x).data, y_adapted)  # restored
    with pytest.raises(ZeroDivisionError), disable_adapter(model):
        raise ZeroDivisionError
    np.testing.assert_array_equal(model(x).data, y_adapted)  # restored after an error too
    model[0].merge()
    with pytest.raises(RuntimeError, match="merged"), disable_adapter(model):
        pass


# --------------------------------------------------------------------------- LoRA+ and training


def test_lora_plus_param_groups():
    model = apply_lora(_mlp(), LoRAConfig(2, 4.0, target_modules=["0", "2"], bias="all"))
    groups = lora_plus_param_groups(model, 1e-3, ratio=16)
    assert [g["lr"] for g in groups] == [1e-3, 16e-3]
    assert {id(p) for p in groups[1]["params"]} == {
        id(model[0].lora_b.weight),
        id(model[2].lora_b.weight),
    }
    assert len(groups[0]["params"]) == 2 + 3  # two A's and three biases
    Adam(groups)  # the optimizer accepts them
    with pytest.raises(ValueError, match="ratio must be"):
        lora_plus_param_groups(model, 1e-3, ratio=0)


def test_training_only_moves_the_adapters_and_lowers_the_loss():
    rng = np.random.default_rng(0)
    model = _mlp(sizes=(6, 16, 3))
    x = Tensor(rng.standard_normal((64, 6)))
    y = rng.integers(0, 3, 64)
    apply_lora(model, LoRAConfig(4, 8.0, target_modules=["0", "2"], rank_pattern={"2": 3}))
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    opt = Adam(lora_plus_param_groups(model, 1e-2, ratio=4))
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for name, p in model.named_parameters():
        if name in frozen:
            np.testing.assert_array_equal(p.data, frozen[name])


def test_lora_linear_inside_a_model_built_by_hand():
    model = Sequential(LoRALinear(6, 8, 2, 4.0, rng=np.random.default_rng(0)), ReLU())
    assert [n for n, _ in lora_layers(model)] == ["0"]
    merge_and_unload(model)
    assert isinstance(model[0], Linear)
