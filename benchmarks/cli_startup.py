"""Start-up time of ``hyperkit --help`` and of every sub-command's ``--help``.

Each command line runs in a fresh interpreter (``python -c "from hyperkit.cli import main; ..."``),
``--repeats`` times, interleaved with the same command lines of a second checkout given by
``--baseline`` (e.g. a ``git worktree`` of an older commit), so that both see the same load;
the table gives medians and their ratio. The aim (issue 11): every line under 1.5 s on 2 cores.

    git worktree add /tmp/hk-before <old commit>
    python benchmarks/cli_startup.py --baseline /tmp/hk-before --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hyperkit.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
AIM_S = 1.5


def _time(tree: Path, argv: list[str]) -> float:
    code = f"import sys; from hyperkit.cli import main; sys.argv = ['hyperkit'] + {argv!r}; main()"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    lines = [["--help"]] + [[c, "--help"] for c in COMMANDS]
    trees = {"now": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for line in lines:
            for name, tree in trees.items():
                if name == "baseline" and line[0] not in ("--help",) and not _known(tree, line[0]):
                    continue
                times.setdefault((name, " ".join(line)), []).append(_time(tree, line))
    load = os.getloadavg()
    print(f"cpu count {os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"{args.repeats} runs each\n")
    head = "| command | median s (now) |" + (" median s (baseline) | now / baseline |" if args.baseline else "")
    print(head + f" under {AIM_S} s |")
    print("|---|---:|" + ("---:|---:|" if args.baseline else "") + "---|")
    for line in lines:
        key = " ".join(line)
        now = statistics.median(times[("now", key)])
        row = f"| `hyperkit {key}` | {now:.2f} |"
        if args.baseline:
            base = times.get(("baseline", key))
            row += f" {statistics.median(base):.2f} | {now / statistics.median(base):.2f} |" if base else " — | — |"
        print(row + f" {'yes' if now < AIM_S else 'no'} |")
    return 0


def _known(tree: Path, command: str) -> bool:
    """Whether the checkout at ``tree`` has ``command`` (an older one may lack it).

    The command names live in ``hyperkit/commands.py`` since the CLI was split per stage;
    an older checkout kept them in ``hyperkit/cli.py``.
    """
    return any(f'"{command}"' in path.read_text() for path in (tree / "hyperkit" / "commands.py",
                                                                  tree / "hyperkit" / "cli.py") if path.is_file())


if __name__ == "__main__":
    sys.exit(main())
