"""The ``hyperkit`` command line: one prefix, one sub-command per job.

Each sub-command lives in the module named in :data:`hyperkit.commands.COMMANDS`; that module has
``register(subparsers)`` which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).
Bad input ends with one readable line (``hyperkit: error: ...``) and exit
status 2, never a traceback; ``HYPERKIT_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from hyperkit import __version__
from hyperkit.commands import COMMANDS, SUMMARIES

__all__ = ["COMMANDS", "SUMMARIES", "build_parser", "main"]


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``hyperkit`` parser; only ``command``'s module is imported (all of them if ``"*"``).

    The other sub-commands are listed by their one-line summary, so that ``hyperkit --help``
    and ``hyperkit CMD --help`` start without importing torch.
    """
    parser = argparse.ArgumentParser(
        prog="hyperkit",
        description="HyperUNet teaching and reproducibility kit.",
    )
    parser.add_argument("--version", action="version", version=f"hyperkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = list(dict.fromkeys(COMMANDS.values())) if command == "*" else \
        [COMMANDS[command]] if command in COMMANDS else []
    for module in wanted:  # a module may register several commands
        importlib.import_module(module).register(sub)
    for name in COMMANDS:
        if name not in sub.choices:
            sub.add_parser(name, help=SUMMARIES[name], add_help=False)
    return parser


def _message(exc: BaseException) -> str:
    """An error's text; an OS error in the kit's form ``PATH: problem`` instead of
    ``[Errno 2] No such file or directory: 'PATH'``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{where}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # OSError: FileNotFoundError, IsADirectoryError, PermissionError ...
        if os.environ.get("HYPERKIT_DEBUG"):
            raise
        msg = " ".join(_message(exc).split()) or type(exc).__name__  # every line of it, on one line
        print(f"hyperkit: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hyperkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
