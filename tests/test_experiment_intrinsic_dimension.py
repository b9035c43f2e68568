"""Tests for lora_np.experiments.intrinsic_dimension.

The claims are asserted on one quick run (seed 0); the margins were chosen after running
quick mode with seeds 0..4 (see the comments at each assertion for the measured range).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from lora_np.experiments import intrinsic_dimension as experiment
from lora_np.experiments.common import jsonable


@pytest.fixture(scope="module")
def quick() -> dict:
    return jsonable(experiment.run(quick=True, seed=0, progress=False))


# --------------------------------------------------------------------------- fields


def test_quick_result_has_the_required_fields_and_is_strict_json(quick):
    assert quick["quick"] is True and quick["seed"] == 0
    for key in ("dims", "accuracy", "baseline", "dint90", "D"):
        assert key in quick["scratch"], key
    for key in ("D", "dint90"):
        assert key in quick["width_sweep"], key
    for key in ("dint90_pretrained", "dint90_scratch"):
        assert key in quick["finetune_vs_scratch"], key
    assert quick["projection"] == "fastfood"
    scratch = quick["scratch"]
    assert len(scratch["accuracy"]) == len(scratch["dims"]) == len(scratch["accuracy_std"])
    assert all(0.0 <= a <= 1.0 for a in scratch["accuracy"])
    assert len(quick["width_sweep"]["D"]) == len(quick["width_sweep"]["dint90"])
    json.dumps(quick, allow_nan=False)  # strict JSON: no NaN, no numpy types


# --------------------------------------------------------------------------- claims


def test_digits_intrinsic_dimension_is_a_small_fraction_of_the_weights(quick):
    s = quick["scratch"]
    assert s["D"] == 26_122
    assert s["baseline"] > 0.93  # direct training works
    assert s["accuracy"][0] < s["target"]  # the smallest d is too small: not trivial
    assert s["dint90_bracketed"]
    # seeds 0..4 (quick): d_int90 ≈ 204-309, 0.8-1.2% of D: well under 5%
    assert s["dint90"] < 0.02 * s["D"]


def test_dint90_nearly_constant_while_the_width_grows(quick):
    sweep = quick["width_sweep"]
    D, dint = np.array(sweep["D"], float), sweep["dint90"]
    assert D.max() / D.min() >= 4  # the widths multiply D at least four times
    assert all(d is not None for d in dint)
    # seeds 0..4 (quick, one seed each): max/min of d_int90 over widths 32, 64, 128 is
    # 1.10-1.52 while D grows 7.5×; the log-log slope of d_int90 against D is near 0
    # (it would be 1 if d_int90 were a fixed fraction of D).
    assert max(dint) / min(dint) < 2.0
    slope = np.polyfit(np.log(D), np.log(dint), 1)[0]
    assert abs(slope) < 0.3


def test_pretraining_lowers_dint90_on_the_planted_task(quick):
    ft = quick["finetune_vs_scratch"]
    assert ft["dint90_pretrained"] is not None and ft["dint90_scratch"] is not None
    # seeds 0..4 (quick): scratch / pretrained = 1.7, 3.5, 7.8, 2.2, 3.2
    assert ft["dint90_pretrained"] * 1.4 < ft["dint90_scratch"]
    # the pretrained student knows teacher A, which already labels most of B right
    assert ft["pretrained_start_accuracy"] > 0.5


def test_digits_control_is_reported_not_asserted(quick):
    control = quick["digits_control"]
    for key in ("dint90_pretrained", "dint90_scratch", "pretrained", "scratch"):
        assert key in control
    assert "0-4" in control["task"]


# --------------------------------------------------------------------------- toy problem


def test_toy_sum_problem_has_intrinsic_dimension_exactly_ten():
    toy = experiment.toy_sum_problem(dims=range(1, 15), steps=200, seed=0)
    assert toy["D"] == 1000 and toy["groups"] == 10
    assert toy["dint_exact"] == 10
    exact = np.array(toy["exact_min_loss"]) / toy["initial_loss"]
    assert np.all(exact[:9] > 1e-4)  # d < 10: no point of the subspace solves it
    assert np.all(exact[9:] < 1e-20)  # d >= 10: one does (zero up to rounding)
    trained = np.array(toy["trained_loss"])
    assert np.all(trained >= np.array(toy["exact_min_loss"]) - 1e-9)  # training can't beat it
    assert toy["dint_trained"] is None or toy["dint_trained"] >= 10


def test_toy_sum_problem_dimension_is_the_number_of_groups_not_the_size():
    toy = experiment.toy_sum_problem(dims=range(1, 9), D=300, groups=5, steps=0, seed=3)
    assert toy["dint_exact"] == 5
    # with no training steps, θ_d stays 0 and the loss stays the loss at θ0
    assert all(math.isclose(v, toy["initial_loss"]) for v in toy["trained_loss"])


def test_toy_sum_problem_same_seed_same_result():
    kwargs = {"dims": [9, 10, 11], "steps": 30, "seed": 1}
    assert experiment.toy_sum_problem(**kwargs) == experiment.toy_sum_problem(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"D": 0}, "D must be a positive int"),
        ({"D": 1000, "groups": 3}, "equal groups"),
        ({"groups": 0}, "groups must be"),
        ({"dims": [5, 3]}, "increasing"),
        ({"dims": [0, 3]}, "increasing ints"),
        ({"dims": [10, 2000]}, "D = 1000"),
        ({"steps": -1}, "steps"),
    ],
)
def test_toy_sum_problem_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        experiment.toy_sum_problem(**kwargs)


# --------------------------------------------------------------------------- run, plot, summary


def test_same_seed_same_result(monkeypatch):
    tiny = dict(experiment.SETTINGS[True])
    tiny.update(
        steps=15,
        baseline_steps=15,
        digits_dims=[5, 10],
        widths=[32],
        width_dims=[5, 10],
        planted_dims=[5, 10],
        control_dims=[5, 10],
        toy_dims=[9, 10],
        toy_steps=5,
    )
    monkeypatch.setitem(experiment.SETTINGS, True, tiny)
    monkeypatch.setattr(experiment, "PRETRAIN_STEPS", 20)
    first = jsonable(experiment.run(quick=True, seed=2, progress=False))
    second = jsonable(experiment.run(quick=True, seed=2, progress=False))
    assert first == second
    assert first["width_sweep"]["widths"] == [32, 128]
    other = jsonable(experiment.run(quick=True, seed=3, progress=False))
    assert other["scratch"]["accuracy"] != first["scratch"]["accuracy"]


def test_plot_and_summary_from_the_dict_alone(quick):
    reloaded = json.loads(json.dumps(quick))
    fig = experiment.plot(reloaded)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    line = experiment.summary(reloaded)
    assert "\n" not in line and "d_int90" in line and "toy sum d_int = 10" in line
