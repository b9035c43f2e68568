"""Tests for lora_np.lora.analysis on matrices built so the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lora_np.lora.analysis import (
    correlation,
    energy_in_top,
    magnitude_direction_change,
    projected_norm,
    random_subspace_similarity,
    right_singular_vectors,
    singular_values,
    subspace_similarity,
    subspace_similarity_grid,
    top_singular_subspaces,
    update_vs_weight,
)


def with_right_vectors(basis: np.ndarray, singular: list[float], rng) -> np.ndarray:
    """A (r, in) matrix whose right-singular vectors are the columns of ``basis`` (in, r)."""
    r = basis.shape[1]
    left, _ = np.linalg.qr(rng.standard_normal((r, r)))
    return left @ np.diag(singular) @ basis.T


def orthonormal(n: int, k: int, rng) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


# --------------------------------------------------------------------------- φ


def test_phi_is_one_for_the_same_subspace_and_ignores_scale_and_row_mixing():
    rng = np.random.default_rng(0)
    basis = orthonormal(20, 4, rng)
    a1 = with_right_vectors(basis, [4.0, 3.0, 2.0, 1.0], rng)
    a2 = 7.0 * with_right_vectors(basis, [4.0, 3.0, 2.0, 1.0], rng)  # other rows, same V
    for i in range(1, 5):
        assert subspace_similarity(a1, a2, i, i) == pytest.approx(1.0, abs=1e-12)
    # the span of all 4 contains the top-1 direction of the other
    assert subspace_similarity(a1, a2, 1, 4) == pytest.approx(1.0, abs=1e-12)


def test_phi_is_zero_for_orthogonal_subspaces():
    rng = np.random.default_rng(1)
    basis = orthonormal(20, 8, rng)
    a1 = with_right_vectors(basis[:, :3], [3.0, 2.0, 1.0], rng)
    a2 = with_right_vectors(basis[:, 3:], [5.0, 4.0, 3.0, 2.0, 1.0], rng)
    assert subspace_similarity(a1, a2, 3, 5) == pytest.approx(0.0, abs=1e-12)


def test_phi_of_a_constructed_partial_overlap():
    # top-1 of a1 is e0; the top-2 of a2 are e0 and e1, so φ(1, 2) = 1 and φ(2, 2) = 1/2
    a1 = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # right-singular vectors e0, e2
    a2 = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # e0, e1
    assert subspace_similarity(a1, a2, 1, 2) == pytest.approx(1.0)
    assert subspace_similarity(a1, a2, 2, 2) == pytest.approx(0.5)
    assert subspace_similarity(a1, a2, 1, 1) == pytest.approx(1.0)


def test_phi_grid_matches_the_definition_entry_by_entry():
    rng = np.random.default_rng(2)
    a1, a2 = rng.standard_normal((4, 10)), rng.standard_normal((6, 10))
    grid = subspace_similarity_grid(a1, a2)
    assert grid.shape == (4, 6)
    for i in range(1, 5):
        for j in range(1, 7):
            assert grid[i - 1, j - 1] == pytest.approx(subspace_similarity(a1, a2, i, j))
    assert np.all((grid >= -1e-12) & (grid <= 1 + 1e-12))


def test_phi_uses_right_singular_vectors_in_input_space():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 7))
    v = right_singular_vectors(a)
    assert v.shape == (7, 3)
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-12)
    # A's rows lie in the span of its right-singular vectors
    np.testing.assert_allclose(a @ v @ v.T, a, atol=1e-12)


def test_random_baseline_is_about_max_i_j_over_n():
    grid = random_subspace_similarity((4, 64), (16, 64), draws=300, rng=np.random.default_rng(4))
    expected = np.maximum(np.arange(1, 5)[:, None], np.arange(1, 17)[None, :]) / 64
    # the mean over 300 draws is within a few standard errors of max(i, j)/n
    np.testing.assert_allclose(grid, expected, atol=0.012)


def test_phi_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="input size"):
        subspace_similarity(np.ones((2, 5)), np.ones((2, 6)), 1, 1)
    with pytest.raises(ValueError, match=r"i must be in \[1, 2\]"):
        subspace_similarity(np.eye(2, 5), np.eye(2, 5), 3, 1)
    with pytest.raises(TypeError, match="i must be an int"):
        subspace_similarity(np.eye(2, 5), np.eye(2, 5), 1.0, 1)
    with pytest.raises(ValueError, match="2-D"):
        subspace_similarity(np.ones(5), np.eye(2, 5), 1, 1)
    with pytest.raises(ValueError, match="NaN"):
        subspace_similarity(np.full((2, 5), np.nan), np.eye(2, 5), 1, 1)


# --------------------------------------------------------------------------- ΔW vs W


def test_projection_and_amplification_on_a_constructed_case():
    # W = diag(10, 5, 1, 0.5); ΔW = 3·e3 e3ᵀ touches only W's weakest direction (0.5)
    weight = np.diag([10.0, 5.0, 1.0, 0.5])
    delta = np.zeros((4, 4))
    delta[3, 3] = 3.0
    u, v = top_singular_subspaces(delta, 1)
    assert projected_norm(weight, u, v) == pytest.approx(0.5)
    table = update_vs_weight(weight, delta, 1, rng=np.random.default_rng(0))
    assert table["proj_delta"] == pytest.approx(0.5)
    assert table["proj_weight"] == pytest.approx(10.0)  # W's own top direction
    assert table["delta_norm"] == pytest.approx(3.0)
    assert table["weight_norm"] == pytest.approx(math.sqrt(100 + 25 + 1 + 0.25))
    assert table["amplification"] == pytest.approx(6.0)  # 3 / 0.5
    assert 0.0 < table["proj_random"] < 10.0


def test_update_aligned_with_w_is_not_amplified():
    weight = np.diag([10.0, 5.0, 1.0])
    table = update_vs_weight(weight, 2.0 * weight, 2, rng=np.random.default_rng(0))
    assert table["proj_delta"] == pytest.approx(table["proj_weight"])
    assert table["proj_delta"] == pytest.approx(math.hypot(10.0, 5.0))


def test_random_projection_matches_its_expectation():
    # for W = I (n×n) and random orthonormal U, V (n×r): E‖UᵀV‖²_F = r²/n
    n, r = 50, 5
    table = update_vs_weight(np.eye(n), np.eye(n), r, draws=400, rng=np.random.default_rng(1))
    assert table["proj_random"] == pytest.approx(math.sqrt(r * r / n), rel=0.15)


def test_w_own_directions_give_the_largest_projection():
    # Ky Fan: max over orthonormal U, V (r columns) of ‖UᵀWV‖_F is (Σ_{i≤r} σᵢ²)^½
    rng = np.random.default_rng(6)
    weight, delta = rng.standard_normal((12, 9)), rng.standard_normal((12, 9))
    table = update_vs_weight(weight, delta, 3, draws=50, rng=rng)
    assert table["proj_weight"] == pytest.approx(np.sqrt(np.sum(singular_values(weight)[:3] ** 2)))
    assert table["proj_weight"] >= table["proj_delta"]
    assert table["proj_weight"] >= table["proj_random"]


def test_update_vs_weight_checks_shapes():
    with pytest.raises(ValueError, match="one shape"):
        update_vs_weight(np.eye(3), np.eye(4), 1)
    with pytest.raises(ValueError, match="U must be"):
        projected_norm(np.eye(3), np.eye(4, 1), np.eye(3, 1))
    with pytest.raises(ValueError, match="ΔW is zero"):  # no top directions to project on
        update_vs_weight(np.eye(3), np.zeros((3, 3)), 1)


# --------------------------------------------------------------------------- spectra


def test_energy_in_top_of_a_known_spectrum():
    rng = np.random.default_rng(5)
    u, v = orthonormal(6, 3, rng), orthonormal(5, 3, rng)
    m = (u * [3.0, 2.0, 1.0]) @ v.T
    np.testing.assert_allclose(singular_values(m)[:3], [3.0, 2.0, 1.0])
    assert energy_in_top(m, 1) == pytest.approx(9 / 14)
    assert energy_in_top(m, 3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="zero"):
        energy_in_top(np.zeros((2, 2)), 1)


# --------------------------------------------------------------------------- DoRA ΔM / ΔD


def test_magnitude_direction_change_separates_scaling_from_rotation():
    w0 = np.array([[3.0, 4.0], [1.0, 0.0]])
    scaled = w0 * np.array([[2.0], [1.0]])  # row 0 doubled: ΔM = (5 + 0)/2, ΔD = 0
    d_m, d_d = magnitude_direction_change(w0, scaled)
    assert d_m == pytest.approx(2.5) and d_d == pytest.approx(0.0, abs=1e-15)
    rotated = np.array([[-4.0, 3.0], [1.0, 0.0]])  # row 0 turned 90°: ΔM = 0, ΔD = 1/2
    d_m, d_d = magnitude_direction_change(w0, rotated)
    assert d_m == pytest.approx(0.0) and d_d == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero row"):
        magnitude_direction_change(w0, np.zeros((2, 2)))


def test_correlation():
    assert correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(correlation([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="1-D"):
        correlation([1, 2], [1, 2, 3])
