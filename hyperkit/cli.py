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

__all__ = ["COMMANDS", "SUMMARIES", "build_parser", "main"]

# sub-command -> module with register(subparsers) (one module may add several)
COMMANDS: dict[str, str] = {
    "tasks": "hyperkit.data.cli",
    "phantoms": "hyperkit.phantoms.cli",
    "reproduce": "hyperkit.reproduce",
    "train": "hyperkit.training.cli",
    "evaluate": "hyperkit.evaluation.cli",
    "ablate": "hyperkit.evaluation.ablation_cli",
    "finetune": "hyperkit.evaluation.finetune_cli",
    "maml": "hyperkit.evaluation.maml_cli",
    "generate": "hyperkit.inference.cli",
    "segment": "hyperkit.inference.cli",
}
# one line per sub-command for ``hyperkit --help``, so that listing them imports none of them
SUMMARIES: dict[str, str] = {
    "tasks": "list the tasks a data folder decomposes into",
    "phantoms": "write the procedural CT/MRI phantoms in the real datasets' layouts",
    "reproduce": "run the notebooks headlessly, index them, write the reproduction report",
    "train": "episodic meta-training of the hypernetwork (Algorithm 1)",
    "evaluate": "one-shot evaluation and baselines (paper Tables 1-2)",
    "ablate": "ablations (paper Tables 4-6, K-shot, samplings) with paired CIs",
    "finetune": "limited-data fine-tuning (paper Figure 3)",
    "maml": "MAML beside the 5-shot Hyper U-Net, leave-one-organ-out (paper Table 3)",
    "generate": "generate a U-Net from one labelled scan",
    "segment": "segment a scan with a generated U-Net",
}


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
            sub.add_parser(name, help=SUMMARIES.get(name, ""), add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
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
