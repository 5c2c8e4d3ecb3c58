"""The ``hyperkit`` command line: one prefix, one sub-command per job.

Each sub-command lives in the module named in :data:`hyperkit.commands.COMMANDS`; that module has
``register(subparsers)`` which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).
Bad input ends with one readable line (``hyperkit: error: ...``) and exit
status 2, never a traceback; ``HYPERKIT_DEBUG=1`` shows the traceback. The kit's own warnings
(a support scan that is mostly air, tasks left out ...) print as one line too
(``hyperkit: warning: ...``); other packages' warnings keep Python's format. Ctrl-C and SIGTERM
(``kill``, ``timeout``, a batch system's end of job) both stop a command as an interruption: one line
(``hyperkit: interrupted...``, with how to go on) and exit status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn, Sequence

from hyperkit import __version__
from hyperkit.commands import COMMANDS, SUMMARIES

__all__ = ["COMMANDS", "SUMMARIES", "KitParser", "build_parser", "main"]


_PACKAGE = Path(__file__).resolve().parent


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None, *, fallback: Any = warnings.formatwarning) -> str:
    """``hyperkit: warning: ...`` on one line for the kit's own ``UserWarning`` s (raised from a
    module of this package); Python's format, with file and line, for everything else."""
    if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(_PACKAGE):
        return f"hyperkit: warning: {' '.join(str(message).split())}\n"
    return str(fallback(message, category, filename, lineno, line))


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _closest(word: str, options: Iterable[str]) -> str | None:
    """The valid word closest to a mistyped ``word`` (difflib ratio >= 0.6), or ``None``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


class KitParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that names the closest valid word when one is mistyped.

    A wrong choice (``hyperkit trian``, ``--progress lve``) ends with "did you mean 'train'?";
    :func:`main` does the same for an unknown option of a sub-command (``--episdoes``).
    Sub-command parsers are of this class too (``add_subparsers`` passes its parser's class on).
    """

    commands: dict[str, argparse.ArgumentParser] = {}

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            close = _closest(str(value), map(str, action.choices))
            hint = f"; did you mean {close!r}?" if close else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {choices}){hint}")

    def unrecognized(self, extra: Sequence[str], command: str | None) -> NoReturn:
        """End, in the sub-command's own words, with argparse's "unrecognized arguments" and the
        valid option closest to each mistyped one."""
        target = self.commands.get(command or "", self)
        known = [s for a in target._actions for s in a.option_strings]
        words = [w.split("=")[0] for w in extra if w.startswith("-")]
        hints = [f"{close!r} for {word!r}" for word in words if (close := _closest(word, known))]
        target.error(f"unrecognized arguments: {' '.join(extra)}"
                     + (f"; did you mean {', '.join(hints)}?" if hints else ""))


def build_parser(command: str | None = None) -> KitParser:
    """The ``hyperkit`` parser; only ``command``'s module is imported (all of them if ``"*"``).

    The other sub-commands are listed by their one-line summary, so that ``hyperkit --help``
    and ``hyperkit CMD --help`` start without importing torch.
    """
    parser = KitParser(
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
    parser.commands = dict(sub.choices)
    return parser


def _message(exc: BaseException) -> str:
    """An error's text; an OS error in the kit's form ``PATH: problem`` instead of
    ``[Errno 2] No such file or directory: 'PATH'``."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename is not None:
        # a folder to write into is a file ("afile: file exists" for --out afile/x.pt): name the file
        for part in (Path(str(exc.filename)), *Path(str(exc.filename)).parents):
            if part.is_file():
                return f"{part}: is a file, where a folder is needed"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{where}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


def _interrupted(exc: KeyboardInterrupt, command: str | None, args: argparse.Namespace) -> str:
    """The line for a Ctrl-C: what the command said when it stopped (``train``: the episode and ``--resume``);
    else, for a command that keeps what it finished and has ``--resume``, how to continue."""
    said = str(exc.args[0]) if exc.args else ""
    if said:
        return f"hyperkit: interrupted: {said}"
    if command != "train" and getattr(args, "resume", None) is not None:  # train says it itself once it has a run
        return "hyperkit: interrupted; what finished is kept: the same command with --resume goes on from there"
    return "hyperkit: interrupted"


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM's handler while a command runs: a ``KeyboardInterrupt``, so that a ``kill``, ``timeout`` or a batch
    system's end of job stops a command as Ctrl-C does (``train`` after its episode with ``last.pt`` written, every
    command with its temporary files removed and one line saying how to go on) instead of ending it on the spot.

    The worker processes of a pool (``phantoms --workers``) are passed the signal first: a pool waits for its
    queued jobs as it closes, and workers whose parent was ended on the spot were left behind, idle, for good."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises ``KeyboardInterrupt`` (:func:`_terminate_as_interrupt`); the handler before is
    restored after. Not under ``torchrun`` (``WORLD_SIZE`` > 1), whose launcher stops its workers with SIGTERM,
    nor outside the main thread, where no handler can be set."""
    distributed = os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")
    if distributed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser(command)
    if not argv:  # a bare `hyperkit`: the list of commands, not only argparse's one-line complaint
        parser.print_help()
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.unrecognized(extra, command)
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning  # type: ignore[assignment]
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # OSError: FileNotFoundError, IsADirectoryError, PermissionError ...
        if os.environ.get("HYPERKIT_DEBUG"):
            raise
        msg = " ".join(_message(exc).split()) or type(exc).__name__  # every line of it, on one line
        print(f"hyperkit: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(_interrupted(exc, command, args), file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
