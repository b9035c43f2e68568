"""LoRALinear: the reference module's layout, hand-computed gradients, gradchecks of every path,
merging, the variants' invariants, and argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lora_np.gradcheck import gradcheck, numerical_grad
from lora_np.lora import LoRALinear, MergedTrainingWarning, RankWarning
from lora_np.nn import Linear, ReLU, functional_call
from lora_np.tensor import Tensor, no_grad

F64 = np.float64


def _layer(in_f=5, out_f=4, rank=2, alpha=6.0, seed=0, **kw) -> LoRALinear:
    return LoRALinear(in_f, out_f, rank, alpha, dtype=F64, rng=np.random.default_rng(seed), **kw)


def _randomise_b(layer: LoRALinear, seed: int = 1) -> None:
    """B = 0 at init makes many checks trivial; give it random values."""
    rng = np.random.default_rng(seed)
    layer.lora_b.weight.data = rng.standard_normal(layer.lora_b.weight.shape).astype(F64)


# ------------------------------------------------------------------ the reference module's contract


def test_state_dict_keys_are_the_seeds():
    assert list(LoRALinear(6, 3, 2, 4.0).state_dict()) == [
        "linear.weight",
        "lora_a.weight",
        "lora_b.weight",
    ]
    sd = LoRALinear(6, 3, 2, 4.0, bias=True).state_dict()
    assert list(sd) == ["linear.weight", "linear.bias", "lora_a.weight", "lora_b.weight"]
    assert sd["linear.weight"].shape == (3, 6)
    assert sd["lora_a.weight"].shape == (2, 6)
    assert sd["lora_b.weight"].shape == (3, 2)


def test_attributes_and_freezing_mirror_the_seed():
    layer = LoRALinear(6, 3, 2, 4.0, dropout=0.25, bias=True)
    assert (layer.rank, layer.alpha, layer.scaling) == (2, 4.0, 2.0)
    assert layer.dropout.p == 0.25
    # the reference module freezes linear.weight only; its bias stays trainable
    assert layer.linear.weight.requires_grad is False
    assert layer.linear.bias.requires_grad is True
    assert layer.lora_a.weight.requires_grad and layer.lora_b.weight.requires_grad
    assert layer.lora_a.bias is None and layer.lora_b.bias is None


def test_init_is_kaiming_normal_a_sqrt5_and_zero_b():
    # kaiming_normal_(a=√5) on (r, in): std = sqrt(2/(1+5)) / sqrt(in) = 1/sqrt(3·in)
    in_f = 400
    layer = LoRALinear(in_f, 300, 64, 8.0, rng=np.random.default_rng(0))
    a = layer.lora_a.weight.data
    assert np.all(layer.lora_b.weight.data == 0)
    expected = 1.0 / math.sqrt(3 * in_f)
    assert abs(a.std() - expected) / expected < 0.02
    assert abs(a.mean()) < 0.01 * expected * 10
    assert layer.lora_a.weight.dtype == np.float32


def test_seed_layout_state_dict_forward_and_gradients_by_hand():
    """Load a state dict laid out like the reference module's and compare with NumPy by hand."""
    rng = np.random.default_rng(3)
    in_f, out_f, r, alpha = 5, 4, 3, 6.0
    W, b = rng.standard_normal((out_f, in_f)), rng.standard_normal(out_f)
    A, B = rng.standard_normal((r, in_f)), rng.standard_normal((out_f, r))
    layer = LoRALinear(in_f, out_f, r, alpha, bias=True, dtype=F64)
    layer.load_state_dict(
        {"linear.weight": W, "linear.bias": b, "lora_a.weight": A, "lora_b.weight": B}
    )
    X = rng.standard_normal((7, in_f))
    G = rng.standard_normal((7, out_f))
    s = alpha / r
    x = Tensor(X, requires_grad=True)
    y = layer(x)
    np.testing.assert_allclose(y.data, X @ W.T + b + s * X @ A.T @ B.T, rtol=1e-13, atol=1e-13)
    y.backward(G)
    # y = X·Wᵀ + b + s·X·Aᵀ·Bᵀ  =>  dA = s·Bᵀ·Gᵀ·X, dB = s·Gᵀ·X·Aᵀ, dX = G·(W + s·B·A)
    np.testing.assert_allclose(layer.lora_a.weight.grad, s * B.T @ G.T @ X, rtol=1e-12)
    np.testing.assert_allclose(layer.lora_b.weight.grad, s * G.T @ X @ A.T, rtol=1e-12)
    np.testing.assert_allclose(layer.linear.bias.grad, G.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(x.grad, G @ (W + s * B @ A), rtol=1e-12)
    assert layer.linear.weight.grad is None  # frozen: no gradient


def test_output_at_init_equals_base():
    layer = _layer(bias=True)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5)))
    np.testing.assert_array_equal(layer(x).data, layer.linear(x).data)


# --------------------------------------------------------------------------- gradchecks


def _check(layer: LoRALinear, names: list[str], seed: int = 0, reset_dropout=None) -> None:
    params = dict(layer.named_parameters())
    x = np.random.default_rng(seed).standard_normal((4, layer.in_features))

    def fn(x_t, *tensors):
        if reset_dropout is not None:
            layer.dropout.rng = np.random.default_rng(reset_dropout)  # the same mask each call
        return functional_call(layer, dict(zip(names, tensors, strict=True)), x_t)

    gradcheck(fn, [x, *[params[n].data for n in names]], name="LoRALinear")


@pytest.mark.parametrize("use_rslora", [False, True])
def test_gradcheck_plain_and_rslora(use_rslora):
    layer = _layer(bias=True, use_rslora=use_rslora)
    _randomise_b(layer)
    _check(layer, ["lora_a.weight", "lora_b.weight", "linear.bias"])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradcheck_dora_exact_norm(dropout):
    layer = _layer(bias=True, use_dora=True, dora_detach_norm=False, dropout=dropout)
    _randomise_b(layer)
    layer.magnitude.data = layer.magnitude.data * np.linspace(0.5, 1.5, 4)
    _check(
        layer,
        ["lora_a.weight", "lora_b.weight", "magnitude"],
        reset_dropout=7 if dropout else None,
    )


def _dora_reference(x, x_drop, W, b, A, B, m, s, norm):
    """DoRA by hand with the row norm given: W·x + b + (g − 1)⊙(W·x̃) + g⊙s·B·A·x̃, g = m/norm."""
    g = m / norm
    return x @ W.T + b + (g - 1) * (x_drop @ W.T) + g * s * (x_drop @ A.T @ B.T)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_dora_detached_norm_gradient_is_that_of_a_constant_norm(dropout):
    """With dora_detach_norm=True (DoRA §4.3) the backward treats ‖W + s·B·A‖_row as a
    constant: its gradients must equal finite differences of DoRA with the norm frozen."""
    layer = _layer(bias=True, use_dora=True, dora_detach_norm=True, dropout=dropout)
    _randomise_b(layer)
    layer.magnitude.data = layer.magnitude.data * np.linspace(0.5, 1.5, 4)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5))
    layer.dropout.rng = np.random.default_rng(7)
    x_drop = x * (np.random.default_rng(7).random(x.shape) >= dropout) / (1 - dropout)
    if dropout == 0:
        x_drop = x
    y = layer(Tensor(x))
    u = rng.standard_normal(y.shape)
    y.backward(u)
    W, b = layer.linear.weight.data, layer.linear.bias.data
    values = {
        "A": layer.lora_a.weight.data,
        "B": layer.lora_b.weight.data,
        "m": layer.magnitude.data,
    }
    s = layer.scaling
    norm = np.linalg.norm(W + s * values["B"] @ values["A"], axis=1)  # frozen
    np.testing.assert_allclose(
        y.data, _dora_reference(x, x_drop, W, b, **values, s=s, norm=norm), rtol=1e-12
    )
    analytic = {
        "A": layer.lora_a.weight.grad,
        "B": layer.lora_b.weight.grad,
        "m": layer.magnitude.grad,
    }
    for key in values:

        def fn(t, key=key):
            args = dict(values, **{key: t.data})
            return Tensor(_dora_reference(x, x_drop, W, b, **args, s=s, norm=norm))

        numeric = numerical_grad(fn, values[key].copy(), upstream=u)
        np.testing.assert_allclose(analytic[key], numeric, rtol=1e-6, atol=1e-8)


def test_gradcheck_pissa_init():
    layer = LoRALinear.from_linear(
        Linear(5, 4, dtype=F64, rng=np.random.default_rng(2)), 2, 3.0, init="pissa"
    )
    _check(layer, ["lora_a.weight", "lora_b.weight"])


def test_gradcheck_dropout_fixed_mask():
    layer = _layer(dropout=0.4)
    _randomise_b(layer)
    _check(layer, ["lora_a.weight", "lora_b.weight"], reset_dropout=11)


def _forward_and_gradients(layer: LoRALinear, x: np.ndarray, forward, seed: int = 3):
    """The layer's output and the gradients of x and of every trainable parameter, for a
    random upstream gradient, with ``forward(layer, x_tensor)`` as the layer's forward."""
    x_t = Tensor(x, requires_grad=True)
    layer.zero_grad()
    y = forward(layer, x_t)
    y.backward(np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype))
    grads = {n: p.grad for n, p in layer.named_parameters() if p.requires_grad}
    return y.data, x_t.grad, grads


@pytest.mark.parametrize(
    ("dtype", "kw", "shape"),
    [
        (np.float32, {"bias": True}, (6, 5)),
        (F64, {}, (6, 5)),
        (np.float32, {"bias": True, "freeze_a": True}, (6, 5)),
        (np.float32, {"dropout": 0.4}, (6, 5)),
        (F64, {"bias": True}, (2, 3, 5)),  # leading axes are rows
        (F64, {"bias": True}, (5,)),  # one sample
    ],
)
def test_the_fused_forward_is_the_composite_bit_for_bit(dtype, kw, shape):
    """LoRAVariant.forward (one node) and forward_composite (linear, lora_a, lora_b, the
    scaling and the sum: five nodes) give the same output and gradients, bit for bit."""
    layer = LoRALinear(5, 4, 2, 6.0, dtype=dtype, rng=np.random.default_rng(0), **kw)
    layer.lora_b.weight.data = np.random.default_rng(1).standard_normal((4, 2)).astype(dtype)
    layer.linear.weight.requires_grad = True  # every gradient, W's too
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    results = []
    for forward in (layer.variant.forward, layer.variant.forward_composite):
        layer.dropout.rng = np.random.default_rng(9)  # the same dropout mask for both
        results.append(_forward_and_gradients(layer, x, forward))
    (y, gx, grads), (y_c, gx_c, grads_c) = results
    np.testing.assert_array_equal(y, y_c)
    np.testing.assert_array_equal(gx, gx_c)
    assert sorted(grads) == sorted(grads_c) and grads
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_c[name], err_msg=name)
        assert grads[name].dtype == dtype


def test_the_fused_forward_is_one_node_that_keeps_only_what_its_gradients_read():
    layer = _layer(bias=True)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5)), requires_grad=True)
    y = layer(x)
    fn = y.grad_fn
    assert type(fn).__name__ == "LoRALinearFunction"
    assert all(n is None or n is x or n.requires_grad for n in fn.next_nodes)
    saved = {k for k, v in vars(fn).items() if isinstance(v, np.ndarray)}
    # x for nothing (W is frozen), x̃ = x for dL/dA, u for dL/dB, A and B for dL/dx̃, W for dL/dx
    assert saved == {"x_drop", "u", "a", "b", "w"}
    layer.lora_a.weight.requires_grad = False  # LoRA-FA
    fn = layer(x).grad_fn
    saved = {k for k, v in vars(fn).items() if isinstance(v, np.ndarray)}
    assert saved == {"u", "a", "b", "w"}  # the layer's input is not kept


def test_the_input_gradient_is_right_when_the_input_has_other_uses_too():
    """Without dropout the fused backward returns x's two gradients summed; x also feeds
    a second LoRA layer and a plain expression, so its gradient has several parts."""
    first, second = _layer(bias=True, seed=0), _layer(bias=True, seed=1)
    for layer in (first, second):
        _randomise_b(layer, seed=2)
    x = np.random.default_rng(3).standard_normal((4, 5))
    assert gradcheck(lambda x_t: first(x_t) * second(x_t) + (x_t * x_t)[:, :4], [x])
    y = first(Tensor(x, requires_grad=True))
    assert y.grad_fn.next_nodes[1] is y.grad_fn.next_nodes[0]  # x̃ is x


def test_dora_norm_modes_differ_only_in_the_gradient():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5))
    grads, outs = {}, {}
    for detach in (True, False):
        layer = _layer(use_dora=True, dora_detach_norm=detach)
        _randomise_b(layer)
        y = layer(Tensor(x))
        y.backward(np.ones_like(y.data))
        outs[detach], grads[detach] = y.data, layer.lora_b.weight.grad
    np.testing.assert_array_equal(outs[True], outs[False])
    assert not np.allclose(grads[True], grads[False])


def test_dropout_mask_applies_to_the_adapter_path_only():
    p = 0.5
    layer = _layer(dropout=p, bias=True)
    _randomise_b(layer)
    x = np.random.default_rng(0).standard_normal((6, 5))
    layer.dropout.rng = np.random.default_rng(9)
    keep = (np.random.default_rng(9).random(x.shape) >= p) / (1 - p)
    W, b = layer.linear.weight.data, layer.linear.bias.data
    A, B = layer.lora_a.weight.data, layer.lora_b.weight.data
    expected = x @ W.T + b + layer.scaling * (x * keep) @ A.T @ B.T
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-13)
    layer.eval()  # no dropout in eval mode
    np.testing.assert_allclose(
        layer(Tensor(x)).data, x @ W.T + b + layer.scaling * x @ A.T @ B.T, rtol=1e-13
    )


# --------------------------------------------------------------------------- merging


@pytest.mark.parametrize(
    "kw",
    [{}, {"use_rslora": True}, {"use_dora": True}, {"init": "gaussian"}, {"dropout": 0.5}],
    ids=["plain", "rslora", "dora", "gaussian", "dropout"],
)
def test_merged_equals_unmerged_and_unmerge_restores(kw):
    layer = _layer(bias=True, **kw)
    _randomise_b(layer)
    layer.eval()
    x = Tensor(np.random.default_rng(1).standard_normal((8, 5)))
    W0 = layer.linear.weight.data.copy()
    before = layer(x).data
    layer.merge(safe=True)
    assert layer.merged
    np.testing.assert_allclose(layer(x).data, before, rtol=0, atol=1e-12)
    layer.unmerge()
    assert not layer.merged
    np.testing.assert_array_equal(layer.linear.weight.data, W0)
    np.testing.assert_array_equal(layer(x).data, before)


def test_merged_forward_skips_the_adapter_and_dropout():
    layer = _layer(dropout=0.9)
    _randomise_b(layer)
    layer.merge()
    x = Tensor(np.random.default_rng(1).standard_normal((8, 5)), requires_grad=True)
    with pytest.warns(MergedTrainingWarning):
        y = layer(x)  # training mode, p = 0.9: the merged path has no dropout at all
    np.testing.assert_allclose(y.data, x.data @ layer.linear.weight.data.T, rtol=1e-13)
    y.sum().backward()
    assert layer.lora_a.weight.grad is None and layer.lora_b.weight.grad is None


def test_a_merged_layer_run_as_if_training_says_its_adapter_will_not_train(recwarn):
    layer = _layer()
    layer.merge()
    x = Tensor(np.random.default_rng(1).standard_normal((8, 5)))
    with no_grad():
        layer(x)  # inference under no_grad: fine
    layer.eval()(x)  # inference in eval mode: fine
    assert not [w for w in recwarn if w.category is MergedTrainingWarning]
    layer.train()
    layer(x)
    layer(x)  # once per merge
    seen = [str(w.message) for w in recwarn if w.category is MergedTrainingWarning]
    assert len(seen) == 1 and "A and B get no gradient" in seen[0] and "unmerge()" in seen[0]
    layer.unmerge()
    layer(x)  # unmerged, it trains: no warning
    assert len([w for w in recwarn if w.category is MergedTrainingWarning]) == 1


def test_delta_weight_is_scaling_b_a():
    layer = _layer(rank=3, alpha=5.0)
    _randomise_b(layer)
    dw = layer.delta_weight()
    assert dw.shape == (4, 5)
    np.testing.assert_allclose(
        dw, (5.0 / 3) * layer.lora_b.weight.data @ layer.lora_a.weight.data, rtol=1e-14
    )
    assert np.linalg.matrix_rank(dw) == 3


def test_safe_merge_refuses_non_finite_and_writes_nothing():
    layer = _layer()
    layer.lora_b.weight.data[0, 0] = np.nan
    W0 = layer.linear.weight.data.copy()
    with pytest.raises(ValueError, match="non-finite"):
        layer.merge(safe=True)
    assert not layer.merged
    np.testing.assert_array_equal(layer.linear.weight.data, W0)


def test_double_merge_and_unmerge_without_merge_are_errors():
    layer = _layer()
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()


# --------------------------------------------------------------------------- variants


def test_rslora_scaling():
    assert _layer(rank=4, alpha=8.0, use_rslora=True).scaling == 4.0
    assert _layer(rank=4, alpha=8.0).scaling == 2.0


def test_gaussian_init_std_is_one_over_rank():
    layer = LoRALinear(500, 400, 4, 8.0, init="gaussian", rng=np.random.default_rng(0))
    assert abs(layer.lora_a.weight.data.std() - 0.25) < 0.01
    assert np.all(layer.lora_b.weight.data == 0)


def test_pissa_keeps_the_output_and_takes_the_top_singular_part():
    base = Linear(6, 5, dtype=F64, rng=np.random.default_rng(4))
    W = base.weight.data.copy()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 6)))
    y0 = base(x).data
    layer = LoRALinear.from_linear(base, 2, 4.0, init="pissa")
    np.testing.assert_allclose(layer(x).data, y0, rtol=0, atol=1e-12)
    u, s, vt = np.linalg.svd(W)
    np.testing.assert_allclose(layer.delta_weight(), (u[:, :2] * s[:2]) @ vt[:2], atol=1e-12)
    # the frozen residual holds the remaining singular values
    residual_sv = np.linalg.svd(layer.linear.weight.data, compute_uv=False)
    np.testing.assert_allclose(residual_sv[:3], s[2:], atol=1e-12)
    assert layer.linear.weight.requires_grad is False


def test_dora_magnitude_starts_at_row_norms_and_output_equals_base():
    layer = _layer(use_dora=True, bias=True)
    np.testing.assert_allclose(
        layer.magnitude.data, np.linalg.norm(layer.linear.weight.data, axis=1), rtol=1e-14
    )
    assert layer.state_dict()["magnitude"].shape == (4,)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5)))
    np.testing.assert_allclose(layer(x).data, layer.linear(x).data, rtol=1e-13)


def test_dora_weight_has_the_magnitude_as_row_norms():
    layer = _layer(use_dora=True)
    _randomise_b(layer)
    layer.magnitude.data = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(np.linalg.norm(layer.merged_weight(), axis=1), [1, 2, 3, 4])


def test_lora_fa_freezes_a():
    layer = _layer(freeze_a=True)
    _randomise_b(layer)
    y = layer(Tensor(np.ones((2, 5))))
    y.sum().backward()
    assert layer.lora_a.weight.grad is None
    assert layer.lora_b.weight.grad is not None


def test_from_linear_shares_and_freezes_the_layer():
    base = Linear(5, 4, rng=np.random.default_rng(0))
    layer = LoRALinear.from_linear(base, 2, 4.0, dropout=0.1)
    assert layer.linear is base and base.weight.requires_grad is False
    assert layer.lora_a.weight.dtype == base.weight.dtype
    x = Tensor(np.ones((2, 5), dtype=np.float32))
    np.testing.assert_array_equal(layer.eval()(x).data, base(x).data)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "kind", "match"),
    [
        ((5, 4, 0, 1.0), ValueError, "rank must be >= 1"),
        ((5, 4, 2.0, 1.0), TypeError, "rank must be an int"),
        ((5, 4, 2, 0.0), ValueError, "alpha must be"),
        ((5, 4, 2, -1.0), ValueError, "alpha must be"),
        ((5, 4, 2, 1.0, 1.0), ValueError, "dropout must be in"),
        ((5, 4, 2, 1.0, -0.1), ValueError, "dropout must be in"),
    ],
)
def test_bad_arguments(args, kind, match):
    with pytest.raises(kind, match=match):
        LoRALinear(*args)


def test_a_rank_above_min_in_out_is_accepted_with_a_warning():
    # as in the reference PyTorch module and PEFT: r = 7 > min(6, 8) is legal, just wasteful
    with pytest.warns(RankWarning, match=r"rank 7 is above min\(in, out\) = 6.*no capacity"):
        layer = LoRALinear(6, 8, rank=7, alpha=1, dtype=F64, rng=np.random.default_rng(0))
    assert layer.lora_a.weight.shape == (7, 6) and layer.lora_b.weight.shape == (8, 7)
    _randomise_b(layer)
    x = Tensor(np.random.default_rng(2).standard_normal((3, 6)))
    expected = x.data @ (layer.linear.weight.data + layer.delta_weight()).T
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-12, atol=1e-12)
    assert np.linalg.matrix_rank(layer.delta_weight()) == 6  # no more than min(in, out)
    assert gradcheck(
        lambda a, b: functional_call(layer, {"lora_a.weight": a, "lora_b.weight": b}, x),
        [Tensor(layer.lora_a.weight.data, True), Tensor(layer.lora_b.weight.data, True)],
    )


def test_a_rank_within_min_in_out_does_not_warn(recwarn):
    LoRALinear(6, 8, rank=6, alpha=1)
    assert not [w for w in recwarn if issubclass(w.category, RankWarning)]


def test_pissa_needs_a_rank_within_min_in_out():
    with pytest.raises(ValueError, match=r"init='pissa'.*has only min\(in, out\) = 6; got rank 7"):
        LoRALinear(6, 8, rank=7, alpha=1, init="pissa")


def test_bad_init_and_wrapping_non_linear():
    with pytest.raises(ValueError, match="init must be one of"):
        LoRALinear(5, 4, 2, 1.0, init="zeros")
    with pytest.raises(TypeError, match=r"expects a lora_np\.nn\.Linear, got ReLU"):
        LoRALinear.from_linear(ReLU(), 2, 1.0)
    with pytest.raises(TypeError, match="already has LoRA"):
        LoRALinear.from_linear(LoRALinear(5, 4, 2, 1.0), 2, 1.0)
