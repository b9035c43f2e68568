"""Tests for the variants experiment (LoRA, rsLoRA, DoRA, PiSSA, LoRA+; DoRA's ΔM/ΔD).

Margins chosen after running quick mode for seeds 0..4, which gave: test agreement with
teacher B 0.990..0.999 for LoRA, rsLoRA, DoRA and LoRA+; PiSSA 0.77..0.84 (its start, W's
top singular directions, is unrelated to the randomly planted update); rsLoRA and LoRA
with α·√r identical. LoRA+ against tuned LoRA flips with the budget (quick: LoRA ahead
on every seed, full run: LoRA+ ahead), so it is not asserted. Correlation of (ΔD, ΔM)
over (layer, checkpoint) points: full fine-tuning -0.31..-0.07, LoRA 0.999, DoRA
0.41..0.75; over rows at the end: full -0.06..0.11, LoRA 0.79..0.86, DoRA 0.39..0.56.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from lora_np.data import teacher_student_task
from lora_np.experiments import variants as experiment
from lora_np.experiments.common import jsonable
from lora_np.rng import manual_seed

ADAPTERS = ("LoRA", "rsLoRA", "DoRA", "PiSSA", "LoRA+")


@pytest.fixture(scope="module")
def result() -> dict:
    return jsonable(experiment.run(quick=True, seed=0, progress=False))


def test_result_has_the_fields(result) -> None:
    json.dumps(result, allow_nan=False)
    assert result["variants"] == [*ADAPTERS, "full fine-tuning"]
    for name in result["variants"]:
        full = name == "full fine-tuning"
        grid = result["task"]["full_lr_grid" if full else "lr_grid"]
        assert result["chosen_lr"][name] in grid
        assert [run["lr"] for run in result["grid"][name]] == grid
        assert 0.0 <= result["final_accuracy"][name] <= 1.0
        assert len(result["best"][name]["loss"]) == result["task"]["steps"]
    assert len(result["controls"]) == 2
    for name in ("full fine-tuning", "LoRA", "DoRA"):
        scatter = result["dora_scatter"][name]
        for layer in ("0", "2"):
            assert len(scatter["checkpoints"][layer]["dM"]) == experiment.CHECKPOINTS
            assert len(scatter["rows"][layer]["dD"]) == 64
    # DoRA trains one magnitude per output row more than LoRA
    assert result["trainable"]["DoRA"] == result["trainable"]["LoRA"] + 64 + 64


def test_the_lora_family_solves_the_task_in_the_budget(result) -> None:
    for name in ("LoRA", "rsLoRA", "DoRA", "LoRA+"):
        assert result["final_accuracy"][name] > 0.97, name


def test_pissa_starts_in_the_wrong_subspace_here(result) -> None:
    # the planted update is random, not in W's principal directions where PiSSA starts
    assert result["final_accuracy"]["PiSSA"] < result["final_accuracy"]["LoRA"] - 0.08


def test_rslora_is_lora_with_alpha_times_sqrt_r(result) -> None:
    control = result["controls"]["LoRA, α·√r (= rsLoRA's scaling)"]
    rslora = result["best"]["rsLoRA"]
    assert control["lr"] == rslora["lr"]
    assert control["test_loss"] == pytest.approx(rslora["test_loss"], rel=1e-3)
    np.testing.assert_allclose(control["loss"], rslora["loss"], rtol=1e-3)


def test_lora_plus_control_runs_lora_at_lora_plus_b_learning_rate(result) -> None:
    # whether LoRA+ beats tuned LoRA depends on the budget here (quick: no; full: yes), so
    # only the control's construction is asserted; the figure reports the outcome
    control = result["controls"]["LoRA, lr = LoRA+'s B lr"]
    expected = result["best"]["LoRA+"]["lr"] * result["task"]["lora_plus_ratio"]
    assert control["lr"] == pytest.approx(expected)
    assert len(control["loss"]) == result["task"]["steps"] or control["diverged"]


def test_dora_magnitude_direction_correlations(result) -> None:
    corr = {n: result["dora_scatter"][n]["correlation"] for n in result["dora_scatter"]}
    assert corr["LoRA"]["checkpoints"] > 0.95  # LoRA: ΔM grows with ΔD
    assert corr["full fine-tuning"]["checkpoints"] < 0.0  # full FT: the paper's negative slope
    # DoRA sits between: its correlation is clearly weaker than LoRA's (not negative here)
    assert corr["DoRA"]["checkpoints"] < corr["LoRA"]["checkpoints"] - 0.15
    assert corr["DoRA"]["rows"] < corr["LoRA"]["rows"] - 0.15


def test_plot_and_summary_from_the_dict_alone(result) -> None:
    figure = experiment.plot(json.loads(json.dumps(result)))
    assert isinstance(figure, Figure) and len(figure.axes) >= 8
    line = experiment.summary(result)
    assert "DoRA" in line and "\n" not in line


def test_training_run_is_deterministic_per_seed() -> None:
    task = teacher_student_task(n_train=300, n_test=100, rng=manual_seed(5))
    first = experiment.train_variant(task, "DoRA", 1e-2, steps=20, seed=5)
    second = experiment.train_variant(task, "DoRA", 1e-2, steps=20, seed=5)
    other = experiment.train_variant(task, "DoRA", 1e-2, steps=20, seed=6)
    assert first["loss"] == second["loss"]
    assert first["loss"] != other["loss"]


def test_train_variant_takes_rank_and_options() -> None:
    task = teacher_student_task(n_train=300, n_test=100, rng=manual_seed(5))
    run = experiment.train_variant(task, "LoRA", 1e-2, steps=10, seed=5, rank=2)
    assert run["trainable"] == 2 * (32 + 64) + 2 * (64 + 64)  # r·(in + out) per hidden layer
    exact = experiment.train_variant(
        task, "DoRA", 1e-2, steps=10, seed=5, options={"dora_detach_norm": False}
    )
    detached = experiment.train_variant(task, "DoRA", 1e-2, steps=10, seed=5)
    assert exact["loss"][0] == detached["loss"][0]  # same start: only the gradient differs
    assert exact["loss"] != detached["loss"]
    with pytest.raises(ValueError, match="variant"):
        experiment.train_variant(task, "VeRA", 1e-2, steps=10, seed=5)


def test_make_task_is_the_task_run_uses() -> None:
    task = experiment.make_task(quick=True, seed=0)
    assert len(task.X_train) == experiment.budget(quick=True)["n_train"]
    assert (
        task.shift.layer == experiment.PLANTED_LAYER and task.shift.rank == experiment.PLANTED_RANK
    )
