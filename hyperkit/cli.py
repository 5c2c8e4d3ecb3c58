"""The ``hyperkit`` command line: one prefix, one sub-command per job.

Each sub-command lives in the module named in ``COMMANDS``; that module has
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

__all__ = ["COMMANDS", "build_parser", "main"]

# sub-command -> module with register(subparsers) (one module may add several)
COMMANDS: dict[str, str] = {
    "tasks": "hyperkit.data.cli",
    "phantoms": "hyperkit.phantoms.cli",
    "reproduce": "hyperkit.reproduce",
    "train": "hyperkit.training.cli",
    "evaluate": "hyperkit.evaluation.cli",
    "generate": "hyperkit.inference.cli",
    "segment": "hyperkit.inference.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperkit",
        description="HyperUNet teaching and reproducibility kit.",
    )
    parser.add_argument("--version", action="version", version=f"hyperkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(COMMANDS.values()):  # a module may register several commands
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if os.environ.get("HYPERKIT_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"hyperkit: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hyperkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
