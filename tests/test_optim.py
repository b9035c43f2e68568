"""Tests for lora_np.optim: each update rule against its closed form, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lora_np.nn import MLP, Parameter
from lora_np.nn.functional import mse_loss
from lora_np.optim import SGD, Adam, AdamW
from lora_np.tensor import Tensor

G1 = np.array([[0.5, -1.0, 2.0], [0.25, 0.0, -3.0]])
G2 = np.array([[-0.1, 0.4, 1.5], [2.0, -0.5, 0.3]])
THETA0 = np.array([[1.0, -2.0, 0.5], [3.0, 0.1, -1.0]])


def two_steps(opt_cls, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Run two steps with gradients G1 then G2 on a float64 copy of THETA0."""
    p = Parameter(THETA0.copy())
    opt = opt_cls([p], **kwargs)
    p.grad = G1.copy()
    opt.step()
    after1 = p.data.copy()
    p.grad = G2.copy()
    opt.step()
    return after1, p.data.copy()


# --------------------------------------------------------------------------- SGD


def test_sgd_plain() -> None:
    lr = 0.1
    a1, a2 = two_steps(SGD, lr=lr)
    np.testing.assert_allclose(a1, THETA0 - lr * G1, rtol=1e-15)
    np.testing.assert_allclose(a2, THETA0 - lr * G1 - lr * G2, rtol=1e-15)


def test_sgd_momentum_buffer_starts_at_first_gradient() -> None:
    lr, mu = 0.1, 0.9
    a1, a2 = two_steps(SGD, lr=lr, momentum=mu)
    b1 = G1  # PyTorch: the buffer starts as the first gradient (not (1 − τ)·g, not 0)
    np.testing.assert_allclose(a1, THETA0 - lr * b1, rtol=1e-15)
    b2 = mu * b1 + G2
    np.testing.assert_allclose(a2, a1 - lr * b2, rtol=1e-15)


def test_sgd_momentum_with_dampening() -> None:
    lr, mu, tau = 0.05, 0.8, 0.3
    a1, a2 = two_steps(SGD, lr=lr, momentum=mu, dampening=tau)
    np.testing.assert_allclose(a1, THETA0 - lr * G1, rtol=1e-15)
    np.testing.assert_allclose(a2, a1 - lr * (mu * G1 + (1 - tau) * G2), rtol=1e-15)


def test_sgd_nesterov() -> None:
    lr, mu = 0.1, 0.9
    a1, a2 = two_steps(SGD, lr=lr, momentum=mu, nesterov=True)
    b1 = G1
    np.testing.assert_allclose(a1, THETA0 - lr * (G1 + mu * b1), rtol=1e-15)
    b2 = mu * b1 + G2
    np.testing.assert_allclose(a2, a1 - lr * (G2 + mu * b2), rtol=1e-15)


def test_sgd_weight_decay_with_momentum() -> None:
    lr, mu, wd = 0.1, 0.5, 0.01
    a1, a2 = two_steps(SGD, lr=lr, momentum=mu, weight_decay=wd)
    d1 = G1 + wd * THETA0
    np.testing.assert_allclose(a1, THETA0 - lr * d1, rtol=1e-15)
    d2 = G2 + wd * a1
    np.testing.assert_allclose(a2, a1 - lr * (mu * d1 + d2), rtol=1e-15)


# --------------------------------------------------------------------------- Adam / AdamW


def adam_reference(theta, grads, lr, b1, b2, eps, wd, decoupled):
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta * (1 - lr * wd)
        else:
            g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def test_adam_first_step_is_lr_times_sign() -> None:
    # with bias correction, step 1 moves every coordinate with g ≠ 0 by about lr
    a1, _ = two_steps(Adam, lr=0.01)
    expected = THETA0 - 0.01 * G1 / (np.abs(G1) + 1e-8)
    np.testing.assert_allclose(a1, expected, rtol=1e-12)
    assert a1[1, 1] == THETA0[1, 1]  # g = 0: no move


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_two_steps_closed_form(wd: float) -> None:
    kwargs = {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": wd}
    a1, a2 = two_steps(Adam, **kwargs)
    r1, r2 = adam_reference(THETA0, [G1, G2], 0.01, 0.8, 0.95, 1e-6, wd, decoupled=False)
    np.testing.assert_allclose(a1, r1, rtol=1e-12)
    np.testing.assert_allclose(a2, r2, rtol=1e-12)


def test_adamw_two_steps_closed_form_decoupled_decay() -> None:
    a1, a2 = two_steps(AdamW, lr=0.01, weight_decay=0.1)
    r1, r2 = adam_reference(THETA0, [G1, G2], 0.01, 0.9, 0.999, 1e-8, 0.1, decoupled=True)
    np.testing.assert_allclose(a1, r1, rtol=1e-12)
    np.testing.assert_allclose(a2, r2, rtol=1e-12)
    coupled = adam_reference(THETA0, [G1, G2], 0.01, 0.9, 0.999, 1e-8, 0.1, decoupled=False)
    assert not np.allclose(a2, coupled[1])  # it really is a different rule from Adam's
    assert AdamW([Parameter(np.zeros(1))]).param_groups[0]["weight_decay"] == 0.01


def test_adam_converges_on_a_quadratic() -> None:
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((5, 5))
    A = Q @ Q.T + np.eye(5)  # positive definite
    target = rng.standard_normal(5)
    x = Parameter(np.zeros(5))
    opt = Adam([x], lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        x.grad = A @ (x.data - target)  # ∇ ½ (x − x*)ᵀ A (x − x*)
        opt.step()
    np.testing.assert_allclose(x.data, target, atol=1e-4)


def test_updates_keep_float32() -> None:
    for opt_cls, kwargs in [
        (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        (Adam, {"weight_decay": 0.1}),
        (AdamW, {}),
    ]:
        p = Parameter(THETA0.astype(np.float32))
        opt = opt_cls([p], **kwargs)
        for _ in range(2):
            p.grad = G1.astype(np.float64)  # even a float64 gradient does not upcast
            opt.step()
        assert p.dtype == np.float32
        for value in opt.state[p].values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32


def test_training_a_model_through_autograd() -> None:
    rng = np.random.default_rng(1)
    model = MLP([2, 8, 1], activation="tanh", rng=rng)
    x = rng.standard_normal((32, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:]).astype(np.float32)
    opt = Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = mse_loss(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


# --------------------------------------------------------------------------- groups and state


def test_frozen_and_gradless_params_untouched_and_stateless() -> None:
    frozen = Parameter(THETA0.copy(), requires_grad=False)
    no_grad_yet = Parameter(THETA0.copy())
    active = Parameter(THETA0.copy())
    for opt in (
        SGD([frozen, no_grad_yet, active], lr=0.1, momentum=0.9),
        Adam([frozen, no_grad_yet, active]),
    ):
        frozen.grad = G1.copy()  # even a stray gradient on a frozen parameter is ignored
        active.grad = G1.copy()
        opt.step()
        np.testing.assert_array_equal(frozen.data, THETA0)
        np.testing.assert_array_equal(no_grad_yet.data, THETA0)
        assert not np.array_equal(active.data, THETA0)
        assert frozen not in opt.state and no_grad_yet not in opt.state and active in opt.state
        assert list(opt.state_dict()["state"]) == [2]
        active.data = THETA0.copy()


def test_param_groups_have_their_own_lr() -> None:
    a, b = Parameter(THETA0.copy()), Parameter(THETA0.copy())
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0, "name": "lora_B"}], lr=0.1, momentum=0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    a.grad, b.grad = G1.copy(), G1.copy()
    opt.step()
    np.testing.assert_allclose(a.data, THETA0 - 0.1 * G1)
    np.testing.assert_allclose(b.data, THETA0 - 1.0 * G1)
    # Adam: the second group's larger lr gives a proportionally larger first step
    a.data, b.data = THETA0.copy(), THETA0.copy()
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 16e-3}], lr=1e-3)
    opt.step()
    np.testing.assert_allclose(b.data - THETA0, 16 * (a.data - THETA0), rtol=1e-9)


def test_zero_grad() -> None:
    p = Parameter(THETA0.copy())
    opt = SGD([p], lr=0.1)
    p.grad = G1.copy()
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing happens
    np.testing.assert_array_equal(p.data, THETA0)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: Adam(p, lr=0.01),
        lambda p: AdamW(p, lr=0.01),
    ],
)
def test_state_dict_round_trip_continues_identically(make) -> None:
    grads = [G1, G2, -G1, G2 * 0.5]

    def run(opt, p, gs):
        for g in gs:
            p.grad = g.copy()
            opt.step()

    p = Parameter(THETA0.copy())
    opt = make([p])
    run(opt, p, grads[:2])
    saved_params, saved_opt = p.data.copy(), opt.state_dict()
    saved_bytes = {
        k: v.tobytes() for k, v in saved_opt["state"][0].items() if isinstance(v, np.ndarray)
    }
    run(opt, p, grads[2:])
    # the saved state is a copy, unaffected by the later steps
    assert (
        saved_bytes and {k: saved_opt["state"][0][k].tobytes() for k in saved_bytes} == saved_bytes
    )
    uninterrupted = p.data.copy()

    q = Parameter(saved_params)
    fresh = make([q])
    fresh.load_state_dict(saved_opt)
    run(fresh, q, grads[2:])
    assert q.data.tobytes() == uninterrupted.tobytes()


def test_state_dict_format_is_plain() -> None:
    a, b = Parameter(THETA0.copy()), Parameter(np.zeros(3))
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5}])
    a.grad = G1.copy()
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert set(sd["state"]) == {0}
    assert sd["state"][0]["step"] == 1 and isinstance(sd["state"][0]["exp_avg"], np.ndarray)


def test_load_state_dict_errors() -> None:
    p = Parameter(THETA0.copy())
    opt = Adam([p])
    p.grad = G1.copy()
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        Adam(
            [{"params": [Parameter(THETA0.copy())]}, {"params": [Parameter(np.zeros(1))]}]
        ).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"shape \(2, 3\), the parameter has \(3,\)"):
        Adam([Parameter(np.zeros(3))]).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        Adam([p]).load_state_dict({"state": {}})


def test_hyperparameter_validation() -> None:
    p = [Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="invalid lr"):
        SGD(p, lr=-0.1)
    with pytest.raises(ValueError, match="invalid lr"):
        Adam([{"params": p, "lr": -1.0}])
    with pytest.raises(TypeError, match="lr must be a number"):
        SGD(p, lr="0.1")
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9,))
    with pytest.raises(ValueError, match="betas"):
        AdamW(p, betas=(-0.1, 0.9))
    with pytest.raises(ValueError, match="invalid eps"):
        Adam(p, eps=-1.0)
    with pytest.raises(ValueError, match="invalid momentum"):
        SGD(p, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="invalid weight_decay"):
        AdamW(p, weight_decay=-0.01)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam(iter(()))
    with pytest.raises(ValueError, match="no parameters"):
        Adam([{"params": []}])
    with pytest.raises(TypeError, match="single Tensor"):
        Adam(p[0])
    with pytest.raises(TypeError, match="only optimize Tensors"):
        Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="more than once"):
        Adam([p[0], p[0]])
    with pytest.raises(ValueError, match="more than once"):
        Adam([{"params": p}, {"params": p}])
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rate'\]"):
        Adam([{"params": p, "learning_rate": 0.1}])
