"""The memory section of ``python -m lora_np bench``: what one training step holds.

A training step of a model holds, at its peak,

* **parameters** — every weight, frozen or not (held between steps);
* **optimizer state** — SGD without momentum has none; Adam keeps two moments per
  *trainable* number (held between steps);
* **saved activations** — what the graph keeps from forward until backward reads it:
  each function's saved arrays (:mod:`lora_np.graph_memory` walks the graph and adds
  them up). They grow with the batch;
* **gradients** — one per trainable parameter, made by backward;
* **transients** — the working arrays of forward, backward and the update, alive for
  a moment (a layer's output before the next layer has used it, G·W, η·g).

Full fine-tuning and LoRA differ in two of these: LoRA's gradients and optimizer state
are those of the adapters only, and a frozen weight's Linear saves no input for a weight
gradient. LoRA-FA (A frozen too) saves on top the input of A: only u = x·Aᵀ (rank r wide)
stays for B's gradient.

**How the peak is measured.** :func:`step_peak` runs a step once (a warm-up that also
creates the optimizer's state), then, under :mod:`tracemalloc`, takes the peak of the
traced memory during one step minus the memory traced just before it: the peak *above
what is held between steps* (the parameters, the optimizer's state, the batch; the step
ends with ``zero_grad()``, so no gradient is held between steps). NumPy reports its
arrays to tracemalloc, so the figure counts every array a step makes; it is the
smallest over a few steps (they differ by a few hundred bytes of Python objects).

The section compares, side by side in one process, on the MLP 784-1024-1024-10, batch
256, float32, with LoRA r = 8 on both hidden layers (the head and every bias frozen):

* the peak of one **SGD** step for full fine-tuning, LoRA and LoRA-FA, through lora_np
  and written by hand in NumPy (:mod:`lora_np.cli.bench_reference`), with the targets
  LoRA / full ≤ 0.55, LoRA lora_np / by hand ≤ 1.2, full lora_np / by hand ≤ 1.10;
* where the memory of one **Adam** step goes, through lora_np (:func:`breakdown`).

:func:`activations_by_batch` and :func:`inference_memory` give notebook 10 its numbers.
"""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lora_np.cli.bench_reference import ReferenceLoRAFAMLP, ReferenceLoRAMLP, ReferenceMLP
from lora_np.graph_memory import buffer_of, graph_functions, held_arrays, saved_bytes
from lora_np.lora import LoRAConfig, apply_lora, lora_layers, merge_and_unload
from lora_np.nn import MLP, Module, linear_layers
from lora_np.nn import functional as F
from lora_np.optim import SGD, Adam, Optimizer
from lora_np.tensor import Tensor, no_grad

SIZES: tuple[int, ...] = (784, 1024, 1024, 10)
BATCH = 256
RANK = 8
ALPHA = 16.0
LEARNING_RATE = 0.01
SEED = 0

#: the ways of fine-tuning the section compares
KINDS: tuple[str, ...] = ("full", "lora", "lora_fa")
KIND_NAMES = {"full": "full fine-tuning", "lora": f"LoRA r = {RANK}", "lora_fa": "LoRA-FA"}

#: the targets each peak ratio is held to
TARGETS = {"lora_over_full": 0.55, "lora_engine_over_numpy": 1.2, "full_engine_over_numpy": 1.10}

#: how many measured steps the peak is the smallest of
PEAK_REPEATS = 3

StepFn = Callable[[], Any]


# =========================================================================== the models


@dataclass
class Setup:
    """The three models of one comparison, the batch, and the same steps by hand.

    ``models[kind]`` is a lora_np MLP (full: every weight trains; lora: LoRA on every
    hidden Linear, the rest frozen; lora_fa: the same with A frozen too), and
    ``references[kind]`` the same network as plain arrays for the hand-written step.
    """

    models: dict[str, Module]
    references: dict[str, Any]
    x: np.ndarray
    y: np.ndarray


def build(
    sizes: tuple[int, ...] = SIZES,
    batch: int = BATCH,
    rank: int = RANK,
    alpha: float = ALPHA,
    seed: int = SEED,
) -> Setup:
    """The models and the batch (float32, drawn from ``seed``): one base MLP, the LoRA
    models wrapping copies of it. B is set to small random values (B = 0 at init would
    make A's gradient zero: the step would still do the same work)."""
    rng = np.random.default_rng(seed)
    full = MLP(list(sizes), rng=rng)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    models: dict[str, Module] = {"full": full}
    for kind in ("lora", "lora_fa"):
        config = LoRAConfig(
            rank=rank, alpha=alpha, target_modules="all-linear", freeze_a=kind == "lora_fa"
        )
        models[kind] = apply_lora(copy.deepcopy(full), config, rng=np.random.default_rng(seed))
    b_rng = np.random.default_rng(seed + 1)
    for (_, layer), (_, twin) in zip(
        lora_layers(models["lora"]), lora_layers(models["lora_fa"]), strict=True
    ):
        layer.lora_b.weight.data[...] = b_rng.normal(0.0, 1e-3, layer.lora_b.weight.shape)
        twin.lora_b.weight.data[...] = layer.lora_b.weight.data
    layers = [m for _, m in linear_layers(full)]
    weights, biases = [m.weight.data for m in layers], [m.bias.data for m in layers]
    index = {name: i for i, (name, _) in enumerate(linear_layers(full))}
    adapted = lora_layers(models["lora"])
    adapters = {
        index[name]: (layer.lora_a.weight.data, layer.lora_b.weight.data) for name, layer in adapted
    }
    scaling = adapted[0][1].scaling
    references = {
        "full": ReferenceMLP(weights, biases),
        "lora": ReferenceLoRAMLP(weights, biases, adapters, scaling=scaling),
        "lora_fa": ReferenceLoRAFAMLP(weights, biases, adapters, scaling=scaling),
    }
    return Setup(models=models, references=references, x=x, y=y)


def trainable(model: Module) -> list[Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(model: Module, name: str, params: list[Tensor] | None = None) -> Optimizer:
    """SGD (``"sgd"``, no momentum: no state) or Adam (``"adam"``) on ``params`` (by
    default, every parameter of ``model`` that requires a gradient)."""
    params = trainable(model) if params is None else params
    if name == "sgd":
        return SGD(params, lr=LEARNING_RATE)
    if name == "adam":
        return Adam(params, lr=1e-3)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def training_step(model: Module, optimizer: Optimizer, x: np.ndarray, y: np.ndarray) -> StepFn:
    """One step through lora_np: forward, loss, backward, update, ``zero_grad()`` — so
    between steps the model holds its parameters and the optimizer its state, no more."""
    inputs = Tensor(x)

    def step() -> float:
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    return step


# =========================================================================== measuring


def step_peak(step: StepFn, repeats: int = PEAK_REPEATS) -> int:
    """Bytes: the tracemalloc peak of one call of ``step`` above the memory traced just
    before it, the smallest over ``repeats`` calls after one warm-up call."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        step()  # warm-up: the optimizer's state is made here, and held from now on
        peaks = []
        for _ in range(repeats):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            step()
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
        return int(min(peaks))
    finally:
        if started:
            tracemalloc.stop()


def _nbytes(arrays: Iterable[Any]) -> int:
    return int(sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))


def breakdown(
    model: Module,
    x: np.ndarray,
    y: np.ndarray,
    optimizer: str = "adam",
    updated: list[str] | None = None,
) -> dict[str, Any]:
    """Where one training step's memory goes (bytes), through lora_np.

    ``parameters`` (every weight), ``optimizer_state`` (after the first step: Adam's two
    moments per trainable number), ``gradients`` (after backward), ``saved_activations``
    (the graph after forward, walked by :func:`~lora_np.graph_memory.saved_bytes`: the
    arrays its functions hold, not counting parameters and the batch), ``saved_batch``
    (the batch arrays the graph holds: in memory anyway), ``after_forward`` (what
    tracemalloc sees forward leave alive, for comparison with the graph walk), ``peak``
    (above what is held between steps, as :func:`step_peak`), and ``transient`` =
    peak − saved activations − gradients: the working arrays on top of the two (negative
    if saved activations are freed, in backward, before the last gradient is made).
    ``updated`` names the parameters the optimizer gets (default: every one that
    requires a gradient). The model is copied first, so it is not trained.
    """
    model = copy.deepcopy(model)
    named = dict(model.named_parameters())
    opt = make_optimizer(model, optimizer, None if updated is None else [named[n] for n in updated])
    params = list(model.parameters())
    inputs = Tensor(x)
    training_step(model, opt, x, y)()  # warm-up: the optimizer's state exists from here
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loss = F.cross_entropy(model(inputs), y)
        after_forward = tracemalloc.get_traced_memory()[0] - before
        saved_activations = saved_bytes(loss, exclude=[p.data for p in params] + [x, y])
        saved_with_batch = saved_bytes(loss, exclude=[p.data for p in params])
        loss.backward()
        gradients = _nbytes(p.grad for p in params)  # every gradient backward made
        opt.step()
        opt.zero_grad()
        del loss
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()
    state = _nbytes(v for s in opt.state.values() for v in s.values())
    return {
        "optimizer": optimizer,
        "trainable_parameters": sum(p.size for p in params if p.requires_grad),
        "total_parameters": sum(p.size for p in params),
        "parameters": _nbytes(p.data for p in params),
        "optimizer_state": state,
        "gradients": gradients,
        "saved_activations": saved_activations,
        "saved_batch": saved_with_batch - saved_activations,
        "after_forward": int(after_forward),
        "peak": int(peak),
        "transient": int(peak) - saved_activations - gradients,
    }


def graph_contents(
    output: Tensor, parameters: Iterable[np.ndarray], batch: Iterable[np.ndarray]
) -> list[dict[str, Any]]:
    """What each function of the graph behind ``output`` holds, from the loss back: the
    function's name, the attribute, the array's shape, dtype and bytes, and its kind —
    ``"parameter"`` or ``"batch"`` (in memory anyway), ``"activation"`` (made by forward
    and kept for backward), or ``"again"`` (a buffer an earlier row already counted)."""
    kinds = {id(buffer_of(np.asarray(a))): "parameter" for a in parameters}
    kinds.update({id(buffer_of(np.asarray(a))): "batch" for a in batch})
    rows, seen = [], set()
    for fn in graph_functions(output):
        for name, array in held_arrays(fn):
            owner = id(buffer_of(array))
            kind = kinds.get(owner, "again" if owner in seen else "activation")
            seen.add(owner)
            rows.append(
                {
                    "function": type(fn).__name__,
                    "holds": name,
                    "shape": tuple(array.shape),
                    "dtype": str(array.dtype),
                    "bytes": int(array.nbytes),
                    "kind": kind,
                }
            )
    return rows


def peaks(setup: Setup, repeats: int = PEAK_REPEATS) -> dict[str, dict[str, int]]:
    """The SGD step's peak (bytes) of each kind, through lora_np and by hand (on copies:
    ``setup`` is not trained)."""
    out = {}
    for kind in KINDS:
        model = copy.deepcopy(setup.models[kind])
        engine = training_step(model, make_optimizer(model, "sgd"), setup.x, setup.y)
        reference = copy.deepcopy(setup.references[kind])

        def by_hand(reference: Any = reference) -> float:
            return reference.step(setup.x, setup.y, LEARNING_RATE)

        out[kind] = {"engine": step_peak(engine, repeats), "numpy": step_peak(by_hand, repeats)}
    return out


def same_updates(setup: Setup) -> dict[str, float]:
    """For each kind, the largest difference between the trained weights after one SGD
    step through lora_np and one by hand, from the same start (on copies: ``setup`` is
    not trained). float32 rounding makes it ~1e-7; a different step would make it large."""
    out = {}
    for kind in KINDS:
        model = copy.deepcopy(setup.models[kind])
        reference = copy.deepcopy(setup.references[kind])
        training_step(model, make_optimizer(model, "sgd"), setup.x, setup.y)()
        reference.step(setup.x, setup.y, LEARNING_RATE)
        out[kind] = weight_difference(kind, model, reference)
    return out


def weight_difference(kind: str, model: Module, reference: Any) -> float:
    """The largest |difference| between the weights that train in ``model`` (every
    Linear's weight for ``"full"``, the adapters' A and B otherwise) and ``reference``'s."""
    if kind == "full":
        engine = [m.weight.data for _, m in linear_layers(model)]
        by_hand = reference.weights
    else:
        engine = [
            w
            for _, layer in lora_layers(model)
            for w in (layer.lora_a.weight.data, layer.lora_b.weight.data)
        ]
        by_hand = [w for pair in reference.adapters.values() for w in pair]
    return max(float(np.max(np.abs(a - b))) for a, b in zip(engine, by_hand, strict=True))


def activations_by_batch(
    batches: Iterable[int], sizes: tuple[int, ...] = SIZES, rank: int = RANK
) -> dict[str, Any]:
    """For each batch size: each kind's saved activations and Adam step peak (bytes), and
    the memory that does not grow with the batch (parameters + optimizer state)."""
    rows = []
    for batch in batches:
        setup = build(sizes, int(batch), rank)
        row: dict[str, Any] = {"batch": int(batch)}
        for kind in KINDS:
            parts = breakdown(setup.models[kind], setup.x, setup.y, optimizer="adam")
            row[kind] = {
                key: parts[key] for key in ("saved_activations", "gradients", "peak", "parameters")
            }
            row[kind]["optimizer_state"] = parts["optimizer_state"]
        rows.append(row)
    return {"model": "-".join(map(str, sizes)), "rank": rank, "optimizer": "adam", "rows": rows}


def inference_memory(setup: Setup, kind: str = "lora") -> dict[str, Any]:
    """What merging does at inference: parameters held and the peak of one forward pass
    under :func:`~lora_np.no_grad` (bytes), for the base model, the LoRA model as it
    trains (adapter beside W) and the same model merged (``merge_and_unload``: W + s·B·A
    written into W, the adapter gone), with the largest output difference from merging."""
    inputs = Tensor(setup.x)
    models = {
        "base": setup.models["full"],
        "adapter": setup.models[kind],
        "merged": merge_and_unload(copy.deepcopy(setup.models[kind])),
    }
    out: dict[str, Any] = {}
    outputs = {}
    for name, model in models.items():
        model.eval()

        def forward(model: Module = model) -> np.ndarray:
            with no_grad():
                return model(inputs).data

        outputs[name] = forward()
        out[name] = {
            "parameters": _nbytes(p.data for p in model.parameters()),
            "forward_peak": step_peak(forward),
        }
        model.train()
    out["max_abs_output_difference_merged"] = float(
        np.max(np.abs(outputs["merged"] - outputs["adapter"]))
    )
    return out


# =========================================================================== the section


def memory_section(repeats: int = PEAK_REPEATS) -> dict[str, Any]:
    """The bench's memory section: peaks (SGD) with their targets, and the breakdown
    (Adam). Deterministic: the same numbers on every run, up to a few hundred bytes."""
    setup = build()
    differences = same_updates(setup)
    step_peaks = peaks(setup, repeats)
    rows = []

    def row(name: str, what: str, numerator: int, denominator: int) -> None:
        target = TARGETS.get(name)
        entry = {"name": name, "what": what, "ratio": numerator / denominator, "target": target}
        if target is not None:
            entry["met"] = entry["ratio"] <= target
        rows.append(entry)

    for kind in KINDS:
        row(
            f"{kind}_engine_over_numpy",
            f"{KIND_NAMES[kind]} step peak, lora_np / hand-written NumPy",
            step_peaks[kind]["engine"],
            step_peaks[kind]["numpy"],
        )
    for kind in ("lora", "lora_fa"):
        for side in ("engine", "numpy"):
            name = f"{kind}_over_full" if side == "engine" else f"{kind}_over_full_numpy"
            row(
                name,
                f"{KIND_NAMES[kind]} step peak / full step peak, "
                + ("lora_np" if side == "engine" else "hand-written NumPy"),
                step_peaks[kind][side],
                step_peaks["full"][side],
            )
    return {
        "status": "ok",
        "what": (
            f"peak memory of one training step above what is held between steps "
            f"(tracemalloc, smallest of {repeats} steps), MLP {'-'.join(map(str, SIZES))}, "
            f"batch {BATCH}, float32, LoRA r = {RANK} on both hidden layers (head and "
            "biases frozen)"
        ),
        "model": "-".join(map(str, SIZES)),
        "batch": BATCH,
        "rank": RANK,
        "peak_optimizer": "sgd",
        "peaks": step_peaks,
        "rows": rows,
        "max_abs_weight_difference_after_one_step": differences,
        "same_update": all(d < 1e-5 for d in differences.values()),
        "breakdown_optimizer": "adam",
        "breakdown": {
            kind: breakdown(setup.models[kind], setup.x, setup.y, "adam") for kind in KINDS
        },
    }


def mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


BREAKDOWN_PARTS = (
    ("parameters", "parameters"),
    ("optimizer_state", "Adam state"),
    ("gradients", "gradients"),
    ("saved_activations", "saved activations"),
    ("transient", "transient rest"),
    ("peak", "step peak"),
)


def format_memory(section: dict[str, Any]) -> list[str]:
    """The memory section as lines of the bench's table."""
    lines = ["", "[memory] what one training step holds (MiB)"]
    lines.append(f"  {section['what']}")
    lines.append(f"  SGD step peak:  {'':<18} {'lora_np':>8} {'by hand':>8}")
    for kind in KINDS:
        p = section["peaks"][kind]
        lines.append(
            f"  {'':<15} {KIND_NAMES[kind]:<18} {mib(p['engine']):>8} {mib(p['numpy']):>8}"
        )
    lines.append(f"  {'ratio':<62} {'value':>6}  target")
    for entry in section["rows"]:
        status = ""
        if entry["target"] is not None:
            status = f"<= {entry['target']:.2f}  " + ("met" if entry["met"] else "MISSED")
        lines.append(f"  {entry['what']:<62} {entry['ratio']:>6.2f}  {status}")
    if not section["same_update"]:
        lines.append("  WARNING: a lora_np step and its hand-written twin disagree")
    parts = section["breakdown"]
    lines.append(
        "  where an Adam step's memory goes, lora_np (the step peak is above parameters "
        "and Adam state, held between steps):"
    )
    lines.append(f"  {'':<20}" + "".join(f"{KIND_NAMES[k]:>18}" for k in KINDS))
    for key, label in BREAKDOWN_PARTS:
        lines.append(f"  {label:<20}" + "".join(f"{mib(parts[k][key]):>18}" for k in KINDS))
    return lines
