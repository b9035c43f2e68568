"""Tests for lora_np.nn: modules, functional composites and initialisers."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from lora_np import Tensor, gradcheck
from lora_np.nn import (
    MLP,
    Dropout,
    Identity,
    Linear,
    Module,
    Parameter,
    ReLU,
    Sequential,
    StateDictError,
    Tanh,
    functional_call,
    init,
)
from lora_np.nn import functional as F
from lora_np.tensor import no_grad


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape)


def logsumexp_reference(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


# --------------------------------------------------------------------------- gradchecks


def test_gradcheck_linear_weight_bias_input() -> None:
    layer = Linear(4, 3, dtype=np.float64, rng=rng(1))

    def f(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return functional_call(layer, {"weight": w, "bias": b}, x)

    assert gradcheck(f, [randn(5, 4), layer.weight.data, layer.bias.data])


def test_gradcheck_linear_without_bias_and_batched_input() -> None:
    def f(x: Tensor, w: Tensor) -> Tensor:
        return F.linear(x, w)

    assert gradcheck(f, [randn(2, 3, 4), randn(5, 4, seed=1)])


def test_gradcheck_mlp_all_parameters() -> None:
    model = MLP([3, 5, 4, 2], activation="tanh", dtype=np.float64, rng=rng(2))
    names = [name for name, _ in model.named_parameters()]

    def f(x: Tensor, *weights: Tensor) -> Tensor:
        return functional_call(model, dict(zip(names, weights, strict=True)), x)

    inputs = [randn(6, 3)] + [p.data for p in model.parameters()]
    assert gradcheck(f, inputs)


def test_gradcheck_mlp_relu_through_cross_entropy() -> None:
    model = MLP([4, 6, 3], dtype=np.float64, rng=rng(3))
    labels = np.array([0, 2, 1, 2, 0])

    def f(x: Tensor, w0: Tensor, b0: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        params = {"0.weight": w0, "0.bias": b0, "2.weight": w2, "2.bias": b2}
        return F.cross_entropy(functional_call(model, params, x), labels)

    assert gradcheck(f, [randn(5, 4, seed=4)] + [p.data for p in model.parameters()])


def test_gradcheck_dropout_with_fixed_mask() -> None:
    # the same seed at every call gives the same mask, so the function is deterministic
    def f(x: Tensor) -> Tensor:
        return Dropout(0.3, rng=rng(7))(x)

    assert gradcheck(f, [randn(4, 5)])
    assert gradcheck(lambda x: F.dropout(x, 0.5, training=True, rng=rng(8)), [randn(3, 6)])


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("relu", F.relu),
        ("tanh", F.tanh),
        ("sigmoid", F.sigmoid),
        ("log_softmax", lambda x: F.log_softmax(x, axis=1)),
        ("log_softmax_axis0", lambda x: F.log_softmax(x, axis=0)),
        ("softmax", lambda x: F.softmax(x, axis=-1)),
    ],
)
def test_gradcheck_elementwise_and_softmax(name: str, fn) -> None:
    x = randn(4, 5, seed=11)
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    assert gradcheck(fn, [x], name=name)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_cross_entropy(reduction: str) -> None:
    labels = np.array([3, 0, 1, 3, 2, 1])
    assert gradcheck(
        lambda z: F.cross_entropy(z, labels, reduction=reduction), [randn(6, 4, seed=12)]
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_mse_loss(reduction: str) -> None:
    assert gradcheck(
        lambda a, b: F.mse_loss(a, b, reduction=reduction),
        [randn(3, 4, seed=13), randn(3, 4, seed=14)],
    )


# --------------------------------------------------------------------------- functional values


def test_cross_entropy_matches_numpy_reference_for_huge_logits() -> None:
    z = np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, 1e3], [1e3, 1e3, -1e3], [5.0, 1.0, -2.0]])
    y = np.array([0, 1, 1, 2])
    reference = logsumexp_reference(z) - z[np.arange(4), y]
    per_row = F.cross_entropy(Tensor(z), y, reduction="none").data
    assert np.all(np.isfinite(per_row))
    np.testing.assert_allclose(per_row, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(Tensor(z), y).item(), reference.mean())
    np.testing.assert_allclose(
        F.cross_entropy(Tensor(z), y, reduction="sum").item(), reference.sum()
    )
    # the gradient is softmax − onehot, also finite
    zt = Tensor(z, requires_grad=True)
    F.cross_entropy(zt, y, reduction="sum").backward()
    p = np.exp(z - logsumexp_reference(z)[:, None])
    np.testing.assert_allclose(zt.grad, p - np.eye(3)[y], atol=1e-12)


def test_cross_entropy_float32_stays_float32_and_finite() -> None:
    z = Tensor(np.array([[1e3, -1e3], [-1e3, 1e3]], dtype=np.float32))
    loss = F.cross_entropy(z, np.array([1, 0]))
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(2e3)


def test_softmax_and_log_softmax_values() -> None:
    z = randn(3, 5, seed=5) * 50
    expected = z - logsumexp_reference(z)[:, None]
    np.testing.assert_allclose(F.log_softmax(Tensor(z)).data, expected, atol=1e-12)
    np.testing.assert_allclose(F.softmax(Tensor(z)).data, np.exp(expected), atol=1e-12)
    np.testing.assert_allclose(F.softmax(Tensor(z)).data.sum(axis=1), 1.0)


def test_cross_entropy_rejects_float_labels() -> None:
    with pytest.raises(TypeError, match="labels must be integers"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="bool"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([True, False]))


@pytest.mark.parametrize(
    ("bad", "values"), [([0, 3], r"\[0, 3\]"), ([-1, 0], r"\[-1, 0\]"), ([2, 5, -4], r"\[-4, 5\]")]
)
def test_cross_entropy_rejects_out_of_range_labels(bad: list[int], values: str) -> None:
    logits = Tensor(randn(len(bad), 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*values in " + values):
        F.cross_entropy(logits, np.array(bad))


def test_cross_entropy_rejects_bad_shapes_and_reduction() -> None:
    with pytest.raises(ValueError, match="expected 2 labels"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        F.cross_entropy(Tensor(randn(3)), np.array([0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0, 1]), reduction="avg")


def test_mse_loss_values_and_shape_error() -> None:
    a, b = randn(3, 2, seed=1), randn(3, 2, seed=2)
    assert F.mse_loss(Tensor(a), b).item() == pytest.approx(np.mean((a - b) ** 2))
    assert F.mse_loss(Tensor(a), b, reduction="sum").item() == pytest.approx(np.sum((a - b) ** 2))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        F.mse_loss(Tensor(a), b.T)


def test_accuracy() -> None:
    z = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert F.accuracy(z, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert F.accuracy(Tensor(z), Tensor(np.array([1, 0, 1]))) == 1.0
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        F.accuracy(z, np.array([1, 0]))


def test_dropout_inverted_scaling_and_eval_identity() -> None:
    x = Tensor(np.ones((200, 50)))
    layer = Dropout(0.25, rng=rng(0))
    out = layer(x).data
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.75)  # survivors are scaled up
    assert abs(kept.mean() - 0.75) < 0.02  # 10,000 draws: 4 standard deviations ≈ 0.017
    assert abs(out.mean() - 1.0) < 0.03  # the expectation is preserved
    layer.eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        Dropout(1.0)


@pytest.mark.parametrize("p", [-0.5, 1.0, 1.5])
def test_mlp_dropout_out_of_range_is_the_same_error_as_dropouts(p: float) -> None:
    with pytest.raises(ValueError) as from_dropout:
        Dropout(p)
    with pytest.raises(ValueError) as from_mlp:
        MLP([3, 4, 2], dropout=p)
    assert (
        str(from_mlp.value) == str(from_dropout.value) == f"Dropout: p must be in [0, 1), got {p}"
    )


def test_dropout_that_is_not_a_number_is_a_type_error() -> None:
    for make in (lambda: Dropout("0.5"), lambda: MLP([3, 4, 2], dropout="0.5")):
        with pytest.raises(TypeError, match=r"p must be a number in \[0, 1\), got str '0\.5'"):
            make()


def test_dropout_same_seed_same_mask() -> None:
    x = Tensor(np.ones((4, 6)))
    a = F.dropout(x, 0.5, rng=rng(3)).data
    b = F.dropout(x, 0.5, rng=rng(3)).data
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- init


def test_kaiming_gain_formula() -> None:
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", a=math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    # PyTorch's default negative slope, 0.01
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("gelu")


def test_kaiming_normal_std_with_a_sqrt5() -> None:
    fan_in = 400
    t = Tensor(np.empty((500, fan_in), dtype=np.float32))
    init.kaiming_normal_(t, a=math.sqrt(5), rng=rng(0))
    expected = math.sqrt(2 / (1 + 5)) / math.sqrt(fan_in)
    assert t.dtype == np.float32
    # 200,000 draws: the sample std is within ~0.2% of the true one
    assert t.data.std() == pytest.approx(expected, rel=0.01)
    assert abs(t.data.mean()) < 4 * expected / math.sqrt(t.size)


def test_kaiming_uniform_bound_and_fan_out() -> None:
    t = Tensor(np.empty((300, 700)))
    init.kaiming_uniform_(t, a=0.0, mode="fan_out", nonlinearity="relu", rng=rng(1))
    bound = math.sqrt(3) * math.sqrt(2) / math.sqrt(300)
    assert np.abs(t.data).max() <= bound
    assert np.abs(t.data).max() > 0.99 * bound
    assert t.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(t, mode="fan_avg")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_uniform_(Tensor(np.empty(5)))


def test_linear_default_init_matches_pytorch_bounds() -> None:
    layer = Linear(250, 400, rng=rng(2))
    bound = 1 / math.sqrt(250)
    assert layer.weight.shape == (400, 250) and layer.bias.shape == (400,)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.98 * bound
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


def test_normal_and_zeros_keep_dtype() -> None:
    t = Tensor(np.empty((100, 100), dtype=np.float32))
    init.normal_(t, mean=2.0, std=0.5, rng=rng(0))
    assert t.dtype == np.float32
    assert t.data.mean() == pytest.approx(2.0, abs=0.02)
    assert t.data.std() == pytest.approx(0.5, rel=0.02)
    init.zeros_(t)
    assert t.dtype == np.float32 and not t.data.any()


def test_same_seed_same_weights() -> None:
    a = MLP([5, 7, 3], rng=rng(9)).state_dict()
    b = MLP([5, 7, 3], rng=rng(9)).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# --------------------------------------------------------------------------- modules


class Block(Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = Linear(3, 4, rng=rng(0))
        self.drop = Dropout(0.5)
        self.scale = Parameter(np.ones(4, dtype=np.float32))
        self.not_a_param = Tensor(np.zeros(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.lin(x)) * self.scale


def test_registration_and_traversal() -> None:
    model = Sequential(Block(), ReLU(), Linear(4, 2, bias=False, rng=rng(1)))
    assert [n for n, _ in model.named_parameters()] == [
        "0.scale",
        "0.lin.weight",
        "0.lin.bias",
        "2.weight",
    ]
    assert [n for n, _ in model.named_modules()] == ["", "0", "0.lin", "0.drop", "1", "2"]
    assert [type(c).__name__ for c in model.children()] == ["Block", "ReLU", "Linear"]
    assert len(list(model.parameters())) == 4
    assert model.get_submodule("0.lin") is model[0].lin
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        model.get_submodule("0.nope")
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = model.missing


def test_assigning_a_plain_tensor_over_a_parameter_is_an_error() -> None:
    layer = Linear(3, 2, rng=rng(0))
    with pytest.raises(TypeError, match=r"parameter 'weight'.*\.weight\.data"):
        layer.weight = Tensor(np.zeros((2, 3)))
    assert "weight" in dict(layer.named_parameters())
    layer.weight = Parameter(np.zeros((2, 3), dtype=np.float32))  # a new Parameter is fine
    assert not layer.weight.data.any()
    layer.bias = None  # removing is fine too
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    model = Sequential(layer)
    with pytest.raises(TypeError, match="submodule '0'"):
        setattr(model, "0", 5)


def test_parameters_are_plain_attributes_in_step_with_the_registry() -> None:
    layer = Linear(3, 2, rng=rng(0))
    assert vars(layer)["weight"] is layer._parameters["weight"]
    new = Parameter(np.zeros((2, 3), dtype=np.float32))
    layer.weight = new  # replaced: in both places
    assert layer.weight is new and layer._parameters["weight"] is new
    copied = copy.deepcopy(layer)
    assert copied.weight is copied._parameters["weight"] and copied.weight is not new
    layer.bias = None  # no longer a parameter, an ordinary None attribute
    assert "bias" not in layer._parameters and layer.bias is None
    del layer.weight
    assert "weight" not in layer._parameters and "weight" not in vars(layer)
    with pytest.raises(AttributeError, match="no attribute 'weight'"):
        _ = layer.weight


def test_functional_call_swaps_the_attribute_that_forward_reads() -> None:
    class Spy(Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = Parameter(np.ones(2))
            self.seen: list[Tensor] = []

        def forward(self, x: Tensor) -> Tensor:
            self.seen.append(self.weight)
            return x * self.weight

    spy, stand_in = Spy(), Tensor(np.zeros(2))
    original = spy.weight
    functional_call(spy, {"weight": stand_in}, Tensor(np.ones(2)))
    assert len(spy.seen) == 1 and spy.seen[0] is stand_in
    assert spy.weight is original and spy._parameters["weight"] is original


def test_shared_parameter_listed_once() -> None:
    a = Linear(3, 3, rng=rng(0))
    model = Sequential(a, a)
    assert len(list(model.parameters())) == 2


def test_module_without_super_init_gets_clear_error() -> None:
    class Broken(Module):
        def __init__(self) -> None:
            self.w = Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_train_eval_propagate() -> None:
    model = MLP([3, 4, 2], dropout=0.5)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="bool"):
        model.train("no")


def test_requires_grad_and_zero_grad() -> None:
    model = MLP([3, 4, 2], rng=rng(0))
    out = model(Tensor(randn(5, 3).astype(np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    assert not model(Tensor(randn(5, 3).astype(np.float32))).requires_grad
    model[0].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [True, True, False, False]


def test_mlp_structure_and_errors() -> None:
    model = MLP([64, 128, 128, 10], rng=rng(0))
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert isinstance(model, Sequential) and len(model) == 5
    assert [n for n, _ in model.named_children()] == ["0", "1", "2", "3", "4"]
    with_dropout = MLP([4, 8, 2], activation="tanh", dropout=0.1)
    assert [type(m) for m in with_dropout] == [Linear, Tanh, Dropout, Linear]
    custom = MLP([4, 8, 2], activation=Identity)
    assert isinstance(custom[1], Identity)
    assert isinstance(model[1:3], Sequential) and len(model[1:3]) == 2
    with pytest.raises(ValueError, match="at least"):
        MLP([4])
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([4, 2, 1], activation="swish")
    with pytest.raises(ValueError, match="positive int"):
        Linear(0, 3)


def test_linear_forward_is_x_w_transposed_plus_b() -> None:
    layer = Linear(3, 2, rng=rng(4))
    x = randn(5, 3).astype(np.float32)
    out = layer(Tensor(x))
    np.testing.assert_allclose(out.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="expects 3"):
        layer(Tensor(randn(5, 4)))
    with pytest.raises(ValueError, match=r"at least one dimension, got shapes \(\) and \(2, 3\)"):
        layer(Tensor(np.float32(1.0)))


def test_repr_tree() -> None:
    text = repr(MLP([4, 8, 2], dropout=0.1))
    assert text == (
        "MLP(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.1)\n"
        "  (3): Linear(in_features=8, out_features=2, bias=True)\n"
        ")"
    )
    nested = repr(Sequential(Sequential(ReLU())))
    assert nested == "Sequential(\n  (0): Sequential(\n    (0): ReLU()\n  )\n)"


# --------------------------------------------------------------------------- state dicts


def test_state_dict_round_trip_is_bit_exact() -> None:
    source = MLP([6, 9, 4], rng=rng(0))
    target = MLP([6, 9, 4], rng=rng(1))
    sd = source.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    result = target.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, p in target.named_parameters():
        assert p.dtype == sd[name].dtype
        assert p.data.tobytes() == sd[name].tobytes()
    # the state dict is a copy: changing the model later does not change it
    sd_again = target.state_dict()
    target[0].weight.data[...] = 0
    assert not np.array_equal(sd_again["0.weight"], target[0].weight.data)
    # and loading copies too: mutating the dict does not reach the model
    sd["2.bias"][...] = 123.0
    assert not np.any(target[2].bias.data == 123.0)


def test_state_dict_includes_buffers() -> None:
    model = Linear(2, 2, rng=rng(0))
    model.register_buffer("running", np.arange(2.0))
    sd = model.state_dict()
    assert "running" in sd
    sd["running"] = np.array([5.0, 6.0])
    model.load_state_dict(sd)
    np.testing.assert_array_equal(model.running, [5.0, 6.0])


def _snapshot(model: Module) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in model.state_dict().items()}


def test_load_state_dict_strict_names_missing_and_unexpected_and_leaves_model() -> None:
    model = MLP([3, 4, 2], rng=rng(0))
    before = _snapshot(model)
    sd = MLP([3, 4, 2], rng=rng(1)).state_dict()
    del sd["2.bias"]
    sd["2.extra"] = np.zeros(3)
    with pytest.raises(StateDictError) as info:
        model.load_state_dict(sd)
    message = str(info.value)
    assert "missing keys ['2.bias']" in message
    assert "unexpected keys ['2.extra']" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert _snapshot(model) == before  # nothing was written


def test_load_state_dict_shape_mismatch_names_key_and_shapes() -> None:
    model = MLP([3, 4, 2], rng=rng(0))
    before = _snapshot(model)
    sd = model.state_dict()
    sd["0.bias"] = np.zeros(4, dtype=np.float32) + 1
    sd["2.weight"] = np.zeros((4, 2), dtype=np.float32)
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"'2.weight'.*\(4, 2\).*\(2, 4\)"):
            model.load_state_dict(sd, strict=strict)
        assert _snapshot(model) == before  # the valid '0.bias' was not loaded either


def test_load_state_dict_with_strings_names_the_key_and_loads_nothing() -> None:
    model = MLP([3, 4, 2], rng=rng(0))
    before = _snapshot(model)
    sd = model.state_dict()
    sd["2.bias"] = np.array(["a", "b"])
    sd["0.bias"] = np.array(["1.5"] * 4)  # NumPy would turn this one into a float quietly
    with pytest.raises(StateDictError) as info:
        model.load_state_dict(sd)
    message = str(info.value)
    assert "not real numbers" in message and "nothing was loaded" in message
    assert "'2.bias' (dtype <U1; the model has float32)" in message
    assert "'0.bias' (dtype <U3" in message
    assert _snapshot(model) == before
    with pytest.raises(StateDictError, match=r"'0.weight' \(dtype object"):
        model.load_state_dict({**model.state_dict(), "0.weight": np.full((4, 3), None)})


def test_load_state_dict_non_strict_reports_keys_and_casts_dtype() -> None:
    model = Linear(3, 2, rng=rng(0))
    result = model.load_state_dict({"weight": np.ones((2, 3)), "other": 1}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    assert model.weight.dtype == np.float32 and np.all(model.weight.data == 1)
    with pytest.raises(TypeError, match="mapping"):
        model.load_state_dict([("weight", np.ones((2, 3)))])


# --------------------------------------------------------------------------- functional_call


def test_functional_call_substitutes_and_restores() -> None:
    layer = Linear(3, 2, rng=rng(0))
    original = layer.weight
    w = Tensor(np.zeros((2, 3), dtype=np.float32), requires_grad=True)
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    out = functional_call(layer, {"weight": w}, x)
    np.testing.assert_allclose(out.data, np.broadcast_to(layer.bias.data, (4, 2)))
    assert layer.weight is original
    out.sum().backward()
    np.testing.assert_allclose(w.grad, np.full((2, 3), 4.0))  # dL/dW = Gᵀ·x, G = ones
    assert original.grad is None  # the real weight was not used


def test_functional_call_gradient_flows_to_what_the_substitute_was_computed_from() -> None:
    layer = Linear(3, 2, bias=False, dtype=np.float64, rng=rng(0))
    w0 = layer.weight.data.copy()
    delta = randn(2, 3, seed=5)

    def f(d: Tensor, x: Tensor) -> Tensor:
        return functional_call(layer, {"weight": Tensor(w0) + d}, x)

    assert gradcheck(f, [delta, randn(4, 3, seed=6)])


def test_functional_call_restores_weights_when_forward_raises() -> None:
    class Fails(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Linear(2, 2, rng=rng(0))

        def forward(self, x: Tensor) -> Tensor:
            self.inner(x)
            raise RuntimeError("boom")

    model = Fails()
    original = model.inner.weight
    with pytest.raises(RuntimeError, match="boom"):
        functional_call(model, {"inner.weight": Tensor(np.zeros((2, 2)))}, Tensor(np.ones((1, 2))))
    assert model.inner.weight is original
    assert dict(model.named_parameters())["inner.weight"] is original


def test_functional_call_errors() -> None:
    layer = Linear(3, 2, rng=rng(0))
    x = Tensor(np.ones((1, 3)))
    with pytest.raises(KeyError, match="no parameter 'weights'"):
        functional_call(layer, {"weights": Tensor(np.zeros((2, 3)))}, x)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        functional_call(layer, {"weight": Tensor(np.zeros((3, 2)))}, x)
    with pytest.raises(TypeError, match="must be a Tensor"):
        functional_call(layer, {"weight": np.zeros((2, 3))}, x)
    assert layer.weight.shape == (2, 3)


def test_no_grad_forward_records_nothing() -> None:
    model = MLP([3, 4, 2], rng=rng(0))
    with no_grad():
        out = model(Tensor(np.ones((2, 3), dtype=np.float32)))
    assert not out.requires_grad and out.is_leaf


def test_reassigning_a_child_keeps_its_place_in_sequential():
    """PyTorch keeps a replaced child where it was; Sequential's order depends on it."""
    model = MLP([4, 5, 3])
    replacement = Linear(4, 5)
    model.__setattr__("0", replacement)
    assert list(model._modules) == ["0", "1", "2"]
    assert model[0] is replacement
