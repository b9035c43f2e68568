"""Tests for the subspace_similarity experiment (LoRA paper §7 on a planted rank-4 task).

Margins chosen after running quick mode for seeds 0..4 (first seed of each run), which gave:
φ(top-1, r=8 vs r=64) 0.87..0.99 (second run 0.91..0.99); random baseline at (1, 1)
0.0065..0.0085 (1/128 = 0.0078); φ at i = j = 4 (the planted rank) 0.92..0.97;
φ at i = j = 8: 0.48..0.51 (= 4/8: the top 4 shared, the rest noise); φ top-1 between
two r = 64 runs 0.986..0.995; LoRA agreement with teacher B 0.98..0.99;
ΔW's projection of W / random projection 0.84..1.18 (ΔW* planted at random);
full fine-tuning update, share of energy in the top 4 singular values: layer "2" (the
planted one) 0.71..0.74, layer "0" 0.41..0.47.
Table 7 on digits → mirrored digits (a learned update), top-4 directions: ΔW's projection
of W / random projection 5.5..6.6 at r = 4 and 4.6..5.1 at r = 64; W's own / ΔW's
2.7..3.2 at r = 4 and 3.5..3.9 at r = 64; amplification factor at k = r: 5.4..6.5
(r = 4) vs 3.1..3.4 (r = 64), ratio 1.66..2.02.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from lora_np.experiments import subspace_similarity as experiment
from lora_np.rng import get_rng, manual_seed


@pytest.fixture(scope="module")
def result(quick_run) -> dict:
    """The session's ``reproduce --quick`` result (conftest.py): its top-level fields are
    the first seed's, ``over_seeds`` every seed's."""
    return json.loads((quick_run[1] / "subspace_similarity.json").read_text())


def test_result_has_the_fields_and_shapes(result) -> None:
    json.dumps(result, allow_nan=False)
    small, large = result["ranks"]
    assert (small, large) == (8, 64)
    for key in ("phi_top1", "random_baseline_top1", "phi_seeds_top1", "phi_top_planted"):
        assert 0.0 <= result[key] <= 1.0
    assert np.array(result["phi_ranks"]).shape == (small, large)
    assert np.array(result["phi_ranks_random"]).shape == (small, large)
    assert np.array(result["phi_seeds"]).shape == (large, large)
    assert set(result["table7"]) == {"8", "64", "planted"}
    assert set(result["full_update_singular_values"]) == {"0", "2", "4"}
    assert result["phi_top1"] == result["phi_ranks"][0][0]


def test_over_seeds_holds_every_seed_with_an_interval(result) -> None:
    seeds = result["over_seeds"]
    n = seeds["n_seeds"]
    assert n == len(result["seeds"]) >= 2 and seeds["seeds"] == result["seeds"]
    assert seeds["phi_top1"]["per_seed"][0] == result["phi_top1"]  # the first seed's run
    for key in ("phi_top1", "phi_top_planted", "phi_seeds_top1", "random_baseline_top1"):
        summary = seeds[key]
        assert len(summary["per_seed"]) == n
        lo, hi = summary["ci"]
        assert 0.0 <= lo <= summary["mean"] <= hi <= 1.0, key
    for curve in seeds["phi_diagonal"].values():
        assert len(curve["mean"]) == result["ranks"][0] and len(curve["per_seed"]) == n
    for rows in (seeds["table7"], seeds["table7_digits"]):
        for row in rows.values():
            assert (
                row["proj_delta"]["ci"][0]
                <= row["proj_delta"]["mean"]
                <= row["proj_delta"]["ci"][1]
            )


def test_top4_subspace_is_shared_on_every_seed(result) -> None:
    # seeds 0..4 (quick): the lowest φ at the planted rank over seeds inside a run 0.92
    assert min(result["over_seeds"]["phi_top_planted"]["per_seed"]) > 0.8


def test_one_seed_is_the_first_seed_of_run(result) -> None:
    assert (
        experiment.one_seed(True, result["seeds"][1], False)["phi_top1"]
        == (result["over_seeds"]["phi_top1"]["per_seed"][1])
    )


def test_lora_solves_the_task(result) -> None:
    for name, accuracy in result["accuracy"].items():
        if name != "full":
            assert accuracy > 0.95, name


def test_top_direction_is_shared_between_ranks_far_above_chance(result) -> None:
    assert result["phi_top1"] > 0.6
    assert result["phi_top1_seed1"] > 0.6
    assert result["phi_top1"] > 20 * result["random_baseline_top1"]
    assert result["phi_top_planted"] > 0.8  # the top-4 (planted rank) subspaces coincide
    assert result["phi_seeds_top1"] > 0.8  # and across seeds at r = 64


def test_directions_beyond_the_planted_rank_are_noise(result) -> None:
    # top 4 shared, the other 4 of A_8 unrelated: φ(8, 8) ≈ 4/8
    k = result["task"]["planted_rank"]
    phi = np.array(result["phi_ranks"])
    assert abs(phi[7, 7] - k / 8) < 0.1


def test_random_baseline_is_near_max_i_j_over_n(result) -> None:
    n = result["task"]["sizes"][2]
    baseline = np.array(result["phi_ranks_random"])
    assert abs(baseline[0, 0] - 1 / n) < 0.005
    assert abs(baseline[-1, -1] - 64 / n) < 0.05


def test_random_planted_update_is_at_chance_against_w(result) -> None:
    # ΔW* was drawn independently of W, so W has no more weight in ΔW's directions than
    # in random ones; W's own directions hold far more
    row = result["table7"]["8"]["r=4"]
    assert 0.5 < row["proj_delta"] / row["proj_random"] < 2.0
    assert row["proj_weight"] > 3 * row["proj_delta"]
    assert row["amplification"] == pytest.approx(row["delta_norm"] / row["proj_delta"])


def test_full_update_is_concentrated_in_the_planted_layers_top_k(result) -> None:
    energy = result["full_update_energy_top_planted"]
    assert energy["2"] > 0.6
    assert energy["2"] > energy["0"] + 0.15


def test_digits_table7_has_the_fields(result) -> None:
    digits = result["table7_digits"]
    assert digits["ranks"] == [4, 64] and digits["top_k"] == 4
    assert set(digits["table"]) == {"4", "64"}
    assert set(digits["table"]["4"]) == {"r=4"}
    assert set(digits["table"]["64"]) == {"r=4", "r=64"}
    keys = {"proj_delta", "proj_weight", "proj_random", "amplification", "amplification_random"}
    for rows in digits["table"].values():
        for row in rows.values():
            assert keys <= set(row)
            assert row["amplification"] == pytest.approx(row["delta_norm"] / row["proj_delta"])
    assert set(digits["lora_accuracy"]) == {"r=4", "r=64"}
    # fine-tuning did learn the mirrored digits, which the pretrained model could not read
    for accuracy in digits["lora_accuracy"].values():
        assert accuracy > digits["pretrained_accuracy"]["mirrored"] + 0.3


def test_learned_digits_update_projects_more_of_w_than_random_less_than_w(result) -> None:
    # unlike the planted ΔW*, the learned ΔW relates to W: its top-4 directions hold several
    # times more of W than random ones, yet less than W's own top-4 (LoRA Table 7's pattern)
    digits = result["table7_digits"]
    for rank in ("4", "64"):
        row = digits["table"][rank]["r=4"]
        assert row["proj_delta"] > 3 * row["proj_random"], rank
        assert row["proj_weight"] > 2 * row["proj_delta"], rank


def test_digits_amplification_is_larger_at_small_rank(result) -> None:
    table = result["table7_digits"]["table"]
    assert table["4"]["r=4"]["amplification"] > 1.3 * table["64"]["r=64"]["amplification"]


def test_table7_digits_leaves_the_package_generator_alone() -> None:
    manual_seed(5)
    expected = get_rng().standard_normal(3)
    manual_seed(5)
    experiment.table7_digits(seed=1, quick=True, ranks=(2,), top_k=2)
    np.testing.assert_array_equal(get_rng().standard_normal(3), expected)


def test_plot_and_summary_from_the_dict_alone(result) -> None:
    figure = experiment.plot(json.loads(json.dumps(result)))
    assert isinstance(figure, Figure) and len(figure.axes) >= 8
    line = experiment.summary(result)
    assert "φ" in line and "digits Table 7" in line and "\n" not in line


def test_fine_tuning_is_deterministic_per_seed() -> None:
    task = experiment.make_task(3, n_train=300, n_test=100)
    first = experiment.fine_tune(task, 8, (3, 0, 8), steps=20)
    second = experiment.fine_tune(task, 8, (3, 0, 8), steps=20)
    other = experiment.fine_tune(task, 8, (3, 1, 8), steps=20)

    def a_matrix(run: dict) -> np.ndarray:
        return run["model"].get_submodule(experiment.LAYER).lora_a.weight.data

    np.testing.assert_array_equal(a_matrix(first), a_matrix(second))
    assert not np.array_equal(a_matrix(first), a_matrix(other))


def test_budget_is_what_run_uses_and_quick_is_smaller() -> None:
    quick, full = experiment.budget(True), experiment.budget(False)
    assert set(quick) == set(full) == {"steps", "n_train", "n_test"}
    assert quick["steps"] < full["steps"] and quick["n_train"] <= full["n_train"]
    quick, full = experiment.digits_budget(True), experiment.digits_budget(False)
    assert set(quick) == set(full) == {"pretrain_epochs", "finetune_epochs"}
    assert all(quick[key] < full[key] for key in quick)


def test_fine_tune_leaves_teacher_a_alone_and_lora_trains_only_the_adapter() -> None:
    task = experiment.make_task(4, n_train=300, n_test=100)
    before = {k: v.copy() for k, v in task.teacher_a.state_dict().items()}
    lora = experiment.fine_tune(task, 8, (4, 0, 8), steps=10)["model"]
    full = experiment.fine_tune(task, None, (4, 0, 0), steps=10)["model"]
    for key, value in task.teacher_a.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    trainable = {name for name, p in lora.named_parameters() if p.requires_grad}
    assert trainable == {f"{experiment.LAYER}.lora_a.weight", f"{experiment.LAYER}.lora_b.weight"}
    changed = {k for k, v in full.state_dict().items() if not np.array_equal(v, before[k])}
    assert {"0.weight", "2.weight", "4.weight"} <= changed
