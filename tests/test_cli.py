"""The command line as a user meets it: bad values are one-line usage errors (exit 2, no
traceback) caught before any work; ``--threads`` means one thing; ``--help`` reads as help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lora_np.cli import COMMANDS, arguments, main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the work itself fail the test: a usage error must come before it."""

    def work(*args, **kwargs):
        raise AssertionError("the command started working before checking its arguments")

    monkeypatch.setattr("lora_np.cli.reproduce.reproduce", work)
    monkeypatch.setattr("lora_np.cli.demo.train_digits_mlp", work)
    monkeypatch.setattr("lora_np.cli.bench.benchmark", work)
    monkeypatch.setattr("lora_np.cli.notebooks.execute_notebook", work)


def _status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own checks exit; run()'s return
        return int(exit_.code)


#: a notebook of one code cell
_NOTEBOOK = (
    '{"cells": [{"cell_type": "code", "execution_count": null, "id": "c", "metadata": {},'
    ' "outputs": [], "source": "x = 1"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
)


def _a_file(tmp_path: Path) -> str:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return str(path)


BAD = {
    "seed -1": (["reproduce", "--seed", "-1"], "argument --seed: expected a whole number >= 0"),
    "seed not a number": (["reproduce", "--seed", "x"], "--seed: expected a whole number"),
    "out under /proc": (["reproduce", "--out", "/proc/x"], "--out /proc/x: cannot write there"),
    "out a file": (["reproduce", "--out", "{file}"], "a_file: is a file, not a folder"),
    "threads -3 (reproduce)": (["reproduce", "--threads", "-3"], "--threads: expected a whole"),
    "threads -3 (bench)": (["bench", "--threads", "-3"], "--threads: expected a whole number"),
    "repeats 0": (["bench", "--repeats", "0"], "--repeats: expected a whole number >= 1, got 0"),
    "epochs 0": (["demo", "--epochs", "0"], "--epochs: expected a whole number >= 1, got 0"),
    "lr nan": (["demo", "--lr", "nan"], "--lr: expected a finite number > 0, got nan"),
    "lr inf": (["demo", "--lr", "inf"], "--lr: expected a finite number > 0, got inf"),
    "lr 0": (["demo", "--lr", "0"], "--lr: expected a finite number > 0, got 0"),
    "batch size 0": (["demo", "--batch-size", "0"], "--batch-size: expected a whole number >="),
    "demo seed -1": (["demo", "--seed", "-1"], "--seed: expected a whole number >= 0"),
    "timeout 0": (["notebooks", "--timeout", "0"], "--timeout: expected a whole number >= 1"),
    "no notebooks": (["notebooks", "--dir", "{empty}"], "no notebooks found in"),
    "unknown notebook": (["notebooks", "nope"], "'nope' matches no notebook"),
    "quick over itself": (
        ["notebooks", "--quick", "--out", str(REPO / "notebooks"), "01"],
        "a quick run never overwrites the notebooks it runs",
    ),
    "unknown command": (["nope"], "invalid choice: 'nope'"),
    "threads above the CPUs": (
        ["bench", "--threads", "99999999999999999999"],
        "--threads: expected a whole number from 0 to",
    ),
    "out empty (reproduce)": (["reproduce", "--out", ""], "--out: expected a folder path, got ''"),
    "out empty (notebooks)": (["notebooks", "--out", ""], "--out: expected a folder path, got ''"),
    "an unreadable notebook": (["notebooks", "{bad_notebook}"], "not a readable notebook"),
    "two notebooks, one file": (
        ["notebooks", "{first}/nb.ipynb", "{second}/nb.ipynb", "--out", "{empty}"],
        "would both be written to",
    ),
    "quick over a full run": (
        ["reproduce", "--quick", "--only", "gradcheck_eps", "--out", "{full_run}"],
        "holds a full run, which a quick run never overwrites",
    ),
}


@pytest.mark.parametrize(("argv", "expected"), BAD.values(), ids=BAD.keys())
def test_a_bad_value_is_a_one_line_usage_error_before_any_work(
    argv: list[str], expected: str, tmp_path: Path, capsys, monkeypatch, no_work
) -> None:
    monkeypatch.chdir(REPO)  # notebooks/ is where the runner looks by default
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.ipynb").write_text("{not json")
    for folder in ("first", "second", "full_run"):
        (tmp_path / folder).mkdir()
    for folder in ("first", "second"):
        (tmp_path / folder / "nb.ipynb").write_text(_NOTEBOOK)
    (tmp_path / "full_run" / "gradcheck_eps.json").write_text('{"quick": false}')
    places = {f: tmp_path / f for f in ("empty", "first", "second", "full_run")}
    bad = tmp_path / "bad.ipynb"
    argv = [a.format(file=_a_file(tmp_path), bad_notebook=bad, **places) for a in argv]
    assert _status(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("python -m lora_np") and ": error: " in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a folder nobody can write in")
def test_an_unwritable_out_is_refused_before_the_experiments_run(capsys, no_work) -> None:
    assert _status(["reproduce", "--quick", "--out", "/proc"]) == 2  # exists, not writable
    assert "--out /proc: cannot write there" in capsys.readouterr().err


def test_the_real_command_exits_2_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lora_np", "demo", "--lr", "nan"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""


# --------------------------------------------------------------------------- failures


def test_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch) -> None:
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lora_np.cli.demo.train_digits_mlp", interrupted)
    assert main(["demo", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "python -m lora_np demo: interrupted" and "Traceback" not in err


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverged_demo_says_why_in_one_line(capsys) -> None:
    assert main(["demo", "--epochs", "1", "--lr", "1e300", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m lora_np demo: fit: the loss is nan") and "\n" not in err
    assert "smaller learning rate" in err


def test_a_failed_plot_keeps_the_previous_pair_of_files(tmp_path, monkeypatch, capsys) -> None:
    import types

    def experiment(fail: bool) -> types.SimpleNamespace:
        def plot(result):
            if fail:
                raise RuntimeError("the plot failed")
            import matplotlib.pyplot as plt

            return plt.figure()

        return types.SimpleNamespace(
            run=lambda quick, seed, progress: {"seed": seed, "quick": quick},
            plot=plot,
            summary=lambda result: f"seed {result['seed']}",
        )

    monkeypatch.setattr("lora_np.cli.reproduce.names", lambda: ["fake"])
    monkeypatch.setattr("lora_np.cli.reproduce.load", lambda name: experiment(fail=False))
    assert main(["reproduce", "--only", "fake", "--out", str(tmp_path), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["fake.json", "fake.png"]
    monkeypatch.setattr("lora_np.cli.reproduce.load", lambda name: experiment(fail=True))
    argv = ["reproduce", "--only", "fake", "--seed", "3", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 1
    assert "fake: FAILED" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # seed 0's pair


def test_a_timed_out_cell_and_a_dead_kernel_fail_their_notebooks_only(tmp_path, capsys) -> None:
    def notebook(name: str, source: str) -> str:
        path = tmp_path / f"{name}.ipynb"
        path.write_text(_NOTEBOOK.replace('"x = 1"', json.dumps(source)))
        return str(path)

    slow = notebook("a_slow", "import time\ntime.sleep(30)")
    dies = notebook("b_dies", "import os\nos._exit(1)")
    fine = notebook("c_fine", "x = 1")
    out = tmp_path / "out"
    argv = ["notebooks", "--quick", "--timeout", "2", slow, dies, fine, "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.count("FAILED") == 2 and "2 notebook(s) failed: a_slow" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["c_fine.ipynb"]  # the others ran


def test_a_section_named_twice_runs_once(monkeypatch, capsys) -> None:
    seen = []

    def benchmark(sections, **kwargs):
        seen.append(sections)
        return {"environment": {}, "timing": {}, "sections": {}}

    monkeypatch.setattr("lora_np.cli.bench.benchmark", benchmark)
    monkeypatch.setattr("lora_np.cli.bench.format_table", lambda results: "")
    assert main(["bench", "--only", "lora", "lora", "engine", "lora"]) == 0
    assert seen == [("lora", "engine")]


# --------------------------------------------------------------------------- --threads


def test_threads_means_the_same_in_every_command_that_has_it() -> None:
    for command in ("reproduce", "bench"):
        parser = arguments.OneLineParser(formatter_class=arguments.HelpFormatter)
        __import__(COMMANDS[command][0], fromlist=["configure"]).configure(parser)
        assert parser.parse_args(["--threads", "0"]).threads == 0
        help_text = " ".join(parser.format_help().split())
        assert " ".join(arguments.THREADS_HELP.split()) in help_text
    # 0 leaves BLAS alone, N >= 1 limits it for the block (both commands use this)
    with arguments.blas_threads(0):
        pass


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_reads_as_a_users_help_and_shows_defaults(command: str | None, capsys) -> None:
    argv = [command, "--help"] if command else ["--help"]
    assert _status(argv) == 0
    text = capsys.readouterr().out
    for developer_note in (":mod:", ":func:", ":data:", "``", "configure(", "run(args", "TODO"):
        assert developer_note not in text, (command, developer_note)
    if command is None:
        assert all(name in text for name in COMMANDS)
        return
    options = {
        "reproduce": ["--seed", "--threads", "--out", "--only"],
        "bench": ["--repeats", "--threads", "--only"],
        "notebooks": ["--timeout", "--dir", "--out"],
        "demo": ["--epochs", "--lr", "--batch-size", "--seed"],
    }[command]
    flat = " ".join(text.split())
    for option in options:
        described = flat.split(f" {option} ")[-1].split(" --")[0]
        assert "default" in described, (command, option, described)
    assert "no progress bar" in flat or command == "notebooks"


# --------------------------------------------------------------------------- what demo reports


def test_demo_reports_the_batch_it_used(capsys) -> None:
    assert main(["demo", "--epochs", "1", "--batch-size", "100000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(1 step of batch 1348: the whole training set, as --batch-size 100000 is larger)" in out
