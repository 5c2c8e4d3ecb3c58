"""What the preprocessing cache holds, and pruning what has not been used (``hyperkit cache``).

The cache (``$HYPERKIT_CACHE``, default ``~/.cache/hyperkit``) grows and never shrinks by itself:
every preprocessed case is one ``.npz`` named by its dataset, case and a key of what it depends
on (the cache's version, the preprocessing settings, the case's files), so that a new setting, a
new spacing or an edited case writes a new file beside the old one; and every training bank kept
on disk is an index under ``banks/`` into those files (:mod:`hyperkit.data.store`). A case file
and a bank index count as *used* when a command last read them: reading one sets its
modification time (:func:`hyperkit.files.touch`), which :func:`prune` compares against.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hyperkit.data.store import cases_there

__all__ = ["CacheEntry", "cache_entries", "prune", "summary_rows", "format_size"]

#: seconds in a day
DAY = 86400.0


@dataclass(frozen=True)
class CacheEntry:
    """One thing the kit wrote in the cache.

    Attributes:
        path: the file (a preprocessed case) or folder (a bank index, or one left half-written).
        kind: ``"case"``, ``"bank"`` or ``"partial"`` (a bank folder whose writer never finished).
        group: the dataset it belongs to, as named in the file (``{layout}-{dataset}``).
        size: bytes.
        used: when it was last used (seconds since the epoch).
        orphan: a bank folder nothing reads any more: its cached cases are gone, or an older kit wrote it (which
            held the cubes themselves: gigabytes).
        reads: a bank index's cached cases (their paths).
    """

    path: Path
    kind: str
    group: str
    size: int
    used: float
    orphan: bool = False
    reads: tuple[str, ...] = ()


def _case_group(name: str) -> str:
    # {layout}-{dataset}-{case}-{key}.npz; the key is hex, the case id the part before it
    return name[:-len(".npz")].rsplit("-", 2)[0]


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _bank_reads(index: Path) -> tuple[bool, tuple[str, ...]]:
    """Whether a bank index lost its cases, and the cached cases it reads."""
    try:
        data = json.loads(index.read_text())
        return not cases_there(data), tuple(str(Path(c["arrays"]["image"]["path"])) for c in data["cases"])
    except (OSError, ValueError, KeyError, TypeError):
        return True, ()  # unreadable, or of an older store version: nothing would read it


def cache_entries(cache_dir: str | Path) -> list[CacheEntry]:
    """Every preprocessed case and bank folder in ``cache_dir`` (other files are not the kit's and are left out).

    Raises:
        ValueError: ``cache_dir`` exists but is not a folder.
    """
    root = Path(cache_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"the cache {root} is not a folder")
    out = []
    if not root.is_dir():
        return out
    for p in sorted(root.glob("*.npz")):
        st = p.stat()
        out.append(CacheEntry(p, "case", _case_group(p.name), st.st_size, st.st_mtime))
    banks = root / "banks"
    for folder in sorted(banks.iterdir()) if banks.is_dir() else []:
        if not folder.is_dir():
            continue
        group = folder.name.split(".partial-")[0].rsplit("-", 1)[0]
        index = folder / "index.json"
        if ".partial-" in folder.name or not index.is_file():
            out.append(CacheEntry(folder, "partial", group, _folder_size(folder), folder.stat().st_mtime))
        else:
            orphan, reads = _bank_reads(index)
            out.append(CacheEntry(folder, "bank", group, _folder_size(folder), index.stat().st_mtime, orphan, reads))
    return out


def prune(cache_dir: str | Path, days: float, dry_run: bool = False, now: float | None = None) -> list[CacheEntry]:
    """Remove the cache's cases and bank folders not used for ``days`` days, and bank indexes whose cases are gone
    or go with them.

    A bank folder left half-written counts as used when it was last written: one its writer is still writing is
    younger than any ``days`` > 0. ``days = 0`` removes everything the kit wrote there.

    Args:
        cache_dir: the cache.
        days: how long unused, >= 0.
        dry_run: only say what would be removed.
        now: the time to count from (default: now).

    Returns:
        What was removed (or would be, with ``dry_run``).

    Raises:
        ValueError: ``days`` is not a finite number >= 0.
    """
    if not (isinstance(days, (int, float)) and math.isfinite(days) and days >= 0):
        raise ValueError(f"days must be a finite number >= 0, got {days!r}")
    cutoff = (time.time() if now is None else now) - days * DAY
    entries = cache_entries(cache_dir)
    gone = [e for e in entries if days == 0 or e.used < cutoff or e.orphan]
    cases = {str(e.path.resolve()) for e in gone if e.kind == "case"}
    gone += [e for e in entries if e.kind == "bank" and e not in gone and cases.intersection(e.reads)]
    if not dry_run:
        for e in gone:
            if e.path.is_dir():
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                e.path.unlink(missing_ok=True)
    return gone


def format_size(n: float) -> str:
    """Bytes as B, KB, MB or GB (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _ago(days: float) -> str:
    return "today" if days < 1 else f"{int(days)} day{'s' if int(days) > 1 else ''} ago"


def summary_rows(entries: list[CacheEntry], now: float | None = None) -> list[dict[str, str]]:
    """One row per (kind, dataset): entries, size, when the most and the least recently used was used, and how many
    bank indexes lost their cases."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, str], list[CacheEntry]] = {}
    for e in entries:
        groups.setdefault((e.kind, e.group), []).append(e)
    rows = []
    for (kind, group), es in sorted(groups.items()):
        newest, oldest = (_ago((now - t) / DAY) for t in (max(e.used for e in es), min(e.used for e in es)))
        orphans = sum(e.orphan for e in es)
        rows.append({"kind": kind, "dataset": group, "entries": str(len(es)),
                     "size": format_size(sum(e.size for e in es)),
                     "used": newest if newest == oldest else f"{newest} .. {oldest}",
                     "note": f"{orphans} unusable (cases gone, or an older kit's)" if orphans else ""})
    return rows
