"""Tests for the intrinsic-dimension part of lora_np.subspace.intrinsic_dimension."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lora_np.data import digits_split
from lora_np.nn import MLP
from lora_np.subspace.intrinsic_dimension import (
    crossing_dimension,
    crossing_interval,
    intrinsic_dimension,
    summarize_runs,
)


def digits_mlp(rng: np.random.Generator) -> MLP:
    return MLP([64, 128, 128, 10], rng=rng)


@pytest.fixture(scope="module")
def digits():
    return digits_split()


# --------------------------------------------------------------------------- crossing


def test_crossing_interpolates_linearly_in_log_d():
    # halfway in accuracy between d = 10 and d = 1000 is halfway in log d: d = 100
    d, grid, bracketed = crossing_dimension([10, 1000, 5000], [0.5, 0.9, 0.95], 0.7)
    assert math.isclose(d, 100.0) and grid == 1000 and bracketed
    d, grid, _ = crossing_dimension([10, 100], [0.5, 0.9], 0.8)
    assert math.isclose(math.log10(d), 1.75)  # three quarters of the way from 10 to 100
    d, grid, _ = crossing_dimension([10, 100], [0.5, 0.9], 0.9)  # exactly at a grid point
    assert math.isclose(d, 100.0) and grid == 100


def test_crossing_first_point_and_never():
    assert crossing_dimension([10, 100], [0.95, 0.97], 0.9) == (10.0, 10, False)
    assert crossing_dimension([10, 100], [0.5, 0.6], 0.9) == (None, None, False)
    # the first crossing counts, even if a later grid point dips below again
    d, grid, _ = crossing_dimension([10, 100, 1000], [0.5, 0.95, 0.85], 0.9)
    assert grid == 100 and 10 < d < 100
    with pytest.raises(ValueError, match="2 dims but 3"):
        crossing_dimension([10, 100], [0.5, 0.6, 0.7], 0.9)


# --------------------------------------------------------------------------- digits


def test_digits_mlp_intrinsic_dimension_is_a_few_hundred(digits):
    """The issue's "done when": the 64-128-128-10 MLP (D = 26,122) reaches 90% of its
    directly trained accuracy in a random subspace of a few hundred dimensions."""
    result = intrinsic_dimension(
        digits_mlp,
        digits,
        dims=[50, 150, 450],
        seeds=[0],
        projection="sparse",
        steps=500,
        baseline_steps=300,
        progress=False,
    )
    D = result["D"]
    assert D == 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10 == 26_122
    assert result["baseline"] > 0.93  # direct training works
    assert "trained directly" in result["baseline_source"]
    assert math.isclose(result["target"], 0.9 * result["baseline"])
    acc = result["accuracy_mean"]
    assert acc[0] < result["target"]  # d = 50 is too small: the measurement is not trivial
    assert acc[0] < acc[1] < acc[2]
    assert result["dint90_bracketed"]
    assert 50 < result["dint90"] < 0.05 * D  # well under 5% of the weights
    assert result["dint90_grid"] in (150, 450)
    print(f"digits d_int90 ≈ {result['dint90']:.0f} of D = {D}; accuracy per d: {acc}")


def test_same_seeds_same_result_and_given_baseline(digits):
    kwargs = dict(
        dims=[8, 16], seeds=[0, 1], baseline=0.95, projection="fastfood", steps=15, progress=False
    )
    first = intrinsic_dimension(digits_mlp, digits, **kwargs)
    second = intrinsic_dimension(digits_mlp, digits, **kwargs)
    assert first == second
    assert first["baseline_source"] == "given" and first["baseline_std"] is None
    assert np.array(first["accuracy"]).shape == (2, 2)
    assert len(first["accuracy_std"]) == 2
    assert first["accuracy"][0][0] != first["accuracy"][0][1]  # seeds differ
    assert math.isclose(first["target"], 0.9 * 0.95)
    # the spread over seeds is the sample standard deviation, as in the intervals
    np.testing.assert_allclose(first["accuracy_std"], np.std(first["accuracy"], axis=1, ddof=1))
    # one baseline per seed may come as an array too
    per_seed = intrinsic_dimension(
        digits_mlp, digits, **{**kwargs, "baseline": np.array([0.95] * 2)}
    )
    assert per_seed["accuracy"] == first["accuracy"] and per_seed["target"] == first["target"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: crossing_dimension([100, 50, 200], [0.1, 0.5, 0.9], 0.8), "strictly increasing"),
        (lambda: crossing_dimension([0, 10], [0.1, 0.9], 0.8), "dims must be positive ints"),
        (lambda: crossing_dimension([10, 100], [float("nan"), 0.9], 0.5), "must be finite"),
        (
            lambda: summarize_runs([10, 20], [[0.5, 0.6, 0.7], [0.9] * 3], [0.95] * 3, [0.1]),
            "1 starts for 3 seeds",
        ),
        (
            lambda: summarize_runs([10, 20], [[0.5, 0.6], [0.9] * 2], [0.95] * 2, draws=0),
            "draws must be a positive int, got 0",
        ),
        (
            lambda: crossing_interval([10, 20], [[0.5, 0.6], [0.9] * 2], [0.5]),
            "one target per seed",
        ),
        (
            lambda: crossing_interval([10, 20], [[0.5, 0.6], [0.9] * 2], [0.5] * 2, level=1.5),
            r"level must be a number in \(0, 1\), got 1.5",
        ),
    ],
)
def test_the_summaries_name_a_bad_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_absolute_threshold(digits):
    result = intrinsic_dimension(
        digits_mlp,
        digits,
        dims=[8, 16],
        baseline=0.97,
        absolute_threshold=0.0,
        steps=5,
        progress=False,
    )
    assert result["target"] == 0.0 and result["target_rule"] == "absolute threshold"
    assert result["dint90"] == 8.0 and not result["dint90_bracketed"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dims": [100, 50]}, ValueError, "increasing"),
        ({"dims": [0, 5]}, ValueError, "positive"),
        ({"dims": [10, 30_000]}, ValueError, "D = 26122"),
        ({"dims": [10], "projection": "orthogonal"}, ValueError, "projection"),
        ({"dims": [10], "optimizer": "lbfgs"}, ValueError, "optimizer"),
        ({"dims": [10], "seeds": [1, 1]}, ValueError, "distinct"),
        ({"dims": [10], "threshold": 0}, ValueError, "threshold"),
    ],
)
def test_errors(digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        intrinsic_dimension(digits_mlp, digits, progress=False, **kwargs)


def test_bad_data():
    with pytest.raises(TypeError, match="X_train, y_train, X_test, y_test"):
        intrinsic_dimension(digits_mlp, (np.zeros((3, 64)), np.zeros(3)), dims=[5])
