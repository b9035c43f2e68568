"""The command line, ``python -m lora_np <command>``: reproduce | bench | notebooks | demo.

Each command lives in its own module here, which provides ``configure(parser)`` and
``run(args) -> int``; :func:`main` only dispatches (and imports a command only when used,
so ``--help`` of one command does not load the others' dependencies).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "reproduce": ("lora_np.cli.reproduce", "run the experiments and write figures/"),
    "bench": ("lora_np.cli.bench", "time the engine against hand-written NumPy, side by side"),
    "notebooks": ("lora_np.cli.notebooks", "execute the notebooks in place"),
    "demo": ("lora_np.cli.demo", "train a small MLP on the digits and print its accuracy"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m lora_np", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(module_name)
            modules[name].configure(command_parser)
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)
