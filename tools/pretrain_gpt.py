"""Pretrain the tiny GPT on surnames; write `lora_np/models/checkpoints/gpt_surnames.safetensors`.

Run once, at development time, from the repository root (about a minute and a half on
one core)::

    OPENBLAS_NUM_THREADS=1 python tools/pretrain_gpt.py

It calls :func:`lora_np.models.pretrained.pretrain`, which trains by
:data:`lora_np.models.pretrained.RECIPE` (architecture, data split, optimizer, learning
rate schedule, steps and both seeds), and writes the model's ``state_dict`` as
safetensors with the recipe, the names file's SHA-256, the validation NLL and the first
training losses as metadata. Same recipe, same NumPy and BLAS: the same bytes. The script
prints the file's SHA-256, which ``CHECKPOINT_SHA256`` in ``lora_np/models/pretrained.py``
must hold.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from lora_np.models.pretrained import (
    CHECKPOINT_NAME,
    checkpoint_bytes,
    checkpoint_metadata,
    pretrain,
)

OUT = Path(__file__).resolve().parent.parent / "lora_np" / "models" / "checkpoints"


def main() -> None:
    start = time.perf_counter()
    model, history = pretrain(progress=True)
    metadata = checkpoint_metadata(model, history)
    payload = checkpoint_bytes(model, metadata)
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / CHECKPOINT_NAME
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(payload)
    tmp.replace(target)  # never leave a half-written file behind
    print(f"wrote {target} ({len(payload)} bytes) in {time.perf_counter() - start:.0f} s")
    print(f"validation NLL {metadata['validation_nll']} nats per character")
    print(f"sha256 {hashlib.sha256(payload).hexdigest()}")


if __name__ == "__main__":
    main()
