"""Tests for alpha_sweep's public ``task`` (notebook 06 builds its task with it). The
experiment's claims are tested in test_experiments.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lora_np.data import teacher_logits
from lora_np.experiments import alpha_sweep


class _CapturedError(Exception):
    """Raised by the stand-in for the first training stage, to stop run() there."""


@pytest.mark.parametrize(("quick", "seed"), [(True, 0), (True, 3), (False, 1)])
def test_task_is_exactly_what_run_trains_on(
    monkeypatch: pytest.MonkeyPatch, quick: bool, seed: int
) -> None:
    seen: dict[str, Any] = {}

    def first_stage(pretrained: Any, X: np.ndarray, Y: np.ndarray, *rest: Any) -> None:
        seen.update(pretrained=pretrained, X=X, Y=Y)
        raise _CapturedError

    monkeypatch.setattr(alpha_sweep, "_grid", first_stage)
    with pytest.raises(_CapturedError):
        alpha_sweep.run(quick=quick, seed=seed, progress=False)

    # run(seed) trains on the tasks of seeds 10·seed, 10·seed + 1, ...: the first is this one
    pretrained, X, Y = alpha_sweep.task(quick=quick, seed=10 * seed)
    assert X.shape == (alpha_sweep.SETTINGS[quick]["n_train"], alpha_sweep.TEACHER_SIZES[0])
    assert Y.shape == (len(X), alpha_sweep.TEACHER_SIZES[-1]) and Y.dtype == np.float32
    np.testing.assert_array_equal(X, seen["X"])
    np.testing.assert_array_equal(Y, seen["Y"])
    ours, theirs = pretrained.state_dict(), seen["pretrained"].state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_task_depends_on_its_seed_and_has_something_to_learn() -> None:
    pretrained, X, Y = alpha_sweep.task(quick=True, seed=0)
    _, X_other, Y_other = alpha_sweep.task(quick=True, seed=1)
    assert not np.array_equal(X, X_other) and not np.array_equal(Y, Y_other)
    initial_loss = float(np.mean((teacher_logits(pretrained, X) - Y) ** 2))
    assert initial_loss > 0.0  # teacher B differs from the pretrained teacher A
