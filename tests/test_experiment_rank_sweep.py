"""Tests for rank_sweep's public helpers, ``sweep_ranks``, ``pool_sweeps`` and
``mirror_digits`` (notebook 05 calls them step by step), and ``run``'s determinism at small
settings. The experiment's claims are tested in test_experiments.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lora_np.data import make_teacher, mirror_digits, planted_shift, teacher_dataset, teacher_logits
from lora_np.experiments import rank_sweep
from lora_np.experiments.common import jsonable
from lora_np.experiments.finetune import accuracy, mse_to_logits, train_fixed_budget, with_lora
from lora_np.experiments.rank_sweep import LAST_LOSSES, pool_sweeps, sweep_ranks
from lora_np.nn import MLP, Linear


def test_mirror_digits_flips_each_image_left_right() -> None:
    X = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    mirrored = mirror_digits(X)
    assert mirrored.shape == X.shape and mirrored.dtype == X.dtype
    assert np.array_equal(mirrored.reshape(3, 8, 8), X.reshape(3, 8, 8)[:, :, ::-1])
    assert mirrored[0, 0] == X[0, 7] and mirrored[2, 63] == X[2, 56]
    assert np.array_equal(mirror_digits(mirrored), X)  # its own inverse
    mirrored[0, 0] = -1.0
    assert X[0, 7] == 7.0  # a new array, not a view
    P = mirror_digits(np.eye(64))
    assert np.array_equal(P, P.T) and np.array_equal(P @ P, np.eye(64))
    assert np.array_equal(X @ P.T, mirror_digits(X))
    assert np.linalg.matrix_rank(P - np.eye(64)) == 32


@pytest.mark.parametrize("shape", [(64,), (2, 63), (2, 8, 8)])
def test_mirror_digits_rejects_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        mirror_digits(np.zeros(shape))


@pytest.fixture(scope="module")
def tiny_task() -> dict:
    rng = np.random.default_rng(0)
    teacher = make_teacher((8, 16, 16, 4), rng=rng, calibration_samples=2000)
    X, _ = teacher_dataset(teacher, 256, rng=rng)
    X_test, _ = teacher_dataset(teacher, 128, rng=rng)
    student = MLP([8, 16, 16, 4], rng=rng)
    target = planted_shift(student, "2", 2, 0.5, rng=rng)
    return {
        "student": student,
        "X": X,
        "logits": teacher_logits(target, X).astype(np.float32),
        "X_test": X_test,
        "labels": np.argmax(teacher_logits(target, X_test), axis=1),
    }


def _sweep(task: dict, seed: int = 3) -> dict:
    return sweep_ranks(
        task["student"],
        task["X"],
        task["logits"],
        task["X_test"],
        task["labels"],
        loss=mse_to_logits,
        ranks=[1, 2, 8],
        lora_lrs=[1e-2, 3e-2],
        full_lrs=[1e-2],
        steps=30,
        seed=seed,
    )


def test_sweep_ranks_fields_counts_and_choices(tiny_task) -> None:
    before = {k: v.copy() for k, v in tiny_task["student"].state_dict().items()}
    out = _sweep(tiny_task)
    for key, value in tiny_task["student"].state_dict().items():
        assert np.array_equal(value, before[key]), f"sweep_ranks changed the pretrained {key}"
    assert out["ranks"] == [1, 2, 8]
    for key in ("lora_accuracy", "lora_trainable", "lora_lr", "lora_final_train_loss"):
        assert len(out[key]) == 3, key
    # LoRA on every Linear (8→16, 16→16, 16→4), rank capped at min(in, out) = 4 on the last
    assert out["lora_trainable"] == [
        1 * (8 + 16) + 1 * (16 + 16) + 1 * (16 + 4),
        2 * (8 + 16) + 2 * (16 + 16) + 2 * (16 + 4),
        8 * (8 + 16) + 8 * (16 + 16) + 4 * (16 + 4),
    ]
    assert out["full_trainable"] == sum(p.data.size for p in tiny_task["student"].parameters())
    assert all(lr in (1e-2, 3e-2) for lr in out["lora_lr"]) and out["full_lr"] == 1e-2
    assert out["accuracy_before"] == accuracy(
        tiny_task["student"], tiny_task["X_test"], tiny_task["labels"]
    )
    for value in [*out["lora_accuracy"], out["full_accuracy"], out["accuracy_before"]]:
        assert 0.0 <= value <= 1.0
    assert all(np.isfinite(out["lora_final_train_loss"]))


def test_sweep_ranks_is_repeatable_and_its_runs_can_be_redone(tiny_task) -> None:
    first, second = _sweep(tiny_task), _sweep(tiny_task)
    assert first == second
    assert _sweep(tiny_task, seed=4)["lora_final_train_loss"] != first["lora_final_train_loss"]
    # the documented seeding: adapters from default_rng(seed + 1), batches from default_rng(seed)
    linears = [n for n, m in tiny_task["student"].named_modules() if isinstance(m, Linear)]
    model = with_lora(tiny_task["student"], 2, targets=linears, rng=np.random.default_rng(3 + 1))
    losses = train_fixed_budget(
        model,
        tiny_task["X"],
        tiny_task["logits"],
        steps=30,
        lr=first["lora_lr"][1],
        loss=mse_to_logits,
        rng=np.random.default_rng(3),
    )
    assert float(np.mean(losses[-LAST_LOSSES:])) == first["lora_final_train_loss"][1]
    assert accuracy(model, tiny_task["X_test"], tiny_task["labels"]) == first["lora_accuracy"][1]


def test_sweep_ranks_with_curves_and_chosen_learning_rates(tiny_task) -> None:
    first = _sweep(tiny_task)
    curved = sweep_ranks(
        tiny_task["student"],
        tiny_task["X"],
        tiny_task["logits"],
        tiny_task["X_test"],
        tiny_task["labels"],
        loss=mse_to_logits,
        ranks=[1, 2, 8],
        lora_lrs=[1e-2, 3e-2],
        full_lrs=[1e-2],
        steps=30,
        seed=3,
        eval_every=12,
        chosen_lrs={"lora": first["lora_lr"], "full": first["full_lr"]},
    )
    assert curved["lora_lr"] == first["lora_lr"] and curved["full_lr"] == first["full_lr"]
    assert curved["curve_steps"] == [12, 24, 30]
    assert len(curved["full_curve"]) == 3 and all(len(c) == 3 for c in curved["lora_curves"])
    assert curved["full_curve"][-1] == curved["full_accuracy"]  # the curve ends at the result
    assert [c[-1] for c in curved["lora_curves"]] == curved["lora_accuracy"]


def test_pool_sweeps_means_intervals_and_seeds(tiny_task) -> None:
    sweeps = [_sweep(tiny_task, seed=seed) for seed in (3, 4, 5)]
    pooled = pool_sweeps(sweeps)
    assert pooled["n_seeds"] == 3 and pooled["ranks"] == [1, 2, 8]
    for i in range(3):
        values = [sweep["lora_accuracy"][i] for sweep in sweeps]
        assert pooled["lora_accuracy_per_seed"][i] == values
        assert pooled["lora_accuracy"][i] == pytest.approx(np.mean(values))
        lo, hi = pooled["lora_accuracy_ci"][i]
        assert 0.0 <= lo <= pooled["lora_accuracy"][i] <= hi <= 1.0
    assert pooled["full_accuracy_per_seed"] == [sweep["full_accuracy"] for sweep in sweeps]


def test_run_is_the_same_bit_for_bit_at_small_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = dict(rank_sweep.SETTINGS[True])
    tiny.update(
        n_train=300,
        n_test=100,
        pretrain_steps=20,
        finetune_steps=20,
        eval_every=10,
        ranks=[1, 4],
        control_ranks=[1],
        lrs=[1e-2],
        digits_pretrain_steps=20,
        digits_finetune_steps=20,
        digits_eval_every=10,
        digits_ranks=[1, 4],
        digits_lrs=[1e-2],
    )
    monkeypatch.setitem(rank_sweep.SETTINGS, True, tiny)
    first = json.dumps(jsonable(rank_sweep.run(quick=True, seed=1, progress=False)))
    second = json.dumps(jsonable(rank_sweep.run(quick=True, seed=1, progress=False)))
    assert first == second
    result = json.loads(first)
    assert result["seeds"] == [10, 11] and len(result["digits"]["baselines"]) == 5
    for row in result["digits"]["baselines"]:
        assert len(row["accuracy"]) == 2
