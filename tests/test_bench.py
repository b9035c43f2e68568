"""The benchmark: its structure, its hand-written reference, its CLI. Never its timings."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math

import numpy as np
import pytest

from lora_np.cli import bench, bench_memory
from lora_np.cli.bench_reference import ReferenceLoRAFAMLP, ReferenceLoRAMLP, ReferenceMLP
from lora_np.graph_memory import saved_bytes
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
    assert quick_json["timing"]["clock"] == "wall"
    sections = quick_json["sections"]
    assert set(sections) == set(bench.SECTIONS)
    for name in bench.SECTIONS:
        assert sections[name]["status"] == "ok", (name, sections[name])
        assert sections[name]["rows"]
        for row in sections[name]["rows"]:
            if name == "gpt" and sections["gpt"]["torch"]["status"] != "ok":
                # no PyTorch (the light install): lora_np's side alone, and no ratio
                assert _positive_finite(row["lora_np_ms"]) and "ratio" not in row, row
                continue
            assert _positive_finite(row["ratio"]), (name, row)
            if name == "memory":  # bytes are counted, not timed: no spread over rounds
                continue
            q1, q3 = row["ratio_quartiles"]
            assert _positive_finite(q1) and q1 <= q3, (name, row)

    engine = sections["engine"]["rows"]
    assert [(r["model"], r["batch"], r["step"]) for r in engine] == [
        ("64-128-128-10", 64, "full"),
        ("64-128-128-10", 64, "LoRA r=8"),
        ("784-1024-1024-10", 256, "full"),
        ("784-1024-1024-10", 256, "LoRA r=8"),
    ]
    assert [r["target"] for r in engine] == [1.30, 1.45, 1.05, 1.05]
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
    for heading in ("[engine]", "[lora]", "[memory]", "[subspace]"):
        assert heading in text
    assert "QUICK" in text


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


# =========================================================================== memory


def test_memory_section_reports_every_target_and_consistent_ratios(quick_json: dict) -> None:
    memory = quick_json["sections"]["memory"]
    assert memory["same_update"], memory["max_abs_weight_difference_after_one_step"]
    assert (memory["model"], memory["batch"], memory["rank"]) == ("784-1024-1024-10", 256, 8)
    peaks = memory["peaks"]
    assert set(peaks) == set(bench_memory.KINDS)
    for kind in bench_memory.KINDS:
        assert all(isinstance(peaks[kind][side], int) for side in ("engine", "numpy"))
    rows = {row["name"]: row for row in memory["rows"]}
    assert {name: rows[name]["target"] for name in bench_memory.TARGETS} == bench_memory.TARGETS
    assert rows["lora_over_full"]["ratio"] == peaks["lora"]["engine"] / peaks["full"]["engine"]
    assert (
        rows["full_engine_over_numpy"]["ratio"] == peaks["full"]["engine"] / peaks["full"]["numpy"]
    )
    for row in rows.values():
        assert ("met" in row) == (row["target"] is not None)


def test_memory_breakdown_is_what_the_models_hold(quick_json: dict) -> None:
    """Exact byte counts that follow from the models' shapes (float32 = 4 bytes)."""
    parts = quick_json["sections"]["memory"]["breakdown"]
    assert quick_json["sections"]["memory"]["breakdown_optimizer"] == "adam"
    full, lora, lora_fa = parts["full"], parts["lora"], parts["lora_fa"]
    adapters = 8 * 784 + 1024 * 8 + 8 * 1024 + 1024 * 8  # A and B of both hidden layers
    assert full["trainable_parameters"] == full["total_parameters"] == 1_863_690
    assert lora["trainable_parameters"] == adapters
    assert lora_fa["trainable_parameters"] == 1024 * 8 + 1024 * 8  # the B's only
    for part in (full, lora, lora_fa):
        assert part["optimizer"] == "adam"
        assert part["parameters"] == 4 * part["total_parameters"]
        assert part["gradients"] == 4 * part["trainable_parameters"]
        assert part["optimizer_state"] == 2 * 4 * part["trainable_parameters"]  # m and v
        assert part["transient"] == part["peak"] - part["saved_activations"] - part["gradients"]
    assert lora["gradients"] < full["gradients"] and lora_fa["gradients"] < lora["gradients"]
    # what the graph saves: the hidden layers' outputs (for the next layer's weight
    # gradient), relu's masks (1 byte each) and the log-probabilities, per example
    batch, hidden, masks, log_probs, u = 256, 4 * 1024, 2 * 1024, 4 * 10, 4 * 8
    assert full["saved_activations"] == batch * (2 * hidden + masks + log_probs)
    assert lora["saved_activations"] == batch * (hidden + masks + log_probs + 2 * u)
    assert lora_fa["saved_activations"] == batch * (masks + log_probs + 2 * u)
    assert full["saved_batch"] == lora["saved_batch"] == batch * (4 * 784 + 8)  # x and y
    assert lora_fa["saved_batch"] == batch * 8  # only the labels: nothing keeps x
    for part in (full, lora, lora_fa):
        # the graph walk finds everything forward left alive: what else tracemalloc sees
        # (the loss, Function objects) is far smaller than one relu mask
        assert 0 <= part["after_forward"] - part["saved_activations"] < batch * 1024


def test_memory_table_shows_every_ratio(quick_json: dict) -> None:
    text = "\n".join(bench_memory.format_memory(quick_json["sections"]["memory"]))
    for row in quick_json["sections"]["memory"]["rows"]:
        assert row["what"] in text
    for label in ("parameters", "Adam state", "gradients", "saved activations", "transient"):
        assert label in text


def test_step_peak_counts_what_a_step_makes_and_not_what_it_holds() -> None:
    held = []

    def step() -> None:
        scratch = np.ones(2**18, dtype=np.float32)  # 1 MiB for a moment
        held[:] = [np.zeros(2**16, dtype=np.float32)]  # 256 KiB kept between steps
        del scratch

    peak = bench_memory.step_peak(step, repeats=2)
    assert 2**20 <= peak < 2**20 + 2**18 + 4096


def test_reference_lora_fa_step_equals_the_engine_step() -> None:
    setup = bench_memory.build((6, 9, 7, 4), batch=10, rank=2, alpha=3.0, seed=3)
    model, reference = setup.models["lora_fa"], setup.references["lora_fa"]
    assert isinstance(reference, ReferenceLoRAFAMLP)
    before = [w.copy() for pair in reference.adapters.values() for w in pair]
    ref_loss = reference.step(setup.x, setup.y, lr=0.3)
    loss = _engine_sgd_step(model, setup.x, setup.y, lr=0.3)
    assert ref_loss == pytest.approx(loss, rel=1e-6)
    assert bench_memory.weight_difference("lora_fa", model, reference) < 1e-6
    after = [w for pair in reference.adapters.values() for w in pair]
    np.testing.assert_array_equal(after[0], before[0])  # A frozen
    assert not np.array_equal(after[1], before[1])  # B trained


def test_activations_grow_with_the_batch_and_the_rest_does_not() -> None:
    result = bench_memory.activations_by_batch([4, 8, 16], sizes=(6, 8, 8, 3), rank=2)
    rows = result["rows"]
    assert [r["batch"] for r in rows] == [4, 8, 16] and result["optimizer"] == "adam"
    for kind in bench_memory.KINDS:
        saved = [r[kind]["saved_activations"] for r in rows]
        assert saved[1] == 2 * saved[0] and saved[2] == 4 * saved[0], kind  # per example
        assert len({r[kind]["parameters"] + r[kind]["optimizer_state"] for r in rows}) == 1
    assert rows[0]["lora_fa"]["saved_activations"] < rows[0]["lora"]["saved_activations"]
    assert rows[0]["lora"]["saved_activations"] < rows[0]["full"]["saved_activations"]


def test_merging_leaves_the_base_models_parameters() -> None:
    setup = bench_memory.build((6, 8, 8, 3), batch=5, rank=2, alpha=4.0)
    result = bench_memory.inference_memory(setup)
    assert result["merged"]["parameters"] == result["base"]["parameters"]
    adapter_bytes = 4 * (2 * 6 + 8 * 2 + 2 * 8 + 8 * 2)
    assert result["adapter"]["parameters"] == result["base"]["parameters"] + adapter_bytes
    assert result["max_abs_output_difference_merged"] < 1e-5
    assert all(isinstance(result[m]["forward_peak"], int) for m in ("base", "adapter", "merged"))


def test_graph_contents_names_what_each_function_holds() -> None:
    setup = bench_memory.build((6, 8, 8, 3), batch=5, rank=2, alpha=4.0)
    for kind in bench_memory.KINDS:
        model = setup.models[kind]
        loss = F.cross_entropy(model(Tensor(setup.x)), setup.y)
        params = [p.data for p in model.parameters()]
        rows = bench_memory.graph_contents(loss, params, [setup.x, setup.y])
        activations = sum(r["bytes"] for r in rows if r["kind"] == "activation")
        assert activations == saved_bytes(loss, exclude=[*params, setup.x, setup.y])
        assert rows[0]["function"] == "SoftmaxCrossEntropy"
        assert {(r["holds"], r["kind"]) for r in rows if r["function"] == "ReLU"} == {
            ("mask", "activation")
        }
        lora_rows = [r for r in rows if r["function"] == "LoRALinearFunction"]
        keeps_input = any(r["holds"] == "x_drop" for r in lora_rows)
        assert keeps_input == (kind == "lora") and bool(lora_rows) == (kind != "full")


def test_an_optimizer_given_fewer_parameters_keeps_state_for_those_only() -> None:
    setup = bench_memory.build((6, 8, 8, 3), batch=5, rank=2, alpha=4.0)
    model = setup.models["lora"]
    b_only = [name for name, _ in model.named_parameters() if name.endswith("lora_b.weight")]
    left_out = bench_memory.breakdown(model, setup.x, setup.y, "adam", updated=b_only)
    lora = bench_memory.breakdown(model, setup.x, setup.y, "adam")
    lora_fa = bench_memory.breakdown(setup.models["lora_fa"], setup.x, setup.y, "adam")
    assert left_out["optimizer_state"] == lora_fa["optimizer_state"] < lora["optimizer_state"]
    assert left_out["saved_activations"] == lora["saved_activations"]
    assert left_out["gradients"] == lora["gradients"]
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        bench_memory.make_optimizer(model, "rmsprop")
