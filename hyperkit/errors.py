"""Exceptions with messages a person can act on.

Every error the kit raises for bad input names the offending file or value.
The command line prints ``hyperkit: error: <message>`` and exits non-zero
instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["HyperkitError", "DataError", "ConfigError"]


class HyperkitError(ValueError):
    """Base class of the kit's input errors (a ``ValueError``)."""


class DataError(HyperkitError):
    """A dataset file or folder is missing, corrupt or inconsistent.

    Args:
        path: the file or folder at fault.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(HyperkitError):
    """A profile, config key or split file is invalid."""
