"""Which data a result was made from, by content rather than by where it lies.

Evaluations, fine-tunings and MAML folds record the data they were made from, so that a
run folder is resumed or reused only on the same data. Recording the resolved path alone
ties a finished run to one place on one machine: a run folder that is copied or moved
(with its data beside it, as ``hyperkit reproduce`` lays it out) would compute everything
again. A record therefore holds both:

- the resolved path (``data`` or ``data_root``), for people reading the record;
- :data:`FINGERPRINT_KEY`: :func:`data_fingerprint`, which is what comparisons use.

Records written before the fingerprint existed carry only the path and are still compared
by path (:func:`comparable_on_data`), so that they stay reusable where they were made.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from hyperkit.data.layouts import Dataset, discover_datasets
from hyperkit.files import sha256_file

__all__ = ["FINGERPRINT_KEY", "data_fingerprint", "data_identity", "comparable_on_data"]

#: the record key of :func:`data_fingerprint`
FINGERPRINT_KEY = "data_fingerprint"
#: metadata files whose whole content enters the fingerprint (at the root and in each dataset)
_METADATA = ("*.json", "*.csv")


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def data_fingerprint(root: str | Path, datasets: Sequence[Dataset] | None = None) -> str:
    """A content fingerprint of a data folder that does not change when the folder is copied or moved.

    It hashes the metadata files (``*.json``, ``*.csv`` at ``root`` and in each dataset folder, hidden ones aside:
    ``dataset.json``, ``meta.csv``, the phantoms' ``phantoms.json``, which holds a digest of every
    phantom file's content, not the generator code's hash) by content, and every image,
    label and structure file of every case by its path relative to its dataset and its size.
    Volumes are not read: hashing a TotalSegmentator copy (hundreds of GB) on every evaluation
    would cost more than the evaluation. A cohort generated with another seed or size, a dataset
    with other cases or labels, or a re-exported volume of another size changes it; a volume
    rewritten in place to exactly the same size does not.

    Args:
        root: the data folder (:func:`~hyperkit.data.layouts.discover_datasets`).
        datasets: the datasets already discovered at ``root`` (read again when omitted).

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        DataError: ``root`` holds no dataset.
    """
    r = Path(root)
    found = list(datasets) if datasets is not None else discover_datasets(r)
    entries: list[list[Any]] = []
    folders = [(".", r)] + [(ds.name, ds.root) for ds in found if Path(ds.root).resolve() != r.resolve()]
    for name, folder in folders:
        inside = Path(folder).resolve()
        for pattern in _METADATA:
            for meta in sorted(Path(folder).glob(pattern)):
                # regular files in the folder only: a FIFO would hang the read, a link may point anywhere; hidden
                # files are no metadata (a tarball made on macOS carries ._dataset.json beside dataset.json)
                if not meta.name.startswith(".") and meta.is_file() and meta.resolve().is_relative_to(inside):
                    entries.append([f"{name}/{meta.name}", sha256_file(meta)])
    for ds in found:
        for path in (f for case in ds.cases for f in case.files):
            entries.append([f"{ds.name}/{_relative(path, Path(ds.root))}", path.stat().st_size])
    digest = hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def data_identity(root: str | Path, datasets: Sequence[Dataset] | None = None,
                  path_key: str = "data") -> dict[str, str]:
    """What a record holds about its data: ``{path_key: resolved path, FINGERPRINT_KEY: fingerprint}``
    (:func:`data_fingerprint`; ``datasets`` as there)."""
    return {path_key: str(Path(root).resolve()), FINGERPRINT_KEY: data_fingerprint(root, datasets)}


def comparable_on_data(old: Mapping[str, Any], new: Mapping[str, Any],
                       path_key: str = "data") -> tuple[dict[str, Any], dict[str, Any]]:
    """Two records reduced to what they are compared on: the data by fingerprint, not by path.

    Where ``old`` has a :data:`FINGERPRINT_KEY`, the path (``path_key``) is dropped from both, so
    that a moved or copied folder compares equal. Where it has none (a record of an earlier
    version), the fingerprint is dropped from ``new`` and the two compare by path, as they did.

    Returns:
        ``(old, new)`` as new dicts.
    """
    if FINGERPRINT_KEY in old:
        return ({k: v for k, v in old.items() if k != path_key}, {k: v for k, v in new.items() if k != path_key})
    return dict(old), {k: v for k, v in new.items() if k != FINGERPRINT_KEY}
