"""Every random stream of the kit, derived from one seed and named keys.

A stream is ``numpy.random.SeedSequence([seed, *keys])`` with each string key replaced by
its CRC-32: a pure function of the seed and the keys, independent of which other cases,
tasks or draws are used, and free of the collisions of arithmetic seeds (``seed + d`` gives
draw ``d + 1`` of seed ``s`` the stream of draw ``d`` of seed ``s + 1``).

One rule keeps streams apart: **the first key names the purpose** (``"split"``,
``"supports"``, ``"draw"``, ...) and every stream of one purpose has the same number of
keys. (``SeedSequence`` pads its entropy with zeros, so ``[s, k]`` and ``[s, k, 0]`` are the
same stream; fixed arity per purpose avoids that.) Two kinds of stream are keyed by what they
belong to rather than by a purpose name, each with its own fixed arity: patch placement
(``preprocess.placement_rng``: ``(placement_seed, dataset, case, task)``) and the phantoms
(``phantoms/cohorts.py``: ``(seed, dataset, index, stream)``).

One exception keeps measured training runs reproducible: :func:`episode_generator` keeps
the formula ``seed * 1_000_003 + episode``, which is collision-free for the episodes a run
can have (:data:`MAX_EPISODES`); the committed reference checkpoint and the learning curves
in BENCHMARKS.md were made with it.
"""

from __future__ import annotations

import zlib

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a generator is made: the phantoms and the CLI do not need it
    import torch

__all__ = ["MAX_EPISODES", "words", "numpy_rng", "derive", "torch_generator", "episode_generator"]

#: episodes per run for which :func:`episode_generator` streams never collide across seeds
MAX_EPISODES = 1_000_003


def words(seed: int, *keys: int | str) -> list[int]:
    """The entropy words of a stream: the seed, then each key (strings as their CRC-32).

    Raises:
        ValueError: a negative seed or integer key, or a key that is neither int nor str.
    """
    out = []
    for k in (seed, *keys):
        if isinstance(k, str):
            out.append(zlib.crc32(k.encode()))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0:
            out.append(int(k))
        else:
            raise ValueError(f"seed and keys must be non-negative ints or strings, got {k!r}")
    return out


def numpy_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A NumPy generator for the stream ``(seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence(words(seed, *keys)))


def derive(seed: int, *keys: int | str) -> int:
    """A 63-bit integer seed for the stream ``(seed, *keys)`` (for ``torch.manual_seed``)."""
    hi, lo = np.random.SeedSequence(words(seed, *keys)).generate_state(2, np.uint32)
    return ((int(hi) << 32) | int(lo)) % (2 ** 63)


def torch_generator(seed: int, *keys: int | str) -> "torch.Generator":
    """A CPU ``torch.Generator`` for the stream ``(seed, *keys)``."""
    import torch

    return torch.Generator().manual_seed(derive(seed, *keys))


def episode_generator(seed: int, episode: int) -> "torch.Generator":
    """The generator of one training episode: a pure function of (seed, episode).

    Every random choice of an episode (tasks, cases, augmentation, context sampling) comes
    from it, so a resumed run repeats exactly what an uninterrupted run does.

    Raises:
        ValueError: a seed or episode that is not a whole number, a negative seed, or an
            episode outside ``0 .. MAX_EPISODES - 1``.
    """
    if any(isinstance(v, bool) or int(v) != v for v in (seed, episode)):
        raise ValueError(f"episode_generator needs whole numbers, got seed={seed!r}, episode={episode!r}")
    if int(seed) < 0 or not 0 <= int(episode) < MAX_EPISODES:
        raise ValueError(f"episode_generator needs seed >= 0 and 0 <= episode < {MAX_EPISODES}, "
                         f"got seed={seed}, episode={episode}")
    import torch

    return torch.Generator().manual_seed((int(seed) * MAX_EPISODES + int(episode)) % (2 ** 63))
