"""The seeds module: streams are pure functions of (seed, keys) and do not collide."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperkit import seeds


def test_neighbouring_seeds_and_draws_give_different_streams() -> None:
    # the old arithmetic rule gave (seed, draw + 1) and (seed + 1, draw) one stream
    assert seeds.derive(0, "draw", "liver", 1) != seeds.derive(1, "draw", "liver", 0)
    got = {seeds.derive(s, "draw", "liver", d) for s in range(20) for d in range(20)}
    assert len(got) == 400


def test_streams_are_pure_functions_of_seed_and_keys() -> None:
    a = torch.rand(5, generator=seeds.torch_generator(3, "split", "t"))
    b = torch.rand(5, generator=seeds.torch_generator(3, "split", "t"))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(5, generator=seeds.torch_generator(3, "supports", "t")))
    np.testing.assert_array_equal(seeds.numpy_rng(0, "a", 1).random(3), seeds.numpy_rng(0, "a", 1).random(3))


def test_numpy_streams_match_a_plain_seed_sequence() -> None:
    # the phantoms' case streams and the patch offsets were made this way; they must not move
    import zlib
    ref = np.random.default_rng([7, zlib.crc32(b"Task09_Spleen"), 3, 1]).random(4)
    np.testing.assert_array_equal(seeds.numpy_rng(7, "Task09_Spleen", 3, 1).random(4), ref)


def test_episode_generator_keeps_its_formula_and_bounds() -> None:
    g = seeds.episode_generator(2, 5)
    assert torch.equal(torch.rand(3, generator=g),
                       torch.rand(3, generator=torch.Generator().manual_seed(2 * seeds.MAX_EPISODES + 5)))
    with pytest.raises(ValueError, match="episode"):
        seeds.episode_generator(0, seeds.MAX_EPISODES)


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_bad_keys_are_refused_with_their_value(bad: object) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace(".", r"\.")):
        seeds.derive(0, "x", bad)  # type: ignore[arg-type]


def test_derived_seeds_are_pinned_and_use_63_bits() -> None:
    """Guards derive's value (every torch stream of the kit starts from it) and its 63-bit range."""
    # recorded values: a change here moves every support draw, split and baseline initialisation
    assert seeds.derive(0, "draw", "liver", 1) == 1392193910489535697
    assert seeds.derive(7, "split", "msd/Task03_Liver/liver@CT") == 5758997673822945810
    got = [seeds.derive(s, "draw", "t", 0) for s in range(64)]
    assert all(0 <= v < 2 ** 63 for v in got)
    assert sum(v >= 2 ** 32 for v in got) > 32  # not folded into 32 bits


def test_torch_generator_is_seeded_with_derive() -> None:
    """Guards that a torch stream (seed, *keys) is ``manual_seed(derive(seed, *keys))``, keys in order."""
    g = seeds.torch_generator(3, "split", "t")
    ref = torch.Generator().manual_seed(seeds.derive(3, "split", "t"))
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=ref))
    assert not torch.equal(torch.rand(4, generator=seeds.torch_generator(3, "a", "b")),
                           torch.rand(4, generator=seeds.torch_generator(3, "b", "a")))


def test_episode_generator_refuses_a_negative_seed() -> None:
    """Guards the documented refusal of seed < 0 (which would alias another seed's episodes)."""
    with pytest.raises(ValueError, match="seed=-1"):
        seeds.episode_generator(-1, 0)
    with pytest.raises(ValueError, match="episode=-1"):
        seeds.episode_generator(0, -1)


@pytest.mark.parametrize("seed, episode", [(1.5, 0), (0, 2.7), (True, 0)])
def test_episode_generator_refuses_numbers_that_are_not_whole(seed: object, episode: object) -> None:
    """Guards against truncation: episode 2.7 would silently repeat episode 2's draws."""
    with pytest.raises(ValueError, match="whole numbers"):
        seeds.episode_generator(seed, episode)  # type: ignore[arg-type]
    assert seeds.episode_generator(np.int64(3), 4.0).initial_seed() == seeds.episode_generator(3, 4).initial_seed()


def test_episode_seeds_are_seed_times_1_000_003_plus_episode() -> None:
    """Guards the pinned formula ``seed * 1_000_003 + episode`` (the reference checkpoint and the curves of
    BENCHMARKS.md were made with it) and its range: seed 0, episode 0 and episode MAX_EPISODES - 1 are taken."""
    assert seeds.MAX_EPISODES == 1_000_003
    assert seeds.episode_generator(1, 0).initial_seed() == 1_000_003
    assert seeds.episode_generator(3, 17).initial_seed() == 3 * 1_000_003 + 17
    assert seeds.episode_generator(0, 0).initial_seed() == 0
    assert seeds.episode_generator(0, 1_000_002).initial_seed() == 1_000_002
    with pytest.raises(ValueError, match="episode=1000003"):
        seeds.episode_generator(0, 1_000_003)


def test_episode_seeds_wrap_modulo_2_to_the_63() -> None:
    """Guards the 63-bit range of episode seeds: kept whole below 2**63, reduced modulo 2**63 above."""
    whole = 2 ** 62 // 1_000_003 + 1  # whole * 1_000_003 lies in [2**62, 2**63)
    assert 2 ** 62 <= whole * 1_000_003 + 5 < 2 ** 63
    assert seeds.episode_generator(whole, 5).initial_seed() == whole * 1_000_003 + 5
    wrap = 2 ** 63 // 1_000_003 + 1  # wrap * 1_000_003 lies in [2**63, 2**63 + 1_000_003)
    assert seeds.episode_generator(wrap, 5).initial_seed() == wrap * 1_000_003 + 5 - 2 ** 63


def test_numpy_integer_seeds_and_keys_are_taken_as_ints() -> None:
    """Guards ``words`` taking NumPy integers (e.g. indices from an array) as the int they hold."""
    import zlib
    assert seeds.words(np.int64(7), np.uint32(3), "a") == [7, 3, zlib.crc32(b"a")]
    assert seeds.derive(np.int64(7), "draw", np.int32(2)) == seeds.derive(7, "draw", 2)
    with pytest.raises(ValueError, match="-1"):
        seeds.words(0, np.int64(-1))
