"""The command line, ``python -m lora_np <command>``: reproduce | bench | notebooks | demo.

Each command lives in its own module here, which provides ``DESCRIPTION`` (its ``--help``
text), ``configure(parser)`` and ``run(args) -> int``; :func:`main` only dispatches (and
imports a command only when used, so ``--help`` of one command does not load the others'
dependencies). Bad values are usage errors, reported by :mod:`lora_np.cli.arguments`.
"""

from __future__ import annotations

import importlib
import os
import sys

from lora_np.cli.arguments import HelpFormatter, OneLineParser, UsageError, report_usage_error

COMMANDS = {
    "reproduce": ("lora_np.cli.reproduce", "run the experiments and write their figures"),
    "bench": ("lora_np.cli.bench", "time the engine against hand-written NumPy, side by side"),
    "notebooks": ("lora_np.cli.notebooks", "execute the course notebooks"),
    "demo": ("lora_np.cli.demo", "train a small MLP on the digits and print its accuracy"),
}

DESCRIPTION = """\
lora_np: LoRA from first principles, in NumPy.
`python -m lora_np COMMAND --help` shows a command's options and their defaults.
"""


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run the chosen command.

    Returns the exit status: 0 on success, 1 if some of the work failed, 2 for a usage
    error (a bad value, reported in one line before any work starts), 130 if interrupted
    (Ctrl-C: one line, no traceback; files are written whole or not at all, so what is on
    disk is complete). Output piped into a command that stops reading (``| head``) ends the
    run quietly.
    """
    parser = OneLineParser(
        prog="python -m lora_np", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if name == chosen:
            modules[name] = importlib.import_module(module_name)
            description = modules[name].DESCRIPTION
        else:
            description = help_text
        command_parser = sub.add_parser(
            name, help=help_text, description=description, formatter_class=HelpFormatter
        )
        if name == chosen:
            modules[name].configure(command_parser)
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.command}"
    try:
        return int(modules[args.command].run(args) or 0)
    except UsageError as error:
        return report_usage_error(prog, error)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout has gone: stop, and say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
