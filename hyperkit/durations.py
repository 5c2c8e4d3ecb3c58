"""How the kit writes a wall time for people: ``47 s``, ``3 min 05 s``, ``2 h 10 min``.

One rule for the runner's progress lines and summary (:mod:`hyperkit.reproduce`) and the
reproduction report's provenance table (:mod:`hyperkit.report.build`).
"""

from __future__ import annotations

__all__ = ["clock"]


def clock(seconds: float) -> str:
    """``47 s`` under a minute, ``3 min 05 s`` under an hour, else ``2 h 10 min`` (negative: ``0 s``)."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
