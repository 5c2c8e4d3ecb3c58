"""Independent CPU jobs side by side, one torch thread each.

On a CPU, two one-thread jobs at once do more work per second than one job at two threads: a
U-Net step at batch 1-2 does not keep two OpenMP threads busy, and every operation ends at a
barrier that waits for the slower thread (BENCHMARKS.md, "What the profile says"; a MAML fold
pair, "MAML folds side by side"). :func:`side_by_side` runs jobs in a thread pool while the
process computes at one torch thread, so each job computes exactly what it computes alone at one
thread, whatever runs beside it and in whatever order the jobs finish.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Iterator, Sequence, TypeVar

import torch

__all__ = ["side_by_side", "job_threads"]

T = TypeVar("T")


def job_threads(n_jobs: int, workers: int | None = None) -> int:
    """The torch threads each of ``n_jobs`` jobs computes at under :func:`side_by_side`.

    Raises:
        ValueError: ``workers`` < 1.
    """
    return 1 if _workers(n_jobs, workers) > 1 else torch.get_num_threads()


def _workers(n_jobs: int, workers: int | None) -> int:
    workers = torch.get_num_threads() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return min(workers, n_jobs)


def side_by_side(jobs: Sequence[Callable[[], T]], workers: int | None = None,
                 name: str = "side_by_side") -> Iterator[tuple[int, T]]:
    """Run independent jobs, ``workers`` at a time, one torch thread each; yield each result as it ends.

    With ``workers`` > 1 the process computes at one torch thread while the jobs run (restored
    afterwards, also when a job fails or the caller stops early). With ``workers == 1`` the jobs
    run one after the other in the calling thread at the current thread count. Jobs start in the
    order given (put the longest first). Worker threads flush denormal floats to zero, which
    would otherwise slow CPU convolutions by orders of magnitude.

    Args:
        jobs: functions without arguments; they must not share mutable state (each its own model,
            optimiser, generator and augmentation).
        workers: jobs at once (default: ``torch.get_num_threads()``, one per core torch uses).
        name: the worker threads' name prefix.

    Yields:
        ``(index into jobs, result)`` of each job as it finishes.

    Raises:
        ValueError: ``workers`` < 1.
    """
    workers = _workers(len(jobs), workers)
    if workers <= 1:
        for i, job in enumerate(jobs):
            yield i, job()
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # before the pool's threads exist: each starts at one thread
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=torch.set_flush_denormal,
                              initargs=(True,))
    try:
        futures = {pool.submit(job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
