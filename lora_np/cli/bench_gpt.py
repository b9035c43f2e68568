"""The ``gpt`` section of ``python -m lora_np bench``: one GPT training step, lora_np vs PyTorch.

The model is the tiny GPT of :mod:`lora_np.models` at the shape of the pretrained
checkpoint (vocab 27, context 16, d_model 64, 4 heads, 2 blocks: 104,576 weights), on a
batch of 64 random sequences of 16 tokens, with Adam. Four steps are timed side by side,
interleaved (the bench's :class:`~lora_np.cli.bench.Timer`), PyTorch on one thread and
lora_np on the BLAS threads that ``--threads`` leaves it (one in the README's run):

* full fine-tuning and LoRA on q_proj and v_proj (r = 8, α = 16) through lora_np;
* the same two in PyTorch eager (:func:`torch_twin`: a ``torch.nn`` model with the same
  module names and the same weights; LoRA through PEFT's ``get_peft_model``), when torch
  (and, for the LoRA row, peft) is installed. PyTorch runs with ``torch.set_num_threads(1)``,
  restored afterwards.

Before timing, the first step's loss of each PyTorch step is compared with lora_np's (the
same weights and batch must give the same loss up to float32 rounding), so the rows
compare like with like.

Memory: the peak of what NumPy allocates during one lora_np step, measured with
``tracemalloc`` (NumPy reports its array buffers to it); PyTorch's allocations are
invisible to tracemalloc, so for PyTorch the section reports the bytes autograd saves for
backward in the same step (each saved tensor's storage counted once, through
``torch.autograd.graph.saved_tensors_hooks``) — the part of a step's memory that the graph
holds, not the process's peak.

``bench.py`` calls :func:`gpt_section` with its timer and prints
:func:`format_gpt_section`'s lines.
"""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

from lora_np.lora import LoRAConfig, apply_lora, count_parameters
from lora_np.models import GPT, token_nll
from lora_np.models.pretrained import ARCHITECTURE
from lora_np.optim import Adam

BATCH, TIME = 64, 16
RANK, ALPHA = 8, 16.0
TARGET_MODULES = ["q_proj", "v_proj"]
LEARNING_RATE = 1e-3
SEED = 0
#: float32 losses of the same step agree to rounding; 1e-4 (relative) is far above it
LOSS_RTOL = 1e-4


# =========================================================================== the PyTorch twin


def torch_twin(model: GPT) -> Any:
    """A PyTorch ``nn.Module`` with ``model``'s module names and a copy of its weights.

    Same layout (pre-LayerNorm GPT-2 blocks, causal softmax attention with scale 1/√d,
    GELU with ``approximate="tanh"``, LayerNorm eps 1e-5), so ``state_dict`` keys match one
    for one and ``twin(idx)`` returns the same logits. Its dtype is that of ``model``'s
    weights. Needs torch.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
            self.v_proj, self.o_proj = nn.Linear(d, d), nn.Linear(d, d)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            b, t, d = h.shape

            def split(x: torch.Tensor) -> torch.Tensor:
                return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

            q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, d))

    class FeedForward(nn.Module):
        def __init__(self, d: int, hidden: int) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, hidden: int) -> None:
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(d), Attention(d, heads)
            self.ln2, self.mlp = nn.LayerNorm(d), FeedForward(d, hidden)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            h = h + self.attn(self.ln1(h))
            return h + self.mlp(self.ln2(h))

    class TorchGPT(nn.Module):
        def __init__(self, cfg: dict[str, int]) -> None:
            super().__init__()
            d = cfg["d_model"]
            self.tok_emb = nn.Embedding(cfg["vocab_size"], d)
            self.pos_emb = nn.Embedding(cfg["context_length"], d)
            hidden = cfg["mlp_ratio"] * d
            self.blocks = nn.Sequential(
                *[Block(d, cfg["n_heads"], hidden) for _ in range(cfg["n_layers"])]
            )
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, cfg["vocab_size"], bias=False)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(idx.shape[1], device=idx.device)
            h = self.tok_emb(idx) + self.pos_emb(positions)
            return self.lm_head(self.ln_f(self.blocks(h)))

    state = model.state_dict()
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        next(iter(state.values())).dtype
    ]
    twin = TorchGPT(model.config()).to(dtype)
    twin.load_state_dict({key: torch.from_numpy(value.copy()) for key, value in state.items()})
    return twin


# =========================================================================== the steps


def _lora_np_step(model: GPT, ids: np.ndarray, targets: np.ndarray) -> Callable[[], float]:
    optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)

    def step() -> float:
        optimizer.zero_grad()
        loss = token_nll(model(ids), targets)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def _torch_step(model: Any, ids: np.ndarray, targets: np.ndarray) -> Callable[[], float]:
    import torch
    from torch.nn import functional as F

    idx, labels = torch.from_numpy(ids), torch.from_numpy(targets.reshape(-1))
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE
    )

    def step() -> float:
        optimizer.zero_grad()
        logits = model(idx)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def _tracemalloc_peak(step: Callable[[], Any]) -> int:
    """Peak bytes traced during one call of ``step`` (after a warm-up call)."""
    step()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _torch_saved_bytes(model: Any, ids: np.ndarray, targets: np.ndarray) -> int:
    """Bytes autograd saves for backward in one forward pass (each storage counted once)."""
    import torch
    from torch.nn import functional as F

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model(torch.from_numpy(ids))
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets.reshape(-1))
        )
    loss.backward()
    model.zero_grad()
    return sum(storages.values())


def _peft_model(twin: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGET_MODULES, lora_dropout=0.0)
    return get_peft_model(twin, config)


# =========================================================================== the section


def gpt_section(timer: Any) -> dict[str, Any]:
    """Time the four steps with ``timer`` (a :class:`lora_np.cli.bench.Timer`); JSON-ready."""
    from lora_np.cli.bench import milliseconds, quartiles, ratio

    rng = np.random.default_rng(SEED)
    full = GPT(**ARCHITECTURE, rng=rng)
    lora = apply_lora(
        copy.deepcopy(full),
        LoRAConfig(rank=RANK, alpha=ALPHA, target_modules=TARGET_MODULES),
        rng=np.random.default_rng(SEED + 1),
    )
    ids = rng.integers(0, ARCHITECTURE["vocab_size"], (BATCH, TIME))
    targets = rng.integers(0, ARCHITECTURE["vocab_size"], (BATCH, TIME))
    steps: dict[str, Callable[[], float]] = {
        "lora_np_full": _lora_np_step(copy.deepcopy(full), ids, targets),
        "lora_np_lora": _lora_np_step(copy.deepcopy(lora), ids, targets),
    }
    torch_info = _torch_setup(full, ids, targets, steps)
    first_losses = {name: step() for name, step in steps.items()}
    for side in ("full", "lora"):
        key = f"torch_{side}"
        if key in first_losses:
            reference = first_losses[f"lora_np_{side}"]
            torch_info[f"same_loss_{side}"] = bool(
                abs(first_losses[key] - reference) <= LOSS_RTOL * abs(reference)
            )
    threads = torch_info.pop("_threads", None)
    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    lora_np_threads = blas[0].get("num_threads") if blas else None
    try:
        times = timer.measure(steps)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)

    rows = []
    for side, label in (("full", "full fine-tuning"), ("lora", f"LoRA q,v (r={RANK})")):
        row: dict[str, Any] = {
            "name": side,
            "what": label,
            "lora_np_ms": milliseconds(times[f"lora_np_{side}"]),
        }
        if f"torch_{side}" in times:
            row.update(
                torch_ms=milliseconds(times[f"torch_{side}"]),
                ratio=ratio(times, f"lora_np_{side}", f"torch_{side}"),
                ratio_quartiles=quartiles(times, f"lora_np_{side}", f"torch_{side}"),
            )
        rows.append(row)
    memory = {
        "lora_np_tracemalloc_peak_bytes": {
            side: _tracemalloc_peak(_lora_np_step(copy.deepcopy(model), ids, targets))
            for side, model in (("full", full), ("lora", lora))
        }
    }
    if "saved_bytes" in torch_info:
        memory["torch_autograd_saved_bytes"] = torch_info.pop("saved_bytes")
    trainable = {"full": count_parameters(full)[0], "lora": count_parameters(lora)[0]}
    return {
        "status": "ok",
        "lora_np_blas_threads": lora_np_threads,
        "what": (
            f"GPT step, vocab {ARCHITECTURE['vocab_size']}, d_model {ARCHITECTURE['d_model']}, "
            f"{ARCHITECTURE['n_layers']} blocks, {ARCHITECTURE['n_heads']} heads "
            f"({count_parameters(full)[1]:,} weights), batch {BATCH} x {TIME} tokens, Adam"
        ),
        "rows": rows,
        "lora_np_lora_over_full": ratio(times, "lora_np_lora", "lora_np_full"),
        "trainable_parameters": trainable,
        "memory": memory,
        "torch": torch_info,
    }


def _torch_setup(
    full: GPT, ids: np.ndarray, targets: np.ndarray, steps: dict[str, Callable[[], float]]
) -> dict[str, Any]:
    """Add the PyTorch steps to ``steps`` when torch (and peft) can be imported; say why not."""
    try:
        import torch
    except ImportError:
        return {"status": "skipped", "reason": "torch not installed"}
    info: dict[str, Any] = {"status": "ok", "version": torch.__version__}
    info["_threads"] = torch.get_num_threads()
    torch.set_num_threads(1)
    twin = torch_twin(full)
    steps["torch_full"] = _torch_step(copy.deepcopy(twin), ids, targets)
    saved = {"full": _torch_saved_bytes(copy.deepcopy(twin), ids, targets)}
    try:
        peft_model = _peft_model(copy.deepcopy(twin))
    except ImportError:
        info["lora"] = "skipped: peft not installed"
    else:
        # the same adapter weights as lora_np's, so the first losses can be compared
        _copy_adapters(full, peft_model)
        steps["torch_lora"] = _torch_step(peft_model, ids, targets)
        saved["lora"] = _torch_saved_bytes(copy.deepcopy(peft_model), ids, targets)
    info["saved_bytes"] = saved
    return info


def _copy_adapters(full: GPT, peft_model: Any) -> None:
    """Give the PEFT model the A and B that lora_np's LoRA copy starts from."""
    import torch

    lora = apply_lora(
        copy.deepcopy(full),
        LoRAConfig(rank=RANK, alpha=ALPHA, target_modules=TARGET_MODULES),
        rng=np.random.default_rng(SEED + 1),
    )
    theirs = dict(peft_model.named_parameters())
    with torch.no_grad():
        for name, param in lora.named_parameters():
            for ours, peft_name in (("lora_a.weight", "lora_A"), ("lora_b.weight", "lora_B")):
                if name.endswith(ours):
                    path = name[: -len(ours) - 1]
                    key = f"base_model.model.{path}.{peft_name}.default.weight"
                    theirs[key].copy_(torch.from_numpy(param.data.copy()))


# =========================================================================== printing


def format_gpt_section(section: dict[str, Any]) -> list[str]:
    """The section as the lines ``python -m lora_np bench`` prints (starting with a blank)."""
    threads = section.get("lora_np_blas_threads")
    lora_np_threads = f"{threads} BLAS thread{'s' if threads != 1 else ''}" if threads else "BLAS"
    lines = [
        "",
        f"[gpt] GPT training step, lora_np ({lora_np_threads}) vs PyTorch eager (1 thread)",
    ]
    lines.append(f"  {section['what']}")
    torch_info = section["torch"]
    lines.append(f"  {'step':<22} {'lora_np ms':>10} {'torch ms':>9} {'ratio':>6} {'q1-q3':>11}")
    for row in section["rows"]:
        if "torch_ms" in row:
            q1, q3 = row["ratio_quartiles"]
            torch_part = f"{row['torch_ms']:>9.2f} {row['ratio']:>6.2f} {q1:>5.2f}-{q3:<5.2f}"
        else:
            torch_part = f"{'-':>9} {'-':>6} {'-':>11}"
        lines.append(f"  {row['what']:<22} {row['lora_np_ms']:>10.2f} {torch_part}")
    lines.append(f"  lora_np LoRA / full: {section['lora_np_lora_over_full']:.2f}")
    if torch_info["status"] != "ok":
        lines.append(f"  torch: skipped: {torch_info['reason']}")
    else:
        if "lora" in torch_info and isinstance(torch_info["lora"], str):
            lines.append(f"  torch LoRA: {torch_info['lora']}")
        for side in ("full", "lora"):
            same = torch_info.get(f"same_loss_{side}")
            if same is False:
                lines.append(f"  WARNING: the {side} steps' first losses differ; unlike work")
    memory = section["memory"]
    peak = memory["lora_np_tracemalloc_peak_bytes"]
    lines.append(
        f"  lora_np peak allocation in a step (tracemalloc): full {peak['full'] / 1e6:.1f} MB, "
        f"LoRA {peak['lora'] / 1e6:.1f} MB"
    )
    if "torch_autograd_saved_bytes" in memory:
        saved = memory["torch_autograd_saved_bytes"]
        parts = [f"{side} {value / 1e6:.1f} MB" for side, value in saved.items()]
        lines.append(
            "  torch: bytes autograd saves for backward (not a peak; tracemalloc cannot see "
            f"torch's allocator): {', '.join(parts)}"
        )
    counts = section["trainable_parameters"]
    lines.append(f"  trainable: full {counts['full']:,}, LoRA {counts['lora']:,}")
    return lines
