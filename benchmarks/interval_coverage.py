"""Coverage of the kit's paired 95 % intervals on simulated one-shot protocols with a known effect.

The one-shot protocol scores every support draw on the same few test cases of a target. This script
simulates paired differences ``d(draw, case) = mu + case effect + draw effect + noise`` (normal, with
the standard deviations below; ``--dist skewed``: centred exponential effects instead; ``--tasks T``:
T targets of their own cases and draws, pooled as the tables' "all tasks" rows are), computes
``stats.paired_difference`` three ways — the plain percentile interval over the rows as independent
pairs (the kit until 2026-12-04), the plain percentile interval of the two-way bootstrap (``units``:
draws and cases resampled independently; the kit on 2026-12-04), and the kit's interval (the two-way
bootstrap with its small-sample corrections) — and counts how often each covers ``mu``. BENCHMARKS,
"Confidence intervals".

    python benchmarks/interval_coverage.py --sims 1000
    python benchmarks/interval_coverage.py --sims 400 --tasks 10
    python benchmarks/interval_coverage.py --sims 1000 --dist skewed
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperkit.evaluation.stats import paired_difference

#: (sd of the case effect, sd of the draw effect, sd of the noise)
SETTINGS: tuple[tuple[float, float, float], ...] = (
    (0.10, 0.00, 0.05), (0.10, 0.05, 0.05), (0.05, 0.05, 0.05), (0.05, 0.10, 0.05), (0.00, 0.00, 0.10))


def effects(rng: np.random.Generator, sd: float, size: int | tuple[int, ...], dist: str) -> np.ndarray:
    """Zero-mean random effects of standard deviation ``sd``: ``normal``, or ``skewed`` (a centred
    exponential: most effects a little below 0, a few far above, as Dice differences on hard cases)."""
    if dist == "normal":
        return rng.normal(0.0, sd, size)
    if dist == "skewed":
        return rng.exponential(sd, size) - sd
    raise ValueError(f"dist must be 'normal' or 'skewed', got {dist!r}")


def coverage(cases: int, draws: int, sd: tuple[float, float, float], sims: int, resamples: int,
             seed: int = 0, mu: float = 0.1, tasks: int = 1, dist: str = "normal") -> tuple[float, float, float]:
    """Fraction of ``sims`` simulated protocols whose interval covers ``mu``: (rows, two-way plain, kit)."""
    rng = np.random.default_rng(seed)
    units = [(t, d, c) for t in range(tasks) for d in range(draws) for c in range(cases)]
    hits = np.zeros(3)
    for s in range(sims):
        d = np.concatenate([(mu + effects(rng, sd[0], cases, dist)[None, :]
                             + effects(rng, sd[1], draws, dist)[:, None]
                             + effects(rng, sd[2], (draws, cases), dist)).ravel() for _ in range(tasks)])
        zeros = np.zeros(d.size)
        for k, (u, small) in enumerate(((None, False), (units, False), (units, True))):
            p = paired_difference(d, zeros, units=u, resamples=resamples, seed=s, small_sample=small)
            hits[k] += p.lo <= mu <= p.hi
    return float(hits[0] / sims), float(hits[1] / sims), float(hits[2] / sims)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400, help="simulated protocols per setting")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--cases", type=int, nargs="+", default=[4, 10], help="test cases per target")
    ap.add_argument("--draws", type=int, default=5, help="support draws")
    ap.add_argument("--tasks", type=int, default=1, help="targets pooled (each its own cases and draws)")
    ap.add_argument("--dist", choices=["normal", "skewed"], default="normal",
                    help="distribution of the case, draw and noise effects")
    args = ap.parse_args(argv)
    if min(args.sims, args.resamples, args.draws, args.tasks, *args.cases) < 1:
        raise SystemExit(f"--sims, --resamples, --draws, --tasks and --cases must be >= 1, got {vars(args)}")
    print(f"coverage of the nominal 95 % interval, {args.sims} simulations each, {args.draws} draws, "
          f"{args.tasks} target(s), {args.dist} effects")
    print("cases  sd(case) sd(draw) sd(noise)   rows   draws x cases (plain)   kit (corrected)")
    for n in args.cases:
        for sd in SETTINGS:
            rows, plain, kit = coverage(n, args.draws, sd, args.sims, args.resamples, tasks=args.tasks,
                                        dist=args.dist)
            print(f"{n:5d}  {sd[0]:8.2f} {sd[1]:8.2f} {sd[2]:9.2f}   {rows:.2f}   {plain:.2f}{'':20s}{kit:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
