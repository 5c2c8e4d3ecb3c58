"""Binary tasks: the paper's decomposition of multi-class, multi-channel datasets.

"For multi-class datasets with labels y in {0..K} we decompose the problem into K
binary segmentation tasks ... each channel-class combination is treated as a
separate binary task" (paper, section 3, Problem Formulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from hyperkit.errors import HyperkitError

__all__ = ["Task", "task_id", "modality_of", "MODALITIES", "check_modality"]

#: the modalities a model is made for (a channel name maps to one with :func:`modality_of`)
MODALITIES: tuple[str, ...] = ("CT", "MRI")


def check_modality(modality: str, what: str = "modality") -> str:
    """``modality`` as ``"CT"`` or ``"MRI"`` (case and spaces ignored): the one modality check.

    Raises:
        HyperkitError: anything else (a ``ValueError``), naming ``what``.
    """
    m = str(modality).strip().upper()
    if m not in MODALITIES:
        raise HyperkitError(f"{what} must be one of {list(MODALITIES)}, got {modality!r}")
    return m


def modality_of(channel: str) -> str:
    """``"CT"`` for a CT channel, ``"MRI"`` for every other sequence name."""
    return "CT" if channel.strip().upper() == "CT" else "MRI"


def _slug(text: str) -> str:
    return "_".join(text.strip().split())


def task_id(layout: str, dataset: str, class_name: str, channel: str) -> str:
    """Stable id ``layout/dataset/class@channel`` (spaces become ``_``).

    >>> task_id("msd", "Task01_BrainTumour", "edema", "FLAIR")
    'msd/Task01_BrainTumour/edema@FLAIR'
    """
    return f"{layout}/{dataset}/{_slug(class_name)}@{_slug(channel)}"


class TaskParts(NamedTuple):
    """A task id taken apart (:func:`task_parts`)."""

    layout: str
    dataset: str
    class_name: str
    channel: str

    @property
    def short(self) -> str:
        """``class@channel``: the id without its layout and dataset (``edema@FLAIR``)."""
        return f"{self.class_name}@{self.channel}"


def task_parts(tid: str) -> TaskParts:
    """The parts of a :func:`task_id`: the one place that reads the id's format.

    >>> task_parts("msd/Task01_BrainTumour/edema@FLAIR")
    TaskParts(layout='msd', dataset='Task01_BrainTumour', class_name='edema', channel='FLAIR')

    Raises:
        ValueError: ``tid`` is not of the form ``layout/dataset/class@channel``.
    """
    head, at, channel = str(tid).rpartition("@")
    parts = head.split("/", 2)
    if not at or len(parts) != 3 or not all(parts) or not channel:
        raise ValueError(f"not a task id of the form layout/dataset/class@channel: {tid!r}")
    return TaskParts(parts[0], parts[1], parts[2], channel)


@dataclass(frozen=True)
class Task:
    """One binary target: (dataset, class, image channel).

    Attributes:
        task_id: stable id, see :func:`task_id`.
        layout: ``"msd"``, ``"totalseg"`` or ``"nnunet"``.
        dataset: dataset folder name, e.g. ``"Task03_Liver"``.
        class_name: the class name as the dataset declares it.
        label_value: integer value of the class in the case's label map.
        channel: image channel (sequence) name, e.g. ``"CT"``, ``"FLAIR"``.
        channel_index: index of that channel in the image's channel axis.
        modality: ``"CT"`` or ``"MRI"`` (decides the intensity normalisation).
    """

    task_id: str
    layout: str
    dataset: str
    class_name: str
    label_value: int
    channel: str
    channel_index: int
    modality: str
