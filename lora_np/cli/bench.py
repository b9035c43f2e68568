"""``python -m lora_np bench [--json] [--repeats N] [--quick] [--only SECTION ...] [--threads N]
[--clock CLOCK]``.

Times training steps side by side, in one process, prints ratios, and measures what a
step holds in memory:

* ``engine`` — one SGD training step (forward, cross-entropy, ``loss.backward()``,
  ``optimizer.step()``) through lora_np and written by hand in NumPy
  (:mod:`lora_np.cli.bench_reference`, the floor for any NumPy engine), full fine-tuning
  and LoRA (r = 8 on both hidden layers; the head and the biases frozen), for a small MLP
  (64-128-128-10, batch 64) and a large one (784-1024-1024-10, batch 256). Targets:
  engine / hand-written <= 1.30 (small, full), <= 1.45 (small, LoRA), <= 1.05 (large).
* ``lora`` — a LoRA step against a full fine-tuning step of the large MLP, through the
  engine (target <= 0.80) and by hand; plus trainable parameters and Adam's state in
  bytes for both.
* ``memory`` — the peak memory of one step of full fine-tuning, LoRA and LoRA-FA on the
  large MLP, through lora_np and by hand, and where it goes
  (:mod:`lora_np.cli.bench_memory`, which says how it is measured).
* ``subspace`` — one random-subspace step (θ = θ0 + P·θ_d, only θ_d trains) against a
  direct step of the same model: the digits MLP (D ≈ 26k) at d = 1,000 with a dense and
  a Fastfood P, and the large MLP (D ≈ 1.9M) at d = 10,000 with Fastfood (target <= 3).
* ``gpt`` — an Adam step of the tiny GPT (full fine-tuning, and LoRA on q and v) through
  lora_np against PyTorch eager on a twin with the same weights (PyTorch on one thread,
  lora_np on the BLAS threads ``--threads`` gives it), and their memory
  (:mod:`lora_np.cli.bench_gpt`; PyTorch is optional, without it only lora_np is timed).

How it is timed: every step of a comparison is first run once (warm-up, and a check that
the engine and the hand-written step compute the same update), then the steps take
turns: in each of ``--repeats`` rounds, each step runs back to back for a block of at
least 0.1 s (``--quick``: once), the order alternating between rounds, and its time per
step is recorded. A ratio is the **median over rounds** of the per-round ratio, so both
sides of a ratio are measured at nearly the same moment, under the same machine load and
the same BLAS; the quartiles of the per-round ratios are shown next to it. The
milliseconds shown are medians too. Inputs are random (timing does not depend on the
values), float32, with a fixed seed.

On a machine busy with other work, a multithreaded BLAS waits for cores and the small
steps' times become noise; ``--threads 1`` gives both sides one BLAS thread (``--threads
0``, the default, leaves BLAS as it is set). ``--clock cpu`` times with the process's CPU
time instead of the wall clock: time spent waiting for a core then does not count (with
one BLAS thread, the CPU time of a step is its compute time).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

from lora_np.checks import is_positive_int
from lora_np.cli import bench_gpt, bench_memory
from lora_np.cli.arguments import (
    add_no_progress_option,
    add_threads_option,
    blas_threads,
    positive_int,
)
from lora_np.cli.bench_memory import StepFn, build, trainable, training_step, weight_difference
from lora_np.cli.bench_reference import ReferenceLoRAMLP, ReferenceMLP
from lora_np.lora import LoRAConfig, apply_lora, lora_layers
from lora_np.nn import MLP, Linear, Module, linear_layers
from lora_np.optim import SGD, Adam
from lora_np.progress import progress_counter
from lora_np.subspace import SubspaceModel

SECTIONS: tuple[str, ...] = ("engine", "lora", "memory", "subspace", "gpt")

SMALL: tuple[int, ...] = (64, 128, 128, 10)
LARGE: tuple[int, ...] = (784, 1024, 1024, 10)
LEARNING_RATE = 0.01
SEED = 0

#: the targets each ratio is held to (engine / hand-written NumPy, LoRA / full, subspace / direct)
TARGETS = {
    "engine_small": 1.30,
    "engine_small_lora": 1.45,
    "engine_large": 1.05,
    "engine_large_lora": 1.05,
    "lora": 0.80,
    "subspace_large": 3.0,
}

#: what ``--clock`` measures: the wall clock, or the CPU time of this process
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


# =========================================================================== CLI


DESCRIPTION = """\
Time training steps side by side, in one process, print their ratios, and measure
what a step holds in memory:
  engine    an SGD step of the same MLP through lora_np and written by hand in NumPy,
            full fine-tuning and LoRA r = 8 (64-128-128-10, batch 64, and
            784-1024-1024-10, batch 256)
  lora      a LoRA step (r = 8 on every hidden layer) against a full fine-tuning step,
            through the engine and by hand; trainable parameters and Adam's state in bytes
  memory    the peak memory of one step (tracemalloc) of full fine-tuning, LoRA and
            LoRA-FA, through lora_np and by hand, and where it goes
  subspace  a random-subspace step (theta = theta0 + P theta_d) against a direct step
  gpt       a step of the tiny GPT (full, and LoRA on q and v) against PyTorch eager on
            the same model (if PyTorch is installed), and its memory
Each ratio is the median over interleaved rounds of the per-round ratio, shown with its
quartiles, so both sides are timed under the same load. On a busy machine, --threads 1
gives both sides one BLAS thread, and --clock cpu leaves out the time spent waiting.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        metavar="N",
        help="interleaved rounds per comparison (default: 15, or 3 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer and shorter rounds (a smoke test of the benchmark, not a measurement)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only these sections (default: all of {', '.join(SECTIONS)})",
    )
    add_threads_option(parser, default=0)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="time with the wall clock or with this process's CPU time",
    )
    add_no_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    """Run the chosen sections and print a table (or JSON); returns 0."""
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 15)
    with blas_threads(args.threads):
        results = benchmark(
            sections=tuple(dict.fromkeys(args.only or SECTIONS)),  # each section once
            repeats=repeats,
            quick=bool(args.quick),
            progress=not args.no_progress,
            clock=args.clock,
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    return 0


def benchmark(
    sections: tuple[str, ...] = SECTIONS,
    repeats: int = 15,
    quick: bool = False,
    progress: bool = True,
    clock: str = "wall",
) -> dict[str, Any]:
    """Run the sections; return a JSON-ready dict (see :func:`format_table` for its use)."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown bench sections {unknown}; expected some of {list(SECTIONS)}")
    if not is_positive_int(repeats):
        raise ValueError(f"benchmark: repeats must be an int >= 1, got {repeats!r}")
    if clock not in CLOCKS:
        raise ValueError(f"benchmark: clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    timer = Timer(repeats=repeats, block=0.0 if quick else 0.1, clock=clock)
    runners = {
        "engine": engine_section,
        "lora": lora_section,
        "memory": memory_section,
        "subspace": subspace_section,
        "gpt": gpt_section,
    }
    results: dict[str, Any] = {
        "environment": environment(),
        "timing": {
            "repeats": repeats,
            "block_seconds": timer.block,
            "clock": clock,
            "statistic": "median over interleaved rounds of the per-round ratio",
            "quick": quick,
        },
        "sections": {},
    }
    bar = progress_counter(enabled=progress, total=len(sections), desc="bench", unit="section")
    for name in sections:
        bar.set_postfix_str(name)
        results["sections"][name] = runners[name](timer)
        bar.update(1)
    bar.close()
    return results


# =========================================================================== timing


class Timer:
    """Interleaved timing of several step functions (see the module docstring)."""

    def __init__(self, repeats: int, block: float, clock: str = "wall") -> None:
        self.repeats, self.block = int(repeats), float(block)
        self.clock = clock
        self._now = CLOCKS[clock]

    def measure(self, steps: dict[str, StepFn]) -> dict[str, np.ndarray]:
        """Seconds per step of each function, one entry per round."""
        names = list(steps)
        per_block = {}
        for name in names:  # how many steps fill a block (the first run is a warm-up)
            steps[name]()
            if self.block <= 0:
                per_block[name] = 1
                continue
            start = self._now()
            steps[name]()
            elapsed = self._now() - start
            per_block[name] = max(1, math.ceil(self.block / max(elapsed, 1e-9)))
        times: dict[str, list[float]] = {name: [] for name in names}
        for round_index in range(self.repeats):
            order = names if round_index % 2 == 0 else names[::-1]
            for name in order:
                fn, count = steps[name], per_block[name]
                start = self._now()
                for _ in range(count):
                    fn()
                times[name].append((self._now() - start) / count)
        return {name: np.asarray(t) for name, t in times.items()}


def ratio(times: dict[str, np.ndarray], numerator: str, denominator: str) -> float:
    """Median over rounds of times[numerator] / times[denominator]."""
    return float(np.median(times[numerator] / times[denominator]))


def quartiles(times: dict[str, np.ndarray], numerator: str, denominator: str) -> list[float]:
    """First and third quartiles of the per-round ratios: how much the rounds disagree."""
    per_round = times[numerator] / times[denominator]
    return [float(q) for q in np.percentile(per_round, [25, 75])]


def milliseconds(times: np.ndarray) -> float:
    return float(np.median(times) * 1e3)


# =========================================================================== the models


def _mlp(sizes: tuple[int, ...], rng: np.random.Generator) -> MLP:
    return MLP(list(sizes), rng=rng)


def _batch(
    sizes: tuple[int, ...], batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    return x, y


def _linears(model: Module) -> list[Linear]:
    return [m for _, m in linear_layers(model)]


def _max_difference(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second, strict=True))


def _check_row(check: float) -> dict[str, Any]:
    """float32 steps of the same arithmetic agree to rounding; 1e-5 is far above it."""
    return {"max_abs_weight_difference_after_one_step": check, "same_update": check < 1e-5}


# =========================================================================== sections


#: the engine section's comparisons: (name, MLP sizes, batch, what trains)
ENGINE_CASES = (
    ("engine_small", SMALL, 64, "full"),
    ("engine_small_lora", SMALL, 64, "lora"),
    ("engine_large", LARGE, 256, "full"),
    ("engine_large_lora", LARGE, 256, "lora"),
)


def engine_section(timer: Timer, rank: int = 8, alpha: float = 16.0) -> dict[str, Any]:
    """Engine vs hand-written NumPy, one SGD step of the small and the large MLP, full
    fine-tuning and LoRA (the models of :func:`lora_np.cli.bench_memory.build`)."""
    rows = []
    for key, sizes, batch, kind in ENGINE_CASES:
        setup = build(sizes, batch, rank, alpha, seed=SEED)
        model, reference = setup.models[kind], setup.references[kind]
        optimizer = SGD(trainable(model), lr=LEARNING_RATE)
        steps = {
            "engine": training_step(model, optimizer, setup.x, setup.y),
            "numpy": lambda ref=reference, x=setup.x, y=setup.y: ref.step(x, y, LEARNING_RATE),
        }
        steps["engine"]()
        steps["numpy"]()
        check = weight_difference(kind, model, reference)
        times = timer.measure(steps)
        rows.append(
            {
                "name": key,
                "model": "-".join(map(str, sizes)),
                "batch": batch,
                "step": "full" if kind == "full" else f"LoRA r={rank}",
                "engine_ms": milliseconds(times["engine"]),
                "numpy_ms": milliseconds(times["numpy"]),
                "ratio": ratio(times, "engine", "numpy"),
                "ratio_quartiles": quartiles(times, "engine", "numpy"),
                "target": TARGETS[key],
                **_check_row(check),
            }
        )
    for row in rows:
        row["met"] = row["ratio"] <= row["target"]
    return {"status": "ok", "what": "engine / hand-written NumPy, one SGD step", "rows": rows}


def memory_section(timer: Timer) -> dict[str, Any]:
    """Peak memory of one step and where it goes (:mod:`lora_np.cli.bench_memory`); not
    timed, so the timer's settings do not apply."""
    return bench_memory.memory_section()


def gpt_section(timer: Timer) -> dict[str, Any]:
    """The tiny GPT's step through lora_np and PyTorch eager (:mod:`lora_np.cli.bench_gpt`)."""
    return bench_gpt.gpt_section(timer)


def lora_section(timer: Timer, rank: int = 8, alpha: float = 16.0) -> dict[str, Any]:
    """A LoRA step vs a full fine-tuning step of the large MLP, engine and by hand."""
    sizes, batch = LARGE, 256
    rng = np.random.default_rng(SEED)
    full = _mlp(sizes, rng)
    x, y = _batch(sizes, batch, rng)
    lora = apply_lora(
        copy.deepcopy(full),
        LoRAConfig(rank=rank, alpha=alpha, target_modules="all-linear"),
        rng=rng,
    )
    adapted = lora_layers(lora)
    for _, layer in adapted:  # B starts at zero; small values make every gradient nonzero
        layer.lora_b.weight.data[...] = rng.normal(0.0, 1e-3, layer.lora_b.weight.shape)
    layers = _linears(full)
    index = {name: i for i, (name, _) in enumerate(linear_layers(full))}
    adapters = {
        index[name]: (layer.lora_a.weight.data, layer.lora_b.weight.data) for name, layer in adapted
    }
    weights, biases = [m.weight.data for m in layers], [m.bias.data for m in layers]
    ref_full = ReferenceMLP(weights, biases)
    ref_lora = ReferenceLoRAMLP(weights, biases, adapters, scaling=adapted[0][1].scaling)
    trainable = [p for p in lora.parameters() if p.requires_grad]
    steps = {
        "engine_lora": training_step(lora, SGD(trainable, lr=LEARNING_RATE), x, y),
        "engine_full": training_step(full, SGD(full.parameters(), lr=LEARNING_RATE), x, y),
        "numpy_lora": lambda: ref_lora.step(x, y, LEARNING_RATE),
        "numpy_full": lambda: ref_full.step(x, y, LEARNING_RATE),
    }
    for name in ("engine_lora", "numpy_lora"):
        steps[name]()
    engine_adapters = [
        w for _, layer in adapted for w in (layer.lora_a.weight.data, layer.lora_b.weight.data)
    ]
    reference_adapters = [w for pair in ref_lora.adapters.values() for w in pair]
    check = _max_difference(engine_adapters, reference_adapters)
    times = timer.measure(steps)

    def adam_state_bytes(model: Module) -> int:
        """Bytes of Adam's state after one step (m and v for each trainable parameter)."""
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = Adam(params, lr=1e-3)
        training_step(model, optimizer, x, y)()
        return sum(
            value.nbytes
            for state in optimizer.state.values()
            for value in state.values()
            if isinstance(value, np.ndarray)
        )

    def counts(model: Module) -> dict[str, int]:
        total = sum(p.size for p in model.parameters())
        trainable = sum(p.size for p in model.parameters() if p.requires_grad)
        return {"trainable_parameters": trainable, "total_parameters": total}

    parameters = {
        "full": {**counts(full), "adam_state_bytes": adam_state_bytes(copy.deepcopy(full))},
        "lora": {**counts(lora), "adam_state_bytes": adam_state_bytes(copy.deepcopy(lora))},
    }
    rows = [
        {
            "name": "engine",
            "lora_ms": milliseconds(times["engine_lora"]),
            "full_ms": milliseconds(times["engine_full"]),
            "ratio": ratio(times, "engine_lora", "engine_full"),
            "ratio_quartiles": quartiles(times, "engine_lora", "engine_full"),
            "target": TARGETS["lora"],
        },
        {
            "name": "numpy",
            "lora_ms": milliseconds(times["numpy_lora"]),
            "full_ms": milliseconds(times["numpy_full"]),
            "ratio": ratio(times, "numpy_lora", "numpy_full"),
            "ratio_quartiles": quartiles(times, "numpy_lora", "numpy_full"),
            "target": None,
        },
    ]
    rows[0]["met"] = rows[0]["ratio"] <= rows[0]["target"]
    return {
        "status": "ok",
        "what": (
            f"LoRA (r={rank}, alpha={alpha:g}, every hidden Linear; head and biases frozen) "
            f"step / full fine-tuning step, MLP {'-'.join(map(str, sizes))}, batch {batch}, SGD"
        ),
        "rows": rows,
        "engine_lora_over_numpy_lora": ratio(times, "engine_lora", "numpy_lora"),
        **_check_row(check),
        "parameters": parameters,
    }


def subspace_section(timer: Timer) -> dict[str, Any]:
    """A random-subspace step vs a direct step of the same model (SGD on both)."""
    cases = (
        (SMALL, 64, ((1_000, "dense"), (1_000, "fastfood"))),
        (LARGE, 256, ((10_000, "fastfood"),)),
    )
    rows = []
    for sizes, batch, variants in cases:
        rng = np.random.default_rng(SEED)
        model = _mlp(sizes, rng)
        x, y = _batch(sizes, batch, rng)
        num_weights = sum(p.size for p in model.parameters())
        steps = {}
        for d, projection in variants:
            sub = SubspaceModel(model, d, projection=projection, rng=rng)
            steps[f"{projection}_{d}"] = training_step(
                sub, SGD(sub.parameters(), lr=LEARNING_RATE), x, y
            )
        # the direct step trains the model itself, so it comes after the copies above
        steps["direct"] = training_step(model, SGD(model.parameters(), lr=LEARNING_RATE), x, y)
        times = timer.measure(steps)
        for d, projection in variants:
            key = f"{projection}_{d}"
            target = TARGETS["subspace_large"] if sizes == LARGE else None
            row = {
                "model": "-".join(map(str, sizes)),
                "batch": batch,
                "D": num_weights,
                "d": d,
                "projection": projection,
                "subspace_ms": milliseconds(times[key]),
                "direct_ms": milliseconds(times["direct"]),
                "ratio": ratio(times, key, "direct"),
                "ratio_quartiles": quartiles(times, key, "direct"),
                "target": target,
            }
            if target is not None:
                row["met"] = row["ratio"] <= target
            rows.append(row)
    return {
        "status": "ok",
        "what": "subspace step / direct step of the same model, SGD",
        "rows": rows,
    }


# =========================================================================== reporting


def environment() -> dict[str, Any]:
    """What the numbers depend on: NumPy, its BLAS and threads, the processor settings."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    if hasattr(os, "getloadavg"):  # other work on the machine skews timings: show it
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            info[var] = os.environ[var]
    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if blas:
        pool = blas[0]
        info["blas"] = {
            key: pool.get(key) for key in ("internal_api", "version", "architecture", "num_threads")
        }
    return info


def _spread(row: dict[str, Any]) -> str:
    q1, q3 = row["ratio_quartiles"]
    return f"{q1:>5.2f}-{q3:<5.2f}"


def _status(row: dict[str, Any]) -> str:
    if row.get("target") is None:
        return ""
    return f"<= {row['target']:.2f}  " + ("met" if row["met"] else "MISSED")


def format_table(results: dict[str, Any]) -> str:
    """The results as the text table that ``python -m lora_np bench`` prints."""
    env, timing = results["environment"], results["timing"]
    blas = env.get("blas") or {}
    lines = [
        "lora_np bench: training steps timed side by side "
        f"({timing['statistic']}, {timing['repeats']} rounds, {timing['clock']} clock"
        f"{', QUICK: not a measurement' if timing['quick'] else ''})",
        f"numpy {env['numpy']}, BLAS {blas.get('internal_api', '?')} {blas.get('version', '')} "
        f"({blas.get('architecture', '?')}, {blas.get('num_threads', '?')} threads), "
        f"{env['cpu_count']} CPUs, load average {env.get('load_average_1min', '?')}",
        "(ratio: median of the per-round ratios; q1-q3: their quartiles)",
    ]
    sections = results["sections"]
    if "engine" in sections:
        lines += ["", "[engine] engine / hand-written NumPy, one SGD step (float32)"]
        sec = sections["engine"]
        lines.append(
            f"  {'MLP':<18} {'batch':>5} {'step':<9} {'engine ms':>10} {'numpy ms':>9} "
            f"{'ratio':>6} {'q1-q3':>11}  target"
        )
        for row in sec["rows"]:
            lines.append(
                f"  {row['model']:<18} {row['batch']:>5} {row['step']:<9} "
                f"{row['engine_ms']:>10.3f} {row['numpy_ms']:>9.3f} {row['ratio']:>6.2f} "
                f"{_spread(row)}  {_status(row)}"
            )
            if not row["same_update"]:
                lines.append("  WARNING: the two steps disagree; the ratio compares unlike work")
    if "lora" in sections:
        sec = sections["lora"]
        lines += ["", "[lora] LoRA step / full fine-tuning step"]
        lines.append(f"  {sec['what']}")
        lines.append(f"  {'':<8} {'LoRA ms':>9} {'full ms':>9} {'ratio':>6} {'q1-q3':>11}  target")
        for row in sec["rows"]:
            lines.append(
                f"  {row['name']:<8} {row['lora_ms']:>9.3f} {row['full_ms']:>9.3f} "
                f"{row['ratio']:>6.2f} {_spread(row)}  {_status(row)}"
            )
        lines.append(f"  engine LoRA / hand-written LoRA: {sec['engine_lora_over_numpy_lora']:.2f}")
        lines.append(f"  {'':<8} {'trainable params':>17} {'Adam state bytes':>17}")
        for name in ("full", "lora"):
            p = sec["parameters"][name]
            lines.append(
                f"  {name:<8} {p['trainable_parameters']:>17,} {p['adam_state_bytes']:>17,}"
            )
        if not sec["same_update"]:
            lines.append("  WARNING: the two LoRA steps disagree; the ratio compares unlike work")
    if "memory" in sections:
        lines += bench_memory.format_memory(sections["memory"])
    if "gpt" in sections:
        lines += bench_gpt.format_gpt_section(sections["gpt"])
    if "subspace" in sections:
        sec = sections["subspace"]
        lines += ["", "[subspace] subspace step (θ = θ0 + P·θ_d) / direct step"]
        lines.append(
            f"  {'MLP':<16} {'D':>9} {'d':>7} {'P':<9} {'subspace ms':>11} "
            f"{'direct ms':>9} {'ratio':>6} {'q1-q3':>11}  target"
        )
        for row in sec["rows"]:
            lines.append(
                f"  {row['model']:<16} {row['D']:>9,} {row['d']:>7,} {row['projection']:<9} "
                f"{row['subspace_ms']:>11.3f} {row['direct_ms']:>9.3f} {row['ratio']:>6.2f} "
                f"{_spread(row)}  {_status(row)}"
            )
    return "\n".join(lines)
