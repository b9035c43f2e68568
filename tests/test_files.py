"""write_atomic: whole file or nothing, with an ordinary file's permissions; replace_folder and
read_folder: a whole folder, old or new, never a mix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_np import files
from lora_np.files import current_folder, replace_folder, write_atomic


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


# --------------------------------------------------------------------------- whole folders


def test_replace_folder_swaps_in_the_new_contents_and_leaves_nothing_beside(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with replace_folder(folder) as staging:
        write_atomic(staging / "a.txt", lambda f: f.write("1"))
    with replace_folder(folder) as staging:
        write_atomic(staging / "a.txt", lambda f: f.write("2"))
    assert (folder / "a.txt").read_text() == "2"
    assert os.listdir(tmp_path) == ["run"]
    assert folder.stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_replace_folder_leaves_the_old_folder_when_the_block_fails(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with replace_folder(folder) as staging:
        write_atomic(staging / "a.txt", lambda f: f.write("old"))
    with pytest.raises(KeyboardInterrupt), replace_folder(folder) as staging:
        write_atomic(staging / "a.txt", lambda f: f.write("new"))
        raise KeyboardInterrupt
    assert (folder / "a.txt").read_text() == "old"
    assert os.listdir(tmp_path) == ["run"]


def test_replace_folder_refuses_a_file_and_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep")
    with (
        pytest.raises(NotADirectoryError, match=r"notes\.txt exists and is not a folder"),
        replace_folder(path),
    ):
        pass
    assert path.read_text() == "keep"
    inside = tmp_path / "run" / "sub"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    with (
        pytest.raises(ValueError, match=r"is \(or contains\) the current directory"),
        replace_folder(tmp_path / "run"),
    ):
        pass
    assert inside.is_dir()


def test_read_folder_reads_one_folder_even_if_it_is_swapped_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    with replace_folder(folder) as staging:
        for name in ("a", "b"):
            write_atomic(staging / name, lambda f: f.write("old"))
    real_read, swaps = files._read, []

    def read_then_replace(path, handle=None):
        data = real_read(path, handle)
        if path.name == "a" and not swaps:  # a writer swaps the folder between the reads
            swaps.append(path)
            with replace_folder(folder) as staging:
                for name in ("a", "b"):
                    write_atomic(staging / name, lambda f: f.write("new"))
        return data

    monkeypatch.setattr(files, "_read", read_then_replace)
    used, contents = files.read_folder(folder, ["a", "b"])
    assert swaps and used == folder
    # the old folder was gone before "b" was read, so both came again from the new one
    assert contents == {"a": b"new", "b": b"new"}


def test_read_folder_reads_the_staged_folder_of_an_interrupted_swap(tmp_path: Path) -> None:
    staged = tmp_path / ".run.new"  # what replace_folder leaves between its two renames
    staged.mkdir()
    (staged / "a").write_text("complete")
    assert current_folder(tmp_path / "run") == staged
    assert files.read_folder(tmp_path / "run", ["a"]) == (staged, {"a": b"complete"})


def test_read_folder_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        files.read_folder(tmp_path, ["missing.json"])
    assert info.value.filename == str(tmp_path / "missing.json")


def test_a_symlinked_folder_is_replaced_through_its_link(tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    with replace_folder(real) as staging:
        write_atomic(staging / "a", lambda f: f.write("old"))
    link.symlink_to(real, target_is_directory=True)
    with replace_folder(link) as staging:
        write_atomic(staging / "a", lambda f: f.write("new"))
    assert link.is_symlink() and link.resolve() == real  # the link stays a link
    assert (real / "a").read_text() == "new" == (link / "a").read_text()
    assert files.read_folder(link, ["a"])[1] == {"a": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # no leftovers


def test_read_folder_reads_by_path_where_files_cannot_be_opened_in_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with replace_folder(tmp_path / "run") as staging:
        write_atomic(staging / "a", lambda f: f.write("by path"))
    # as on Windows, where os.open takes no dir_fd
    monkeypatch.setattr(files.os, "supports_dir_fd", set())
    opened = []
    real_open = files.os.open
    monkeypatch.setattr(files.os, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    assert files.read_folder(tmp_path / "run", ["a"]) == (tmp_path / "run", {"a": b"by path"})
    assert not opened  # no folder handle was opened
    with pytest.raises(FileNotFoundError) as info:
        files.read_folder(tmp_path / "run", ["missing.json"])
    assert info.value.filename == str(tmp_path / "run" / "missing.json")
