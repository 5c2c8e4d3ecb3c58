"""File I/O of the base layer: one atomic write (temporary file, fsync, rename) and safe torch reads.

Every file the kit writes whole (checkpoints, saved U-Nets, configs, run records, cache
entries) goes through :func:`write_atomic`, so a crash or kill during a write leaves the
previous file at its path intact and never a half-written one under the final name. Files
written row by row (results CSVs, training logs) are read through :func:`appended_lines`, which
tells a last row cut by such a crash.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

from hyperkit.errors import HyperkitError

__all__ = ["write_atomic", "write_text_atomic", "save_atomic", "read_torch_file", "sha256_file", "write_csv_atomic",
           "appended_lines", "read_jsonl", "process_alive", "touch"]


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, fsync, then rename it over ``path``.

    The folder is created when missing; the temporary file is removed when ``write`` fails. Its name
    is per process and thread, so that writers of one path at once each rename a whole file of their own.
    A temporary file of ``path`` left by a process that no longer runs (killed with SIGKILL mid-write, which
    no ``finally`` survives: a checkpoint's is tens of MB) is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    _clear_stale(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def touch(path: str | Path) -> None:
    """Set a file's modification time to now (a cache file marked as used: ``hyperkit cache --prune``); a file
    that cannot be written (a read-only cache) is left as it is."""
    try:
        os.utime(path)
    except OSError:
        pass


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


#: a temporary file is left alone this long after its last write (a writer on another machine sharing the folder
#: has a process id this one cannot check)
STALE_SECONDS = 600


def _clear_stale(path: Path) -> None:
    """Remove the temporary files of ``path`` (:func:`write_atomic`'s names, exactly) whose process no longer runs
    and that nothing has written for :data:`STALE_SECONDS`."""
    name = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.\d+\.tmp")
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        found = name.fullmatch(tmp.name)
        if found is None or int(found[1]) == os.getpid() or process_alive(int(found[1])):
            continue
        try:
            if time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink(missing_ok=True)
        except OSError:  # gone meanwhile
            pass


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_atomic`)."""
    return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_csv_atomic(path: str | Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]],
                     lineterminator: str = "\r\n") -> Path:
    """A CSV written whole and atomically (:func:`write_text_atomic`): the header ``fields`` and ``rows``."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator=lineterminator)
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`write_atomic`)."""
    import torch

    return write_atomic(path, lambda fh: torch.save(obj, fh))


def read_torch_file(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming ``what`` was expected.

    Raises:
        FileNotFoundError: no such file.
        HyperkitError: ``<path>: not a <what> (<why>)``: not a torch file, a damaged one, or one that
            needs more than plain tensors and containers.
    """
    import torch

    from hyperkit.errors import HyperkitError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {what} not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a file we can read"
        raise HyperkitError(f"{p}: not a {what} ({_unreadable(p, exc)})") from exc


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in words: never torch's advice to load with
    ``weights_only=False`` (which runs whatever code the file holds)."""
    import pickle

    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "an empty file"
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):  # a torch zip archive, or a legacy pickle
        return "not a torch file"
    if isinstance(exc, pickle.UnpicklingError):
        return "a torch file holding objects other than tensors and plain containers, or a damaged one"
    detail = " ".join(str(exc).split()).split(". ")[0]  # its first sentence, not a cut in the middle of its advice
    detail = detail if len(detail) <= 160 else detail[:159] + "…"
    return f"a truncated or damaged torch file: {type(exc).__name__}: {detail}"


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes, read in 1 MiB blocks (checkpoints can be large)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def appended_lines(path: str | Path, *, drop_cut_row: bool, redo: str = "", header: bool = True) -> list[str]:
    """The lines of a file written row by row (a results CSV), each with its line break.

    Every row is written whole with its line break, so a file that does not end with one was cut
    by an interrupted write (a hard stop, a full disk) inside its last row.

    Args:
        path: the file.
        drop_cut_row: leave such a cut last row out (a resumed run, which makes it again);
            otherwise the file is refused.
        redo: how to make the cut row again, for the message (``"resume with --resume"``).
        header: the first line is a header written whole (a CSV): a file of one line is not cut.

    Raises:
        HyperkitError: a cut last row, without ``drop_cut_row``; a file that is not text (a binary file
            given for a table: the bare "'utf-8' codec can't decode byte" named no file).
    """
    try:
        with open(path, newline="") as fh:  # lines end at \n, \r or \r\n only (str.splitlines also splits
            lines = fh.readlines()            # at \x0c, \x1c, \u2028, ..., which a CSV field may hold)
    except UnicodeDecodeError as exc:  # the writers' encoding is the locale's, as here
        raise HyperkitError(f"{path}: not a text file of rows (byte {exc.start} is not {exc.encoding} text)") from None
    if len(lines) > int(header) and not lines[-1].endswith("\n"):
        if not drop_cut_row:
            raise HyperkitError(f"{path}: its last row (line {len(lines)}) was cut short by an interrupted write; "
                                f"{redo + ', or ' if redo else ''}delete the line")
        lines = lines[:-1]
    return lines


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file written row by row (a training's ``metrics.jsonl``,
    ``validation.jsonl``); ``[]`` when there is none.

    A last line without its line break is a row still being written (a run in progress) or cut
    by an interrupted write: it is left out (:func:`appended_lines`).
    """
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in appended_lines(p, drop_cut_row=True, header=False) if line.strip()]
