"""Tests for lora_np.experiments.intrinsic_dimension.

The claims are asserted on the session's quick run (seed 0, two seeds inside it); the
margins were chosen after running quick mode with seeds 0..4 (see the comments at each
assertion for the measured range).
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
def quick(quick_run) -> dict:
    """The session's ``reproduce --quick`` result (conftest.py), read once per module."""
    return json.loads((quick_run[1] / "intrinsic_dimension.json").read_text())


# --------------------------------------------------------------------------- fields


def test_quick_result_has_the_required_fields_and_is_strict_json(quick):
    assert quick["quick"] is True and quick["seed"] == 0 and len(quick["seeds"]) >= 2
    for key in ("dims", "accuracy_mean", "accuracy_ci", "baseline", "dint90", "dint90_ci", "D"):
        assert key in quick["scratch"], key
    for key in ("D", "dint90", "dint90_ci"):
        assert key in quick["width_sweep"], key
    for key in ("dint90_pretrained", "dint90_scratch", "ratio", "dint90_improvement_pretrained"):
        assert key in quick["finetune_vs_scratch"], key
    assert quick["projection"] == "fastfood"
    scratch = quick["scratch"]
    assert len(scratch["accuracy_mean"]) == len(scratch["dims"]) == len(scratch["accuracy_ci"])
    assert np.array(scratch["accuracy"]).shape == (len(scratch["dims"]), len(quick["seeds"]))
    assert all(0.0 <= a <= 1.0 for a in scratch["accuracy_mean"])
    # an accuracy's interval stays within what an accuracy can be
    assert all(0.0 <= end <= 1.0 for ci in scratch["accuracy_ci"] for end in ci if end is not None)
    assert len(quick["width_sweep"]["D"]) == len(quick["width_sweep"]["dint90"])
    json.dumps(quick, allow_nan=False)  # strict JSON: no NaN, no numpy types


def test_each_dint90_lies_inside_its_bootstrap_interval(quick):
    curves = [quick["scratch"], *quick["width_sweep"]["curves"], *quick["depth_sweep"]["curves"]]
    curves += list(quick["projections"]["curves"].values())
    curves += list(quick["conv_vs_fc"]["curves"].values())
    curves += list(quick["shuffled_labels"]["curves"].values())
    for curve in curves:
        lo, hi = curve["dint90_ci"]
        assert lo <= curve["dint90"] <= hi


# --------------------------------------------------------------------------- claims


def test_digits_intrinsic_dimension_is_a_small_fraction_of_the_weights(quick):
    s = quick["scratch"]
    assert s["D"] == 26_122
    assert s["baseline"] > 0.93  # direct training works
    assert s["accuracy_mean"][0] < s["target"]  # the smallest d is too small: not trivial
    assert s["dint90_bracketed"]
    # seeds 0..4 (quick): d_int90 ≈ 226-257, its interval's top 240-286: about 1% of D
    assert s["dint90_ci"][1] < 0.02 * s["D"]


def test_dint90_nearly_constant_while_the_width_grows(quick):
    sweep = quick["width_sweep"]
    D, dint = np.array(sweep["D"], float), sweep["dint90"]
    assert D.max() / D.min() >= 4  # the widths multiply D at least four times
    assert all(d is not None for d in dint)
    # seeds 0..4 (quick, widths 32 and 128, D × 7.5): max/min of d_int90 1.01-1.29, the
    # log-log slope against D 0.01-0.13 (it would be 1 if d_int90 were a fixed fraction of D)
    assert max(dint) / min(dint) < 1.5
    slope = np.polyfit(np.log(D), np.log(dint), 1)[0]
    assert abs(slope) < 0.2


def test_dint90_grows_far_slower_than_depth_adds_weights(quick):
    depth = quick["depth_sweep"]
    dint, D = np.array(depth["dint90"], float), np.array(depth["D"], float)
    # seeds 0..4 (quick, 1 and 2 hidden layers, D × 1.44): max/min of d_int90 1.02-1.21
    assert dint.max() / dint.min() < 1.5
    assert dint.max() / dint.min() < D.max() / D.min()


def test_dense_sparse_and_fastfood_projections_agree(quick):
    projections = quick["projections"]
    values = [projections[name] for name in ("dense", "sparse", "fastfood")]
    # seeds 0..4 (quick): max/min over the three projections 1.03-1.37
    assert max(values) / min(values) < 1.5


def test_a_conv_net_needs_fewer_directions_than_a_fully_connected_one(quick):
    cvf = quick["conv_vs_fc"]
    assert 0.9 < cvf["conv_D"] / cvf["fc_D"] < 1.2  # about the same number of weights
    # seeds 0..4 (quick): conv / FC d_int90 0.68-0.91 (the full run: 0.90, intervals overlap)
    assert cvf["conv"] < 0.95 * cvf["fc"]


def test_shuffled_labels_need_far_more_directions(quick):
    shuffled = quick["shuffled_labels"]
    # seeds 0..4 (quick): shuffled / true 3.2-4.2, the two intervals never overlap
    assert shuffled["dint90"] > 3 * shuffled["dint90_true"]
    assert shuffled["dint90_ci"][0] > shuffled["dint90_true_ci"][1]
    assert shuffled["n_examples"] == experiment.SHUFFLED_N


def test_pretraining_lowers_dint90_on_the_planted_task(quick):
    ft = quick["finetune_vs_scratch"]
    assert ft["dint90_pretrained"] is not None and ft["dint90_scratch"] is not None
    # seeds 0..4 (quick): scratch / pretrained 1.7-6.6, its interval's bottom 1.10-4.48
    assert ft["dint90_pretrained"] * 1.4 < ft["dint90_scratch"]
    assert ft["ratio"]["ci"][0] > 1.0
    # the pretrained student knows teacher A, which already labels most of B right
    assert ft["pretrained_start_accuracy"] > 0.5
    checkpoints = quick["pretrain_checkpoints"]
    assert checkpoints["dint90"][-1] < checkpoints["dint90"][0]
    assert checkpoints["dint90"][0] == ft["dint90_scratch"]


def test_digits_control_starts_from_a_fresh_head(quick):
    control = quick["digits_control"]
    for key in ("dint90_pretrained", "dint90_scratch", "pretrained", "scratch", "ratio"):
        assert key in control
    assert "0-4" in control["task"] and control["head"] == "re-initialised"
    # a fresh head: no memory of "never 5-9", but no head start either
    assert control["pretrained_start_accuracy"] < 0.35
    assert control["pretrained_accuracy_on_0_4"]["mean"] > 0.9


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


def test_toy_sum_problem_refuses_a_dimension_that_is_not_an_int():
    with pytest.raises(
        ValueError, match=r"dims must be increasing ints in \[1, D = 20\], got \[2.9\]"
    ):
        experiment.toy_sum_problem(dims=[2.9], D=20, groups=2)


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
        depths=[1],
        conv_dims=[5, 10],
        shuffled_dims=[5, 10],
        shuffled_true_dims=[5, 10],
        checkpoints=[0, 20],
        planted_dims=[5, 10],
        control_dims=[5, 10],
        toy_dims=[9, 10],
        toy_steps=5,
    )
    monkeypatch.setitem(experiment.SETTINGS, True, tiny)
    first = jsonable(experiment.run(quick=True, seed=2, progress=False))
    second = jsonable(experiment.run(quick=True, seed=2, progress=False))
    assert json.dumps(first) == json.dumps(second)  # bit for bit
    assert first["width_sweep"]["widths"] == [32, 128]
    other = jsonable(experiment.run(quick=True, seed=3, progress=False))
    assert other["scratch"]["accuracy"] != first["scratch"]["accuracy"]


def test_plot_and_summary_from_the_dict_alone(quick):
    reloaded = json.loads(json.dumps(quick))
    fig = experiment.plot(reloaded)
    assert isinstance(fig, Figure) and len(fig.axes) == 12
    line = experiment.summary(reloaded)
    assert "\n" not in line and "d_int90" in line and "toy sum d_int = 10" in line
