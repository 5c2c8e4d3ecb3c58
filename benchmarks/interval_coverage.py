"""Coverage of the kit's paired 95 % intervals on simulated one-shot protocols with a known effect.

The one-shot protocol scores every support draw on the same few test cases of a target. This script
simulates paired differences ``d(draw, case) = mu + case effect + draw effect + noise`` (normal, with
the standard deviations below), computes ``stats.paired_difference`` three ways — over the rows as
independent pairs (the kit until 2026-12-04), over whole test cases (all draws of a case together),
and the kit's two-way bootstrap (``units``: draws and cases resampled independently) — and counts
how often each interval covers ``mu``. BENCHMARKS,
"Confidence intervals".

    python benchmarks/interval_coverage.py --sims 400
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperkit.evaluation.stats import paired_difference

#: (sd of the case effect, sd of the draw effect, sd of the noise)
SETTINGS: tuple[tuple[float, float, float], ...] = (
    (0.10, 0.00, 0.05), (0.10, 0.05, 0.05), (0.05, 0.05, 0.05), (0.05, 0.10, 0.05), (0.00, 0.00, 0.10))


def coverage(cases: int, draws: int, sd: tuple[float, float, float], sims: int, resamples: int,
             seed: int = 0, mu: float = 0.1) -> tuple[float, float, float]:
    """Fraction of ``sims`` simulated protocols whose interval covers ``mu``: (rows, cases, two-way)."""
    rng = np.random.default_rng(seed)
    units = [("t", d, c) for d in range(draws) for c in range(cases)]
    by_case = [("t", 0, c) for _, _, c in units]
    hits = np.zeros(3)
    for s in range(sims):
        d = (mu + rng.normal(0, sd[0], cases)[None, :] + rng.normal(0, sd[1], draws)[:, None]
             + rng.normal(0, sd[2], (draws, cases))).ravel()
        zeros = np.zeros(d.size)
        for k, u in enumerate((None, by_case, units)):
            p = paired_difference(d, zeros, units=u, resamples=resamples, seed=s)
            hits[k] += p.lo <= mu <= p.hi
    return float(hits[0] / sims), float(hits[1] / sims), float(hits[2] / sims)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400, help="simulated protocols per setting")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--cases", type=int, nargs="+", default=[4, 10], help="test cases per target")
    ap.add_argument("--draws", type=int, default=5, help="support draws")
    args = ap.parse_args(argv)
    if args.sims < 1 or args.resamples < 1 or args.draws < 1 or min(args.cases) < 1:
        raise SystemExit(f"--sims, --resamples, --draws and --cases must be >= 1, got {vars(args)}")
    print(f"coverage of the nominal 95 % interval, {args.sims} simulations each, {args.draws} draws")
    print("cases  sd(case) sd(draw) sd(noise)   rows   cases   draws x cases (kit)")
    for n in args.cases:
        for sd in SETTINGS:
            rows, cases, two_way = coverage(n, args.draws, sd, args.sims, args.resamples)
            print(f"{n:5d}  {sd[0]:8.2f} {sd[1]:8.2f} {sd[2]:9.2f}   {rows:.2f}   {cases:.2f}    {two_way:.2f}")


if __name__ == "__main__":
    main()
