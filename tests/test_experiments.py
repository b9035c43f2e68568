"""Tests for lora_np.experiments and ``python -m lora_np reproduce``.

Structure (add to it, keep it):

* one ``reproduce --quick`` run of every registered experiment into a temporary folder
  (the session fixture ``quick_run``), as CI runs it;
* a parametrised test over the registry: each JSON exists, is strict JSON, holds its
  experiment's required fields (:data:`REQUIRED_FIELDS`), and a PNG was written;
* per experiment, its own test functions asserting the claims it exists to show, on the
  quick result (margins chosen after running seeds 0..4);
* the CLI's own machinery (atomic writes, argument checking).
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import threadpoolctl
from matplotlib.figure import Figure

from lora_np.cli import main
from lora_np.cli.reproduce import blas_threads, output_folder, reproduce, write_atomic
from lora_np.experiments import EXPERIMENTS, load, names
from lora_np.experiments.common import jsonable

# The fields each experiment's JSON must hold; add a line per new experiment.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "gradcheck_eps": ("eps", "error_float32", "error_float64", "best_eps_float64"),
    "intrinsic_dimension": (
        "scratch",
        "width_sweep",
        "depth_sweep",
        "projections",
        "conv_vs_fc",
        "shuffled_labels",
        "finetune_vs_scratch",
        "pretrain_checkpoints",
        "digits_control",
    ),
    "rank_sweep": (
        "planted_rank",
        "ranks",
        "lora_accuracy",
        "lora_accuracy_ci",
        "lora_trainable",
        "full_accuracy",
        "full_accuracy_ci",
        "full_trainable",
        "curve_steps",
        "digits",
    ),
    "alpha_sweep": ("ranks", "grad_norm_B_standard", "grad_norm_B_rslora", "grids"),
    "subspace_similarity": (
        "phi_top1",
        "random_baseline_top1",
        "phi_ranks",
        "phi_seeds",
        "over_seeds",
    ),
    "variants": (
        "variants",
        "chosen_lr",
        "final_accuracy",
        "per_seed",
        "controls",
        "dora_per_layer",
        "dora_scatter",
    ),
    "tiny_lm": ("baseline", "targets", "ranks", "full_ft", "phi", "samples"),
}

#: The fields named for each experiment that must hold an interval ``[lo, hi]`` (or the
#: dict of intervals) next to the number: "dotted.path" into the JSON.
INTERVAL_FIELDS: dict[str, tuple[str, ...]] = {
    "intrinsic_dimension": (
        "scratch.dint90_ci",
        "shuffled_labels.dint90_ci",
        "shuffled_labels.dint90_true_ci",
        "finetune_vs_scratch.dint90_pretrained_ci",
        "finetune_vs_scratch.dint90_scratch_ci",
        "digits_control.dint90_pretrained_ci",
        "digits_control.dint90_scratch_ci",
    ),
    "rank_sweep": ("full_accuracy_ci", "digits.full_accuracy_ci"),
}


def quick_result(quick_run: tuple[int, Path], name: str) -> dict[str, Any]:
    """The JSON that the session's quick reproduce (the ``quick_run`` fixture of
    conftest.py, shared with the experiment test modules) wrote for ``name``."""
    path = quick_run[1] / f"{name}.json"
    assert path.exists(), f"reproduce --quick wrote no {path.name} (see the captured stderr)"
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- registry


def test_every_registered_experiment_has_required_fields_listed() -> None:
    assert set(REQUIRED_FIELDS) == set(EXPERIMENTS)


@pytest.mark.parametrize("name", names())
def test_quick_run_writes_json_with_fields_and_png(quick_run, name: str) -> None:
    result = quick_result(quick_run, name)
    missing = [field for field in REQUIRED_FIELDS[name] if field not in result]
    assert not missing, f"{name}.json lacks {missing}"
    assert result["quick"] is True
    png = quick_run[1] / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    module = load(name)
    line = module.summary(result)
    assert isinstance(line, str) and line and "\n" not in line


def _at(result: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        result = result[part]
    return result


@pytest.mark.parametrize("name", sorted(INTERVAL_FIELDS))
def test_quick_run_writes_an_interval_next_to_each_headline_number(quick_run, name) -> None:
    result = quick_result(quick_run, name)
    for path in INTERVAL_FIELDS[name]:
        lo, hi = _at(result, path)
        assert lo is not None and hi is not None and lo <= hi, path


def test_intrinsic_dimension_writes_the_named_fields(quick_run) -> None:
    result = quick_result(quick_run, "intrinsic_dimension")
    assert set(result["shuffled_labels"]) >= {"dint90", "dint90_true", "n_examples"}
    depth = result["depth_sweep"]
    assert len(depth["depth"]) == len(depth["dint90"]) == len(depth["dint90_ci"]) >= 2
    assert set(result["projections"]) >= {"dense", "sparse", "fastfood", "dint90_ci"}
    assert set(result["projections"]["dint90_ci"]) == {"dense", "sparse", "fastfood"}
    assert set(result["conv_vs_fc"]) >= {"conv", "fc", "conv_D", "fc_D", "dint90_ci"}
    checkpoints = result["pretrain_checkpoints"]
    assert len(checkpoints["steps"]) == len(checkpoints["dint90"]) == len(checkpoints["dint90_ci"])
    assert checkpoints["steps"][0] == 0 and checkpoints["steps"] == sorted(checkpoints["steps"])
    width = result["width_sweep"]
    assert len(width["dint90_ci"]) == len(width["dint90"])
    assert result["digits_control"]["head"] == "re-initialised"
    for curve in (result["scratch"], *width["curves"]):
        assert curve["n_seeds"] == len(result["seeds"]) >= 2


def test_rank_sweep_writes_baselines_with_per_seed_accuracies(quick_run) -> None:
    result = quick_result(quick_run, "rank_sweep")
    rows = result["digits"]["baselines"]
    methods = [row["method"] for row in rows]
    assert methods[:3] == ["head only", "BitFit", "adapters (Houlsby, m = 4)"]
    assert methods[3].startswith("LoRA r = 4") and methods[-1] == "full fine-tuning"
    seeds = len(result["seeds"])
    for row in rows:
        assert set(row) >= {"method", "trainable", "accuracy"}
        assert len(row["accuracy"]) == seeds and all(0 <= a <= 1 for a in row["accuracy"])
    adapters, lora = rows[2]["trainable"], rows[3]["trainable"]
    assert abs(adapters - lora) < 0.05 * lora  # equal trainable parameters, within 5%
    assert rows[0]["trainable"] == 128 * 10 + 10 and rows[1]["trainable"] == 128 + 128 + 10


def test_quick_run_succeeds_and_leaves_no_temporary_files(quick_run) -> None:
    status, out = quick_run
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}.{ext}" for name in names() for ext in ("json", "png")
    )


@pytest.mark.parametrize("name", names())
def test_every_experiment_defines_run_plot_summary(name: str) -> None:
    module = load(name)
    for function in ("run", "plot", "summary"):
        assert callable(getattr(module, function))


def test_load_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        load("nope")
    with pytest.raises(TypeError, match="must be a str"):
        load(3)


@pytest.mark.parametrize(
    "name", ["gradcheck_eps", "alpha_sweep", "subspace_similarity", "variants"]
)
def test_a_quick_rerun_writes_the_same_json_bit_for_bit(quick_run, name: str, tmp_path) -> None:
    # intrinsic_dimension and rank_sweep are checked the same way at smaller settings, in
    # their own test modules
    assert (
        main(["reproduce", "--quick", "--no-progress", "--only", name, "--out", str(tmp_path)]) == 0
    )
    again = (tmp_path / f"{name}.json").read_bytes()
    assert again == (quick_run[1] / f"{name}.json").read_bytes()


# --------------------------------------------------------------------------- CLI machinery


def test_reproduce_only_rejects_an_unknown_name(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "--only", "not_an_experiment"])
    assert "invalid choice" in capsys.readouterr().err


def _fake_experiment(name: str, fails: bool) -> types.ModuleType:
    module = types.ModuleType(name)

    def run(quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
        if fails:
            raise RuntimeError("this experiment is broken")
        return {"quick": quick, "seed": seed, "value": np.float64(0.5), "missing": np.nan}

    def plot(result: dict[str, Any]) -> Figure:
        fig = Figure()
        fig.subplots().plot([0, 1], [0, result["value"]])
        return fig

    module.run, module.plot, module.summary = run, plot, lambda result: f"value {result['value']}"
    return module


def test_reproduce_reports_a_failure_and_still_runs_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    for name, fails in (("fake_broken", True), ("fake_fine", False)):
        monkeypatch.setitem(sys.modules, f"tests_fake.{name}", _fake_experiment(name, fails))
        monkeypatch.setitem(EXPERIMENTS, name, f"tests_fake.{name}")
    finished = reproduce(["fake_broken", "fake_fine"], tmp_path, quick=True, progress=False)
    assert finished == {"fake_fine": "value 0.5"}
    captured = capsys.readouterr()
    assert "fake_broken: FAILED" in captured.err and "this experiment is broken" in captured.err
    assert "fake_fine: value 0.5" in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_fine.json", "fake_fine.png"]
    saved = json.loads((tmp_path / "fake_fine.json").read_text())
    assert saved == {"quick": True, "seed": 0, "value": 0.5, "missing": None}


def test_blas_threads_rejects_negative_and_limits_when_asked() -> None:
    with pytest.raises(ValueError, match="--threads must be >= 0"):
        blas_threads(-1)
    with blas_threads(0):
        pass
    with blas_threads(1):
        pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert all(p["num_threads"] == 1 for p in pools)


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "result.json"

    def fails(file) -> None:
        file.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_atomic(target, fails)
    assert list(tmp_path.iterdir()) == []
    write_atomic(target, lambda f: f.write("whole"))
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_jsonable_turns_numpy_into_python_and_nan_into_none() -> None:
    value = {"a": np.float32(1.5), "b": np.arange(3), "c": [np.nan, np.inf, 2.0], 4: True}
    assert jsonable(value) == {"a": 1.5, "b": [0, 1, 2], "c": [None, None, 2.0], "4": True}
    json.dumps(jsonable(value), allow_nan=False)
    with pytest.raises(TypeError, match="cannot store a object"):
        jsonable(object())


# --------------------------------------------------------------------------- gradcheck_eps
# seeds 0..4 (quick, geometric mean of 2 draws each): best ε in float64 always 3e-6, best
# error 6e-11..1.2e-10; float32's best 2.6e-5..3.9e-5 (≥ 2e5 × float64's); float32 at
# ε = 1e-6: 2.8e-2..4.7e-2; each end of the float64 curve ≥ 2e7 × its minimum.


def test_gradcheck_eps_float64_minimum_sits_near_1e_6_to_1e_5(quick_run) -> None:
    result = quick_result(quick_run, "gradcheck_eps")
    assert 1e-7 <= result["best_eps_float64"] <= 1e-4
    assert result["best_error_float64"] < 1e-8


def test_gradcheck_eps_curve_is_a_u_in_float64(quick_run) -> None:
    result = quick_result(quick_run, "gradcheck_eps")
    errors = np.array(result["error_float64"])
    eps = np.array(result["eps"])
    assert eps[0] >= 1e-1 and eps[-1] <= 1e-12
    assert errors[0] > 1e4 * errors.min()  # truncation at large ε
    assert errors[-1] > 1e4 * errors.min()  # round-off at small ε


def test_gradcheck_eps_float32_never_gets_close(quick_run) -> None:
    result = quick_result(quick_run, "gradcheck_eps")
    assert result["best_error_float32"] > 1e3 * result["best_error_float64"]
    assert result["error_at_default_eps_float32"] > 1e-3  # gradcheck's ε is noise in float32


def test_gradcheck_eps_same_seed_same_result() -> None:
    module = load("gradcheck_eps")
    first = jsonable(module.run(quick=True, seed=3, progress=False))
    second = jsonable(module.run(quick=True, seed=3, progress=False))
    assert json.dumps(first) == json.dumps(second)
    assert first != jsonable(module.run(quick=True, seed=4, progress=False))


# --------------------------------------------------------------------------- rank_sweep
# seeds 0..4 (quick, each the mean of 2 seeds), ranks 1, 2, 4, 8 with k = 4: accuracy at
# r = 1 0.858..0.903, r = 2 0.903..0.944, r = 4 0.994..0.998, r = 8 0.996..0.998; full
# fine-tuning (same 600 steps) 0.948..0.955; before fine-tuning 0.782..0.847. Along training,
# at step 300 LoRA r = 4 0.971..0.974 vs full 0.931..0.952. Digits → mirrored: before
# 0.39..0.42, LoRA 0.888..0.972, full 0.938..0.972; baselines: head only 0.886..0.915,
# BitFit 0.606..0.650, adapters (m = 4) 0.924..0.949, LoRA r = 4 0.953..0.972.


def _accuracy_at(sweep: dict[str, Any], rank: int) -> float:
    return sweep["lora_accuracy"][sweep["ranks"].index(rank)]


def test_rank_sweep_knee_sits_at_the_planted_rank(quick_run) -> None:
    result = quick_result(quick_run, "rank_sweep")
    k = result["planted_rank"]
    assert k >= 2 and k // 2 in result["ranks"] and max(result["ranks"]) > k
    at_k = _accuracy_at(result, k)
    assert at_k >= 0.98
    assert at_k - _accuracy_at(result, k // 2) >= 0.03  # below k: clearly worse
    above = [a for r, a in zip(result["ranks"], result["lora_accuracy"], strict=True) if r > k]
    assert max(above) - at_k <= 0.015  # above k: nothing more to gain
    assert min(above) >= 0.98


def test_rank_sweep_lora_at_k_matches_full_finetuning_with_fewer_parameters(quick_run) -> None:
    result = quick_result(quick_run, "rank_sweep")
    i = result["ranks"].index(result["planted_rank"])
    assert result["lora_accuracy"][i] >= result["full_accuracy"] - 0.01
    assert result["lora_trainable"][i] * 5 < result["full_trainable"]
    assert result["lora_trainable"] == sorted(result["lora_trainable"])
    assert result["accuracy_before"] < min(result["lora_accuracy"])
    for value in result["lora_accuracy"] + [result["full_accuracy"]]:
        assert 0.0 <= value <= 1.0


def test_rank_sweep_lora_at_k_is_ahead_of_full_finetuning_along_training(quick_run) -> None:
    result = quick_result(quick_run, "rank_sweep")
    i = result["ranks"].index(result["planted_rank"])
    lora = np.mean(result["lora_curves_per_seed"][i], axis=0)
    full = np.mean(result["full_curve_per_seed"], axis=0)
    assert len(lora) == len(full) == len(result["curve_steps"])
    assert result["curve_steps"][-1] == result["steps"]
    middle = len(lora) // 2
    assert lora[middle] > full[middle] + 0.01  # faster ...
    assert 1 - lora[-1] < 0.5 * (1 - full[-1])  # ... and, at this budget, better
    # the curves end where the reported accuracies are
    assert np.isclose(full[-1], result["full_accuracy"])


def test_rank_sweep_learning_rates_come_from_one_grid(quick_run) -> None:
    result = quick_result(quick_run, "rank_sweep")
    for sweep in (result, result["teacher_shift"]):
        assert set(sweep["lora_lr"]) | {sweep["full_lr"]} <= set(result["lr_grid"])
    digits = result["digits"]
    lrs = set(digits["lora_lr"]) | {digits["full_lr"]} | {r["lr"] for r in digits["baselines"]}
    assert lrs <= set(digits["lr_grid"])


def test_rank_sweep_lora_beats_the_other_peft_baselines_on_digits(quick_run) -> None:
    rows = {
        row["method"].split(" (")[0]: row
        for row in quick_result(quick_run, "rank_sweep")["digits"]["baselines"]
    }
    mean = {name: row["accuracy_mean"] for name, row in rows.items()}
    lora = next(name for name in mean if name.startswith("LoRA"))
    assert mean["BitFit"] < mean["head only"] < mean["adapters"] < mean[lora]


def test_rank_sweep_digits_domain_shift_is_learned(quick_run) -> None:
    digits = quick_result(quick_run, "rank_sweep")["digits"]
    assert digits["accuracy_before"] < 0.6  # mirrored digits fool the pretrained model
    assert min(digits["lora_accuracy"]) > digits["accuracy_before"] + 0.3
    assert digits["full_accuracy"] > 0.9


# --------------------------------------------------------------------------- alpha_sweep
# seeds 0..4 (quick, each the mean of 2 seeds): ‖∂L/∂B‖ vs r slope at init −0.52..−0.46
# (α/r), −0.02..+0.04 (α/√r); during steps 2..21 at r = 64, α/r's norm is 0.25..0.27×
# α/√r's. With η tuned at r = 8 and kept, final loss at r = 64: α/√r 0.31..0.35× α/r; from
# r = 16 to 64 α/r's loss falls by 25..33%, α/√r's by 68..75%. Iso-loss slope of log η vs
# log α (mean of the per-seed slopes): Adam −0.47..−0.43, SGD −1.14..−1.07. Not asserted:
# with η re-tuned per rank α/r catches up (the full run shows it; quick mode's η grid is
# too short to).


def test_alpha_sweep_grad_norm_of_b_collapses_under_alpha_over_r_only(quick_run) -> None:
    result = quick_result(quick_run, "alpha_sweep")
    assert -0.75 <= result["grad_norm_slope_standard"] <= -0.3  # theory: −1/2
    assert abs(result["grad_norm_slope_rslora"]) <= 0.15  # theory: 0
    standard = result["grad_norm_B_training_standard"]
    rslora = result["grad_norm_B_training_rslora"]
    assert standard[-1] < 0.4 * rslora[-1]  # the ordering survives the first steps


def test_alpha_sweep_with_eta_kept_larger_ranks_help_more_under_rslora(quick_run) -> None:
    result = quick_result(quick_run, "alpha_sweep")
    ranks = result["ranks"]
    standard, rslora = result["final_loss_standard"], result["final_loss_rslora"]
    assert ranks[-1] >= 64 and 16 in ranks and result["reference_rank"] in ranks
    i16 = ranks.index(16)
    assert rslora[-1] < 0.5 * standard[-1]
    gain_standard = (standard[i16] - standard[-1]) / standard[i16]
    gain_rslora = (rslora[i16] - rslora[-1]) / rslora[i16]
    assert gain_rslora > gain_standard + 0.25


def test_alpha_sweep_alpha_trades_with_the_learning_rate(quick_run) -> None:
    grids = quick_result(quick_run, "alpha_sweep")["grids"]
    adam, sgd = grids["adam"]["contour_slope"], grids["sgd"]["contour_slope"]
    assert -0.7 <= adam <= -0.3  # Adam: η ∝ α^(−1/2) once A and B have both moved
    assert -1.4 <= sgd <= -0.8  # SGD: η ∝ α^(−1)
    assert sgd < adam - 0.4
    for name in ("adam", "sgd"):
        table = grids[name]["final_loss"]
        assert len(table) == len(grids["alphas"])
        assert all(len(row) == len(grids[name]["lrs"]) for row in table)


def test_written_files_get_a_normal_files_permissions(tmp_path: Path) -> None:
    """mkstemp makes private files; the figures must be readable like any other file."""
    target = tmp_path / "figure.json"
    write_atomic(target, lambda f: f.write("{}"))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_quick_runs_write_beside_the_committed_full_run_figures() -> None:
    assert output_folder(None, quick=False) == Path("figures")
    assert output_folder(None, quick=True) == Path("figures/quick")
    assert output_folder("elsewhere", quick=True) == Path("elsewhere")
