"""lora_np.progress: a bar on a terminal or in a notebook, nothing in a log."""

from __future__ import annotations

import io
import sys
import types

import pytest

from lora_np import progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_a_bar_is_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=True)
    monkeypatch.setattr(sys, "stderr", stream)
    assert progress.interactive()
    assert list(progress.progress_bar(range(3), enabled=True, desc="counting")) == [0, 1, 2]
    assert "counting" in stream.getvalue()


def test_nothing_is_drawn_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", stream)
    assert not progress.interactive()
    assert list(progress.progress_bar(range(3), enabled=True, desc="counting")) == [0, 1, 2]
    bar = progress.progress_counter(enabled=True, total=3, desc="counting")
    bar.update(3)
    bar.set_postfix({"loss": "1.0"}, refresh=False)
    bar.close()
    assert stream.getvalue() == ""


def test_enabled_false_draws_nothing_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=True)
    monkeypatch.setattr(sys, "stderr", stream)
    list(progress.progress_bar(range(3), enabled=False, desc="counting"))
    progress.progress_counter(enabled=False, total=3, desc="counting").close()
    assert stream.getvalue() == ""


def test_a_jupyter_kernel_counts_as_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))  # a kernel's stderr is no TTY
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert progress.interactive()
    shell.kernel = None  # a terminal IPython shell: it has no kernel
    assert not progress.interactive()


def test_no_stderr_at_all_is_not_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert not progress.interactive()
