"""Independent CPU jobs side by side, one torch thread each.

On a CPU, two one-thread jobs at once do more work per second than one job at two threads: a
U-Net step at batch 1-2 does not keep two OpenMP threads busy, and every operation ends at a
barrier that waits for the slower thread (BENCHMARKS.md, "What the profile says"; a MAML fold
pair, "MAML folds side by side"). :func:`side_by_side` runs jobs in a thread pool while the
process computes at one torch thread, so each job computes exactly what it computes alone at one
thread, whatever runs beside it and in whatever order the jobs finish. The jobs are the trainings of the
evaluation (Conv / All U-Nets, fine-tunings, MAML folds) and the preprocessing of cases
(:func:`~hyperkit.data.preprocess.fill_cache`), which do not keep two threads busy either.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from hyperkit.stopping import stop_on

__all__ = ["check_workers", "side_by_side"]

T = TypeVar("T")


def check_workers(workers: int | None) -> None:
    """Refuse a number of jobs at once below 1 (``None``: one per torch thread), for callers that check it up front.

    Raises:
        ValueError: ``workers`` < 1.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")


def side_by_side(jobs: Sequence[Callable[[], T]], workers: int | None = None,
                 name: str = "side_by_side") -> Iterator[tuple[int, T]]:
    """Run independent jobs, ``workers`` at a time, one torch thread each; yield each result as it ends.

    Unless ``workers == 1``, the jobs run in worker threads and the process computes at one torch
    thread while they run (restored afterwards, also when a job fails or the caller stops early),
    also when there is only one job or one torch thread: a job computes the same numbers whether it
    runs beside others or alone (the one job a resumed run has left, one target asked for alone).
    With ``workers == 1`` the jobs run one after the other in the calling thread at the current
    thread count (a lone job then uses every core, and its numbers are those of that count). Jobs start in the
    order given (put the longest first). Worker threads flush denormal floats to zero, which
    would otherwise slow CPU convolutions by orders of magnitude (a job that must keep them sets its own thread:
    :func:`~hyperkit.data.preprocess.denormals_kept`). When the caller stops early (an
    interrupt, an error, a failed job), the jobs still running end at their next
    :func:`~hyperkit.stopping.stop_point` (one training step) instead of running to their end.

    Args:
        jobs: functions without arguments; they must not share mutable state (each its own model,
            optimiser, generator and augmentation) nor draw from torch's global generator (make
            random starts before, in the calling thread).
        workers: jobs at once (default: ``torch.get_num_threads()``, one per core torch uses).
        name: the worker threads' name prefix.

    Yields:
        ``(index into jobs, result)`` of each job as it finishes.

    Raises:
        ValueError: ``workers`` < 1.
    """
    check_workers(workers)
    if workers == 1:
        for i, job in enumerate(jobs):
            yield i, job()
        return
    if not jobs:
        return
    workers = min(torch.get_num_threads() if workers is None else workers, len(jobs))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # before the pool's threads exist: each starts at one thread
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=torch.set_flush_denormal,
                              initargs=(True,))
    stop = threading.Event()

    def run(job: Callable[[], T]) -> T:
        with stop_on(stop):
            return job()

    try:
        futures = {pool.submit(run, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        # the caller stopped early (an interrupt, an error, a job that failed): the jobs not started are dropped,
        # then the running ones leave at their next stop point; after a normal end nothing runs any more
        pool.shutdown(wait=False, cancel_futures=True)
        stop.set()
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)
