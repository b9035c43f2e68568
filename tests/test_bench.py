"""The benchmark: its structure, its hand-written reference, its CLI. Never its timings."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math

import numpy as np
import pytest

from lora_np.cli import bench
from lora_np.cli.bench_reference import ReferenceLoRAMLP, ReferenceMLP
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.nn import MLP, Linear
from lora_np.nn import functional as F
from lora_np.optim import SGD
from lora_np.tensor import Tensor


def _positive_finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_json() -> dict:
    """`python -m lora_np bench --quick --json --repeats 1`, run in-process once."""
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    args = parser.parse_args(["--quick", "--json", "--repeats", "1", "--no-progress"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.run(args) == 0
    return json.loads(out.getvalue())


def test_json_has_every_section_and_positive_finite_ratios(quick_json: dict) -> None:
    assert quick_json["timing"]["repeats"] == 1
    assert quick_json["timing"]["quick"] is True
    sections = quick_json["sections"]
    assert set(sections) == set(bench.SECTIONS)
    for name in bench.SECTIONS:
        assert sections[name]["status"] == "ok", (name, sections[name])
        assert sections[name]["rows"]
        for row in sections[name]["rows"]:
            assert _positive_finite(row["ratio"]), (name, row)
            q1, q3 = row["ratio_quartiles"]
            assert _positive_finite(q1) and q1 <= q3, (name, row)

    engine = sections["engine"]["rows"]
    assert [(r["model"], r["batch"]) for r in engine] == [
        ("64-128-128-10", 64),
        ("784-1024-1024-10", 256),
    ]
    assert [r["target"] for r in engine] == [1.5, 1.10]
    for row in engine:
        assert _positive_finite(row["engine_ms"]) and _positive_finite(row["numpy_ms"])
        assert row["same_update"], row  # the two sides did the same arithmetic

    lora = sections["lora"]
    assert lora["same_update"], lora
    assert _positive_finite(lora["engine_lora_over_numpy_lora"])
    full, adapted = lora["parameters"]["full"], lora["parameters"]["lora"]
    assert full["trainable_parameters"] == full["total_parameters"] == 1_863_690
    # r = 8 on the two hidden layers: A (8, 784) + B (1024, 8) + A (8, 1024) + B (1024, 8)
    assert adapted["trainable_parameters"] == 8 * 784 + 1024 * 8 + 8 * 1024 + 1024 * 8
    # Adam keeps two float32 moments per trainable weight
    assert full["adam_state_bytes"] == 2 * 4 * full["trainable_parameters"]
    assert adapted["adam_state_bytes"] == 2 * 4 * adapted["trainable_parameters"]

    rows = sections["subspace"]["rows"]
    assert [(r["D"], r["d"], r["projection"]) for r in rows] == [
        (26_122, 1_000, "dense"),
        (26_122, 1_000, "fastfood"),
        (1_863_690, 10_000, "fastfood"),
    ]


def test_table_names_every_section(quick_json: dict) -> None:
    text = bench.format_table(quick_json)
    for heading in ("[engine]", "[lora]", "[subspace]"):
        assert heading in text
    assert "QUICK" in text
    assert "SKIPPED" not in text


def test_a_skipped_section_says_why() -> None:
    results = {
        "environment": bench.environment(),
        "timing": {"repeats": 1, "statistic": "median", "quick": True},
        "sections": {"lora": bench._skipped("lora_np.lora is not importable (test)")},
    }
    text = bench.format_table(results)
    assert "[lora]" in text and "SKIPPED: lora_np.lora is not importable (test)" in text


def test_unknown_section_and_bad_repeats_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown bench sections"):
        bench.benchmark(sections=("nope",), repeats=1, quick=True, progress=False)
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        bench.benchmark(repeats=0, quick=True, progress=False)
    # on the command line --repeats 0 is a usage error: tests/test_cli.py


def test_timer_interleaves_and_reports_one_time_per_round() -> None:
    calls: list[str] = []
    timer = bench.Timer(repeats=4, block=0.0)
    times = timer.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")})
    assert set(times) == {"a", "b"}
    assert all(t.shape == (4,) and np.all(t >= 0) for t in times.values())
    # one warm-up call each, then one call per round, the order alternating
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    # with a block to fill, a second call measures how many calls fill it
    calls.clear()
    bench.Timer(repeats=1, block=1e-9).measure({"a": lambda: calls.append("a")})
    assert calls == ["a", "a", "a"]


def _engine_sgd_step(model: MLP, x: np.ndarray, y: np.ndarray, lr: float) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(Tensor(x)), y)
    loss.backward()
    SGD(params, lr=lr).step()
    return loss.item()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_mlp_step_equals_the_engine_step(dtype: type) -> None:
    rng = np.random.default_rng(1)
    model = MLP([5, 7, 6, 3], rng=rng, dtype=dtype)
    x = rng.standard_normal((8, 5)).astype(dtype)
    y = rng.integers(0, 3, size=8)
    layers = [m for m in model.modules() if isinstance(m, Linear)]
    reference = ReferenceMLP([m.weight.data for m in layers], [m.bias.data for m in layers])
    ref_loss = reference.step(x, y, lr=0.5)
    loss = _engine_sgd_step(model, x, y, lr=0.5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert ref_loss == pytest.approx(loss, rel=tol)
    for m, w, b in zip(layers, reference.weights, reference.biases, strict=True):
        np.testing.assert_allclose(w, m.weight.data, rtol=0, atol=tol)
        np.testing.assert_allclose(b, m.bias.data, rtol=0, atol=tol)
        assert w.dtype == dtype and b.dtype == dtype


def test_reference_lora_step_equals_the_engine_step() -> None:
    rng = np.random.default_rng(2)
    model = MLP([6, 9, 7, 4], rng=rng, dtype=np.float64)
    layers = [m for m in model.modules() if isinstance(m, Linear)]
    weights = [m.weight.data.copy() for m in layers]
    biases = [m.bias.data.copy() for m in layers]
    apply_lora(model, LoRAConfig(rank=2, alpha=3.0, target_modules="all-linear"), rng=rng)
    adapted = lora_layers(model)
    for _, layer in adapted:  # nonzero B, so that A gets a gradient too
        layer.lora_b.weight.data[...] = rng.standard_normal(layer.lora_b.weight.shape)
    position = {"0": 0, "2": 1, "4": 2}
    adapters = {
        position[name]: (layer.lora_a.weight.data, layer.lora_b.weight.data)
        for name, layer in adapted
    }
    assert sorted(adapters) == [0, 1]  # all-linear leaves out the head
    reference = ReferenceLoRAMLP(weights, biases, adapters, scaling=adapted[0][1].scaling)
    x = rng.standard_normal((10, 6))
    y = rng.integers(0, 4, size=10)
    ref_loss = reference.step(x, y, lr=0.3)
    loss = _engine_sgd_step(model, x, y, lr=0.3)
    assert ref_loss == pytest.approx(loss, rel=1e-12)
    for (_, layer), (a, b) in zip(adapted, reference.adapters.values(), strict=True):
        np.testing.assert_allclose(a, layer.lora_a.weight.data, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, layer.lora_b.weight.data, rtol=0, atol=1e-12)
    for w, m in zip(reference.weights, layers, strict=True):  # the base stays frozen
        np.testing.assert_array_equal(w, m.weight.data)


def test_reference_rejects_mismatched_arguments() -> None:
    w, b = np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(ValueError, match="one bias per weight"):
        ReferenceMLP([w, w], [b])
    with pytest.raises(ValueError, match="adapters for layers"):
        ReferenceLoRAMLP([w], [b], {3: (np.zeros((1, 2)), np.zeros((3, 1)))}, scaling=1.0)
