"""Reading a file that ships inside the package, checked against its SHA-256.

The digits, the census names and the tiny GPT's checkpoint are package data, read with
:mod:`importlib.resources` (so they are found in a checkout and in an install alike).
Each loader knows its file's SHA-256: a truncated or altered file is an error that says
how to get the right one back, not silently wrong data.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path


def read_shipped(
    package: str,
    relative: str,
    sha256: str | None,
    *,
    path: str | Path | None = None,
    who: str,
    what: str,
    rebuilt_by: str,
) -> tuple[bytes, str]:
    """The bytes of the file ``relative`` shipped in ``package`` (or of another copy of it
    at ``path``), and a name for it to use in errors.

    ``sha256`` (None: not checked) must match the bytes. Errors start with ``who`` (the
    loader's name), call the file ``what`` ("the shipped digits file") and point at
    ``rebuilt_by``, the script that makes it.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{who}: no file at {str(path)!r}")
        raw, name = path.read_bytes(), str(path)
    else:
        resource = resources.files(package).joinpath(*relative.split("/"))
        name = f"{package.replace('.', '/')}/{relative}"
        if not resource.is_file():
            raise FileNotFoundError(
                f"{who}: the packaged file {name} is missing; reinstall lora_np (it ships as "
                "package data)"
            )
        raw = resource.read_bytes()
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise ValueError(
                f"{who}: {name} is corrupt or not {what}: its SHA-256 is {digest}, expected "
                f"{sha256}. Reinstall lora_np, or rebuild the file with {rebuilt_by}"
            )
    return raw, name
