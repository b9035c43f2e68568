"""Tests for lora_np.subspace.projections (dense, sparse, Fastfood P) and lora_np.subspace."""

from __future__ import annotations

import numpy as np
import pytest

from lora_np.gradcheck import gradcheck
from lora_np.nn import MLP, Dropout, Linear, ReLU, Sequential, functional_call
from lora_np.nn import functional as F
from lora_np.subspace import SubspaceModel
from lora_np.subspace.projections import (
    DENSE_MEMORY_BUDGET_BYTES,
    FastfoodProject,
    draw_dense,
    draw_fastfood,
    draw_sparse,
    fwht,
    hadamard,
    make_projection,
    sparse_nonzeros_per_column,
)
from lora_np.tensor import Tensor, no_grad

KINDS = ("dense", "sparse", "fastfood")


def projection_matrix(proj) -> np.ndarray:
    """P column by column, by projecting the unit vectors e_j."""
    with no_grad():
        return np.stack(
            [proj(Tensor(np.eye(proj.d, dtype=proj.dtype)[j])).data for j in range(proj.d)],
            axis=1,
        )


# --------------------------------------------------------------------------- fwht


@pytest.mark.parametrize("n", [1, 2, 8, 64, 128, 1024, 2048])
def test_fwht_equals_hadamard_matrix(n):
    x = np.random.default_rng(n).standard_normal(n)
    np.testing.assert_allclose(fwht(x), hadamard(n) @ x, rtol=1e-10, atol=1e-9)


def test_hadamard_is_symmetric_and_orthogonal_up_to_n():
    h = hadamard(16)
    np.testing.assert_array_equal(h, h.T)
    np.testing.assert_array_equal(h @ h, 16 * np.eye(16))


@pytest.mark.parametrize("n", [2**14, 2**19])
def test_fwht_of_a_long_vector_by_kronecker(n):
    """H_(ab) = H_a ⊗ H_b: with X = x as an (a, b) matrix, H·x = (H_a · X · H_b) flattened."""
    x = np.random.default_rng(n).standard_normal(n)
    a = 2 ** (int(np.log2(n)) // 2)
    expected = hadamard(a) @ x.reshape(a, n // a) @ hadamard(n // a)
    np.testing.assert_allclose(fwht(x), expected.reshape(-1), rtol=1e-9, atol=1e-8)


def test_fwht_twice_is_length_times_identity_on_a_long_vector():
    x = np.random.default_rng(0).standard_normal(2**18)
    np.testing.assert_allclose(fwht(fwht(x)), 2**18 * x, rtol=1e-9, atol=1e-7)


def test_fwht_keeps_dtype_and_input():
    x = np.arange(8, dtype=np.float32)
    before = x.copy()
    assert fwht(x).dtype == np.float32
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros(0), np.zeros((4, 4))])
def test_fwht_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        fwht(bad)


# --------------------------------------------------------------------------- primitives


# (the projections are gradient-checked with every other primitive, in tests/test_ops.py)


def test_fastfood_equals_explicit_matrix_chain():
    """s·(H G Π H B)[:D, :d] built from dense matrices, independently of fwht."""
    rng = np.random.default_rng(1)
    D, d = 11, 5
    s = draw_fastfood(D, np.float64, rng)
    L = s["signs"].shape[0]
    assert L == 16
    H = hadamard(L)
    Pi = np.eye(L)[s["perm"]]  # (Π x)[i] = x[perm[i]]
    V = H @ np.diag(s["gauss"]) @ Pi @ H @ np.diag(s["signs"])
    expected = s["scale"] * V[:D, :d]
    theta = rng.standard_normal(d)
    out = FastfoodProject.apply(Tensor(theta), **s).data
    np.testing.assert_allclose(out, expected @ theta, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(D)
    t = Tensor(theta, requires_grad=True)
    FastfoodProject.apply(t, **s).backward(g)
    np.testing.assert_allclose(t.grad, expected.T @ g, rtol=1e-10, atol=1e-12)


def test_sparse_nonzeros_and_density():
    rng = np.random.default_rng(2)
    D, d = 400, 30
    rows, values = draw_sparse(D, d, np.float64, rng)
    k = sparse_nonzeros_per_column(D)
    assert k == 20 and rows.shape == values.shape == (d, k)
    for j in range(d):
        assert len(set(rows[j])) == k  # distinct rows in each column
    np.testing.assert_allclose(np.abs(values), 1 / np.sqrt(k))
    assert {-1.0, 1.0} == set(np.sign(values).ravel())


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("D", "d"), [(37, 5), (64, 64), (1000, 17)])
def test_adjoint(kind, D, d):
    """⟨P u, v⟩ = ⟨u, Pᵀ v⟩, with Pᵀ v computed by the primitive's backward."""
    rng = np.random.default_rng(D + d)
    proj = make_projection(kind, D, d, dtype=np.float64, rng=rng)
    u = Tensor(rng.standard_normal(d), requires_grad=True)
    v = rng.standard_normal(D)
    pu = proj(u)
    assert pu.shape == (D,)
    pu.backward(v)
    np.testing.assert_allclose(np.dot(pu.data, v), np.dot(u.data, u.grad), rtol=1e-10)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_and_sparse_columns_have_unit_norm(kind, dtype):
    proj = make_projection(kind, 500, 40, dtype=dtype, rng=np.random.default_rng(3))
    P = projection_matrix(proj)
    assert P.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.linalg.norm(P.astype(np.float64), axis=0), 1.0, atol=tol)


def test_fastfood_columns_have_unit_norm_when_d_is_a_power_of_two():
    proj = make_projection("fastfood", 256, 40, dtype=np.float64, rng=np.random.default_rng(4))
    np.testing.assert_allclose(np.linalg.norm(projection_matrix(proj), axis=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fastfood_columns_have_norm_about_one(seed):
    """Truncation to D < L rows: E‖column‖² = 1 (see draw_fastfood); the spread shrinks
    as D grows. D = 3000 (L = 4096), 64 columns."""
    proj = make_projection("fastfood", 3000, 64, dtype=np.float64, rng=np.random.default_rng(seed))
    sq = np.sum(projection_matrix(proj) ** 2, axis=0)
    assert abs(sq.mean() - 1) < 0.02
    assert np.all(np.abs(sq - 1) < 0.1)


def test_dense_memory_budget():
    with pytest.raises(ValueError, match="fastfood"):
        make_projection("dense", 1000, 100, dtype=np.float32, dense_budget_bytes=399_999)
    proj = make_projection("dense", 1000, 100, dtype=np.float32, dense_budget_bytes=400_000)
    assert proj.nbytes == 400_000
    assert DENSE_MEMORY_BUDGET_BYTES == 512 * 2**20
    # 784-1024-1024-10 has D = 1,863,690; d = 10,000 in float32 would be 69 GiB
    with pytest.raises(ValueError, match="budget"):
        make_projection("dense", 1_863_690, 10_000)


@pytest.mark.parametrize("kind", KINDS)
def test_projection_shape_errors(kind):
    proj = make_projection(kind, 20, 4, dtype=np.float64, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        proj(Tensor(np.zeros(5)))
    with pytest.raises(TypeError):
        proj(np.zeros(4))
    with pytest.raises(ValueError, match="d <= D"):
        make_projection(kind, 20, 21)
    with pytest.raises(ValueError, match="unknown projection"):
        make_projection("gaussian", 20, 4)


@pytest.mark.parametrize("draw", [draw_dense, draw_sparse])
def test_drawing_p_names_a_size_that_cannot_be(draw):
    with pytest.raises(ValueError, match="D must be a positive int, got -4"):
        draw(-4, 2)
    with pytest.raises(ValueError, match="d must be a positive int, got 0"):
        draw(5, 0)


# --------------------------------------------------------------------------- SubspaceModel


def small_mlp(dtype=np.float64, seed=0):
    return MLP([4, 6, 3], dtype=dtype, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_starts_as_the_original_model(kind):
    model = small_mlp(np.float32)
    sub = SubspaceModel(model, 9, kind, rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32))
    np.testing.assert_array_equal(sub(x).data, model(x).data)
    assert sub.D == 4 * 6 + 6 + 6 * 3 + 3
    assert sub.theta_d.dtype == np.float32
    np.testing.assert_array_equal(sub.theta_d.data, np.zeros(9, dtype=np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_yield_theta_d_alone(kind):
    sub = SubspaceModel(small_mlp(), 5, kind, rng=np.random.default_rng(0))
    assert [name for name, _ in sub.named_parameters()] == ["theta_d"]
    params = list(sub.parameters())
    assert len(params) == 1 and params[0] is sub.theta_d
    assert list(sub.state_dict()) == ["theta_d"]
    assert all(not p.requires_grad for p in sub.base_model.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_forward_wrt_theta_d(kind):
    rng = np.random.default_rng(5)
    sub = SubspaceModel(small_mlp(), 7, kind, rng=rng)
    x = Tensor(rng.standard_normal((5, 4)))
    theta = rng.standard_normal(7) * 0.5
    assert gradcheck(lambda t: functional_call(sub, {"theta_d": t}, x), [theta])


@pytest.mark.parametrize("kind", KINDS)
def test_backward_reaches_theta_d_only(kind):
    rng = np.random.default_rng(6)
    sub = SubspaceModel(small_mlp(), 7, kind, rng=rng)
    x = Tensor(rng.standard_normal((5, 4)))
    F.cross_entropy(sub(x), np.array([0, 1, 2, 0, 1])).backward()
    assert sub.theta_d.grad is not None and sub.theta_d.grad.shape == (7,)
    assert all(p.grad is None for p in sub.base_model.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_materialize_equals_forward(kind):
    rng = np.random.default_rng(7)
    model = small_mlp()
    sub = SubspaceModel(model, 8, kind, rng=rng)
    sub.theta_d.data = rng.standard_normal(8)
    x = Tensor(rng.standard_normal((5, 4)))
    plain = sub.materialize()
    assert type(plain) is type(model)
    np.testing.assert_allclose(plain(x).data, sub(x).data, rtol=1e-12, atol=1e-12)
    # θ really is θ0 + P·θ_d, parameter by parameter
    P = projection_matrix(sub.projection)
    theta = sub.theta0 + P @ sub.theta_d.data
    flat = np.concatenate([p.data.reshape(-1) for p in plain.parameters()])
    np.testing.assert_allclose(flat, theta, rtol=1e-12, atol=1e-12)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert all(p.requires_grad for p in plain.parameters())
    # independent of the subspace model afterwards, and different from the original
    out = plain(x).data.copy()
    sub.theta_d.data = np.zeros(8)
    np.testing.assert_array_equal(plain(x).data, out)
    assert not np.allclose(out, model(x).data)


def test_training_changes_theta_d_and_never_the_original():
    rng = np.random.default_rng(8)
    model = small_mlp()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sub = SubspaceModel(model, 6, "fastfood", rng=rng)
    x = Tensor(rng.standard_normal((30, 4)))
    y = rng.integers(0, 3, 30)
    losses = []
    for _ in range(30):
        sub.zero_grad()
        loss = F.cross_entropy(sub(x), y)
        loss.backward()
        sub.theta_d.data -= 0.5 * sub.theta_d.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(sub.theta0, np.concatenate([v.ravel() for v in before.values()]))


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_projection(kind):
    theta = Tensor(np.random.default_rng(0).standard_normal(5))

    def project(seed):
        sub = SubspaceModel(small_mlp(), 5, kind, rng=np.random.default_rng(seed))
        with no_grad():
            return sub.projection(theta).data

    np.testing.assert_array_equal(project(3), project(3))
    assert not np.allclose(project(3), project(4))


def test_errors():
    model = small_mlp()
    D = sum(p.size for p in model.parameters())
    with pytest.raises(ValueError, match=f"d = {D + 1}"):
        SubspaceModel(model, D + 1)
    with pytest.raises(ValueError, match="1 <= d <= D"):
        SubspaceModel(model, 0)
    with pytest.raises(TypeError, match="int"):
        SubspaceModel(model, 2.0)
    with pytest.raises(TypeError, match="Module"):
        SubspaceModel(np.zeros(3), 2)
    with pytest.raises(ValueError, match="unknown projection"):
        SubspaceModel(model, 2, projection="orthogonal")
    with pytest.raises(ValueError, match="fastfood"):
        SubspaceModel(model, 20, "dense", dense_budget_bytes=100)
    SubspaceModel(model, D)  # d = D is allowed


def test_train_and_eval_reach_the_wrapped_model():
    model = Sequential(Linear(4, 8), ReLU(), Dropout(0.5), Linear(8, 2))
    sub = SubspaceModel(model, 3, "sparse", rng=np.random.default_rng(0))
    sub.eval()
    assert not sub.base_model.training and not sub.base_model[2].training
    x = Tensor(np.ones((2, 4), dtype=np.float32))
    np.testing.assert_array_equal(sub(x).data, sub(x).data)  # dropout off: deterministic
    sub.train()
    assert sub.base_model[2].training
    assert sub.materialize().training
    assert not sub.eval().materialize().training


def test_mode_follows_the_wrapper_even_when_set_directly():
    """lora_np.train.evaluate sets `training` module by module and restores it; the
    wrapped model (not a registered submodule) must follow the wrapper's mode."""
    model = Sequential(Linear(4, 8), ReLU(), Dropout(0.5), Linear(8, 2))
    sub = SubspaceModel(model, 3, "sparse", rng=np.random.default_rng(0))
    sub.eval()
    sub.training = True  # what a mode-restoring helper does
    x = Tensor(np.ones((50, 4), dtype=np.float32))
    first = sub(x).data
    assert sub.base_model[2].training
    assert not np.array_equal(first, sub(x).data)  # dropout is active again
