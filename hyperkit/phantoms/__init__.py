"""Procedural CT and MRI phantom cohorts that mirror the paper's data split.

The real TotalSegmentator and MSD data cannot be shipped, so the kit draws its
own anatomy: a CT training cohort in the TotalSegmentator layout (a torso with
82 labelled structures, none of them a held-out target) and the ten MSD
held-out tasks in the MSD layout, with MSD's task, modality and label names.
Both are written to disk so the same readers serve phantoms and real data.

    >>> from hyperkit.phantoms import ensure_phantoms
    >>> root = ensure_phantoms("runs/quick/phantoms")   # doctest: +SKIP

Modules: :mod:`~hyperkit.phantoms.shapes` (geometry), :mod:`~hyperkit.phantoms.organs`
(the per-organ parameter tables, with units), :mod:`~hyperkit.phantoms.anatomy` (the torso
built from them), :mod:`~hyperkit.phantoms.ct` and :mod:`~hyperkit.phantoms.mri` (image
synthesis), :mod:`~hyperkit.phantoms.cohorts` (datasets), :mod:`~hyperkit.phantoms.writer`
(files), :mod:`~hyperkit.phantoms.difficulty` (the difficulty benchmark).
"""

from __future__ import annotations

from hyperkit.phantoms.anatomy import TOTALSEG_STRUCTURES
from hyperkit.phantoms.cohorts import MSD_TASKS, TOTALSEG
from hyperkit.phantoms.writer import DEFAULT_SPACING, PhantomRun, ensure_phantoms, generate_phantoms

__all__ = ["DEFAULT_SPACING", "MSD_TASKS", "PhantomRun", "TOTALSEG", "TOTALSEG_STRUCTURES", "ensure_phantoms",
           "generate_phantoms"]
