"""The shipped US Census names: checksum, contents, tokens, splits, the script that made them."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lora_np.data import NAMES_SHA256, load_names, names_split
from lora_np.data.names import (
    ALPHABET,
    END,
    IGNORE,
    NAME_COUNTS,
    VOCAB_SIZE,
    decode,
    encode,
    encode_names,
    split_names,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "lora_np" / "data" / "datasets" / "census_names.txt.gz"


def test_the_shipped_file_has_the_recorded_checksum_and_no_name_or_time_in_its_header() -> None:
    raw = SHIPPED.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == NAMES_SHA256
    assert raw[:2] == b"\x1f\x8b" and raw[3] == 0  # gzip, no FNAME/FEXTRA/FCOMMENT flags
    assert raw[4:8] == b"\x00\x00\x00\x00"  # mtime 0: rebuilding gives the same bytes


@pytest.mark.parametrize("kind", ["surnames", "female", "male"])
def test_each_list_has_its_census_count_of_distinct_lowercase_names(kind: str) -> None:
    names = load_names(kind)
    assert len(names) == len(set(names)) == NAME_COUNTS[kind]
    assert all(name and set(name) <= set(ALPHABET[1:]) for name in names)


def test_lists_keep_the_census_order_most_frequent_first() -> None:
    assert load_names("surnames")[:3] == ["smith", "johnson", "williams"]
    assert load_names("female")[:3] == ["mary", "patricia", "linda"]
    assert load_names("male")[:3] == ["james", "john", "robert"]
    assert max(len(n) for n in load_names("surnames")) == 13  # fits context 16 with its end


def test_first_names_are_both_lists_each_name_once() -> None:
    female, male, first = load_names("female"), load_names("male"), load_names("first")
    assert len(first) == 5_163 == len(set(female) | set(male))
    assert first[: len(female)] == female
    assert len(set(female) & set(male)) == 331


def test_load_names_refuses_an_altered_file_and_an_unknown_kind(tmp_path: Path) -> None:
    text = gzip.decompress(SHIPPED.read_bytes()).replace(b"\nsmith\n", b"\nsmyth\n")
    altered = tmp_path / "names.txt.gz"
    altered.write_bytes(gzip.compress(text, mtime=0))
    with pytest.raises(ValueError, match="corrupt or not the shipped names file"):
        load_names(path=altered)
    with pytest.raises(FileNotFoundError, match="no file at"):
        load_names(path=tmp_path / "missing.gz")
    with pytest.raises(ValueError, match="kind must be one of"):
        load_names("middle")


def test_tokens_are_the_letters_and_one_end_token() -> None:
    assert VOCAB_SIZE == 27 and ALPHABET[END] == "."
    np.testing.assert_array_equal(encode("abz"), [1, 2, 26])
    assert decode([1, 2, 26, END, 5]) == "abz"  # stops at the end token
    assert decode(encode("mary")) == "mary"
    with pytest.raises(ValueError, match=r"characters \['A', '-'\]|characters \['-', 'A'\]"):
        encode("Anne-")
    with pytest.raises(ValueError, match="outside"):
        decode([27])


def test_encode_names_shifts_targets_by_one_and_pads_with_ignore() -> None:
    inputs, targets = encode_names(["ann", "bo"], 6)
    np.testing.assert_array_equal(inputs, [[0, 1, 14, 14, 0, 0], [0, 2, 15, 0, 0, 0]])
    np.testing.assert_array_equal(targets, [[1, 14, 14, 0, -1, -1], [2, 15, 0, -1, -1, -1]])
    assert IGNORE == -1
    with pytest.raises(ValueError, match="needs context_length >= 4, got 3"):
        encode_names(["ann"], 3)


def test_encode_names_and_decode_name_what_they_expected() -> None:
    with pytest.raises(TypeError, match="expected a list of names, got the string 'ann'"):
        encode_names("ann", 6)
    with pytest.raises(TypeError, match="token ids must be integers, got dtype float64"):
        decode([1.5])
    assert decode([]) == ""


def test_splits_are_deterministic_disjoint_and_cover_everything() -> None:
    train, validation = names_split("first")
    assert (len(train), len(validation)) == (4_647, 516)
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(load_names("first"))
    assert names_split("first") == (train, validation)
    other = names_split("first", seed=1)
    assert other[1] != validation
    surnames_train, surnames_validation = names_split("surnames")
    assert (len(surnames_train), len(surnames_validation)) == (79_919, 8_880)
    rest, held = split_names(["a", "b", "c", "d"], 0.5, seed=0)
    assert len(held) == 2 and sorted(rest + held) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match=r"fraction must be a float in \(0, 1\)"):
        split_names(train, 1.0)


# --------------------------------------------------------------------------- the script


def _tool():
    spec = importlib.util.spec_from_file_location(
        "make_names_data", REPO / "tools" / "make_names_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_sdist(path: Path, lines: dict[str, list[str]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member, rows in lines.items():
            data = "".join(f"{row}\n" for row in rows).encode("ascii")
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_the_script_reads_the_census_format_and_writes_what_the_loader_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _tool()
    members = {member: [] for _, member, _ in tool.LISTS}
    (_, last, _), (_, female, _), (_, male, _) = tool.LISTS
    members[last] = ["SMITH          1.006  1.006      1", "JOHNSON        0.810  1.816      2"]
    members[female] = ["MARY           2.629  2.629      1"]
    members[male] = ["JAMES          3.318  3.318      1", "MARY           0.001  3.319      2"]
    sdist = _fake_sdist(tmp_path / "names-0.3.0.tar.gz", members)
    monkeypatch.setattr(tool, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    monkeypatch.setattr(tool, "LISTS", tuple((s, m, len(members[m])) for s, m, _ in tool.LISTS))
    text = tool.build_text(sdist)
    assert text.splitlines()[1:] == [
        "[surnames] dist.all.last 2",
        "smith",
        "johnson",
        "[female] dist.female.first 1",
        "mary",
        "[male] dist.male.first 2",
        "james",
        "mary",
    ]
    monkeypatch.setattr(tool, "SDIST_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"expected names-0\.3\.0's"):
        tool.build_text(sdist)


def test_the_script_rejects_a_line_it_does_not_understand(tmp_path: Path) -> None:
    tool = _tool()
    sdist = _fake_sdist(tmp_path / "x.tar.gz", {"names/dist.all.last": ["O'BRIEN 0.1 0.1 1"]})
    with tarfile.open(sdist) as archive, pytest.raises(ValueError, match="unexpected format"):
        tool.read_list(archive, "names/dist.all.last", 1)
