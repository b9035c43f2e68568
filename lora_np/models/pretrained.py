"""The tiny GPT pretrained on US Census surnames: its recipe, and the checkpoint it made.

The checkpoint ``lora_np/models/checkpoints/gpt_surnames.safetensors`` ships in the package
so that experiments and notebooks start from a pretrained model in no time. It was made
by ``tools/pretrain_gpt.py``, which calls :func:`pretrain` with :data:`RECIPE` and
nothing else: the architecture :data:`ARCHITECTURE`, Adam on the surnames' training split
(:func:`lora_np.data.names_split`), a cosine learning-rate schedule, and seeds for the
initial weights and the batch order. The file's metadata records the recipe, the SHA-256
of the names file, the validation NLL reached and the first training losses, so the test
suite can check that the recipe still reproduces the checkpoint's start (and, outside
quick mode, the whole checkpoint).

The file is a safetensors file: a JSON header and raw little-endian float32 arrays under
the model's ``state_dict`` names, nothing executable. :func:`load_pretrained` checks its
SHA-256 first.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lora_np.data.names import NAMES_SHA256, names_split
from lora_np.models.char_lm import Sequences, cosine_schedule, nll, train
from lora_np.models.gpt import GPT

#: The shape of the pretrained model (the issue's "d_model 64, 2 layers, 4 heads").
ARCHITECTURE: dict[str, int] = {
    "vocab_size": 27,
    "context_length": 16,
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "mlp_ratio": 4,
}

#: How the checkpoint was trained. ``init_seed`` draws the initial weights,
#: ``batch_seed`` the order of the batches; the data split is ``names_split`` with its
#: default seed.
RECIPE: dict[str, Any] = {
    "data": "surnames",
    "steps": 4000,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 3e-3,
    "schedule": "cosine",
    "init_seed": 0,
    "batch_seed": 1,
}

#: How many of the first training losses the checkpoint's metadata records.
FIRST_LOSSES = 30

CHECKPOINT_NAME = "gpt_surnames.safetensors"
#: The one key of the checkpoint's safetensors metadata (its value is JSON).
METADATA_KEY = "lora_np"
#: SHA-256 of the shipped checkpoint (printed by ``tools/pretrain_gpt.py``).
CHECKPOINT_SHA256 = "61ae7b8545f46e9810948d6557a9e4f5d1950fa7780df29d9bee1b95fc7b893d"


def pretrain(
    steps: int | None = None, *, progress: bool = False, eval_every: int | None = None
) -> tuple[GPT, dict[str, Any]]:
    """Train a fresh :data:`ARCHITECTURE` GPT on surnames by :data:`RECIPE`.

    ``steps`` stops after that many of the recipe's steps (the learning-rate schedule is
    the recipe's all the same), for a quick check of the start; None runs them all.
    ``eval_every`` records the validation NLL along the way (in the returned history,
    under ``"validation"``). Returns ``(model, history)`` (see :func:`char_lm.train`).
    """
    total = RECIPE["steps"]
    run = total if steps is None else steps
    if not 1 <= run <= total:
        raise ValueError(f"pretrain: steps must be in [1, {total}] or None, got {steps!r}")
    train_names, validation_names = names_split(RECIPE["data"])
    context = ARCHITECTURE["context_length"]
    model = GPT(**ARCHITECTURE, rng=np.random.default_rng(RECIPE["init_seed"]))
    history = train(
        model,
        Sequences.from_names(train_names, context),
        steps=run,
        lr=cosine_schedule(RECIPE["lr"], total),
        rng=np.random.default_rng(RECIPE["batch_seed"]),
        batch_size=RECIPE["batch_size"],
        optimizer=RECIPE["optimizer"],
        eval_sets=(
            {"validation": Sequences.from_names(validation_names, context)} if eval_every else None
        ),
        eval_every=eval_every,
        progress=progress,
        desc="pretrain",
    )
    return model, history


def checkpoint_metadata(model: GPT, history: dict[str, Any]) -> dict[str, Any]:
    """What the checkpoint records about itself: the architecture, the recipe, the SHA-256
    of the names file, the validation NLL reached and the first training losses."""
    _, validation_names = names_split(RECIPE["data"])
    validation = Sequences.from_names(validation_names, model.context_length)
    return {
        "architecture": model.config(),
        "recipe": RECIPE,
        "names_sha256": NAMES_SHA256,
        "validation_nll": round(nll(model, validation), 6),
        "first_losses": [round(v, 6) for v in history["loss"][:FIRST_LOSSES]],
    }


def checkpoint_bytes(model: GPT, metadata: dict[str, Any]) -> bytes:
    """The model's ``state_dict`` as safetensors bytes, ``metadata`` in its header.

    safetensors metadata maps strings to strings, and the library writes several keys in
    no fixed order; so the metadata goes in as one JSON string under one key
    (:data:`METADATA_KEY`), and the same model gives the same bytes.
    """
    from safetensors.numpy import save

    return save(model.state_dict(), metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def _checkpoint_path(path: str | Path | None) -> Path:
    if path is not None:
        return Path(path)
    resource = resources.files("lora_np.models") / "checkpoints" / CHECKPOINT_NAME
    return Path(str(resource))


def read_checkpoint(
    path: str | Path | None = None, *, check_sha256: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of the checkpoint (the shipped one unless ``path``)."""
    from safetensors import SafetensorError, safe_open

    file = _checkpoint_path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {file}; the shipped one is lora_np/models/checkpoints/"
            f"{CHECKPOINT_NAME} (package data; reinstall lora_np, or rebuild it with "
            "tools/pretrain_gpt.py)"
        )
    raw = file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if check_sha256 and digest != CHECKPOINT_SHA256:
        raise ValueError(
            f"{file} is corrupt or not the shipped checkpoint: its SHA-256 is {digest}, "
            f"expected {CHECKPOINT_SHA256}. Reinstall lora_np, or rebuild it with "
            "tools/pretrain_gpt.py"
        )
    try:
        with safe_open(str(file), framework="numpy") as handle:
            header = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is not a readable safetensors checkpoint ({err})") from err
    if METADATA_KEY not in header:
        raise ValueError(f"{file} is not a lora_np checkpoint (no {METADATA_KEY!r} metadata)")
    return arrays, json.loads(header[METADATA_KEY])


def load_pretrained(path: str | Path | None = None, *, check_sha256: bool = True) -> GPT:
    """The GPT pretrained on surnames, float32, ready to fine-tune (a new model each call).

    Reads the shipped checkpoint (or ``path``), checks its SHA-256 against
    :data:`CHECKPOINT_SHA256` (unless ``check_sha256=False``, for a checkpoint you made
    yourself) and builds the model from the architecture in its metadata.
    """
    arrays, metadata = read_checkpoint(path, check_sha256=check_sha256)
    model = GPT(**metadata["architecture"], rng=np.random.default_rng(0))
    model.load_state_dict(arrays)
    return model
