"""Tests for lora_np.train: fit, evaluate, History."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lora_np.nn import MLP, Dropout, Linear, Sequential
from lora_np.nn.functional import cross_entropy, mse_loss
from lora_np.optim import SGD, Adam
from lora_np.rng import manual_seed
from lora_np.tensor import Tensor
from lora_np.train import DivergenceWarning, evaluate, fit


def blobs(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in 2-d (linearly separable)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = rng.integers(0, 3, size=n)
    X = centers[y] + rng.standard_normal((n, 2))
    return X.astype(np.float32), y


def make(seed: int = 0, dropout: float = 0.0) -> MLP:
    return MLP([2, 16, 3], dropout=dropout, rng=np.random.default_rng(seed))


def test_fit_reduces_loss_and_learns_a_separable_problem() -> None:
    X, y = blobs()
    model = make()
    before = evaluate(model, X, y)
    history = fit(
        model,
        (X, y),
        optimizer=Adam(model.parameters(), lr=0.01),
        epochs=10,
        batch_size=32,
        eval_data=blobs(100, seed=1),
        progress=False,
        rng=np.random.default_rng(0),
    )
    after = evaluate(model, X, y)
    assert after["loss"] < 0.2 * before["loss"]
    assert after["accuracy"] >= 0.98
    assert np.mean(history.loss[-7:]) < 0.2 * np.mean(history.loss[:7])
    # 200 samples in batches of 32: 7 steps per epoch, evaluated after each epoch
    assert history.steps == 70 and len(history.loss) == 70 and history.epochs == 10
    assert [s for s, _ in history.train_accuracy] == list(range(7, 71, 7))
    assert [s for s, _ in history.eval_accuracy] == list(range(7, 71, 7))
    assert len(history.eval_loss) == 10
    assert history.eval_accuracy[-1][1] >= 0.97
    assert history.train_accuracy[-1][1] == pytest.approx(after["accuracy"])
    assert history.wall_time > 0


def test_fit_by_steps_and_eval_every() -> None:
    X, y = blobs(100)
    model = make()
    history = fit(
        model,
        (X, y),
        optimizer=SGD(model.parameters(), lr=0.1),
        steps=25,
        batch_size=10,
        eval_every=10,
        progress=False,
    )
    assert history.steps == 25 and len(history.loss) == 25
    assert history.epochs == pytest.approx(2.5)
    assert [s for s, _ in history.train_accuracy] == [10, 20, 25]  # and after the last step
    assert history.eval_accuracy == [] and history.eval_loss == []


def test_steps_and_epochs_validation() -> None:
    X, y = blobs(20)
    model = make()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        fit(model, (X, y), optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        fit(model, (X, y), optimizer=opt, epochs=1, steps=5, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        fit(model, (X, y), optimizer=opt, steps=0, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit(model, (X, y), optimizer=opt, epochs=1.5, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, (X, y), optimizer=opt, epochs=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="eval_every"):
        fit(model, (X, y), optimizer=opt, epochs=1, eval_every=-1, progress=False)
    with pytest.raises(TypeError, match=r"pair \(X, y\)"):
        fit(model, X, optimizer=opt, epochs=1, progress=False)
    with pytest.raises(ValueError, match="same, non-zero number of samples"):
        fit(model, (X, y[:5]), optimizer=opt, epochs=1, progress=False)
    with pytest.raises(TypeError, match="step"):
        fit(model, (X, y), optimizer="adam", epochs=1, progress=False)


def test_nan_loss_stops_and_names_the_step() -> None:
    X, y = blobs(64)
    model = make()
    opt = SGD(model.parameters(), lr=1e30)  # the first update blows the weights up
    with (
        pytest.raises(FloatingPointError, match=r"at step 2 of 10") as info,
        np.errstate(all="ignore"),
    ):
        fit(model, (X, y), optimizer=opt, steps=10, batch_size=16, progress=False)
    assert "nan" in str(info.value) or "inf" in str(info.value)


def test_nan_in_the_inputs_is_caught_at_step_1() -> None:
    X, y = blobs(32)
    X[0, 0] = np.nan
    model = make()
    with pytest.raises(FloatingPointError, match="at step 1 of"):
        fit(
            model,
            (X, y),
            optimizer=SGD(model.parameters(), lr=0.1),
            epochs=1,
            batch_size=32,
            progress=False,
        )


def test_adam_with_a_far_too_large_learning_rate_warns_that_the_loss_explodes() -> None:
    # Adam's step is bounded by lr, so the loss stays finite while the weights grow huge
    X, y = blobs(128)
    model = make()
    with pytest.warns(DivergenceWarning, match=r"more than 1000 times its first value") as seen:
        history = fit(
            model,
            (X, y),
            optimizer=Adam(model.parameters(), lr=1e6),
            steps=40,
            batch_size=32,
            progress=False,
        )
    assert all(np.isfinite(history.loss))  # no NaN: the old check alone said nothing
    assert max(history.loss) > 1000 * history.loss[0]
    assert len([w for w in seen if w.category is DivergenceWarning]) == 1  # once per call


def test_ordinary_training_does_not_warn(recwarn) -> None:
    X, y = blobs()
    model = make()
    fit(model, (X, y), optimizer=Adam(model.parameters(), lr=0.01), epochs=5, progress=False)
    assert not [w for w in recwarn if w.category is DivergenceWarning]


def test_weights_that_stop_being_finite_at_the_last_step_are_an_error() -> None:
    class Overflowing(SGD):
        """An update that leaves the first layer's weight infinite."""

        def _update(self, param, grad, state, group) -> None:
            if param is model[0].weight:
                param.data[0, 0] = np.inf

    X, y = blobs(16)
    model = make()
    # one step: its loss is finite (computed before the update), the update is not
    with (
        pytest.raises(FloatingPointError, match=r"after step 1 the parameters \['0.weight'\]"),
        np.errstate(all="ignore"),
    ):
        fit(
            model,
            (X, y),
            optimizer=Overflowing(model.parameters(), lr=0.1),
            steps=1,
            progress=False,
        )


def test_an_optimizer_with_nothing_to_train_is_refused() -> None:
    X, y = blobs(16)
    model = make().requires_grad_(False)
    with pytest.raises(ValueError, match="none of the optimizer's 4 parameters requires grad"):
        fit(model, (X, y), optimizer=SGD(model.parameters(), lr=0.1), steps=1, progress=False)


def test_same_seed_same_history() -> None:
    X, y = blobs()

    def run(seed: int) -> dict:
        manual_seed(seed)  # rng=None: the package generator drives init, dropout, shuffling
        model = MLP([2, 16, 3], dropout=0.2)
        history = fit(
            model,
            (X, y),
            optimizer=Adam(model.parameters(), lr=0.01),
            steps=30,
            batch_size=16,
            eval_data=blobs(50, seed=1),
            eval_every=10,
            progress=False,
        )
        result = history.to_dict()
        result.pop("wall_time")
        return result

    a, b, c = run(123), run(123), run(124)
    assert a == b
    assert a["loss"] != c["loss"]


def test_progress_false_prints_nothing(capsys) -> None:
    X, y = blobs(64)
    model = make()
    fit(model, (X, y), optimizer=SGD(model.parameters(), lr=0.1), epochs=2, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_the_loss_where_someone_watches(capsys, monkeypatch) -> None:
    monkeypatch.setattr("lora_np.progress.interactive", lambda: True)  # as on a terminal
    X, y = blobs(64)
    model = make()
    fit(model, (X, y), optimizer=SGD(model.parameters(), lr=0.1), epochs=2, desc="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "loss=" in err and "2/2" in err


def test_no_progress_bar_in_a_log(capsys) -> None:
    # captured stderr is not a terminal, as in a log or CI: progress=True draws nothing
    X, y = blobs(64)
    model = make()
    fit(model, (X, y), optimizer=SGD(model.parameters(), lr=0.1), epochs=2, desc="demo")
    assert capsys.readouterr().err == ""


def test_fit_uses_train_mode_and_restores_modes() -> None:
    seen = []

    class Spy(Linear):
        def forward(self, x):
            seen.append(self.training)
            return super().forward(x)

    X, y = blobs(32)
    model = Sequential(Spy(2, 3, rng=np.random.default_rng(0)), Dropout(0.1))
    model.eval()
    model[1].train()  # a mixed state, which must come back as it was
    opt = SGD(model.parameters(), lr=0.1)
    fit(model, (X, y), optimizer=opt, steps=2, batch_size=16, progress=False)
    # training forwards in train mode; the evaluation after the last step in eval mode
    assert seen == [True, True, False]
    assert model.training is False and model[0].training is False and model[1].training is True


def test_evaluate_eval_mode_no_grad_and_restores() -> None:
    X, y = blobs(50)
    model = make(dropout=0.5)
    model.train()
    first = evaluate(model, X, y)
    second = evaluate(model, X, y, batch_size=7)  # chunked: the same numbers
    assert first["loss"] == pytest.approx(second["loss"], rel=1e-6)
    assert first["accuracy"] == second["accuracy"]
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    expected = cross_entropy(model.eval()(Tensor(X)), y).item()
    assert first["loss"] == pytest.approx(expected, rel=1e-6)


def test_regression_loss_has_no_accuracy() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    Y = (X @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32)
    model = Linear(3, 1, rng=rng)
    history = fit(
        model,
        (X, Y),
        loss=mse_loss,
        optimizer=SGD(model.parameters(), lr=0.1),
        epochs=20,
        batch_size=16,
        eval_data=(X, Y),
        progress=False,
        rng=rng,
    )
    assert history.train_accuracy == [] and history.eval_accuracy == []
    assert history.eval_loss[-1][1] < 1e-3
    assert evaluate(model, X, Y, loss=mse_loss)["accuracy"] is None


def test_float64_inputs_do_not_upcast_a_float32_model() -> None:
    X, y = blobs(32)
    model = make()
    fit(
        model,
        (X.astype(np.float64), y),
        optimizer=SGD(model.parameters(), lr=0.1),
        steps=2,
        progress=False,
    )
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_history_to_dict_is_json_ready() -> None:
    X, y = blobs(32)
    model = make()
    history = fit(
        model,
        (X, y),
        optimizer=SGD(model.parameters(), lr=0.1),
        epochs=2,
        eval_data=(X, y),
        progress=False,
    )
    d = json.loads(json.dumps(history.to_dict()))
    assert d["steps"] == 2 and len(d["loss"]) == 2
    assert d["eval_accuracy"][0][0] == 1
    assert "steps=2" in repr(history) and "eval acc=" in repr(history)
