"""A cooperative stop for jobs that run in worker threads.

Python cannot stop a thread from outside. A training that runs in a worker thread
(:func:`hyperkit.side_by_side.side_by_side`: the Conv / All U-Nets, fine-tunings,
MAML folds) would otherwise run to its end after the caller is interrupted (Ctrl-C, a kernel
interrupt, an error in another job): minutes of waiting for a result nobody reads. The pool gives
each job an event; a training loop calls :func:`stop_point` once per step, which raises
:class:`Stopped` when its pool is stopping. Outside such a pool :func:`stop_point` does nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Stopped", "stop_point", "stop_on"]

_local = threading.local()


class Stopped(Exception):
    """A job left at a stop point because the pool that runs it is stopping (its result is not wanted)."""


@contextmanager
def stop_on(event: threading.Event) -> Iterator[None]:
    """Within the block, :func:`stop_point` in this thread raises :class:`Stopped` once ``event`` is set."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def stop_point() -> None:
    """Raise :class:`Stopped` when this thread's job was asked to stop; a no-op outside :func:`stop_on`.

    Raises:
        Stopped: the event of the enclosing :func:`stop_on` is set.
    """
    event = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise Stopped("the pool running this job is stopping")
