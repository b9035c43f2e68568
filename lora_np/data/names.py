"""US Census names as character sequences: the tiny GPT's pretraining and fine-tuning text.

The 1990 US Census name lists (public domain; taken from the PyPI package ``names`` 0.3.0,
MIT, by ``tools/make_names_data.py``) ship in ``lora_np/data/datasets/census_names.txt.gz``:
88,799 surnames, 4,275 female and 1,219 male first names, lower-cased, most frequent
first. :func:`load_names` checks the file's SHA-256 before reading it (the file is plain
gzip-compressed text: nothing in it can run code).

Two domains for one model: surnames are the pretraining text, first names (female and
male together, 5,163 distinct) the fine-tuning target — a real shift in spelling
statistics ("-son", "-ez" against "-a", "-ie") with little target data, and forgetting
can be measured on the surnames.

Tokens: the 26 letters plus one end-of-name token, written ``"."`` and numbered 0
(:data:`END`), so ``"a"`` is 1 and ``"z"`` 26. A name is modelled as a sequence that starts
after an end token and stops at the next one: for ``"ann"`` the model reads
``. a n n`` and must predict ``a n n .``, one target per character plus one for the end.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from lora_np.checks import is_int
from lora_np.data.shipped import read_shipped

#: SHA-256 of the shipped ``census_names.txt.gz`` (written by ``tools/make_names_data.py``).
NAMES_SHA256 = "7c258e0a5a6999fe3d0f830cddf258296debe16715181bc3d17efc4b78259693"

#: The token alphabet: id i is ``ALPHABET[i]``; id 0 is the end-of-name token.
ALPHABET = ".abcdefghijklmnopqrstuvwxyz"
END = 0
VOCAB_SIZE = len(ALPHABET)
#: The target value of a padding position, which a loss ignores (``models.token_nll``).
IGNORE = -1

#: The lists in the file and how many names each holds.
NAME_COUNTS = {"surnames": 88_799, "female": 4_275, "male": 1_219}
#: What :func:`load_names` accepts: a list of the file, or ``"first"`` = female ∪ male.
KINDS = ("surnames", "female", "male", "first")

NAMES_CITATION = (
    "US Census Bureau (1990), frequently occurring surnames and first names; public domain. "
    "Distributed in the PyPI package names 0.3.0 by Trey Hunner (MIT licence)."
)

_FILE = "census_names.txt.gz"


def _parse(text: str, name: str) -> dict[str, list[str]]:
    """The three lists of the file's text (a header, then ``[list] source count`` + names)."""
    lists: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines()[1:]:
        if line.startswith("["):
            section = line[1 : line.index("]")]
            current = lists.setdefault(section, [])
        elif current is not None:
            current.append(line)
    counts = {section: len(names) for section, names in lists.items()}
    if counts != NAME_COUNTS:
        raise ValueError(f"load_names: {name} holds lists {counts}, expected {NAME_COUNTS}")
    return lists


def load_names(kind: str = "surnames", *, path: str | Path | None = None) -> list[str]:
    """The names of one list, lower-cased, most frequent first.

    ``kind``: ``"surnames"`` (88,799), ``"female"`` (4,275), ``"male"`` (1,219) or
    ``"first"`` — the female and then the male names, each once (5,163; 331 names are on
    both lists). The file's SHA-256 must equal :data:`NAMES_SHA256`; ``path`` reads another
    copy of the file (the same checksum applies).
    """
    if kind not in KINDS:
        raise ValueError(f"load_names: kind must be one of {KINDS}, got {kind!r}")
    raw, name = read_shipped(
        "lora_np.data",
        f"datasets/{_FILE}",
        NAMES_SHA256,
        path=path,
        who="load_names",
        what="the shipped names file",
        rebuilt_by="tools/make_names_data.py",
    )
    lists = _parse(gzip.decompress(raw).decode("utf-8"), name)
    if kind == "first":
        return list(dict.fromkeys(lists["female"] + lists["male"]))
    return lists[kind]


def split_names(
    names: list[str], fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(rest, held_out)``: ``round(fraction · n)`` of ``names`` held out at random.

    The held-out names are the first ones of a permutation drawn from
    ``np.random.default_rng(seed)`` (its own generator, so the same seed gives the same
    split wherever it is asked for); both lists keep the order of ``names``.
    """
    if not isinstance(fraction, float) or not 0.0 < fraction < 1.0:
        raise ValueError(f"split_names: fraction must be a float in (0, 1), got {fraction!r}")
    if not is_int(seed):
        raise TypeError(f"split_names: seed must be an int, got {seed!r}")
    held = np.zeros(len(names), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(names))[: round(fraction * len(names))]] = True
    rest = [n for n, h in zip(names, held, strict=True) if not h]
    return rest, [n for n, h in zip(names, held, strict=True) if h]


def names_split(
    kind: str, validation_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(train, validation)``: the names of ``kind`` (see :func:`load_names`), split by
    :func:`split_names` — surnames 79,919 / 8,880, first names 4,647 / 516 with the
    defaults, the same split in every experiment and notebook."""
    return split_names(load_names(kind), validation_fraction, seed)


def encode(name: str) -> np.ndarray:
    """The token ids of ``name`` (letters a-z only), without end tokens: ``"ab"`` -> [1, 2]."""
    if not isinstance(name, str):
        raise TypeError(f"encode: expected a str, got {type(name).__name__}")
    bad = sorted({c for c in name if c not in ALPHABET[1:]})
    if bad:
        raise ValueError(f"encode: {name!r} has characters {bad}; expected lower-case a-z only")
    return np.array([ALPHABET.index(c) for c in name], dtype=np.int64)


def decode(ids: np.ndarray | list[int]) -> str:
    """The letters of ``ids`` up to the first end token (or the end): [1, 2, 0, 5] -> "ab"."""
    array = np.asarray(ids)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"decode: token ids must be integers, got dtype {array.dtype}")
    out = []
    for i in array.reshape(-1).tolist():
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"decode: token id {i} is outside [0, {VOCAB_SIZE})")
        if i == END:
            break
        out.append(ALPHABET[i])
    return "".join(out)


def encode_names(names: list[str], context_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (N, context_length) int64 for a list of names.

    Row i reads ``[END, c₁, …, cₙ, END, END, …]`` and must predict
    ``[c₁, …, cₙ, END, IGNORE, …]``: each position's target is the next character, the
    last one the end token, and the padding after it is :data:`IGNORE`. A name needs
    ``len(name) + 1 <= context_length``.
    """
    if not is_int(context_length) or context_length < 2:
        raise ValueError(
            f"encode_names: context_length must be an int >= 2, got {context_length!r}"
        )
    if isinstance(names, str):
        raise TypeError(f"encode_names: expected a list of names, got the string {names!r}")
    if not names:
        raise ValueError("encode_names: the list of names is empty")
    inputs = np.full((len(names), context_length), END, dtype=np.int64)
    targets = np.full((len(names), context_length), IGNORE, dtype=np.int64)
    for row, name in enumerate(names):
        ids = encode(name)
        if len(ids) + 1 > context_length:
            raise ValueError(
                f"encode_names: {name!r} has {len(ids)} letters; with its end token it needs "
                f"context_length >= {len(ids) + 1}, got {context_length}"
            )
        inputs[row, 1 : len(ids) + 1] = ids
        targets[row, : len(ids)] = ids
        targets[row, len(ids)] = END
    return inputs, targets
