"""write_atomic: whole file or nothing, with an ordinary file's permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_np.files import write_atomic


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_new_file_gets_an_ordinary_files_mode_and_content(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    write_atomic(target, lambda f: f.write(b"\x00\x01"), "wb")
    assert target.read_bytes() == b"\x00\x01"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, lambda f: f.write("new"), encoding="utf-8")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("whole")

    def fails(file) -> None:
        file.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_atomic(target, fails)
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        write_atomic(tmp_path / "x", lambda f: None, "a")
